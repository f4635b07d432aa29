"""Surface shortcuts: answers a model could give without reasoning over the graph.

Each shortcut maps a record to "Yes"/"No" from its surface only (names, statement order, which
names share a sentence, how close two names are). The adversarial split contains cases where a
shortcut and the truth disagree, and the evaluation reports every shortcut as a baseline on every
split, so a model's score can be read against the best thing a non-reasoner could do.

Polarity follows the heuristic a reader would fall for: for transitivity "close means causes"
(Yes); for d-separation "close means dependent" (No, not d-separated).

=================  ================================================  =================================
shortcut           transitivity: answer Yes when ...                  d-separation: answer Yes when ...
=================  ================================================  =================================
always_yes         always                                            always
always_no          never                                             never
name_order         X sorts before Y alphabetically                   X sorts before Y alphabetically
statement_order    the premise mentions X before Y                   the premise mentions X before Y
recency            the last sentence mentions X or Y                 the last sentence mentions neither
overlap            one sentence mentions both X and Y                no sentence mentions both
chain_length       X, Y at most 2 steps apart, ignoring direction    more than 2 steps apart (or none)
conditioning       (not defined)                                     the conditioning set is non-empty
=================  ================================================  =================================
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Callable

from constraintc.logic.atoms import parse_atom



@dataclass(frozen=True)
class Query:
    """The surface of one question: the task, its arguments and the stated edges in order."""

    task: str
    x: str
    y: str
    z: tuple[str, ...]
    edges: tuple[tuple[str, str], ...]


def split_query_atom(atom: str) -> tuple[str, str, str, tuple[str, ...]]:
    """``causes(a,b)`` -> ``("causes", "a", "b", ())``; ``dsep(a,b,{c,d})`` -> ``(..., ("c", "d"))``.

    >>> split_query_atom("dsep(B,C,{D,E})")
    ('dsep', 'B', 'C', ('D', 'E'))
    """
    pred, args = parse_atom(atom)
    if pred not in ("causes", "dsep"):
        raise ValueError(f"not a causes/dsep atom: {atom!r}")
    want = 3 if pred == "dsep" else 2
    if len(args) != want or any(isinstance(a, frozenset) for a in args[:2]):
        raise ValueError(f"expected {want} arguments (two nodes{', then a set' if want == 3 else ''}) in {atom!r}")
    if pred == "dsep" and not isinstance(args[2], frozenset):
        raise ValueError(f"dsep atom without a {{...}} set: {atom!r}")
    return pred, args[0], args[1], tuple(sorted(args[2])) if pred == "dsep" else ()


def query_of(record: dict) -> Query:
    pred, x, y, z = split_query_atom(record["atom"])
    return Query(record["task"], x, y, z, tuple((u, v) for u, v in record["edges"]))


def _first_mention(edges) -> dict[str, int]:
    index: dict[str, int] = {}
    for u, v in edges:
        index.setdefault(u, len(index))
        index.setdefault(v, len(index))
    return index


def undirected_distance(edges, x: str, y: str) -> float:
    """Steps between x and y ignoring edge direction (inf when not connected)."""
    neighbours: dict[str, set[str]] = {}
    for u, v in edges:
        neighbours.setdefault(u, set()).add(v)
        neighbours.setdefault(v, set()).add(u)
    seen = {x: 0}
    queue = deque([x])
    while queue:
        node = queue.popleft()
        if node == y:
            return float(seen[node])
        for nxt in neighbours.get(node, ()):
            if nxt not in seen:
                seen[nxt] = seen[node] + 1
                queue.append(nxt)
    return float("inf")


def _close_means(q: Query, close: bool) -> bool:
    """True ("Yes") when the surface says close, for transitivity; the opposite for dsep."""
    return close if q.task == "transitivity" else not close


def _name_order(q: Query) -> bool:
    return q.x < q.y


def _statement_order(q: Query) -> bool:
    first = _first_mention(q.edges)
    return first.get(q.x, 1 << 30) < first.get(q.y, 1 << 30)


def _recency(q: Query) -> bool:
    last = q.edges[-1] if q.edges else ()
    return _close_means(q, q.x in last or q.y in last)


def _overlap(q: Query) -> bool:
    together = any({q.x, q.y} == {u, v} for u, v in q.edges)
    return _close_means(q, together)


def _chain_length(q: Query) -> bool:
    return _close_means(q, undirected_distance(q.edges, q.x, q.y) <= 2)


def _conditioning(q: Query) -> bool:
    return len(q.z) > 0


SHORTCUTS: dict[str, Callable[[Query], bool]] = {
    "always_yes": lambda q: True,
    "always_no": lambda q: False,
    "name_order": _name_order,
    "statement_order": _statement_order,
    "recency": _recency,
    "overlap": _overlap,
    "chain_length": _chain_length,
    "conditioning": _conditioning,
}

# shortcuts that mean something for each task (the evaluation reports these as baselines)
TASK_SHORTCUTS: dict[str, tuple[str, ...]] = {
    "transitivity": ("always_yes", "always_no", "name_order", "statement_order", "recency", "overlap", "chain_length"),
    "dsep": (
        "always_yes",
        "always_no",
        "name_order",
        "statement_order",
        "recency",
        "overlap",
        "chain_length",
        "conditioning",
    ),
}


def shortcut_answer(name: str, record_or_query: dict | Query) -> str:
    """The answer shortcut ``name`` gives for a record: "Yes" or "No".

    >>> r = {"task": "transitivity", "atom": "causes(B,D)", "edges": [["B", "C"], ["C", "D"]]}
    >>> shortcut_answer("overlap", r), shortcut_answer("chain_length", r)
    ('No', 'Yes')
    """
    q = record_or_query if isinstance(record_or_query, Query) else query_of(record_or_query)
    return "Yes" if SHORTCUTS[name](q) else "No"


def shortcut_answers(record: dict) -> dict[str, str]:
    """Every shortcut that applies to the record's task -> its answer."""
    q = query_of(record)
    return {name: ("Yes" if SHORTCUTS[name](q) else "No") for name in TASK_SHORTCUTS[q.task]}
