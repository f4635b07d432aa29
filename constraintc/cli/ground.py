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
import re
import sys
from contextlib import contextmanager
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
    from constraintc.budget import budget_options

    budget_options(parser)


@contextmanager
def cli_option_names():
    """Errors about the Python API's ``nodes``/``graph`` arguments, named as the CLI's options."""
    try:
        yield
    except OptionError as err:
        if err.option in ("nodes", "graph"):
            raise OptionError(f"--{err.option}", err.value, err.expected) from None
        raise


def parse_nodes(value: str, option: str = "--nodes") -> int | list[str]:
    """``"4"`` -> ``4``; ``"a,b,c"`` -> ``["a", "b", "c"]`` (NFC-normalised, look-alikes refused).

    >>> parse_nodes("3"), parse_nodes(" a, b ")
    (3, ['a', 'b'])
    """
    from constraintc.logic.grounding import node_names

    value = value.strip()
    if re.fullmatch(r"[+-]?[0-9]+", value):
        digits = value.lstrip("+").lstrip("0")
        if value.startswith("-") or not digits or len(digits) > 18:
            shown = value if len(value) <= 30 else value[:27] + "..."
            raise OptionError(option, shown, "a number of nodes from 1 to 10^18, or comma-separated "
                                             "names like a,b,c")
        return int(digits)
    names = [x.strip() for x in value.split(",")]
    if not value or any(not x for x in names):
        raise OptionError(option, value, "a number of nodes or comma-separated names like a,b,c")
    try:
        return node_names(names)
    except OptionError as err:
        raise OptionError(option, err.value, err.expected) from None


# A graph file larger than this is not a graph of a size anything here could ground.
MAX_GRAPH_BYTES = 64 * 1024 * 1024


def _read_graph_file(path: Path, option: str) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_GRAPH_BYTES:
            raise OptionError(option, str(path), f"a graph file of at most "
                                                 f"{MAX_GRAPH_BYTES // 2**20} MiB ({size} bytes)")
        data = path.read_bytes()
    except OSError as exc:
        raise OptionError(option, str(path), f"a readable file of edges ({exc.strerror})") from None
    data = data.removeprefix(b"\xef\xbb\xbf")
    nul = data.find(b"\0")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        nul = exc.start if nul < 0 else min(nul, exc.start)
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        column = len(data[data.rfind(b"\n", 0, nul) + 1:nul].decode("utf-8", "replace")) + 1
        raise OptionError(option, str(path), f"a UTF-8 text file of edges, one 'a -> b' per line; "
                                             f"byte 0x{data[nul]:02x} at line {line}, column "
                                             f"{column} is not text (a binary file?)")
    return text


def parse_graph(value: str, option: str = "--graph") -> list[tuple[str, str]]:
    """Edges from ``"a->b, b->c"`` or from a file holding such edges (also ``a b`` per line).

    Node names are NFC-normalised; a file that is not UTF-8 text is refused, naming the line
    and column of the first byte that is not.

    >>> parse_graph("a->b, b -> c")
    [('a', 'b'), ('b', 'c')]
    """
    from constraintc.logic.grounding import node_name

    path = Path(value)
    from_file = "->" not in value and path.is_file()
    if from_file:
        text = _read_graph_file(path, option)
    elif "->" not in value and (path.exists() or "/" in value or
                                re.search(r"\.(txt|edges|csv|tsv)$", value)):
        problem = "it is not a regular file" if path.exists() else "no such file"
        raise OptionError(option, value, f"edges 'a->b, b->c' or a file of edges ({problem})")
    else:
        text = value
    edges = []
    for lineno, line in enumerate(text.split("\n"), 1):
        for raw in re.split(r"[,;]", line.split("#", 1)[0]):
            item = raw.strip()
            if not item:
                continue
            if "->" in item:
                parts = [p.strip() for p in item.split("->")]
            else:
                parts = item.split()
            where = f"{path}:{lineno}: {item}" if from_file else item
            if len(parts) != 2 or not all(parts) or any(re.search(r"\s", p) for p in parts):
                raise OptionError(option, where, "edges written 'a->b' (comma-separated) or a file "
                                                 "of edges, one 'a -> b' or 'a b' per line")
            try:
                edges.append((node_name(parts[0]), node_name(parts[1])))
            except OptionError as err:
                raise OptionError(option, where, err.expected) from None
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


def write_output(path: str, text: str, option: str = "-o") -> None:
    """Write ``text`` to ``path``; a clear error (naming the option) when that cannot be done."""
    target = Path(path)
    if target.is_dir():
        raise OptionError(option, path, "a file to write, not a directory")
    if not target.parent.is_dir():
        problem = "is not a directory" if target.parent.exists() else "does not exist"
        raise OptionError(option, path, f"a file in an existing directory ({target.parent} {problem})")
    try:
        target.write_text(text)
    except OSError as exc:
        raise OptionError(option, path, f"a writable file ({exc.strerror or exc})") from None


def run(args: argparse.Namespace) -> int:
    from constraintc.budget import budget_from_args
    from constraintc.logic import load_rules
    from constraintc.cli.check import parse_param_options
    from constraintc.logic.grounding import ground

    budget = budget_from_args(args)
    params = parse_param_options(args.param) or None
    graph = parse_graph(args.graph) if args.graph is not None else None
    if args.nodes is not None:
        nodes = parse_nodes(args.nodes)
    elif graph is not None:
        nodes = list(dict.fromkeys(x for edge in graph for x in edge))
    else:
        raise OptionError("--nodes", None, "a number of nodes or names a,b,c (or give --graph)")
    if args.output:
        out = Path(args.output)
        if out.is_dir() or not out.parent.is_dir():
            write_output(args.output, "")  # refuses before the work is done
    program = load_rules(args.rules, params=params)
    try:
        with cli_option_names():
            grounding = ground(program, nodes, graph=graph, budget=budget)
    finally:
        budget.done()
    text = grounding.cnf.to_dimacs() if args.format == "dimacs" else render_text(grounding)
    if args.output:
        write_output(args.output, text)
    else:
        sys.stdout.write(text)
    s = grounding.stats
    print(f"{args.rules}: {s['atoms']} atoms, {s['variables']} variables, {s['clauses']} clauses "
          f"in {s['seconds']:.2f} s", file=sys.stderr)
    return 0
