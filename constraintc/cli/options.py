"""Options shared by the subcommands, defined once: rules parameters, nodes and graphs, output
files and directories, budgets. Each ``add_*`` function adds the flags; the matching reader turns
the parsed values into what the Python API takes, with an :class:`OptionError` naming the flag.

>>> parser = argparse.ArgumentParser()
>>> add_param_option(parser); add_graph_options(parser)
>>> args = parser.parse_args(["--param", "cond_size=1", "--nodes", "a,b", "--graph", "a->b"])
>>> params_of(args), nodes_and_graph(args)
({'cond_size': 1}, (['a', 'b'], [('a', 'b')]))
"""

from __future__ import annotations

import argparse
import re
import sys
from contextlib import contextmanager
from pathlib import Path

from constraintc.errors import OptionError

# A schema over this many nodes when neither --nodes nor --graph says otherwise: every library
# rules file grounds and compiles at this size in about a second.
DEFAULT_NODES = 4

# A graph file larger than this is not a graph of a size anything here could ground.
MAX_GRAPH_BYTES = 64 * 1024 * 1024


# ---------------------------------------------------------------- rules parameters
def add_param_option(parser, *aliases: str) -> None:
    """``--param NAME=VALUE``, repeatable: override a ``param`` of the rules file (``aliases``:
    old spellings, accepted and not shown)."""
    parser.add_argument("--param", dest="param", action="append", default=[], metavar="NAME=VALUE",
                        help="override a 'param' of the rules file, e.g. cond_size=3 (repeatable)")
    for alias in aliases:
        parser.add_argument(alias, dest="param", action="append", help=argparse.SUPPRESS)


def parse_params(items: list[str], option: str = "--param") -> dict[str, int]:
    """``["k=3"]`` -> ``{"k": 3}``; a malformed item raises :class:`OptionError` naming it.

    >>> parse_params(["cond_size=007", " k = 2"])
    {'cond_size': 7, 'k': 2}
    """
    from constraintc.language.parser import MAX_WHOLE_NUMBER

    out: dict[str, int] = {}
    for item in items:
        name, sep, value = item.partition("=")
        value = value.strip()
        if not sep or not name.strip() or not re.fullmatch(r"[0-9]+", value):
            raise OptionError(option, item, "NAME=VALUE with a whole-number VALUE, e.g. cond_size=3")
        digits = value.lstrip("0") or "0"
        if len(digits) > len(str(MAX_WHOLE_NUMBER)) or int(digits) > MAX_WHOLE_NUMBER:
            shown = item if len(item) <= 40 else item[:37] + "..."
            raise OptionError(option, shown, f"a VALUE of at most {MAX_WHOLE_NUMBER} (2^63 - 1)")
        out[name.strip()] = int(digits)
    return out


def params_of(args: argparse.Namespace) -> dict[str, int] | None:
    """The ``--param`` values of :func:`add_param_option`; None when none was given."""
    return parse_params(args.param) or None


# ---------------------------------------------------------------- nodes and graphs
def add_graph_options(parser, what: str = "") -> None:
    """``--nodes`` and ``--graph``; ``what`` prefixes their help (e.g. "rules only: ")."""
    parser.add_argument("--nodes", metavar="N|a,b,c",
                        help=f"{what}number of nodes (named n0..n{{N-1}}) or comma-separated names; "
                             f"default: the nodes of --graph in order of appearance, else {DEFAULT_NODES}")
    parser.add_argument("--graph", metavar="EDGES|FILE",
                        help=f"{what}edges 'a->b, b->c' or a file of edges (one 'a -> b' or 'a b' a "
                             f"line); substitutes the given predicate (an instance) instead of keeping "
                             f"it as atoms (a schema)")


def nodes_and_graph(args: argparse.Namespace) -> tuple[int | list[str], list[tuple[str, str]] | None]:
    """``(nodes, graph)`` from :func:`add_graph_options`: nodes default to the graph's nodes in
    order of appearance, else :data:`DEFAULT_NODES`."""
    graph = parse_graph(args.graph) if args.graph is not None else None
    if args.nodes is not None:
        return parse_nodes(args.nodes), graph
    if graph is not None:
        return list(dict.fromkeys(x for edge in graph for x in edge)), graph
    return DEFAULT_NODES, None


