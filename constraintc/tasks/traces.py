"""Gold reasoning traces: a short derivation of each record's label from its premise graph.

A trace is plain text in a small, regular vocabulary (short period-terminated sentences, node names
as they are; the sentences are defined in :mod:`constraintc.tasks.trace_format`) that ends with a
sentence stating the conclusion. It never contains the words "Yes",
"No" or "Answer", so ``trace + "\\nAnswer: Yes"`` parses back (see
:func:`constraintc.evaluation.traces.parse_output`) into the trace and the answer.

Transitivity, "Does X cause Y?": a breadth-first search from X (children in statement order),
one sentence per edge of the search tree in the order the search finds them:

- X causes Y: the tree edges up to the one that reaches Y, then ``So X causes Y.``:
  ``B causes C. B causes E. C causes D. So B causes D.``
- X does not cause Y: every tree edge (the search exhausts X's descendants), then
  ``So X does not cause Y.``; ``X causes nothing. So X does not cause Y.`` when X has no child.

With ``search="exhaustive"`` a Yes trace, too, writes every tree edge before its conclusion
(``B causes C. B causes E. C causes D. So B causes D.`` goes on to D's and E's children): the
steps then depend on X alone, never on Y, so a model trained on them cannot shorten the search by
writing Y early; the conclusion says whether Y was among the nodes reached.

With ``search="expand"`` every node the search reaches is expanded in the order it was first
reached (X first): all its statements in statement order (also those to nodes already reached),
or ``N causes nothing.`` when it has none. Every reached node is the subject of a sentence, so
which node comes next and when the search ends are written in the trace itself: on a chain the
next subject is always the last object, and the trace ends right after ``N causes nothing.``
(``B causes C. C causes D. D causes nothing. So B causes D.``). Like ``exhaustive``, the steps
depend on X alone.

``search="depth_first"`` writes the same sentences in depth-first order: a node's statements in
statement order, and right after a statement that reaches a new node, that node's own statements
(``N causes nothing.`` when it has none) before its parent's next one. Then the subject after a
statement that reaches a new node is always that node, the last name written: on a chain (forward,
shuffled or reversed statements alike) every step is "the last object is the next subject" and
one lookup, however long the chain; only a return to an earlier node (after a node without
children or a statement to a node reached before) needs more than the last sentence.

D-separation, "Are X and Y d-separated given {Z}?": the simple trails between X and Y in the
skeleton, shortest first, ties broken by the statement indices of their edges (read from X), each
written with its arrows and judged by the textbook rule (a non-collider in Z blocks; a collider
blocks unless it or one of its descendants is in Z; the first blocking node from X is named):

- ``Trail B -> C <- D is blocked at C, a collider outside {}.`` (neither C nor a descendant in Z)
- ``Trail B <- C -> D is blocked at C, which is in {C}.``
- ``Trail B -> C -> D is open.``

Separated: every trail, then ``So X and Y are d-separated given {Z}.`` (``X and Y are not joined
by any trail.`` first when there is none). Not separated: the trails up to and including the first
open one, then ``So X and Y are not d-separated given {Z}.``

With ``search="bayes_ball"`` a d-separation trace is a reachability search instead (Shachter's
Bayes-ball), depth first from X, over states "node, and whether the search came down to it from a
parent or up to it from a child"; X is entered as if from a child. Entering a state writes the
move along one premise statement, with the node moved to last: ``B -> C.`` (down: B causes C) or
``B <- A.`` (up: A causes B). A state entered for the first time is then expanded, its moves
written in statement order, each followed at once by the expansion of the state it enters:

- a node in Z: ``C is given.``; came down, the search turns up to every parent (``C <- D.``);
  came up, it stops there;
- came down to a node outside Z: down to every child, or ``C causes nothing.`` when it has none;
- came up to a node outside Z (and X itself): along every statement that names it, down to its
  children and up to its parents.

A move into a state entered before is written and not expanded. The search ends at the first move
that reaches Y (``So X and Y are not d-separated given {Z}.``) or when every state is expanded
(``So X and Y are d-separated given {Z}.``; ``X and Y are not joined by any trail.`` first when no
statement names X). Y is reached exactly when an active trail joins X and Y (tested against
networkx). Every step is one lookup in the premise (the statements that name the last node
written), and the steps depend on X and Z, never on where Y lies, until Y is reached.

At most :data:`MAX_TRAILS` blocked trails are written. When more trails come first, a separated
trace says ``Every other trail is blocked too.`` before its conclusion, and a not-separated trace
writes ``Other trails before it are blocked too.`` (when it skipped some) and then its first open
trail.
"""

from __future__ import annotations

