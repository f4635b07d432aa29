"""Random causal DAGs, node names and the labels networkx gives them.

A graph here is a list of node names and a list of ``(cause, effect)`` edges in *statement order*
(the order the premise states them). Labels always come from networkx: reachability for
transitivity, :func:`networkx.is_d_separator` for d-separation.
"""

from __future__ import annotations

import hashlib
import random
import string

import networkx as nx

# Single capital letters read as names to a tokenizer and to a person; "A" and "I" are left out
# because they are also English words ("A causes B." is ambiguous to a language model).
SHORT_NAMES: tuple[str, ...] = tuple(c for c in string.ascii_uppercase if c not in "AI")

_CONSONANTS = "bcdfghjklmnprstvwz"
_VOWELS = "aeiou"


def long_name(rng: random.Random, low: int = 8, high: int = 10) -> str:
    """A pronounceable capitalised name of ``low..high`` letters.

    >>> len(long_name(random.Random(0))) in range(8, 11)
    True
    """
    length = rng.randint(low, high)
    letters = []
    while len(letters) < length:
        letters.append(rng.choice(_CONSONANTS))
        letters.append(rng.choice(_VOWELS))
    return "".join(letters[:length]).capitalize()


# The open alphabet of node names: 1-3 letters and digits, mixed case, as public causal-reasoning
# benchmark sets write them (``R0R``, ``1da``, ``Ye``).
OPEN_ALPHABET = string.ascii_letters + string.digits
# Words of the prompts, answers and traces: a node never carries one of these names, so a
# sentence never reads two ways ("No causes Yes."), and a name-token tokenizer never reads a node
# as a task word ("d" of "d-separated", "at", "are", "any", "too" of the traces; tested against
# the embedded tokenizer's words).
RESERVED_NAMES = frozenset(
    "A I a Yes No So Does Are Is and or not the to of in on by if is it be do d at are any too".split()
)
# One name in HELDOUT_ONE_IN of the open alphabet is held out of training (``open_train``) and
# used only by evaluation splits (``open_heldout``): a fixed partition of the name space, so a
# model's evaluation on unseen names is about names it cannot have seen.
HELDOUT_ONE_IN = 5


def name_is_heldout(name: str) -> bool:
    """Whether ``name`` belongs to the held-out part of the open name space (fixed by SHA-256).

    >>> sum(name_is_heldout(f"n{i}") for i in range(10000)) in range(1800, 2200)
    True
    """
    return hashlib.sha256(name.encode()).digest()[0] % HELDOUT_ONE_IN == 0


def open_name(rng: random.Random, heldout: bool | None = None) -> str:
    """A name of 1-3 characters from :data:`OPEN_ALPHABET` (lengths uniform), never a reserved
    word; ``heldout`` True/False restricts it to that part of the name space (None: any).

    >>> name = open_name(random.Random(0), heldout=False)
    >>> 1 <= len(name) <= 3 and not name_is_heldout(name)
    True
    """
    while True:
        name = "".join(rng.choice(OPEN_ALPHABET) for _ in range(rng.randint(1, 3)))
        if name in RESERVED_NAMES or name.lower() in ("yes", "no"):
            continue  # answers are read case-insensitively
        if heldout is None or name_is_heldout(name) == heldout:
            return name


NAME_STYLES = ("short", "long", "open", "open_train", "open_heldout")


def draw_names(rng: random.Random, n: int, style: str = "short") -> list[str]:
    """``n`` distinct names in a style: ``short`` (single capital letters), ``long`` (8-10
    letters), ``open`` (1-3 letters and digits, mixed case), ``open_train`` / ``open_heldout``
    (the two parts of the open name space, see :func:`name_is_heldout`).

    Names are unique within one graph so that two nodes never merge into one (which could
    create a cycle the generator did not draw).
    """
    if style not in NAME_STYLES:
        raise ValueError(f"name style {style!r}: expected one of {', '.join(NAME_STYLES)}")
    if style == "short":
        if n > len(SHORT_NAMES):
            raise ValueError(f"at most {len(SHORT_NAMES)} short names, asked for {n}")
        return rng.sample(SHORT_NAMES, n)
    if style.startswith("open"):
        heldout = {"open": None, "open_train": False, "open_heldout": True}[style]
        names: list[str] = []
        while len(names) < n:
            name = open_name(rng, heldout)
            if name not in names:
                names.append(name)
        return names
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < n:
        name = long_name(rng)
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


