"""Balanced causal reasoning tasks: transitivity and d-separation over random DAGs.

Every record is one question about one graph; records about the same graph share a ``group``.
Labels come from networkx (reachability; :func:`networkx.is_d_separator`). Each split is
balanced: its Yes and No counts differ by at most one.

Splits (see docs/tasks.md):

===============  =====  ======================================================================
split            nodes  what changes
===============  =====  ======================================================================
train            3-6    sparse DAGs and chains, statements in causal (topological) order
length           7-15   longer chains and bigger DAGs, same style
reversed         3-6    train graphs stated in exactly reverse causal order (effects first)
shuffled         3-6    train graphs stated in random order
branching        4-7    dense DAGs (many forks, colliders and skip edges)
long_names       3-6    train graphs with 8-10 letter names
adversarial      4-6    minimal pairs (one edge added or removed flips the answer) and cases
                        where a surface shortcut disagrees with the truth; statements shuffled
mix              3-7    the training mixture: random DAGs, chains (some links flipped) and dense
                        DAGs, statements in causal, reversed or random order, single letters or
                        open names (1-3 letters and digits) from the training part of the names
chains_long      7-15   linear chains, causal order, names as in mix (longer than mix's chains)
chains_reversed  5-12   linear chains stated in exactly reverse causal order
chains_shuffled  7-15   linear chains stated in random order (no positional cue left)
branching_large  5-12   dense DAGs, larger than any mix graph
mix_large        3-12   mix on larger graphs: random DAGs, chains and dense DAGs of up to 12
                        nodes (a larger training mixture; its graphs are as large as
                        branching_large's)
mix_wide         3-15   mix with random DAGs of up to 15 nodes (premises of up to ~40
                        statements) and dense DAGs of up to 8; chains as in mix
unseen_names     3-7    mix graphs named only from the held-out part of the open names
===============  =====  ======================================================================

The last six splits are the *transfer* splits of a model trained on ``mix``: each differs from
it in one respect (length, statement order, structure or names).
"""

from __future__ import annotations

import functools
import hashlib
import random
from collections import defaultdict
from dataclasses import dataclass
from itertools import combinations
from typing import Iterator

import networkx as nx

from constraintc.errors import OptionError
from constraintc.tasks import graphs
from constraintc.tasks.shortcuts import SHORTCUTS, TASK_SHORTCUTS, Query
from constraintc.tasks.traces import GraphTracer

TASKS = ("transitivity", "dsep")
SPLITS = (
    "train", "length", "reversed", "shuffled", "branching", "long_names", "adversarial",
    "mix", "mix_pairs", "mix_twins", "mix_large", "mix_wide", "chains_long", "chains_reversed", "chains_shuffled", "branching_large", "unseen_names",
)


@dataclass(frozen=True)
class SplitSpec:
    """How one graph is drawn: node count range, structure, statement order, names.

    ``family`` ``dag``: :func:`graphs.random_dag` (``extra_p``, ``chain_p``); ``chain``: a
    linear chain (:func:`graphs.chain`) whose links are each reversed with ``flip_p``.
    """

    nodes: tuple[int, int]
    extra_p: float
    chain_p: float
    order: str  # topological | reversed | shuffled
    names: str  # a style of graphs.draw_names
    family: str = "dag"
    flip_p: float = 0.0


@dataclass(frozen=True)
class MixSpec:
    """A mixture of specs: each graph draws one component by weight.

    ``pair_p``: the share of graphs that tell two unrelated graphs in one premise (both drawn
    from the mixture, names distinct, statements interleaved, each keeping its own order): the
    premise is as long and names as many nodes as a graph twice the size, while no path is longer
    than one component's.

    ``twin_p``: the share of drawn graphs followed by their *twin*: the same premise with one
    link between two interior nodes left out (a link whose cause has a parent and whose effect a
    child, and that no other path replaces), so that the answers across the cut flip while the
    rest of the premise stays word for word.
    """

    components: tuple[tuple[float, SplitSpec], ...]
    pair_p: float = 0.0
    twin_p: float = 0.0

    @property
    def nodes(self) -> tuple[int, int]:
        return min(c.nodes[0] for _, c in self.components), max(c.nodes[1] for _, c in self.components)

    def pick(self, rng: random.Random) -> SplitSpec:
        return rng.choices([c for _, c in self.components], [w for w, _ in self.components])[0]