from collections import deque
from typing import Iterator, Sequence

from constraintc.tasks.trace_format import (EARLIER_BLOCKED, EVERY_OTHER_BLOCKED, SENTENCE_FORMS,
                                            cause_conclusion, cause_step, causes_nothing, given_step,
                                            move_step, not_joined, separation_conclusion, trail_sentence)

__all__ = ["GraphTracer", "trace_text", "SENTENCE_FORMS", "MAX_TRAILS", "TASKS", "SEARCHES",
           "TRANSITIVITY_SEARCHES", "DSEP_SEARCHES", "searches_for"]

MAX_TRAILS = 16  # trails written per d-separation trace (bounds its length; see the module docstring)

TASKS = ("transitivity", "dsep")

# how a transitivity trace searches: stop at the edge that reaches Y, write the whole search tree,
# or expand every reached node (all its statements, or "N causes nothing."): breadth first or depth first
TRANSITIVITY_SEARCHES = ("until_found", "exhaustive", "expand", "depth_first")
# how a d-separation trace searches: the trails between X and Y (``until_found``, the default) or a
# reachability search from X (``bayes_ball``)
DSEP_SEARCHES = ("until_found", "bayes_ball")
# every search of either task (an option's choices; :func:`searches_for` says which a task takes)
SEARCHES = TRANSITIVITY_SEARCHES + DSEP_SEARCHES[1:]


def searches_for(task: str) -> tuple[str, ...]:
    """The ``search`` values a trace of ``task`` accepts.

    >>> searches_for("dsep")
    ('until_found', 'bayes_ball')
    """
    return DSEP_SEARCHES if task == "dsep" else TRANSITIVITY_SEARCHES