def random_dag(rng: random.Random, n: int, extra_p: float, chain_p: float) -> tuple[list[tuple[int, int]], list[int]]:
    """A weakly connected random DAG on nodes ``0..n-1`` and a topological rank per node.

    With probability ``chain_p`` the backbone is a causal chain ``0 -> 1 -> ... -> n-1`` (in a
    random relabelling); otherwise it is a random recursive tree whose edges are oriented by a
    random ranking, which yields forks, colliders and chains alike. Every other pair gets an edge
    (oriented by the ranking, so the graph stays acyclic) with probability ``extra_p``.
    Weak connectivity keeps every node mentioned in the premise.
    """
    order = list(range(n))
    rng.shuffle(order)
    edges: set[tuple[int, int]] = set()
    if rng.random() < chain_p:
        rank = [0] * n
        for position, node in enumerate(order):
            rank[node] = position
        for a, b in zip(order, order[1:]):
            edges.add((a, b))
    else:
        positions = list(range(n))
        rng.shuffle(positions)
        rank = positions
        for index in range(1, n):
            a, b = order[index], order[rng.randrange(index)]
            edges.add((a, b) if rank[a] < rank[b] else (b, a))
    for a in range(n):
        for b in range(n):
            if rank[a] < rank[b] and (a, b) not in edges and rng.random() < extra_p:
                edges.add((a, b))
    return sorted(edges), rank


def chain(rng: random.Random, n: int, flip_p: float = 0.0) -> tuple[list[tuple[int, int]], list[int]]:
    """A linear causal chain on nodes ``0..n-1`` (in a random relabelling) and a topological rank.

    With ``flip_p`` > 0 each link is reversed with that probability: the skeleton stays a path,
    the graph a DAG (forks and colliders appear where directions change), as in axiomatic
    training's noisy chains.

    >>> edges, rank = chain(random.Random(0), 4)
    >>> len(edges), all(rank[u] < rank[v] for u, v in edges)
    (3, True)
    """
    order = list(range(n))
    rng.shuffle(order)
    links = []
    for a, b in zip(order, order[1:]):
        links.append((b, a) if flip_p and rng.random() < flip_p else (a, b))
    topo = list(nx.topological_sort(nx.DiGraph(links))) if links else order
    rank = [0] * n
    for position, node in enumerate(topo):
        rank[node] = position
    return sorted(links), rank


def statement_order(
    rng: random.Random, edges: list[tuple[int, int]], rank: list[int], order: str
) -> list[tuple[int, int]]:
    """Edges in the order the premise states them.

    ``topological``: causes before their effects (a chain is told forwards);
    ``reversed``: the exact reverse of that; ``shuffled``: a uniformly random order.
    """
    if order == "shuffled":
        out = list(edges)
        rng.shuffle(out)
        return out
    # random tie-breaking among edges with the same ranks is not needed: (rank u, rank v) is unique
    out = sorted(edges, key=lambda e: (rank[e[0]], rank[e[1]]))
    if order == "reversed":
        out.reverse()
    return out


def to_networkx(nodes: list[str], edges: list[tuple[str, str]] | list[list[str]]) -> nx.DiGraph:
    graph = nx.DiGraph()
    graph.add_nodes_from(nodes)
    graph.add_edges_from((u, v) for u, v in edges)
    return graph


def reachability(graph: nx.DiGraph) -> dict[str, set[str]]:
    """node -> the set of nodes it causes (directly or through a chain), by networkx."""
    return {node: nx.descendants(graph, node) for node in graph.nodes}


def d_separated(graph: nx.DiGraph, x: str, y: str, z: list[str] | tuple[str, ...] | set[str]) -> bool:
    return bool(nx.is_d_separator(graph, {x}, {y}, set(z)))


def interior_nodes(nodes, edges) -> set[str]:
    """The nodes with at least one parent and one child: neither a source nor a sink.

    Questions about them cannot be answered from where a node sits at the ends of the graph
    (a root causes, a leaf is caused); ``constraintc eval`` reports accuracy by ends, docs/evaluation.md.

    >>> sorted(interior_nodes(["a", "b", "c", "d"], [("a", "b"), ("b", "c"), ("c", "d")]))
    ['b', 'c']
    """
    has_parent = {v for _, v in edges}
    has_child = {u for u, _ in edges}
    return {n for n in nodes if n in has_parent and n in has_child}


def first_mention_order(edges: list[tuple[str, str]]) -> list[str]:
    """Node names in the order the premise first mentions them."""
    seen: dict[str, None] = {}
    for u, v in edges:
        seen.setdefault(u, None)
        seen.setdefault(v, None)
    return list(seen)