def _mix(
    nodes: tuple[int, int], names: tuple[str, ...], chain_nodes: tuple[int, int] = (3, 6), pair_p: float = 0.0,
    twin_p: float = 0.0, dense_nodes: tuple[int, int] | None = None,
) -> MixSpec:
    """The training mixture over every statement order and name style in ``names``: random
    DAGs, chains with some links flipped (axiomatic training's noise), dense DAGs."""
    parts = []
    for order in ("topological", "reversed", "shuffled"):
        for style in names:
            parts += [
                (3.0, SplitSpec(nodes, 0.2, 0.4, order, style)),
                (1.5, SplitSpec(chain_nodes, 0.0, 1.0, order, style, family="chain")),
                (1.5, SplitSpec(chain_nodes, 0.0, 1.0, order, style, family="chain", flip_p=0.3)),
                (1.0, SplitSpec(dense_nodes or (4, min(nodes[1], 6)), 0.55, 0.0, order, style)),
            ]
    return MixSpec(tuple(parts), pair_p, twin_p)


SPLIT_SPECS: dict[str, SplitSpec] = {
    "train": SplitSpec((3, 6), 0.2, 0.4, "topological", "short"),
    "length": SplitSpec((7, 15), 0.08, 0.4, "topological", "short"),
    "reversed": SplitSpec((3, 6), 0.2, 0.4, "reversed", "short"),
    "shuffled": SplitSpec((3, 6), 0.2, 0.4, "shuffled", "short"),
    "branching": SplitSpec((4, 7), 0.55, 0.0, "topological", "short"),
    "long_names": SplitSpec((3, 6), 0.2, 0.4, "topological", "long"),
    "adversarial": SplitSpec((4, 6), 0.25, 0.4, "shuffled", "short"),
    "mix": _mix((3, 7), ("short", "open_train")),
    # mix, half of its premises telling two unrelated graphs (docs/finetune.md measures it)
    "mix_pairs": _mix((3, 7), ("short", "open_train"), pair_p=0.5),
    # mix, half of its graphs followed by their twin with one interior link cut (docs/finetune.md)
    "mix_twins": _mix((3, 7), ("short", "open_train"), twin_p=0.5),
    # mix on graphs of 3-12 nodes (chains and dense DAGs too): a larger training mixture, for
    # searches whose lookups must work in long premises (docs/finetune.md, dsep)
    "mix_large": _mix((3, 12), ("short", "open_train"), chain_nodes=(3, 12), dense_nodes=(4, 12)),
    # mix with its random DAGs up to 15 nodes (long premises, nodes with many statements) and
    # dense DAGs up to 8: branching_large's graphs of 9-12 nodes stay larger (docs/finetune.md)
    "mix_wide": _mix((3, 15), ("short", "open_train"), dense_nodes=(4, 8)),
    "chains_long": MixSpec(tuple(
        (1.0, SplitSpec((7, 15), 0.0, 1.0, "topological", style, family="chain")) for style in ("short", "open_train")
    )),
    "chains_reversed": MixSpec(tuple(
        (1.0, SplitSpec((5, 12), 0.0, 1.0, "reversed", style, family="chain")) for style in ("short", "open_train")
    )),
    "chains_shuffled": MixSpec(tuple(
        (1.0, SplitSpec((7, 15), 0.0, 1.0, "shuffled", style, family="chain")) for style in ("short", "open_train")
    )),
    "branching_large": MixSpec(tuple(
        (1.0, SplitSpec((5, 12), 0.55, 0.0, "topological", style)) for style in ("short", "open_train")
    )),
    "unseen_names": _mix((3, 7), ("open_heldout",)),
}
# the splits a model trained on `mix` is evaluated on to see whether its reasoning transfers
TRANSFER_SPLITS = ("chains_long", "chains_reversed", "chains_shuffled", "branching_large", "unseen_names")

