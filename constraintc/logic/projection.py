"""Exact losses beyond one circuit: strict-order rules projected onto node subsets, and rules
that a graph decides completely.

**Strict-order rules.** :func:`is_strict_order_rules` recognises rules files whose constraint is
"the query relation is a strict partial order that contains the given relation" (the library's
``transitivity.rules``, or any file that says the same thing). For those, the constraint over the
atoms among a node subset ``S``, with the graph's reachability restricted to ``S`` as the edges,
is the exact projection of the whole graph's constraint onto those atoms (proof in
``docs/semantic_loss.md``, "Projection"), so a graph of any size is covered by subsets that a
small schema circuit evaluates exactly. :func:`pair_cover` picks the subsets,
:func:`reachability` the evidence, :func:`order_consistent` decides hard answers on the whole
graph at once.

**Decided rules.** :func:`unit_propagate` runs unit propagation on a ground instance's CNF: when
the graph fixes every query atom (d-separation: one model per DAG), the result is that model.

>>> reachability(3, [(0, 1), (1, 2)]).astype(int).tolist()
[[0, 1, 1], [0, 0, 1], [0, 0, 0]]
>>> pair_cover(5, {(0, 1), (3, 4), (1, 2)}, 3)
[[0, 1, 2], [0, 3, 4]]
"""

from __future__ import annotations

import itertools

import numpy as np

from constraintc.language import ast
from constraintc.language.ast import Program
from constraintc.logic.boolean import AND, CONST, IFF, VAR

#: rules whose truth on every graph is decided by their instances over 3 nodes (see
#: :func:`is_strict_order_rules`): at most this many variables per rule
_MAX_RULE_VARS = 3


def _universal_prefix(f) -> tuple[int, object]:
    """(number of variables bound by the leading ``forall``s, the formula under them)."""
    count = 0
    while isinstance(f, ast.Quantified) and f.kind == "forall":
        count += len(f.binders)
        f = f.body
    return count, f


def _quantifier_free(f) -> bool:
    if isinstance(f, (ast.Quantified, ast.Counting)):
        return False
    if isinstance(f, ast.Not):
        return _quantifier_free(f.arg)
    if isinstance(f, (ast.And, ast.Or)):
        return all(_quantifier_free(a) for a in f.args)
    if isinstance(f, (ast.Implies, ast.Iff)):
        return _quantifier_free(f.left) and _quantifier_free(f.right)
    return isinstance(f, (ast.Atom, ast.Compare, ast.Const))


def _truth_tables(builder, num_inputs: int, inputs: list[int], roots: list[int]) -> list[int]:
    """Each root literal's truth table over every assignment of ``inputs`` (bit ``a`` of the
    result is the root's value under assignment ``a``; input ``i`` is bit ``i`` of ``a``)."""
    size = 1 << num_inputs
    full = (1 << size) - 1
    table: dict[int, int] = {1: full}  # node 1 is the constant true
    for i, node in enumerate(inputs):
        bits = 0
        for a in range(size):
            if a >> i & 1:
                bits |= 1 << a
        table[node] = bits

    def lit(x: int) -> int:
        v = table[abs(x)]
        return v if x > 0 else full & ~v

    for node in range(2, len(builder.kind)):
        kind = builder.kind[node]
        if kind == AND:
            v = full
            for c in builder.children[node]:
                v &= lit(c)
            table[node] = v
        elif kind == IFF:
            a, b = builder.children[node]
            table[node] = full & ~(lit(a) ^ lit(b))
        elif kind == VAR and node not in table:
            table[node] = 0  # an input outside ``inputs`` cannot occur in these roots
        elif kind == CONST:
            table[node] = full
    return [lit(r) for r in roots]


