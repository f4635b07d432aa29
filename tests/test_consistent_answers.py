"""Consistent answering (``constraintc eval --consistent``) against brute force: every answer set
of a 3-4-node graph's causes atoms, weighted by the model's probabilities (unasked atoms as fair
coins) and kept when it satisfies transitivity with the graph's edges, checked in plain Python."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from constraintc import SemanticLoss
from constraintc.evaluation.consistent import consistent_answers

# probabilities at the edges of the domain on purpose: exact 0 and 1, 1 - ulp, 2^-60; nothing
# smaller than 1e-12 otherwise, so that the oracle's products (in linear space) do not underflow
PROBS = st.sampled_from([0.0, 1.0, 1.0 - 2**-53, 2**-60, 0.5]) | st.floats(1e-12, 1.0 - 1e-12)


def _satisfies(true: set, nodes, edges) -> bool:
    if not set(edges) <= true:
        return False
    if any((y, x) in true for x, y in true):
        return False
    return all((x, w) in true for (x, y), (y2, w) in itertools.product(true, true) if y == y2 and x != w)


def _brute_force(nodes, edges, asked, p):
    pairs = [(x, y) for x in nodes for y in nodes if x != y]
    prob = {pair: 0.5 for pair in pairs}
    prob.update(zip(asked, p))
    yes = [0.0] * len(asked)
    no = [0.0] * len(asked)
    total = 0.0
    for bits in itertools.product((False, True), repeat=len(pairs)):
        true = {pair for pair, b in zip(pairs, bits) if b}
        if not _satisfies(true, nodes, edges):
            continue
        w = math.prod(prob[pair] if b else 1 - prob[pair] for pair, b in zip(pairs, bits))
        total += w
        for i, pair in enumerate(asked):
            if pair in true:
                yes[i] += w
            else:
                no[i] += w
    return ([y / total for y in yes], yes, no) if total > 0 else None


@pytest.fixture(scope="module")
def rules():
    return SemanticLoss("transitivity").double()


@given(data=st.data())
def test_marginals_match_brute_force_and_stay_probabilities(rules, data):
    n = data.draw(st.integers(3, 4), label="nodes")
    nodes = ["a", "b", "c", "d"][:n]
    order = data.draw(st.permutations(nodes), label="order")
    edges = [(order[i], order[j]) for i in range(n) for j in range(i + 1, n)
             if data.draw(st.booleans(), label=f"edge {order[i]}{order[j]}")]
    pairs = [(x, y) for x in nodes for y in nodes if x != y]
    asked = data.draw(st.lists(st.sampled_from(pairs), min_size=1, max_size=min(len(pairs), 8), unique=True),
                      label="asked")
    p = data.draw(st.lists(PROBS, min_size=len(asked), max_size=len(asked)), label="p")
    graph = (nodes, [list(e) for e in edges], [f"causes({x},{y})" for x, y in asked])
    out = consistent_answers(rules, [graph], [torch.tensor(p, dtype=torch.float64)])[0]
    oracle = _brute_force(nodes, edges, asked, p)
    if oracle is None:  # the model gave probability 0 to every answer set the rules allow
        assert not out["consistent"]
        return
    expected, yes, no = oracle
    m = out["marginals"].tolist()
    assert all(0.0 <= x <= 1.0 for x in m), m
    assert m == pytest.approx(expected, abs=1e-12)
    for x, y, n in zip(m, yes, no):  # exact where the answer is decided
        assert (y > 0.0 or x == 0.0) and (n > 0.0 or x == 1.0), (x, y, n)
    true = {pair for pair, b in zip(asked, out["mpe"].tolist()) if b}
    # the MPE answers extend to a full answer set the rules allow
    rest = [pair for pair in pairs if pair not in asked]
    assert any(_satisfies(true | {pr for pr, b in zip(rest, bits) if b}, nodes, edges)
               for bits in itertools.product((False, True), repeat=len(rest)))