# shortcuts the adversarial split defeats, with the labels on which each can disagree with the
# truth (adjacent nodes are never d-separated, so "overlap" can only be wrong on d-separation
# questions whose answer is No)
ADVERSARIAL_SHORTCUTS: dict[str, dict[str, tuple[str, ...]]] = {
    "transitivity": {
        "Yes": ("overlap", "statement_order", "recency", "chain_length", "name_order"),
        "No": ("overlap", "statement_order", "recency", "chain_length", "name_order"),
    },
    "dsep": {
        "Yes": ("chain_length", "conditioning", "recency", "statement_order"),
        "No": ("overlap", "chain_length", "conditioning", "recency", "statement_order"),
    },
}


# share of d-separation questions drawn among non-adjacent pairs (the rest: any pair)
NON_ADJACENT_SHARE = 0.95


def stable_seed(*parts: object) -> int:
    """A seed that is the same on every machine and Python run (unlike ``hash``)."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def premise_text(edges: list[tuple[str, str]]) -> str:
    return " ".join(f"{u} causes {v}." for u, v in edges)


# task -> (the library rules file that states it, its query predicate)
TASK_RULES = {"transitivity": ("transitivity", "causes"), "dsep": ("dsep", "dsep")}


@functools.lru_cache(maxsize=None)
def task_query(task: str):
    """The query declaration of ``task``'s rules file: its question template and its atoms."""
    from constraintc.language import load_rules

    rules, pred = TASK_RULES[task]
    return load_rules(rules).queries[pred]


def _args(task: str, x: str, y: str, z: tuple[str, ...]) -> tuple:
    return (x, y) if task == "transitivity" else (x, y, frozenset(z))


def question_text(task: str, x: str, y: str, z: tuple[str, ...] = ()) -> str:
    """The question as the rules' template renders it.

    >>> question_text("dsep", "B", "C", ("E", "D"))
    'Are B and C d-separated given {D, E}?'
    """
    return task_query(task).render(_args(task, x, y, z))


def atom_text(task: str, x: str, y: str, z: tuple[str, ...] = ()) -> str:
    """The atom the question asks about, as circuits name it.

    >>> atom_text("dsep", "B", "C", ("E", "D"))
    'dsep(B,C,{D,E})'
    """
    from constraintc.logic.atoms import format_atom

    return format_atom(task_query(task).name, _args(task, x, y, z))


class _Graph:
    """One drawn graph: names, statement-ordered edges, and its networkx view."""

    __slots__ = ("nodes", "edges", "nx", "_reach", "_tracer")

    def __init__(self, nodes: list[str], edges: list[tuple[str, str]]):
        self.nodes = nodes
        self.edges = edges
        self.nx = graphs.to_networkx(nodes, edges)
        self._reach: dict[str, set[str]] | None = None
        self._tracer: GraphTracer | None = None

    def trace(self, task: str, x: str, y: str, z: tuple[str, ...], search: str = "until_found") -> str:
        """The gold reasoning trace (:mod:`constraintc.tasks.traces`) for this question."""
        if self._tracer is None:
            self._tracer = GraphTracer(self.nodes, self.edges)
        return self._tracer.trace(task, x, y, z, search)

    def label(self, task: str, x: str, y: str, z: tuple[str, ...]) -> str:
        if task == "transitivity":
            if self._reach is None:
                self._reach = graphs.reachability(self.nx)
            return "Yes" if y in self._reach[x] else "No"
        return "Yes" if graphs.d_separated(self.nx, x, y, z) else "No"


