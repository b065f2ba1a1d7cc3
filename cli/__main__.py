"""`python -m cli`: the same as the `costsim` command."""

from cli.main import main

main()
