"""`costsim schema COMMAND`: the JSON Schema of a command's `--format json` document (models in simulator/outputs.py)."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.options import fail


def register(app: typer.Typer, validate_app: typer.Typer) -> None:
    # `--plan` in `costsim schema estimate --plan` is a word of COMMAND, not an option of schema.
    app.command("schema", context_settings={"ignore_unknown_options": True})(schema)


def schema(
    command: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="COMMAND",
            help="The command as typed, arguments and options too (they do not change the document, but for estimate "
            "--plan and claim --cheaper): estimate llama-3-8b --gpu h100, search, list gpus, validate public, ...; "
            "a group alone (validate, list) lists its commands",
        ),
    ] = None,
    list_commands: Annotated[bool, typer.Option("--list", help="List the commands whose JSON output is described")] = False,
) -> None:
    """Print the JSON Schema of a command's --format json output (with its schema_version); no COMMAND: list them."""
    import json

    from simulator.errors import CostsimError, InputError
    from simulator.outputs import COMMANDS, json_schema, subcommands

    command = command[1:] if command and command[0] == "costsim" else command  # the command as pasted
    if list_commands and command:
        fail(InputError(f"--list lists every command; give it alone, or give the command ({' '.join(command)}) alone"))
    if list_commands or not command:
        typer.echo(command_list(list(COMMANDS)))
        return
    words = [t for t in command if not t.startswith("-")]
    if len(words) == 1 and subcommands(words[0]):  # `costsim schema validate`: the validate commands it describes
        typer.echo(command_list(subcommands(words[0])))
        return
    try:
        doc = json_schema(" ".join(command))
    except CostsimError as e:
        fail(e)
    typer.echo(json.dumps(doc, indent=2))


def command_list(names: list[str]) -> str:
    """One line per command of `names`: the name `costsim schema` takes, and what its document holds."""
    from simulator.outputs import COMMANDS

    width = max(len(c) for c in COMMANDS)
    lines = [f"{name:<{width}}  {' '.join((COMMANDS[name].__doc__ or '').split())}" for name in names]
    return "\n".join(lines)
