"""Nodes and graphs as grounding takes them: node names checked and normalised, graphs checked
for cycles, and a graph turned into evidence for the one given predicate over (node, node).

>>> node_names(3), normalize_graph([("a", "b")])
(['n0', 'n1', 'n2'], [('a', 'b')])
>>> cycle_text(find_cycle([("a", "b"), ("b", "a")]))
'a -> b -> a'
"""

from __future__ import annotations

import unicodedata

from constraintc.errors import ConstraintcError, OptionError, SourcePosition
from constraintc.language import ast
from constraintc.language.ast import Program

NODE = "node"


def node_names(nodes: int | list[str] | tuple[str, ...]) -> list[str]:
    """``4`` -> ``["n0", "n1", "n2", "n3"]``; a list of names is checked and NFC-normalised.

    Names that look alike are refused: a name with an invisible or control character (a
    zero-width space, a direction mark), and two names that differ only in compatibility forms
    (``a`` and the full-width ``ａ``), would be different atoms that nobody can tell apart.

    >>> node_names(["caf\u0065\u0301", "b"])   # e + combining acute: stored as one character
    ['café', 'b']
    """
    if isinstance(nodes, int) and not isinstance(nodes, bool):
        if nodes < 1:
            raise OptionError("nodes", nodes, "a number of nodes >= 1 or a list of names")
        return [f"n{i}" for i in range(nodes)]
    if isinstance(nodes, (str, bytes)):
        raise OptionError("nodes", nodes, "a number of nodes or a list of names (not one string)")
    names = [node_name(x) for x in nodes]
    if not names:
        raise OptionError("nodes", [], "at least one node")
    distinct: set[str] = set()
    skeletons: dict[str, str] = {}
    for name in names:
        if name in distinct:
            raise OptionError("nodes", name, "distinct node names (this one appears twice)")
        other = skeletons.setdefault(_skeleton(name), name)
        if other != name:
            raise OptionError("nodes", name, f"names that do not look alike: this one looks like "
                                             f"{other!r}")
        distinct.add(name)
    return names


# these would not survive a round trip through atom names ("edge(a,b)") or --graph ("a->b; c d #")
_FORBIDDEN_IN_NAMES = " ,(){}#;"


def node_name(value) -> str:
    """One node name, NFC-normalised; a clear error for names nobody could read back."""
    name = unicodedata.normalize("NFC", str(value))
    if not name:
        raise OptionError("nodes", value, "non-empty node names")
    if "->" in name:
        raise OptionError("nodes", name, "node names without '->' (it separates the nodes of an "
                                         "edge)")
    for ch in name:
        if ch in _FORBIDDEN_IN_NAMES or unicodedata.category(ch) in _INVISIBLE:
            what = f"U+{ord(ch):04X} {unicodedata.name(ch, 'a control character')}"
            raise OptionError("nodes", name, f"node names of visible characters, without spaces, "
                                             f"',', '(', ')', '{{', '}}', '#' or ';' "
                                             f"(this one contains {what})")
    return name


# control, format (zero-width, direction marks), separators, unassigned, private use, surrogates
_INVISIBLE = {"Cc", "Cf", "Zs", "Zl", "Zp", "Cn", "Co", "Cs"}


def _skeleton(name: str) -> str:
    """What a name looks like: its compatibility form (full-width and ligature characters
    become plain ones); two names with one skeleton are refused as look-alikes."""
    return unicodedata.normalize("NFKC", name)


def normalize_graph(graph) -> list[tuple[str, str]]:
    """Edges as pairs of NFC-normalised node names; a clear error for anything else."""
    if isinstance(graph, (str, bytes)):
        raise OptionError("graph", graph, "a list of (source, target) edges (the CLI parses "
                                          "'a->b, b->c')")
    edges = []
    for edge in graph:
        if isinstance(edge, (str, bytes)) or len(edge) != 2:
            raise OptionError("graph", edge, "edges as (source, target) pairs")
        edges.append((node_name(edge[0]), node_name(edge[1])))
    return edges


def find_cycle(edges) -> list[str] | None:
    """A directed cycle of ``edges`` as ``[a, b, ..., a]``, or None for a DAG (iterative DFS).

    >>> find_cycle([("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")])
    ['a', 'b', 'c', 'a']
    >>> find_cycle([("a", "b"), ("a", "c"), ("b", "c")]) is None
    True
    """
    succ: dict[str, list[str]] = {}
    for u, v in edges:
        succ.setdefault(u, []).append(v)
        succ.setdefault(v, [])
    state = dict.fromkeys(succ, 0)  # 0 new, 1 on the current path, 2 done
    for root in succ:
        if state[root]:
            continue
        path = [root]
        state[root] = 1
        stack = [iter(succ[root])]
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                stack.pop()
                state[path.pop()] = 2
            elif state[nxt] == 1:
                return path[path.index(nxt):] + [nxt]
            elif state[nxt] == 0:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(succ[nxt]))
    return None


def cycle_text(cycle: list[str]) -> str:
    return " -> ".join(cycle)


def check_acyclic(program: Program, edges, pred: ast.PredDecl | None = None) -> None:
    """Refuse a graph with a cycle when the rules declare its predicate ``acyclic``."""
    pred = pred or graph_predicate(program)
    if not getattr(pred, "acyclic", False):
        return
    cycle = find_cycle(edges)
    if cycle is not None:
        pos = SourcePosition(program.filename, pred.span.line, pred.span.column)
        raise OptionError("graph", cycle_text(cycle),
                          f"a graph without cycles: {pos} declares 'given acyclic {pred.name}', "
                          f"and this graph has the cycle {cycle_text(cycle)}")


def graph_predicate(program: Program) -> ast.PredDecl:
    """The given predicate a graph fills: the one given predicate over (node, node)."""
    candidates = [p for p in program.givens.values() if p.arg_types == (NODE, NODE)]
    if len(candidates) != 1:
        found = ", ".join(p.name for p in candidates) or "none"
        raise ConstraintcError(
            f"error: {program.filename}: a graph fills the one given predicate over (node, node), "
            f"but this file has {len(candidates)} ({found}); pass evidence= instead")
    return candidates[0]


def shown_nodes(names: list[str], limit: int = 12) -> str:
    if len(names) <= limit:
        return ", ".join(names)
    return ", ".join(names[:limit]) + f", ... ({len(names)} nodes)"


def evidence_from_graph(program: Program, names: list[str], graph) -> dict[str, dict[tuple, bool]]:
    pred = graph_predicate(program)
    index = {n: i for i, n in enumerate(names)}
    skeletons = {_skeleton(n): n for n in names}
    table: dict[tuple, bool] = {}
    for u, v in graph:
        for x in (u, v):
            if x not in index:
                alike = skeletons.get(_skeleton(x))
                hint = f"; {x!r} looks like the node {alike!r} but is not it" if alike else ""
                raise OptionError("graph", f"{u}->{v}", f"edges between the nodes "
                                                        f"({shown_nodes(names)}){hint}")
        table[(index[u], index[v])] = True
    return {pred.name: table}