class GraphTracer:
    """Traces for many questions about one graph (adjacency and indices computed once).

    >>> t = GraphTracer(["B", "C", "D"], [("B", "C"), ("C", "D")])
    >>> t.trace("transitivity", "B", "D")
    'B causes C. C causes D. So B causes D.'
    >>> t.trace("dsep", "B", "D", ("C",))
    'Trail B -> C -> D is blocked at C, which is in {C}. So B and D are d-separated given {C}.'
    """

    __slots__ = ("nodes", "edges", "_children", "_parents", "_skeleton", "_edge_set", "_incident")

    def __init__(self, nodes: Sequence[str], edges: Sequence[Sequence[str]]):
        self.nodes = list(nodes)
        self.edges = [(u, v) for u, v in edges]
        known = set(self.nodes)
        for u, v in self.edges:
            if u not in known or v not in known:
                raise ValueError(f"edge {u} -> {v} names a node outside {self.nodes}")
        self._children: dict[str, list[str]] = {n: [] for n in self.nodes}
        self._parents: dict[str, list[str]] = {n: [] for n in self.nodes}
        # skeleton: node -> [(statement index, neighbour)] in statement order, first statement wins
        self._skeleton: dict[str, list[tuple[int, str]]] = {n: [] for n in self.nodes}
        self._edge_set: set[tuple[str, str]] = set()
        # node -> [(other end, whether it is a child)] for every statement that names it, in order
        self._incident: dict[str, list[tuple[str, bool]]] = {n: [] for n in self.nodes}
        linked: set[frozenset] = set()
        for index, (u, v) in enumerate(self.edges):
            if (u, v) in self._edge_set:
                continue
            self._edge_set.add((u, v))
            self._children[u].append(v)
            self._parents[v].append(u)
            self._incident[u].append((v, True))
            self._incident[v].append((u, False))
            pair = frozenset((u, v))
            if pair not in linked:
                linked.add(pair)
                self._skeleton[u].append((index, v))
                self._skeleton[v].append((index, u))

    def trace(self, task: str, x: str, y: str, z: Sequence[str] = (), search: str = "until_found") -> str:
        """The gold trace for the question about ``(x, y[, z])``; ``search`` (transitivity): stop
        at Y (``until_found``), write every tree edge first (``exhaustive``) or every statement
        of every reached node, breadth first (``expand``) or depth first (``depth_first``);
        (d-separation): the trails (``until_found``) or a reachability search (``bayes_ball``)."""
        if task in TASKS and search not in searches_for(task):
            raise ValueError(f"a {task} trace's search must be one of {', '.join(searches_for(task))}, got {search!r}")
        if x not in self._children or y not in self._children:
            raise ValueError(f"{x!r} and {y!r} must be nodes of the graph {self.nodes}")
        if x == y:
            raise ValueError(f"a question needs two different nodes, got {x!r} twice")
        if task == "transitivity":
            if search == "expand":
                return self._expand(x, y)
            if search == "depth_first":
                return self._depth_first(x, y)
            return self._transitivity(x, y, search == "exhaustive")
        if task == "dsep":
            z = tuple(z)
            if x in z or y in z or not set(z) <= set(self._children):
                raise ValueError(f"conditioning set {z} must be nodes of the graph other than {x!r} and {y!r}")
            return self._bayes_ball(x, y, z) if search == "bayes_ball" else self._dsep(x, y, z)
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")

    # transitivity ---------------------------------------------------------------------------

    def _transitivity(self, x: str, y: str, exhaustive: bool = False) -> str:
        # Breadth-first search from X, writing each tree edge as it is found, up to the edge that
        # reaches Y: every sentence is one lookup in the premise ("which statements start with
        # the node being expanded?") and none needs to know where Y lies, so the same procedure
        # writes a trace of any length, and Yes and No traces differ only in how they end.
        seen = {x}
        tree: list[tuple[str, str]] = []
        queue = deque([x])
        while queue:
            u = queue.popleft()
            for v in self._children[u]:
                if v in seen:
                    continue
                seen.add(v)
                tree.append((u, v))
                if v == y and not exhaustive:
                    return " ".join([cause_step(a, b) for a, b in tree] + [cause_conclusion(x, y, True)])
                queue.append(v)
        steps = [cause_step(a, b) for a, b in tree] or [causes_nothing(x)]
        steps.append(cause_conclusion(x, y, y in seen))
        return " ".join(steps)

    def _expand(self, x: str, y: str) -> str:
        # Every reached node in the order it was first reached, each with all its statements
        # (children in statement order, reached before or not) or "N causes nothing.".
        order, seen, steps = [x], {x}, []
        for u in order:  # grows while it is read: breadth-first
            if not self._children[u]:
                steps.append(causes_nothing(u))
            for v in self._children[u]:
                steps.append(cause_step(u, v))
                if v not in seen:
                    seen.add(v)
                    order.append(v)
        steps.append(cause_conclusion(x, y, y in seen))
        return " ".join(steps)

    def _depth_first(self, x: str, y: str) -> str:
        # Each node's statements in statement order; a statement reaching a new node is followed
        # by that node's statements ("N causes nothing." without any) before the next one.
        steps: list[str] = []
        seen = {x}
        stack: list[list] = []  # [node, index of its next statement]

        def enter(u: str) -> None:
            if not self._children[u]:
                steps.append(causes_nothing(u))
            stack.append([u, 0])

        enter(x)
        while stack:
            top = stack[-1]
            u, i = top
            if i == len(self._children[u]):
                stack.pop()
                continue
            top[1] += 1
            v = self._children[u][i]
            steps.append(cause_step(u, v))
            if v not in seen:
                seen.add(v)
                enter(v)
        steps.append(cause_conclusion(x, y, y in seen))
        return " ".join(steps)

    # d-separation -----------------------------------------------------------------------------

    def _bayes_ball(self, x: str, y: str, z: tuple[str, ...]) -> str:
        # Depth first over (node, came down); each frame: [node, came down, its moves, next move].
        given = set(z)

        def moves(v: str, down: bool) -> list[tuple[str, bool]]:
            if v in given:
                return [(p, False) for p in self._parents[v]] if down else []
            if down:
                return [(c, True) for c in self._children[v]]
            return self._incident[v]

        steps: list[str] = []
        if not self._incident[x]:
            steps.append(not_joined(x, y))
        seen = {(x, False)}
        stack: list[list] = [[x, False, moves(x, False), 0]]
        while stack:
            top = stack[-1]
            v, _, options, i = top
            if i == len(options):
                stack.pop()
                continue
            top[3] += 1
            other, down = options[i]
            steps.append(move_step(v, other, down))
            if other == y:
                steps.append(separation_conclusion(x, y, z, False))
                return " ".join(steps)
            if (other, down) in seen:
                continue
            seen.add((other, down))
            if other in given:
                steps.append(given_step(other))
            elif down and not self._children[other]:
                steps.append(causes_nothing(other))
            stack.append([other, down, moves(other, down), 0])
        steps.append(separation_conclusion(x, y, z, True))
        return " ".join(steps)

    def trails(self, x: str, y: str) -> Iterator[list[str]]:
        """The simple trails from ``x`` to ``y`` in the skeleton, shortest first, then by the
        statement indices of their edges read from ``x``.

        >>> list(GraphTracer(["B", "C", "D"], [("B", "C"), ("D", "C"), ("B", "D")]).trails("B", "D"))
        [['B', 'D'], ['B', 'C', 'D']]
        """
        # Level by level: extending the (sorted) paths of one length in order, each by its edges in
        # statement order, yields the next length's paths already sorted by their index keys.
        level: list[list[str]] = [[x]]
        while level:
            longer: list[list[str]] = []
            for path in level:
                end = path[-1]
                for _, nxt in self._skeleton[end]:
                    if nxt == y:
                        yield path + [y]
                    elif nxt not in path:
                        longer.append(path + [nxt])
            level = longer

    def _openers(self, z: Sequence[str]) -> set[str]:
        """Nodes that open a collider: Z and every ancestor of a node in Z."""
        seen = set(z)
        stack = list(z)
        while stack:
            for p in self._parents[stack.pop()]:
                if p not in seen:
                    seen.add(p)
                    stack.append(p)
        return seen

    def trail_text(self, trail: Sequence[str]) -> str:
        """``B -> C <- D``: the trail with each edge's direction.

        >>> GraphTracer(["B", "C", "D"], [("B", "C"), ("D", "C")]).trail_text(["B", "C", "D"])
        'B -> C <- D'
        """
        parts = [trail[0]]
        for a, b in zip(trail, trail[1:]):
            parts.append(f"-> {b}" if (a, b) in self._edge_set else f"<- {b}")
        return " ".join(parts)

    def blocker(
        self, trail: Sequence[str], z: Sequence[str], openers: set[str] | None = None
    ) -> tuple[str, bool] | None:
        """The first node (from the trail's start) that blocks ``trail`` given ``z`` and whether it
        is a collider; ``None`` when the trail is open."""
        if openers is None:
            openers = self._openers(z)
        zset = set(z)
        for prev, mid, nxt in zip(trail, trail[1:], trail[2:]):
            collider = (prev, mid) in self._edge_set and (nxt, mid) in self._edge_set
            if collider:
                if mid not in openers:
                    return mid, True
            elif mid in zset:
                return mid, False
        return None

    def _trail_sentence(self, trail: list[str], block: tuple[str, bool] | None, z) -> str:
        return trail_sentence(self.trail_text(trail), block, z)

    def _dsep(self, x: str, y: str, z: tuple[str, ...]) -> str:
        openers = self._openers(z)
        sentences: list[str] = []
        trails = self.trails(x, y)
        count = 0
        for trail in trails:
            block = self.blocker(trail, z, openers)
            if count == MAX_TRAILS:
                # over the cap: a separated trace stops listing; a dependent one names its open trail
                if block is not None:
                    found = next((t for t in trails if self.blocker(t, z, openers) is None), None)
                    if found is None:
                        sentences.append(EVERY_OTHER_BLOCKED)
                        break
                    trail = found
                    sentences.append(EARLIER_BLOCKED)
                sentences.append(self._trail_sentence(trail, None, z))
                sentences.append(separation_conclusion(x, y, z, False))
                return " ".join(sentences)
            count += 1
            sentences.append(self._trail_sentence(trail, block, z))
            if block is None:
                sentences.append(separation_conclusion(x, y, z, False))
                return " ".join(sentences)
        if count == 0:
            sentences.append(not_joined(x, y))
        sentences.append(separation_conclusion(x, y, z, True))
        return " ".join(sentences)


