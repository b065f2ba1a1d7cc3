"""CLI command groups that live outside cli.py. Each module defines register(app, validate_app).

Command modules import heavy packages (pandas, matplotlib, torch) inside the command functions only,
so that `costsim estimate` stays fast and never imports torch.
"""