def is_strict_order_rules(program: Program) -> bool:
    """Does ``program`` say exactly "the query relation is a strict partial order (irreflexive,
    transitive) containing the given relation", on every number of nodes?

    Sufficient and checked: no subset domains and no derived predicates; one query and one
    given predicate, both over (node, node); every rule a block of ``forall``s over at most three
    variables around a quantifier-free body. Then a rule's instances each mention at most three
    nodes, so the constraint on ``n >= 3`` nodes is the conjunction of its instances on every
    3-node subset, and it suffices that the 3-node constraint is the strict-order one: compared
    over all 2^12 assignments of its 12 atoms.

    >>> from constraintc.language import load_rules
    >>> is_strict_order_rules(load_rules("transitivity"))
    True
    >>> is_strict_order_rules(load_rules("transitivity_closed")), is_strict_order_rules(load_rules("dsep"))
    (False, False)
    """
    from constraintc.errors import ConstraintcError
    from constraintc.logic.grounding import ground

    if program.domains or program.derived:
        return False
    queries, givens = list(program.queries.values()), list(program.givens.values())
    if len(queries) != 1 or len(givens) != 1:
        return False
    query, given = queries[0], givens[0]
    if query.arg_types != ("node", "node") or given.arg_types != ("node", "node"):
        return False
    for rule in program.rules.values():
        count, body = _universal_prefix(rule.formula)
        if count > _MAX_RULE_VARS or not _quantifier_free(body):
            return False
    try:
        grounding = ground(program, 3)
    except ConstraintcError:
        return False
    pairs = [(f"n{i}", f"n{j}") for i in range(3) for j in range(3) if i != j]
    want = {(query.name, p) for p in pairs} | {(given.name, p) for p in pairs}
    have = [(a.pred, tuple(a.args)) for a in grounding.atom_info]
    if len(have) != len(want) or set(have) != want:
        return False
    (table,) = _truth_tables(grounding.builder, len(have), grounding.atom_lits,
                             [grounding.builder.and_(list(grounding.rule_lits.values()))])
    position = {key: i for i, key in enumerate(have)}
    for a in range(1 << len(have)):
        rel = {p for p in pairs if a >> position[(query.name, p)] & 1}
        edges = {p for p in pairs if a >> position[(given.name, p)] & 1}
        order = edges <= rel and not any((y, x) in rel for x, y in rel) and all(
            (x, w) in rel for (x, y) in rel for (y2, w) in rel if y == y2 and x != w)
        if bool(table >> a & 1) != order:
            return False
    return True


def reachability(n: int, edges) -> np.ndarray:
    """``[n, n]`` booleans: ``r[i, j]`` when a directed path of one or more edges leads from node
    ``i`` to node ``j`` (``r[i, i]`` only on a cycle)."""
    r = np.zeros((n, n), dtype=bool)
    for u, v in edges:
        r[u, v] = True
    for k in range(n):  # Warshall
        r |= r[:, k : k + 1] & r[k : k + 1, :]
    return r


def order_consistent(reach: np.ndarray, yes: list[tuple[int, int]], no: list[tuple[int, int]]) -> bool:
    """Whether some strict partial order contains the reachability ``reach`` and the ``yes``
    pairs and none of the ``no`` pairs. The least relation that is transitive and contains
    ``reach`` and ``yes`` is their transitive closure; it works exactly when it is irreflexive
    and misses every ``no`` pair."""
    r = reach.copy()
    for u, v in yes:
        r[u, v] = True
    for k in range(r.shape[0]):
        r |= r[:, k : k + 1] & r[k : k + 1, :]
    return not r.diagonal().any() and not any(r[u, v] for u, v in no)


def pair_cover(n: int, pairs, size: int) -> list[list[int]]:
    """Node subsets of ``size`` nodes (of ``0..n-1``) such that each pair in ``pairs`` (``(i, j)``
    tuples, either order) lies inside at least one of them; deterministic and greedy.

    Each subset starts from the uncovered pair whose nodes have the most uncovered pairs, then
    grows by the node that covers the most uncovered pairs with it (ties: more uncovered pairs
    overall, then the lower index). A subset is always filled to ``size`` nodes (the extra nodes
    cost nothing in a fixed-size circuit and add constraints between the answers).
    """
    if size < 2:
        raise ValueError(f"subsets of {size} nodes cannot cover pairs")
    if n <= size:
        return [list(range(n))] if pairs else []
    uncovered = {(min(i, j), max(i, j)) for i, j in pairs if i != j}
    cover: list[list[int]] = []
    while uncovered:
        degree = [0] * n
        for i, j in uncovered:
            degree[i] += 1
            degree[j] += 1
        first = max(sorted(uncovered), key=lambda p: degree[p[0]] + degree[p[1]])
        block = list(first)
        while len(block) < size:
            def gain(v):
                return sum((min(v, b), max(v, b)) in uncovered for b in block)
            rest = [v for v in range(n) if v not in block]
            block.append(max(rest, key=lambda v: (gain(v), degree[v], -v)))
        block.sort()
        cover.append(block)
        uncovered -= {(i, j) for i, j in itertools.combinations(block, 2)}
    return cover


def unit_propagate(num_vars: int, clauses) -> dict[int, bool] | None:
    """The values unit propagation forces on a CNF (variables ``1..num_vars``), or None when it
    derives a conflict (the CNF has no model)."""
    value: dict[int, bool] = {}
    clauses = [tuple(c) for c in clauses]
    changed = True
    while changed:
        changed = False
        for clause in clauses:
            free = None
            count = 0
            satisfied = False
            for lit in clause:
                v = value.get(abs(lit))
                if v is None:
                    free, count = lit, count + 1
                elif v == (lit > 0):
                    satisfied = True
                    break
            if satisfied:
                continue
            if count == 0:
                return None
            if count == 1:
                value[abs(free)] = free > 0
                changed = True
    return value


def satisfies(clauses, value: dict[int, bool]) -> bool:
    """Whether the (possibly partial) assignment ``value`` makes every clause true."""
    return all(any(value.get(abs(lit)) == (lit > 0) for lit in clause) for clause in clauses)