def _draw_edges(rng: random.Random, spec: SplitSpec) -> tuple[int, list[tuple[int, int]]]:
    """A node count and the edges over ``range(n)`` in the order the premise states them."""
    n = rng.randint(*spec.nodes)
    if spec.family == "chain":
        int_edges, rank = graphs.chain(rng, n, spec.flip_p)
    else:
        int_edges, rank = graphs.random_dag(rng, n, spec.extra_p, spec.chain_p)
    return n, graphs.statement_order(rng, int_edges, rank, spec.order)


def _draw_graph(rng: random.Random, spec: SplitSpec | MixSpec) -> _Graph:
    if isinstance(spec, MixSpec) and spec.pair_p > 0 and rng.random() < spec.pair_p:
        return _draw_pair(rng, spec)
    if isinstance(spec, MixSpec):
        spec = spec.pick(rng)
    n, ordered = _draw_edges(rng, spec)
    names = graphs.draw_names(rng, n, spec.names)
    edges = [(names[u], names[v]) for u, v in ordered]
    return _Graph(graphs.first_mention_order(edges), edges)


def _cut_twin(rng: random.Random, g: _Graph) -> _Graph | None:
    """``g`` without one link between interior nodes whose removal changes what causes what
    (:class:`MixSpec` ``twin_p``); None when ``g`` has no such link."""
    inner = graphs.interior_nodes(g.nodes, g.edges)
    links = [e for e in g.edges if e[0] in inner and e[1] in inner]
    rng.shuffle(links)
    for u, v in links:
        rest = [e for e in g.edges if e != (u, v)]
        if not nx.has_path(nx.DiGraph(rest), u, v):
            return _Graph(graphs.first_mention_order(rest), rest)
    return None


def _draw_pair(rng: random.Random, mix: MixSpec) -> _Graph:
    """Two unrelated graphs of ``mix`` told in one premise (:class:`MixSpec` ``pair_p``)."""
    first, second = mix.pick(rng), mix.pick(rng)
    n1, e1 = _draw_edges(rng, first)
    n2, e2 = _draw_edges(rng, second)
    names = graphs.draw_names(rng, n1 + n2, first.names)  # one style: all distinct
    parts = [[(names[u], names[v]) for u, v in e1], [(names[n1 + u], names[n1 + v]) for u, v in e2]]
    # interleave uniformly at random, each part in its own order
    slots = [0] * len(e1) + [1] * len(e2)
    rng.shuffle(slots)
    cursor = [0, 0]
    edges = []
    for part in slots:
        edges.append(parts[part][cursor[part]])
        cursor[part] += 1
    return _Graph(graphs.first_mention_order(edges), edges)


def _random_question(
    rng: random.Random, task: str, nodes: list[str], pairs: list[tuple[str, str]] | None = None
) -> tuple[str, str, tuple[str, ...]]:
    x, y = rng.choice(pairs) if pairs else rng.sample(nodes, 2)
    if task == "transitivity":
        return x, y, ()
    others = [v for v in nodes if v != x and v != y]
    size = rng.randint(0, min(3, len(others)))
    return x, y, tuple(sorted(rng.sample(others, size)))


def _distant_pairs(g: _Graph) -> list[tuple[str, str]]:
    """Ordered pairs of distinct nodes with no edge between them."""
    adjacent = {frozenset(e) for e in g.edges}
    return [(x, y) for x in g.nodes for y in g.nodes if x != y and frozenset((x, y)) not in adjacent]


