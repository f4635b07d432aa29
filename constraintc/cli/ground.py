"""Ground a .rules file over nodes (and optionally a graph) into CNF.

Without --graph the given predicates stay variables: a schema constraint for every graph on
these nodes (atoms: query atoms, then given atoms). With --graph the graph's edges fill the
file's given predicate over (node, node): an instance constraint (atoms: query atoms only).
Output is DIMACS with 'c atom <var> <name>' lines (default) or readable text.

examples:
  constraintc ground transitivity --nodes 4
  constraintc ground rules/dsep.rules --nodes a,b,c,d --graph "a->b, b->c, d->c" --format text
  constraintc ground dsep --nodes 5 --param cond_size=1 -o dsep5.cnf
  constraintc ground transitivity --nodes a,b,c --graph edges.txt   # file: one 'u -> v' per line
  constraintc ground dsep --nodes 12 --max-seconds 30 --max-memory 2G

Budgets: --max-seconds, --max-memory (an estimate of what grounding holds; default 4G or half
this machine's memory) and --max-clauses are checked before grounding starts (a grounding that
cannot fit is refused at once) and every few milliseconds while it runs; one that runs out stops
with an error naming it (exit status 3). Node names are NFC-normalised; names with invisible
characters, and names that look alike, are refused. A graph with a cycle is refused when the
rules declare 'given acyclic'.
"""

from __future__ import annotations

import argparse
import sys

from constraintc.cli.options import (add_budget_options, add_graph_options, add_output_file,
                                     add_param_option, api_option_names, budget_of,
                                     check_output_file, nodes_and_graph, params_of, write_output)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("rules", metavar="FILE", help="rules file or library name (dsep, transitivity)")
    add_graph_options(parser)
    add_param_option(parser)
    parser.add_argument("--format", choices=("dimacs", "text"), default="dimacs",
                        help="output format (default: dimacs)")
    add_output_file(parser, "write here instead of stdout")
    add_budget_options(parser)


def run(args: argparse.Namespace) -> int:
    from constraintc.logic import ground, load_rules
    from constraintc.logic.render import grounding_text

    budget = budget_of(args)
    params = params_of(args)
    nodes, graph = nodes_and_graph(args)
    if args.output:
        check_output_file(args.output)  # before the work is done
    program = load_rules(args.rules, params=params)
    try:
        with api_option_names():
            grounding = ground(program, nodes, graph=graph, budget=budget)
    finally:
        budget.done()
    text = grounding.cnf.to_dimacs() if args.format == "dimacs" else grounding_text(grounding)
    if args.output:
        write_output(args.output, text)
    else:
        sys.stdout.write(text)
    s = grounding.stats
    print(f"{args.rules}: {s['atoms']} atoms, {s['variables']} variables, {s['clauses']} clauses "
          f"in {s['seconds']:.2f} s", file=sys.stderr)
    return 0
