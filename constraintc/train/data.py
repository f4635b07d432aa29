"""Training data: task records grouped by graph, with every question the model will be asked.

A :class:`Graph` holds one graph's nodes and edges, the atoms asked about it, their prompts and
their labels (``None`` for unlabelled atoms: only the semantic loss sees those). When training
with reasoning traces, every labelled question also gets a :class:`~constraintc.lm.binding.Completion`:
the reasoning prompt, the record's trace and ``Answer:``, then the label. Batches are drawn
statelessly from ``(seed, step)``, so a resumed run and a run on several processes see exactly the
batches of an uninterrupted single-process run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import torch

from constraintc.errors import ConstraintcError
from constraintc.semantic import SemanticLoss
from constraintc.tasks.graphs import interior_nodes


@dataclass
class Graph:
    group: str
    nodes: list[str]
    edges: list[list[str]]
    atoms: list[str] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    labels: list[str | None] = field(default_factory=list)
    record_ids: list[str | None] = field(default_factory=list)
    completions: list = field(default_factory=list)  # Completion per labelled question (trace modes)

    @property
    def key(self) -> tuple:
        return (self.nodes, self.edges, self.atoms)

    @property
    def length(self) -> int:
        """Characters of its prompts and completions: orders graphs by the length of their packed rows."""
        return sum(map(len, self.prompts)) + sum(len(c.prompt) + len(c.text) for c in self.completions)


# what a training record needs (records from `constraintc data` have all of it)
TRAINING_FIELDS = ("premise", "nodes", "edges", "atom", "group")


TRACE_MODES = ("none", "keep", "mask")


def trace_completion(reasoning_prompt: str, trace: str | None, answer: str, mode: str):
    """The :class:`~constraintc.lm.binding.Completion` of one labelled question in trace ``mode``.

    The model reads ``reasoning_prompt``, writes the trace and ``Answer:``, then the answer. A
    record without a trace gets an empty reasoning section (the setting of reasoning-trace
    collapse: ``keep`` then teaches the model to skip its reasoning, ``mask`` does not).

    >>> c = trace_completion("Q?\\nReasoning:", "B causes C.", "Yes", "keep")
    >>> c.text, c.loss
    (' B causes C.\\nAnswer:', 'all')
    """
    from constraintc.lm.binding import Completion

    if mode not in ("keep", "mask"):
        raise ValueError(f"trace mode {mode!r}: expected 'keep' or 'mask'")
    after_space = reasoning_prompt[-1:].isspace()  # a chat turn ends in a newline
    if trace and trace.strip():
        text = f"{'' if after_space else ' '}{trace.strip()}\nAnswer:"
    else:
        text = "Answer:" if after_space else "\nAnswer:"
    return Completion(reasoning_prompt, text, answer, "all" if mode == "keep" else "answer")


@dataclass
class TraceGroup:
    """One graph of the traces-only stage: its ``group`` id and a completion per labelled question."""

    group: str
    completions: list

    @property
    def length(self) -> int:
        """Characters of its completions: orders graphs by the length of their packed rows."""
        return sum(len(c.prompt) + len(c.text) for c in self.completions)


def trace_groups(records: list[dict], reasoning_fn, mode: str) -> list[TraceGroup]:
    """The traces-only stage's items: the labelled ``records`` grouped by graph (first appearance
    order), each question as :func:`trace_completion` of its reasoning prompt
    (``reasoning_fn(record)``), trace and label in trace ``mode``.

    >>> recs = [{"group": "g", "label": "Yes", "trace": "B causes C."}, {"group": "g", "label": None}]
    >>> [(t.group, len(t.completions)) for t in trace_groups(recs, lambda r: "Q?\\nReasoning:", "keep")]
    [('g', 1)]
    """
    groups: dict[str, TraceGroup] = {}
    for r in records:
        if r.get("label") is None:
            continue
        item = groups.setdefault(r["group"], TraceGroup(r["group"], []))
        item.completions.append(trace_completion(reasoning_fn(r), r.get("trace"), r["label"], mode))
    return list(groups.values())


def skew_labels(records: list[dict], yes_rate: float, seed: int) -> list[dict]:
    """Drop No labels (set ``label`` to None) at random until Yes is ``yes_rate`` of the labels.

    This is the published fine-tuning setup (training labels leaning Yes), under which plain
    cross-entropy collapses to always-Yes. The questions stay: the semantic loss still sees them.
    """
    if not yes_rate:
        return records
    yes = [i for i, r in enumerate(records) if r.get("label") == "Yes"]
    no = [i for i, r in enumerate(records) if r.get("label") == "No"]
    keep_no = min(len(no), int(round(len(yes) * (1 - yes_rate) / yes_rate)))
    rng = random.Random(seed)
    dropped = set(rng.sample(no, len(no) - keep_no))
    return [dict(r, label=None) if i in dropped else r for i, r in enumerate(records)]


def atom_nodes(atom: str) -> set[str]:
    """The node names among an atom's arguments (members of set arguments included).

    >>> sorted(atom_nodes("dsep(a,b,{c})"))
    ['a', 'b', 'c']
    """
    from constraintc.logic.atoms import parse_atom

    out: set[str] = set()
    for arg in parse_atom(atom)[1]:
        out |= set(arg) if isinstance(arg, frozenset) else {arg}
    return out


def build_graphs(
    records: list[dict],
    constraint: SemanticLoss,
    prompt_fn,
    *,
    all_atoms: bool,
    atoms_per_graph: int = 0,
    seed: int = 0,
    check_feasible: bool = True,
    trace: str = "none",
    reasoning_fn=None,
    atom_focus: str = "uniform",
) -> list[Graph]:
    """Group records by graph; with ``all_atoms`` also ask the graph's unlabelled query atoms.

    ``trace`` ``keep``/``mask`` (with ``reasoning_fn``, record -> reasoning prompt) gives every
    labelled question a completion (:func:`trace_completion`) from the record's ``trace``.

    ``atoms_per_graph`` (> 0) caps the questions per graph: labelled ones first, then a seeded
    sample of the rest; with ``atom_focus="interior"`` the sample takes the atoms about interior
    nodes (:func:`constraintc.tasks.graphs.interior_nodes`) first, with ``"balanced"`` as many
    atoms the rules make true (the graph as evidence, :meth:`SemanticLoss.decided`) as false.
    Graphs whose evidence alone contradicts the rules are dropped (their semantic loss would be
    infinite whatever the model says).
    """
    by_group: dict[str, list[dict]] = {}
    for r in records:
        by_group.setdefault(r["group"], []).append(r)
    graphs: list[Graph] = []
    for group, recs in by_group.items():
        nodes, edges = list(recs[0]["nodes"]), [list(e) for e in recs[0]["edges"]]
        premise = recs[0]["premise"]
        asked: dict[str, tuple[str, str | None, str | None]] = {}
        traces: dict[str, str | None] = {}
        for r in recs:
            asked[r["atom"]] = (r.get("question") or constraint.question(r["atom"]), r.get("label"), r.get("id"))
            traces[r["atom"]] = r.get("trace")
        if all_atoms:
            extra = constraint.graph_atoms(nodes, edges)
            rest = [(a, q) for a, q in zip(extra.atoms, extra.questions) if a not in asked]
            if atoms_per_graph:
                room = max(atoms_per_graph - len(asked), 0)
                rng = random.Random(f"{seed}/{group}")
                if atom_focus == "interior":
                    inner = interior_nodes(nodes, edges)
                    first = [aq for aq in rest if atom_nodes(aq[0]) <= inner]
                    later = [aq for aq in rest if not atom_nodes(aq[0]) <= inner]
                    rest = rng.sample(first, min(room, len(first)))
                    rest += rng.sample(later, min(room - len(rest), len(later)))
                elif atom_focus == "balanced":
                    rest = _balanced_sample(constraint, nodes, edges, rest, room, rng)
                else:
                    rest = rng.sample(rest, min(room, len(rest)))
            for a, q in rest:
                asked[a] = (q, None, None)
        g = Graph(group, nodes, edges)
        for atom, (question, label, rid) in asked.items():
            g.atoms.append(atom)
            g.prompts.append(prompt_fn({"premise": premise, "question": question}))
            g.labels.append(label)
            g.record_ids.append(rid)
            if trace != "none" and label is not None:
                rp = reasoning_fn({"premise": premise, "question": question})
                g.completions.append(trace_completion(rp, traces.get(atom), label, trace))
        graphs.append(g)
    if not check_feasible:
        return graphs
    feasible = ~torch.isneginf(
        constraint.log_wmc([(g.nodes, g.edges, []) for g in graphs], [torch.zeros(0)] * len(graphs), [torch.zeros(0)] * len(graphs))
    ) if graphs else torch.zeros(0, dtype=torch.bool)
    return [g for g, ok in zip(graphs, feasible.tolist()) if ok]


def _balanced_sample(constraint: SemanticLoss, nodes, edges, rest, room: int, rng: random.Random):
    """``room`` of ``rest`` (pairs of atom and question) with as many atoms the rules (given the
    graph) make true as false, then atoms they leave free; a seeded uniform sample when the graph
    does not decide the rules' atoms. Atoms are decided in a seeded order, a few times the room
    at a time, until both halves are full (a graph may have thousands of atoms, and deciding
    one can take milliseconds)."""
    try:
        decides = constraint.decided(nodes, edges, [rest[0][0]]) is not None if rest else False
    except ConstraintcError:  # the graph contradicts the rules: build_graphs drops it
        decides = False
    if not decides:
        return rng.sample(rest, min(room, len(rest)))
    order = rng.sample(rest, len(rest))
    pools: dict[bool | None, list] = {True: [], False: [], None: []}
    chunk, half = max(2 * room, 16), room // 2
    for i in range(0, len(order), chunk):
        part = order[i : i + chunk]
        values = constraint.decided(nodes, edges, [a for a, _ in part])
        for aq, v in zip(part, values):
            pools[v].append(aq)
        if len(pools[True]) >= room - half and len(pools[False]) >= room - half:
            break
    yes, no, free = pools[True], pools[False], pools[None]
    n_yes = min(len(yes), max(half, room - len(no)))
    n_no = min(len(no), room - n_yes)
    picked = yes[:n_yes] + no[:n_no]
    picked += free[: room - len(picked)]
    rng.shuffle(picked)
    return picked


def batch_indices(n: int, batch: int, step: int, seed: int) -> list[int]:
    """The graph indices of global batch ``step``: epochs are seeded permutations, read in order.

    >>> batch_indices(5, 2, 0, 0) == batch_indices(5, 2, 0, 0)
    True
    """
    out: list[int] = []
    pos = step * batch
    while len(out) < batch:
        epoch, offset = divmod(pos, n)
        gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        perm = torch.randperm(n, generator=gen).tolist()
        take = perm[offset : offset + batch - len(out)]
        out.extend(take)
        pos += len(take)
    return out


def curriculum_indices(sizes: list[int], batch: int, step: int, seed: int, steps: int) -> list[int]:
    """:func:`batch_indices` under a size curriculum: before step ``steps`` only the graphs of at
    most ``limit(step)`` nodes are drawn, the limit rising evenly from the smallest size (at step
    0) to the largest (at step ``steps``); from then on every graph, as without a curriculum.

    >>> sizes = [3, 3, 5, 7, 7]
    >>> sorted({sizes[i] for i in curriculum_indices(sizes, 8, 0, 0, 100)})
    [3]
    >>> curriculum_indices(sizes, 2, 100, 0, 100) == batch_indices(5, 2, 100, 0)
    True
    """
    if step >= steps:
        return batch_indices(len(sizes), batch, step, seed)
    low, high = min(sizes), max(sizes)
    limit = low + (high - low) * step // steps
    allowed = [i for i, n in enumerate(sizes) if n <= limit]
    return [allowed[i] for i in batch_indices(len(allowed), batch, step, seed)]
