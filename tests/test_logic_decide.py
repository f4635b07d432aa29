"""Definitional rules decided on demand (``constraintc.logic.decide``) against the grounder
(ground instance + unit propagation) and networkx, and as ``SemanticLoss``'s labels."""

from __future__ import annotations

import itertools
import random

import networkx as nx
import pytest
import torch

from constraintc.language import load_rules, parse_rules
from constraintc.logic.decide import InstanceEvaluator, definitions
from constraintc.logic.grounding import ground
from constraintc.logic.projection import unit_propagate
from constraintc.semantic import SemanticLoss

CONFOUNDING = """
given edge(X: node, Y: node) where X != Y
query confounded(X: node, Y: node) where X != Y
    question "Do {X} and {Y} have a common cause?"
define ancestor(A: node, B: node) := edge(A, B) | exists W: edge(A, W) & ancestor(W, B)
rule common_cause: forall X, Y: X != Y ->
    (confounded(X, Y) <-> exists C: ancestor(C, X) & ancestor(C, Y))
"""

# the query negated, a guard that differs from the 'where', and a rule on the graph alone
UNRELATED = """
given edge(X: node, Y: node) where X != Y
query unrelated(X: node, Y: node) where X != Y
    question "Are {X} and {Y} unrelated?"
define ancestor(A: node, B: node) := edge(A, B) | exists W: edge(A, W) & ancestor(W, B)
rule acyclic: forall X: ~ancestor(X, X)
rule def: forall X, Y: X != Y & ~edge(X, Y) -> (~unrelated(X, Y) <-> ancestor(X, Y) | ancestor(Y, X))
"""


def random_dag(rng, n, p):
    order = list(range(n))
    rng.shuffle(order)
    return {(order[i], order[j]) for i in range(n) for j in range(i + 1, n) if rng.random() < p}


def grounder_values(program, n, edges):
    names = [f"n{i}" for i in range(n)]
    g = ground(program, names, graph=[(names[u], names[v]) for u, v in sorted(edges)])
    value = unit_propagate(g.cnf.num_vars, g.cnf.clauses)
    out = {}
    for i, a in enumerate(g.atom_info):
        key = tuple(sum(1 << names.index(v) for v in x) if isinstance(x, frozenset) else names.index(x) for x in a.args)
        out[(a.pred, key)] = value.get(i + 1) if value is not None else "conflict"
    return out


def test_which_files_are_definitional():
    assert definitions(load_rules("dsep")) is not None
    for name in ("transitivity", "transitivity_closed", "semigraphoid"):
        assert definitions(load_rules(name)) is None, name
    d = definitions(parse_rules(UNRELATED))
    assert d.graph_rules == ("acyclic",) and d.by_query["unrelated"].negated


@pytest.mark.parametrize("rules, params", [("dsep", None), ("dsep", {"cond_size": 1}), (CONFOUNDING, None), (UNRELATED, None)])
def test_every_atom_equals_the_grounder(rules, params):
    program = load_rules(rules, params) if not rules.lstrip().startswith("given") else parse_rules(rules)
    defs = definitions(program)
    rng = random.Random(3)
    for n in (2, 3, 4, 5):
        for _ in range(3):
            edges = random_dag(rng, n, 0.5)
            want = grounder_values(program, n, edges)
            ev = InstanceEvaluator(program, n, edges)
            assert ev.graph_consistent(defs)
            atoms = list(want.items())
            rng.shuffle(atoms)  # memoised values must not depend on the order of demand
            for (pred, key), value in atoms:
                assert ev.label(defs, pred, key) == value, (n, edges, pred, key)


