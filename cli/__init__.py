"""The `costsim` command line: parses options, calls the simulator's front door, prints. No formulas here."""

from cli.main import app, main

__all__ = ["app", "main"]
