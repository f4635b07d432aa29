"""Parse and check .rules files; print every error of every file with its position and a caret.

A FILE that names no local file may name a library file: rules/dsep.rules, dsep.rules or dsep.
Exit status 0 when every file is sound, 1 when a file has errors, 2 when a file is missing.

examples:
  constraintc check rules/dsep.rules
  constraintc check examples/rules/*.rules
  constraintc check my.rules --param cond_size=3
"""

from __future__ import annotations

import argparse
import sys

from constraintc.errors import ConstraintcError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="rules files (or library names)")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="override a 'param' of the file (repeatable)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print errors only")


def parse_param_options(items: list[str]) -> dict[str, int]:
    """``["k=3"]`` -> ``{"k": 3}``; a malformed item raises OptionError naming it."""
    from constraintc.errors import OptionError

    out: dict[str, int] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip().isdigit():
            raise OptionError("--param", item, "NAME=VALUE with a whole-number VALUE, e.g. cond_size=3")
        out[name.strip()] = int(value)
    return out


def run(args: argparse.Namespace) -> int:
    from constraintc.language import load_rules

    params = parse_param_options(args.param) or None
    status = 0
    for name in args.files:
        try:
            program = load_rules(name, params=params)
        except ConstraintcError as err:
            print(str(err), file=sys.stderr)
            status = max(status, err.exit_code)
            continue
        if not args.quiet:
            q, g, d = len(program.queries), len(program.givens), len(program.derived)
            print(f"{name}: ok ({q} query, {g} given, {d} derived predicates; "
                  f"{len(program.rules)} rules)")
    return status
