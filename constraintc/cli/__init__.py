"""The ``constraintc`` command line: one thin subcommand per pipeline stage.

Each subcommand is a module of this package (``constraintc.cli.check``, ...) with two functions,
``add_arguments(parser)`` and ``run(args) -> int``, over the Python API of its stage. Modules are imported only when their
subcommand runs, so ``constraintc check`` starts without importing torch.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from constraintc import __version__
from constraintc.errors import ConstraintcError

# name -> (module, one-line help). Order is the order of the pipeline.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "check": ("constraintc.cli.check", "parse and check a .rules file; report every error"),
    "ground": ("constraintc.cli.ground", "ground a .rules file over nodes/a graph to CNF"),
    "compile": ("constraintc.cli.compile", "compile a .rules or .cnf file to a circuit artifact"),
    "data": ("constraintc.cli.data", "generate balanced causal reasoning tasks (JSONL)"),
    "eval": ("constraintc.cli.eval", "score predictions or a model; flag collapse"),
    "finetune": ("constraintc.cli.finetune", "fine-tune a causal LM with the semantic loss"),
}

DESCRIPTION = """\
constraintc compiles declarative causal rules (.rules files) into exact, differentiable
semantic losses and trains language models with them.

typical use:
  constraintc check rules/dsep.rules
  constraintc ground transitivity --nodes 4 --format text
  constraintc compile rules/dsep.rules --nodes 4 -o dsep4.cc
  constraintc data dsep --split train --n 1000 -o train.jsonl
  constraintc finetune --rules transitivity --steps 300
  constraintc eval --data test.jsonl --predictions preds.jsonl
"""


def _top_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="constraintc",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"constraintc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def build_parser(command: str) -> argparse.ArgumentParser:
    """The parser of one subcommand (imports only that subcommand's module)."""
    module_name, help_text = SUBCOMMANDS[command]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(
        prog=f"constraintc {command}",
        description=(module.__doc__ or help_text).strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    module.add_arguments(parser)
    parser.set_defaults(_run=module.run)
    return parser


def _exit_now(code: int) -> None:
    """End the process at once: after Ctrl-C, tearing down the interpreter (torch's modules and
    finalizers) costs another half second of CPU, which a user waiting on Ctrl-C should not
    wait for. Every ``finally`` has already run; only the streams need flushing."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in SUBCOMMANDS:
        # no subcommand: help by default; an unknown one gets argparse's own error (exit 2)
        parser = _top_parser()
        if not argv:
            parser.print_help()
            return 0
        parser.parse_args(argv)
        return 0
    parser = build_parser(argv[0])
    args = parser.parse_args(argv[1:])
    try:
        return int(args._run(args) or 0)
    except ConstraintcError as err:
        print(str(err), file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        if from_command_line:
            _exit_now(130)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