def test_dsep_on_larger_graphs_equals_networkx():
    program = load_rules("dsep")
    defs = definitions(program)
    rng = random.Random(8)
    for n in (9, 13):
        edges = random_dag(rng, n, 2.5 / n)
        g = nx.DiGraph(list(edges))
        g.add_nodes_from(range(n))
        ev = InstanceEvaluator(program, n, edges)
        for _ in range(40):
            x, y = rng.sample(range(n), 2)
            z = set(rng.sample([v for v in range(n) if v not in (x, y)], rng.randint(0, 2)))
            got = ev.label(defs, "dsep", (x, y, sum(1 << v for v in z)))
            assert got == nx.is_d_separator(g, {x}, {y}, z), (x, y, z)


def test_graph_only_rules_make_a_graph_infeasible(tmp_path):
    program = parse_rules(UNRELATED)
    defs = definitions(program)
    assert InstanceEvaluator(program, 3, {(0, 1), (1, 2)}).graph_consistent(defs)
    assert not InstanceEvaluator(program, 3, {(0, 1), (1, 2), (2, 0)}).graph_consistent(defs)
    # without 'X != Y' the definition binds unrelated(X, X), an atom that does not exist (false):
    # then ~false <-> ancestor(X, X) fails on every acyclic graph, as the grounder finds too
    loose = parse_rules(UNRELATED.replace("X != Y & ~edge", "~edge"))
    assert not InstanceEvaluator(loose, 3, {(0, 1)}).graph_consistent(definitions(loose))
    with pytest.raises(Exception, match="rule def is false"):
        ground(loose, ["a", "b", "c"], graph=[("a", "b")])
    path = tmp_path / "unrelated.rules"
    path.write_text(UNRELATED)
    sl = SemanticLoss(str(path), reduction="none").double()
    cyclic = (["a", "b", "c"], [("a", "b"), ("b", "c"), ("c", "a")], ["unrelated(a,b)"])
    assert sl.strategy(*cyclic[:2]) == "infeasible"
    assert sl([cyclic], torch.zeros(1)).isinf().all()


def test_free_atoms_weigh_nothing_and_decided_ones_are_cross_entropy(tmp_path):
    """``unrelated(a,b)`` over an edge a -> b is free (its guard is false): it adds
    log(p + 1 - p) = 0; the other atoms are CE against the rule-derived values."""
    path = tmp_path / "unrelated.rules"
    path.write_text(UNRELATED)
    sl = SemanticLoss(str(path), reduction="none").double()
    nodes, edges = ["a", "b", "c", "d"], [("a", "b"), ("b", "c")]
    atoms = ["unrelated(a,b)", "unrelated(a,c)", "unrelated(c,a)", "unrelated(a,d)"]
    z = torch.tensor([3.0, -1.0, 0.5, 2.0], dtype=torch.float64, requires_grad=True)
    got = sl([(nodes, edges, atoms)], z)[0]
    labels = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)  # a->c, c<-a related; a, d unrelated
    want = torch.nn.functional.binary_cross_entropy_with_logits(z[1:], labels, reduction="sum")
    assert sl.strategy(nodes, edges) == "labels"
    assert torch.isclose(got, want)
    got.backward()
    assert z.grad[0] == 0


def test_confounding_labels_equal_networkx_common_ancestors(tmp_path):
    path = tmp_path / "confounding.rules"
    path.write_text(CONFOUNDING)
    sl = SemanticLoss(str(path))
    rng = random.Random(4)
    for n in (6, 11, 15):
        names = [f"v{i}" for i in range(n)]
        edges = [(names[u], names[v]) for u, v in random_dag(rng, n, 2.0 / n)]
        g = nx.DiGraph(edges)
        g.add_nodes_from(names)
        atoms = sl.graph_atoms(names, edges).atoms
        truth = torch.tensor([bool(nx.ancestors(g, x) & nx.ancestors(g, y))
                              for x, y in (a[len("confounded("):-1].split(",") for a in atoms)])
        assert sl.strategy(names, edges) == "labels"
        assert not sl.violated([(names, edges, atoms)], [truth])[0]
        assert sl.violated([(names, edges, atoms)], [~truth])[0]
    assert len(list(itertools.chain(sl.schemas))) == 0  # no circuit was needed
