"""Compile a .rules file (grounded over nodes or a graph) or a DIMACS .cnf file into a circuit
artifact: one safetensors file holding the circuit, its atoms in order and its metadata, loadable
with `from constraintc import Circuit; Circuit.load(PATH)`.

Results are cached by content hash in $CONSTRAINTC_CACHE (default ~/.cache/constraintc):
compiling the same input twice is instant; --no-cache recompiles. A cache entry is served only
when it is yours, intact (its SHA-256 digest) and stored under its own key; otherwise it is
recompiled, with a warning. Without -o the artifact stays in the cache and its path is printed.

examples:
  constraintc compile rules/dsep.rules --nodes 4 -o dsep4.cc
  constraintc compile transitivity --nodes a,b,c,d --graph "a->b, b->c" --json
  constraintc compile dsep --nodes 5 --param cond_size=1 --max-seconds 60
  constraintc compile problem.cnf --json --backend pysdd

Budgets cover grounding and compiling together: --max-seconds, --max-memory (an estimate of what
the work holds; default 4G or half this machine's memory), --max-clauses and --max-edges are
checked before the work starts and while it runs; a budget that runs out stops with an error
naming it (exit status 3). Ctrl-C stops a compile within about a second (exit status 130).
Warnings (the rules force some given atoms, e.g. they allow no edge at all) go to stderr.

--json prints one JSON object: variables, atoms, clauses, nodes, edges, model_count (exact),
compile_seconds (of the compile that produced the artifact, also on a cache hit), backend,
cached, artifact, source_hash, warnings (given atoms the rules force; see constraintc check).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from constraintc.cli.options import (add_budget_options, add_graph_options, add_output_file,
                                     add_param_option, api_option_names, budget_of, nodes_and_graph,
                                     params_of)
from constraintc.errors import OptionError

COMPILER_BACKENDS = ("auto", "builtin", "pysdd")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="INPUT",
                        help="a .cnf (DIMACS) file, a .rules file, or a library name (dsep, transitivity)")
    add_output_file(parser, "write the artifact here (default: keep it in the cache, print its path)")
    parser.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    add_graph_options(parser, what="rules only: ")
    add_param_option(parser)
    parser.add_argument("--backend", default="auto", choices=COMPILER_BACKENDS,
                        help="knowledge compiler (default: auto, the built-in one when it builds)")
    add_budget_options(parser, edges=True)
    parser.add_argument("--no-cache", action="store_true", help="recompile even when the cache has it")


def _is_cnf(path: str) -> bool:
    return Path(path).suffix.lower() in (".cnf", ".dimacs")


def _check(args) -> None:
    if _is_cnf(args.input):
        if not Path(args.input).is_file():
            raise OptionError("INPUT", args.input, "an existing .cnf file")
        for opt, val in (("--nodes", args.nodes), ("--graph", args.graph)):
            if val is not None:
                raise OptionError(opt, val, "nothing: a .cnf input is not grounded (drop this option)")
        if args.param:
            raise OptionError("--param", args.param[0], "nothing: a .cnf input has no params")


def run(args: argparse.Namespace) -> int:
    budget = budget_of(args)  # checks the budget options first
    _check(args)
    if args.output and (Path(args.output).is_dir() or Path(args.output).parent.is_file()):
        raise OptionError("-o", args.output, "a file path (this is a directory, or its parent is a "
                                             "file)")
    from constraintc.api import compile_file

    nodes = graph = params = None
    if not _is_cnf(args.input):
        params = params_of(args)
        nodes, graph = nodes_and_graph(args)
    with api_option_names():
        circuit = compile_file(args.input, nodes=nodes, graph=graph, params=params,
                               backend=args.backend, cache=not args.no_cache,
                               max_edges=args.max_edges, budget=budget)
    artifact = circuit.meta.get("cache", {}).get("path")
    if args.output:
        try:
            artifact = str(circuit.save(args.output))
        except OSError as exc:
            raise OptionError("-o", args.output, f"a writable file path ({exc.strerror or exc})") from None
    warnings = []
    if circuit.meta.get("kind") == "rules" and circuit.meta.get("given_atoms"):
        from constraintc.api import PROBE_NODES, rule_warnings
        from constraintc.logic import load_rules


        probe = min(len(circuit.meta["nodes"]), PROBE_NODES)
        warnings = rule_warnings(load_rules(args.input, params=params), nodes=probe)
        for warning in warnings:
            print(warning, file=sys.stderr)
    stats = circuit.meta.get("stats", {})
    summary = {
        "input": args.input,
        "variables": stats.get("variables", circuit.ir.num_vars),
        "atoms": circuit.num_atoms,
        "clauses": stats.get("clauses"),
        "nodes": circuit.ir.num_nodes,
        "edges": circuit.ir.num_edges,
        "model_count": circuit.model_count(),
        "compile_seconds": stats.get("compile_seconds"),
        "ground_seconds": circuit.meta.get("ground_seconds"),
        "backend": stats.get("backend"),
        "cached": bool(circuit.meta.get("cache", {}).get("hit", False)),
        "artifact": artifact,
        "source_hash": circuit.meta.get("source_hash"),
        "roots": circuit.root_names,
        "warnings": warnings,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        where = f" -> {artifact}" if artifact else " (not written: --no-cache without -o)"
        hit = " (cached)" if summary["cached"] else ""
        print(f"{args.input}: {summary['atoms']} atoms, {summary['variables']} variables, "
              f"{summary['clauses']} clauses -> {summary['nodes']} nodes, {summary['edges']} edges, "
              f"{summary['model_count']} models, compiled in {summary['compile_seconds']:.2f} s "
              f"({summary['backend']}){hit}{where}")
    return 0