def _questions(rng: random.Random, task: str, g: _Graph, per_class: int):
    """Up to ``per_class`` Yes and as many No questions about ``g`` (equal counts)."""
    pos: list[tuple] = []
    neg: list[tuple] = []
    if task == "transitivity":
        for x in g.nodes:
            for y in g.nodes:
                if x != y:
                    (pos if g.label(task, x, y, ()) == "Yes" else neg).append((x, y, ()))
        k = min(per_class, len(pos), len(neg))
        return rng.sample(pos, k), rng.sample(neg, k)
    # Adjacent nodes are never d-separated, so "not adjacent -> separated" would answer most
    # questions right if pairs were drawn uniformly; drawing most pairs among non-adjacent nodes
    # keeps the No class mostly about trails through other nodes.
    distant = _distant_pairs(g)
    # Yes questions would otherwise condition on more nodes than No questions ("conditioning
    # separates"); pairing each Yes with a No of the same conditioning-set size removes that cue.
    by_size: dict[int, tuple[list, list]] = defaultdict(lambda: ([], []))
    seen: set[tuple] = set()
    matched = 0
    for _ in range(40 * per_class + 8):
        q = _random_question(rng, task, g.nodes, distant if rng.random() < NON_ADJACENT_SHARE else None)
        if q in seen:
            continue
        seen.add(q)
        yes_list, no_list = by_size[len(q[2])]
        before = min(len(yes_list), len(no_list))
        (yes_list if g.label(task, *q) == "Yes" else no_list).append(q)
        matched += min(len(yes_list), len(no_list)) - before
        if matched >= per_class:
            break
    for size in sorted(by_size):
        yes_list, no_list = by_size[size]
        m = min(len(yes_list), len(no_list))
        pos += yes_list[:m]
        neg += no_list[:m]
    k = min(per_class, len(pos), len(neg))
    picks = rng.sample(range(len(pos)), k)  # pairs stay matched: the same indices on both sides
    return [pos[i] for i in picks], [neg[i] for i in picks]


def make_record(
    task: str,
    split: str,
    rid: str,
    group: str,
    g: _Graph | tuple[list[str], list[tuple[str, str]]],
    question: tuple[str, str, tuple[str, ...]],
    label: str,
    pair: str | None = None,
    meta: dict | None = None,
    trace: str | None = None,
) -> dict:
    """One record in the JSONL schema of docs/tasks.md, "Records" (``trace``, when given, goes last)."""
    nodes, edges = (g.nodes, g.edges) if isinstance(g, _Graph) else g
    x, y, z = question
    record = {
        "id": rid,
        "premise": premise_text(edges),
        "question": question_text(task, x, y, z),
        "label": label,
        "task": task,
        "split": split,
        "nodes": list(nodes),
        "edges": [[u, v] for u, v in edges],
        "atom": atom_text(task, x, y, z),
        "group": group,
    }
    if pair is not None:
        record["pair"] = pair
    record["meta"] = {"x": x, "y": y, "z": list(z), **(meta or {})}
    if trace is not None:
        record["trace"] = trace
    return record


def _check(task: str, split: str, n: int) -> None:
    if task not in TASKS:
        raise OptionError("task", task, f"one of {', '.join(TASKS)}")
    if split not in SPLITS:
        raise OptionError("--split", split, f"one of {', '.join(SPLITS)}")
    if not isinstance(n, int) or n < 0:
        raise OptionError("--n", n, "a non-negative integer")


def generate(
    task: str, split: str, n: int, seed: int = 0, *, questions_per_graph: int = 4, traces: bool = False,
    trace_search: str = "until_found",
) -> list[dict]:
    """``n`` balanced records of ``task`` on ``split``, deterministic in ``seed``.

    Each graph contributes ``questions_per_graph`` questions (half Yes, half No) that share a
    ``group`` id; the adversarial split has one question per graph (minimal pairs share ``pair``).
    ``traces=True`` adds a gold reasoning ``trace`` to every record
    (:func:`constraintc.tasks.traces.trace_text`, searching as ``trace_search`` says: ``until_found``,
    ``exhaustive``, ``expand`` or ``depth_first``); everything else stays the same.

    >>> recs = generate("transitivity", "train", 4, seed=1)
    >>> sorted(r["label"] for r in recs)
    ['No', 'No', 'Yes', 'Yes']
    >>> recs[0]["question"].startswith("Does ")
    True
    >>> with_traces = generate("dsep", "train", 4, seed=1, traces=True)
    >>> with_traces[0]["trace"].startswith("Trail ")
    True
    >>> [{k: v for k, v in r.items() if k != "trace"} for r in with_traces] == generate("dsep", "train", 4, seed=1)
    True
    """
    return list(iter_records(task, split, n, seed, questions_per_graph=questions_per_graph, traces=traces,
                             trace_search=trace_search))


