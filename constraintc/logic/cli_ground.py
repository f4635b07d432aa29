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
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from constraintc.errors import OptionError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("rules", metavar="FILE", help="rules file or library name (dsep, transitivity)")
    parser.add_argument("--nodes", metavar="N|a,b,c",
                        help="number of nodes (named n0..n{N-1}) or comma-separated names; "
                             "default: the nodes of --graph in order of appearance")
    parser.add_argument("--graph", metavar="EDGES|FILE",
                        help="edges 'a->b, b->c' or a file of edges (one 'a -> b' or 'a b' a line)")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="override a 'param' of the rules file (repeatable)")
    parser.add_argument("--format", choices=("dimacs", "text"), default="dimacs",
                        help="output format (default: dimacs)")
    parser.add_argument("-o", "--output", metavar="OUT", help="write here instead of stdout")


def parse_nodes(value: str) -> int | list[str]:
    """``"4"`` -> ``4``; ``"a,b,c"`` -> ``["a", "b", "c"]``."""
    value = value.strip()
    if value.isdigit():
        return int(value)
    names = [x.strip() for x in value.split(",")]
    if not value or any(not x for x in names):
        raise OptionError("--nodes", value, "a number of nodes or comma-separated names like a,b,c")
    return names


def parse_graph(value: str, option: str = "--graph") -> list[tuple[str, str]]:
    """Edges from ``"a->b, b->c"`` or from a file holding such edges (also ``a b`` per line).

    >>> parse_graph("a->b, b -> c")
    [('a', 'b'), ('b', 'c')]
    """
    text = value
    path = Path(value)
    if "->" not in value and path.is_file():
        text = path.read_text()
    edges = []
    for raw in re.split(r"[,\n;]", text):
        item = raw.split("#", 1)[0].strip()
        if not item:
            continue
        if "->" in item:
            parts = [p.strip() for p in item.split("->")]
        else:
            parts = item.split()
        if len(parts) != 2 or not all(parts) or any(re.search(r"\s", p) for p in parts):
            raise OptionError(option, item, "edges written 'a->b' (comma-separated) or a file of "
                                            "edges, one 'a -> b' or 'a b' per line")
        edges.append((parts[0], parts[1]))
    return edges


def render_text(grounding) -> str:
    """A readable view: the atoms with their CNF variables, then each rule's ground formula."""
    from constraintc.logic.boolean import AND, IFF, TRUE, VAR

    b = grounding.builder
    lines = [f"# {c}" for c in grounding.cnf.comments]
    stats = grounding.stats
    lines.append(f"# {stats['atoms']} atoms, {stats['variables']} variables, {stats['clauses']} clauses")
    lines.append("atoms:")
    lines += [f"  {i} {name}" for i, name in enumerate(grounding.atoms, 1)]
    defs: dict[int, str] = {}
    order: list[int] = []
    memo: dict[int, str] = {}

    def show(lit: int, top: bool = False) -> str:
        node = abs(lit)
        if node == TRUE:
            return "true" if lit > 0 else "false"
        if b.kind[node] == VAR:
            text = b.names[node]
        else:
            text = memo.get(node)
            if text is None:
                kids = b.children[node]
                if b.kind[node] == AND:
                    parts = [show(c) for c in kids]
                    # print negated conjunctions as disjunctions: rules read that way
                    text = " & ".join(parts)
                elif b.kind[node] == IFF:
                    text = f"{show(kids[0])} <-> {show(kids[1])}"
                if len(text) > 120:
                    defs[node] = text
                    order.append(node)
                    text = f"$g{node}"
                else:
                    text = f"({text})"
                memo[node] = text
        if lit < 0:
            if text.startswith("(") and b.kind[node] == AND:
                inner = " | ".join(show(-c) for c in b.children[node])
                return inner if top else f"({inner})"
            return f"~{text}"
        return text[1:-1] if top and text.startswith("(") else text

    for name, lit in grounding.rule_lits.items():
        lines.append(f"rule {name}:")
        conjuncts = [lit]
        if lit > 0 and b.kind[lit] == AND:
            conjuncts = list(b.children[lit])
        lines += [f"  {show(c, top=True)}" for c in conjuncts]
    if defs:
        lines.append("where:")
        lines += [f"  $g{n} := {defs[n]}" for n in order]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    from constraintc.language import load_rules
    from constraintc.language.cli_check import parse_param_options
    from constraintc.logic.grounding import ground

    params = parse_param_options(args.param) or None
    graph = parse_graph(args.graph) if args.graph is not None else None
    if args.nodes is not None:
        nodes = parse_nodes(args.nodes)
    elif graph is not None:
        nodes = list(dict.fromkeys(x for edge in graph for x in edge))
    else:
        raise OptionError("--nodes", None, "a number of nodes or names a,b,c (or give --graph)")
    program = load_rules(args.rules, params=params)
    grounding = ground(program, nodes, graph=graph)
    text = grounding.cnf.to_dimacs() if args.format == "dimacs" else render_text(grounding)
    if args.output:
        try:
            Path(args.output).write_text(text)
        except OSError as exc:
            raise OptionError("-o", args.output, f"a writable path ({exc.strerror})") from None
    else:
        sys.stdout.write(text)
    s = grounding.stats
    print(f"{args.rules}: {s['atoms']} atoms, {s['variables']} variables, {s['clauses']} clauses "
          f"in {s['seconds']:.2f} s", file=sys.stderr)
    return 0
