"""The command line: ``python -m interpgrad <command> ...``; each command is a thin layer over the library.

Every command exits 0 on success and non-zero with a one-line reason on bad input (``interpgrad train: error: ...``);
long work shows a progress bar. Commands live in their own modules and register through ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import textwrap
from typing import TYPE_CHECKING, Callable, NoReturn, Sequence

from ..errors import InterpgradError

if TYPE_CHECKING:
    from ..params import Param

__all__ = ["COMMANDS", "OneLineParser", "Subcommands", "add_subcommands", "main", "param_line", "param_setting",
           "run_subcommand"]

# command name -> module (inside interpgrad.cli) defining ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``
COMMANDS = {
    "train": "train",
    "info": "info",
    "explain": "explain",
    "evaluate": "evaluate",
    "gad": "gad",
    "lab": "lab",
}


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (``prog: error: reason``) with exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


Subcommands = dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]]
"""A command's subcommands: name -> (help, add its arguments, run it)."""


def add_subcommands(parser: argparse.ArgumentParser, command: str, subcommands: Subcommands) -> None:
    """``python -m interpgrad COMMAND SUBCOMMAND ...``: one sub-parser per subcommand (its help is its description)."""
    subparsers = parser.add_subparsers(dest=f"{command}_command", metavar="SUBCOMMAND", parser_class=OneLineParser)
    for name, (text, add, _) in subcommands.items():
        add(subparsers.add_parser(name, help=text, description=text, prog=f"interpgrad {command} {name}"))


def run_subcommand(args: argparse.Namespace, command: str, subcommands: Subcommands) -> int:
    """Run the subcommand ``args`` chose, or say which there are."""
    chosen = getattr(args, f"{command}_command", None)
    if chosen is None:
        from ..errors import ConfigError

        raise ConfigError(f"choose a subcommand: {', '.join(subcommands)} (python -m interpgrad {command} --help)")
    return subcommands[chosen][2](args)


def param_setting(param: Param) -> str:
    """A declared parameter in a list of settings: ``steps=32 [only when base is integrated_gradients]``."""
    return f"{param.name}={param.default}" + (f" [{param.when.describe()}]" if param.when else "")


def param_line(param: Param, prefix: str = "", indent: int = 4, width: int = 110) -> str:
    """A declared parameter on its own (wrapped) lines for --help and --list:
    ``PREFIX.steps=32 (only when base is integrated_gradients): path points of ...``."""
    choices = f" {{{', '.join(param.choices)}}}" if param.choices else ""
    condition = f" ({param.when.describe()})" if param.when else ""
    text = f"{prefix}{param.name}={param.default}{choices}{condition}: {param.help}"
    return textwrap.fill(text, width, initial_indent=" " * indent, subsequent_indent=" " * (indent + 4))


def _command_module(name: str):  # type: ignore[no-untyped-def]
    return importlib.import_module(f"{__name__}.{COMMANDS[name]}")


def build_parser(commands: Sequence[str] | None = None) -> OneLineParser:
    parser = OneLineParser(prog="interpgrad", description="Interpretable gradients: train, explain, evaluate.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for name in commands or COMMANDS:
        module = _command_module(name)
        sub = subparsers.add_parser(name, help=module.HELP, description=module.HELP, prog=f"interpgrad {name}")
        module.add_arguments(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    known = [name for name in COMMANDS if name in argv[:1]]
    parser = build_parser(known or None)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(_command_module(args.command).run(args) or 0)
    except InterpgradError as error:
        print(f"interpgrad {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interpgrad {args.command}: interrupted", file=sys.stderr)
        return 130