def iter_records(
    task: str, split: str, n: int, seed: int = 0, *, questions_per_graph: int = 4, traces: bool = False,
    trace_search: str = "until_found",
) -> Iterator[dict]:
    """The records of :func:`generate`, one at a time (for writing large files)."""
    _check(task, split, n)
    if questions_per_graph < 2:
        raise OptionError("--questions-per-graph", questions_per_graph, "an integer >= 2")
    rng = random.Random(stable_seed("constraintc.tasks", task, split, seed))
    prefix = f"{task}-{split}-s{seed}"
    if split == "adversarial":
        yield from _adversarial(rng, task, n, prefix, traces, trace_search)
        return
    spec = SPLIT_SPECS[split]
    per_class = questions_per_graph // 2
    made = 0
    group_index = 0
    extra_yes = rng.random() < 0.5  # which class gets the odd record at the very end
    twin: _Graph | None = None
    while made < n:
        if twin is not None:
            g, twin = twin, None
        else:
            g = _draw_graph(rng, spec)
            if isinstance(spec, MixSpec) and spec.twin_p > 0 and rng.random() < spec.twin_p:
                twin = _cut_twin(rng, g)
        pos, neg = _questions(rng, task, g, per_class)
        if not pos:
            continue  # a graph with only one answer class cannot be asked about in balance
        need = n - made
        k = len(pos)
        if need < 2 * k:
            half = need // 2
            pos_take, neg_take = pos[:half], neg[:half]
            if need % 2:
                (pos_take if extra_yes else neg_take).append((pos if extra_yes else neg)[half])
            pos, neg = pos_take, neg_take
        items = [(q, "Yes") for q in pos] + [(q, "No") for q in neg]
        rng.shuffle(items)
        group = f"{prefix}-g{group_index:06d}"
        group_index += 1
        for q, label in items:
            trace = g.trace(task, *q, search=trace_search) if traces else None
            yield make_record(task, split, f"{prefix}-{made:06d}", group, g, q, label, trace=trace)
            made += 1


def _would_stay_connected(edges: list[tuple[str, str]], drop: tuple[str, str]) -> bool:
    """True when removing ``drop`` leaves both of its ends in some other edge (still mentioned)."""
    u, v = drop
    rest = [e for e in edges if e != drop]
    return any(u in e for e in rest) and any(v in e for e in rest)


def minimal_pair(rng: random.Random, task: str, g: _Graph, q: tuple[str, str, tuple[str, ...]]):
    """A one-edge change of ``g`` (an edge added or removed, graph still a DAG with the same
    nodes) that flips the answer to ``q``; ``None`` when no such change exists."""
    label = g.label(task, *q)
    present = set(g.edges)
    changes: list[tuple[str, tuple[str, str]]] = [("remove", e) for e in g.edges if _would_stay_connected(g.edges, e)]
    changes += [("add", (u, v)) for u in g.nodes for v in g.nodes if u != v and (u, v) not in present]
    rng.shuffle(changes)
    # an edge between the two queried nodes flips the answer trivially; try every other change first
    queried = {q[0], q[1]}
    changes.sort(key=lambda change: set(change[1]) == queried)
    for kind, edge in changes:
        if kind == "remove":
            new_edges = [e for e in g.edges if e != edge]
        else:
            if edge[0] in g.nx and nx.has_path(g.nx, edge[1], edge[0]):
                continue  # would close a cycle
            new_edges = list(g.edges)
            new_edges.insert(rng.randint(0, len(new_edges)), edge)
        variant = _Graph(g.nodes, new_edges)
        if variant.label(task, *q) != label:
            return kind, edge, variant
    return None


