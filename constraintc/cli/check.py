"""Parse and check .rules files; print every error of every file with its position and a caret.

A FILE that names no local file may name a library file: rules/dsep.rules, dsep.rules or dsep.
Exit status 0 when every file is sound, 1 when a file has errors, 2 when a file is missing.

A sound file is also probed on graphs of 3 nodes: when its rules have no model at all, or force
atoms of a given predicate (for example, they hold on no graph with an edge), a warning says so
on stderr; the exit status stays 0. --no-probe skips that.

examples:
  constraintc check rules/dsep.rules
  constraintc check examples/rules/*.rules
  constraintc check my.rules --param cond_size=3
"""

from __future__ import annotations

import argparse
import sys

from constraintc.cli.options import add_param_option, params_of
from constraintc.errors import ConstraintcError, OptionError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="rules files (or library names)")
    add_param_option(parser)
    parser.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    parser.add_argument("--no-probe", action="store_true",
                        help="skip the probe for rules without models or that force given atoms")
    parser.add_argument("--max-errors", type=int, default=100, metavar="N",
                        help="show at most N errors per file, then their count (default: 100; "
                             "0: show all)")


def run(args: argparse.Namespace) -> int:
    from constraintc.language import RulesError
    from constraintc.logic import load_rules

    if args.max_errors < 0:
        raise OptionError("--max-errors", args.max_errors, "a number of errors >= 0 (0: all)")
    params = params_of(args)
    status = 0
    for name in args.files:
        try:
            program = load_rules(name, params=params)
        except RulesError as err:
            print(err.format(args.max_errors or None), file=sys.stderr)
            status = max(status, err.exit_code)
            continue
        except ConstraintcError as err:
            print(str(err), file=sys.stderr)
            status = max(status, err.exit_code)
            continue
        if not args.quiet:
            q, g, d = len(program.queries), len(program.givens), len(program.derived)
            print(f"{name}: ok ({q} query, {g} given, {d} derived predicates; "
                  f"{len(program.rules)} rules)")
        if not args.no_probe:
            from constraintc.api import rule_warnings

            for warning in rule_warnings(program, max_seconds=2.0):
                print(warning, file=sys.stderr)
    return status