@contextmanager
def api_option_names():
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
    from constraintc.logic.evidence import node_names

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
    from constraintc.logic.evidence import node_name

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


# ---------------------------------------------------------------- outputs
def add_output_file(parser, help: str) -> None:
    """``-o/--output FILE``: where a subcommand writes its one output file."""
    parser.add_argument("-o", "--output", metavar="FILE", help=help)


def add_output_dir(parser, help: str, *aliases: str, default: str | None = None) -> None:
    """``--output-dir DIR``: where a subcommand writes several files (``aliases``: old
    spellings, accepted and not shown)."""
    parser.add_argument("--output-dir", dest="output_dir", metavar="DIR", default=default, help=help)
    for alias in aliases:
        parser.add_argument(alias, dest="output_dir", help=argparse.SUPPRESS)


def check_output_file(path: str, option: str = "-o") -> None:
    """Refuse, before any work is done, an output path that cannot be a file to write."""
    target = Path(path)
    if target.is_dir():
        raise OptionError(option, path, "a file to write, not a directory")
    if not target.parent.is_dir():
        problem = "is not a directory" if target.parent.exists() else "does not exist"
        raise OptionError(option, path, f"a file in an existing directory ({target.parent} {problem})")


def write_output(path: str, text: str, option: str = "-o") -> None:
    """Write ``text`` to ``path``; a clear error (naming the option) when that cannot be done."""
    check_output_file(path, option)
    try:
        Path(path).write_text(text)
    except OSError as exc:
        raise OptionError(option, path, f"a writable file ({exc.strerror or exc})") from None


def check_output_dir(path: str | None, option: str = "--output-dir") -> None:
    if path is not None and Path(path).exists() and not Path(path).is_dir():
        raise OptionError(option, path, "a directory (it exists and is a file)")


# ---------------------------------------------------------------- budgets
def add_budget_options(parser, edges: bool = False) -> None:
    """The budgets of grounding (and, with ``edges``, compiling)."""
    parser.add_argument("--max-seconds", type=float, metavar="S",
                        help="stop with an error when the work (grounding and compiling) takes "
                             "longer than S seconds (default: no limit)")
    parser.add_argument("--max-memory", metavar="SIZE", default=None,
                        help="stop with an error when the work would hold more than SIZE of memory "
                             "(an estimate; e.g. 512M, 8G, 'none'; default: 4G, or half of this "
                             "machine's memory if that is less)")
    parser.add_argument("--max-clauses", type=int, metavar="N",
                        help="stop with an error when the CNF grows past N clauses (default: no "
                             "limit)")
    if edges:
        parser.add_argument("--max-edges", type=int, metavar="E",
                            help="stop with an error when the circuit grows past E edges (default: "
                                 "no limit)")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="report progress on stderr once work has run for 2 s (default: on "
                             "when stderr is a terminal)")


def budget_of(args: argparse.Namespace):
    """A :class:`~constraintc.budget.Budget` from :func:`add_budget_options`; bad values name
    the option."""
    import math

    from constraintc.budget import Budget, Progress, parse_size

    if args.max_seconds is not None and not (math.isfinite(args.max_seconds) and args.max_seconds > 0):
        raise OptionError("--max-seconds", args.max_seconds, "a positive number of seconds")
    if args.max_clauses is not None and args.max_clauses <= 0:
        raise OptionError("--max-clauses", args.max_clauses, "a positive number of clauses")
    if getattr(args, "max_edges", None) is not None and args.max_edges <= 0:
        raise OptionError("--max-edges", args.max_edges, "a positive number of edges")
    memory = {} if args.max_memory is None else {"max_memory": parse_size(args.max_memory)}
    progress = args.progress if args.progress is not None else sys.stderr.isatty()
    return Budget(max_seconds=args.max_seconds, max_clauses=args.max_clauses,
                  progress=Progress() if progress else None, **memory)