def trace_text(
    task: str,
    nodes: Sequence[str],
    edges: Sequence[tuple[str, str]] | Sequence[Sequence[str]],
    x: str,
    y: str,
    z: Sequence[str] = (),
    search: str = "until_found",
) -> str:
    """The gold trace for the question of ``task`` about ``(x, y[, z])`` on the graph ``(nodes,
    edges)``; deterministic, and consistent with the label networkx gives. ``search``: see
    :meth:`GraphTracer.trace`.

    >>> edges = [("B", "C"), ("D", "C"), ("C", "E")]
    >>> trace_text("transitivity", ["B", "C", "D", "E"], edges, "B", "E")
    'B causes C. C causes E. So B causes E.'
    >>> trace_text("transitivity", ["B", "C", "D", "E"], edges, "E", "B")
    'E causes nothing. So E does not cause B.'
    >>> trace_text("dsep", ["B", "C", "D", "E"], edges, "B", "D")
    'Trail B -> C <- D is blocked at C, a collider outside {}. So B and D are d-separated given {}.'
    >>> trace_text("dsep", ["B", "C", "D", "E"], edges, "B", "D", ["E"])
    'Trail B -> C <- D is open. So B and D are not d-separated given {E}.'
    >>> trace_text("transitivity", ["B", "C", "D", "E"], edges, "B", "C", search="exhaustive")
    'B causes C. C causes E. So B causes C.'
    """
    return GraphTracer(nodes, edges).trace(task, x, y, z, search)