def _adversarial(rng: random.Random, task: str, n: int, prefix: str, traces: bool = False,
                 trace_search: str = "until_found") -> Iterator[dict]:
    spec = SPLIT_SPECS["adversarial"]
    split = "adversarial"
    n_pairs = n // 4
    made = 0
    # minimal pairs: two graphs one edge apart, the same question, opposite answers
    pair_index = 0
    while pair_index < n_pairs:
        g = _draw_graph(rng, spec)
        q = _random_question(rng, task, g.nodes, _distant_pairs(g) if task == "dsep" and rng.random() < NON_ADJACENT_SHARE else None)
        found = minimal_pair(rng, task, g, q)
        if found is None:
            continue
        kind, edge, variant = found
        if set(edge) == {q[0], q[1]} and rng.random() < 0.75:
            continue  # mostly keep pairs whose flip happens away from the queried nodes
        pair = f"{prefix}-p{pair_index:06d}"
        items = [(g, g.label(task, *q), None), (variant, variant.label(task, *q), (kind, edge))]
        rng.shuffle(items)
        for gg, label, change in items:
            meta = {"kind": "minimal_pair"}
            if change is not None:
                meta.update(change=change[0], edge=list(change[1]))
            trace = gg.trace(task, *q, search=trace_search) if traces else None
            rid = f"{prefix}-{made:06d}"
            yield make_record(task, split, rid, f"{prefix}-g{made:06d}", gg, q, label, pair, meta, trace)
            made += 1
        pair_index += 1
    # shortcut conflicts: the truth is `label`, a named surface shortcut answers the opposite
    labels = ["Yes", "No"] if rng.random() < 0.5 else ["No", "Yes"]
    counters = {"Yes": 0, "No": 0}
    case = 0
    while made < n:
        label = labels[case % 2]
        options = ADVERSARIAL_SHORTCUTS[task][label]
        target = options[counters[label] % len(options)]
        counters[label] += 1
        found = _shortcut_conflict(rng, task, spec, label, target)
        g, q = found
        query = Query(task, q[0], q[1], q[2], tuple(g.edges))
        disagree = [s for s in TASK_SHORTCUTS[task] if ("Yes" if SHORTCUTS[s](query) else "No") != label]
        meta = {"kind": "shortcut", "shortcut": target, "disagree": disagree}
        trace = g.trace(task, *q, search=trace_search) if traces else None
        yield make_record(task, split, f"{prefix}-{made:06d}", f"{prefix}-g{made:06d}", g, q, label, None, meta, trace)
        made += 1
        case += 1


def _shortcut_conflict(rng: random.Random, task: str, spec: SplitSpec, label: str, shortcut: str):
    """A graph and question whose true answer is ``label`` while ``shortcut`` answers otherwise."""
    fn = SHORTCUTS[shortcut]
    for _ in range(20000):
        g = _draw_graph(rng, spec)
        for _ in range(24):
            q = _random_question(rng, task, g.nodes)
            if ("Yes" if fn(Query(task, q[0], q[1], q[2], tuple(g.edges))) else "No") == label:
                continue
            if g.label(task, *q) == label:
                return g, q
    raise RuntimeError(f"no {task} question found where {shortcut} disagrees with the answer {label}")


def all_questions(task: str, nodes: list[str], max_z: int = 3) -> Iterator[tuple[str, str, tuple[str, ...]]]:
    """Every question of ``task`` about a graph on ``nodes`` (dsep: conditioning sets up to ``max_z``)."""
    for x in nodes:
        for y in nodes:
            if x == y:
                continue
            if task == "transitivity":
                yield x, y, ()
                continue
            others = sorted(v for v in nodes if v != x and v != y)
            for size in range(0, min(max_z, len(others)) + 1):
                for z in combinations(others, size):
                    yield x, y, z
