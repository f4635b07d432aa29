"""The semantic loss binding against brute-force enumeration of the transitivity rules.

The oracle re-states transitivity.rules in Python (edges cause, causes is transitive and
asymmetric) and sums the weights of every assignment of the query atoms that satisfies it.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from constraintc.logic.atoms import format_atom, parse_atom
from constraintc.semantic import SemanticLoss


@pytest.fixture(scope="module")
def rc():
    return SemanticLoss("transitivity").double()


def _holds(nodes, edges, true_pairs: set) -> bool:
    if any((u, v) not in true_pairs for u, v in edges):
        return False
    for (x, y) in true_pairs:
        if (y, x) in true_pairs:
            return False
        for w in nodes:
            if (y, w) in true_pairs and (x, w) not in true_pairs:
                return False
    return True


def _oracle_log_wmc(nodes, edges, asked: dict[tuple, torch.Tensor]):
    """log sum over satisfying assignments; asked atoms weigh p / 1-p, the rest 1/2 each."""
    pairs = [(x, y) for x in nodes for y in nodes if x != y]
    terms = []
    for bits in itertools.product([False, True], repeat=len(pairs)):
        true_pairs = {pr for pr, b in zip(pairs, bits) if b}
        if not _holds(nodes, edges, true_pairs):
            continue
        w = torch.zeros((), dtype=torch.float64)
        for pr, b in zip(pairs, bits):
            if pr in asked:
                p = asked[pr]
                w = w + (torch.log(p) if b else torch.log1p(-p))
            else:
                w = w + math.log(0.5)
        terms.append(w)
    return torch.logsumexp(torch.stack(terms), 0) if terms else torch.tensor(-math.inf, dtype=torch.float64)


@st.composite
def graph_and_probs(draw):
    n = draw(st.integers(2, 4))
    nodes = draw(st.permutations(["B", "C", "D", "E", "F"]))[:n]
    order = draw(st.permutations(nodes))
    edges = [[order[i], order[j]] for i in range(n) for j in range(i + 1, n) if draw(st.booleans())]
    pairs = [(x, y) for x in nodes for y in nodes if x != y]
    asked = [pr for pr in pairs if draw(st.booleans())]
    probs = [draw(st.floats(0.02, 0.98)) for _ in asked]
    return nodes, edges, asked, probs


@settings(max_examples=25)
@given(graph_and_probs())
def test_log_wmc_and_gradient_match_enumeration(rc, case):
    nodes, edges, asked, probs = case
    p = torch.tensor(probs, dtype=torch.float64, requires_grad=True)
    atoms = [format_atom("causes", pr) for pr in asked]
    got = rc.log_wmc([(nodes, edges, atoms)], [torch.log(p)], [torch.log1p(-p)])[0]
    (g_got,) = torch.autograd.grad(got, p) if asked else (torch.zeros(0),)
    q = p.detach().clone().requires_grad_(True)
    want = _oracle_log_wmc(nodes, [tuple(e) for e in edges], dict(zip(asked, q)))
    assert torch.isclose(got.detach(), want.detach(), atol=1e-9), (got, want)
    if asked:
        (g_want,) = torch.autograd.grad(want, q)
        assert torch.allclose(g_got, g_want, atol=1e-8)


def test_graph_atoms_and_questions_follow_the_rules_file(rc):
    ga = rc.graph_atoms(["B", "C", "D"], [["B", "C"]])
    assert len(ga.atoms) == 6 and "causes(C,B)" in ga.atoms
    assert ga.questions[ga.atoms.index("causes(C,B)")] == "Does C cause B?"
    assert parse_atom("dsep(B,C,{D,E})") == ("dsep", ("B", "C", frozenset({"D", "E"})))


def test_hard_answers_and_violations(rc):
    nodes, edges = ["B", "C", "D"], [["B", "C"], ["C", "D"]]
    atoms = ["causes(B,C)", "causes(C,D)", "causes(B,D)", "causes(D,B)"]
    consistent = torch.tensor([True, True, True, False])
    contradicts = torch.tensor([True, True, False, False])  # misses transitivity
    viol = rc.violated([(nodes, edges, atoms)] * 2, [consistent, contradicts])
    assert viol.tolist() == [False, True]
    # p exactly 0/1 on a consistent answer: finite value, no NaN in the gradient
    p = consistent.double().requires_grad_(True)
    lp = torch.where(consistent, 0.0, -math.inf).double().requires_grad_(True)
    lq = torch.where(consistent, -math.inf, 0.0).double().requires_grad_(True)
    v = rc.log_wmc([(nodes, edges, atoms)], [lp], [lq])[0]
    v.backward()
    assert math.isfinite(v.item()) and not torch.isnan(lp.grad).any() and not torch.isnan(lq.grad).any()
    del p


def test_unknown_atom_is_a_clear_error(rc):
    from constraintc.errors import ConstraintcError

    with pytest.raises(ConstraintcError, match="names a node outside the graph"):
        rc.log_wmc([(["B", "C"], [], ["causes(B,Z)"])], [torch.zeros(1)], [torch.zeros(1)])
    with pytest.raises(ConstraintcError, match="not a query atom"):
        rc.log_wmc([(["B", "C"], [], ["causes(B,B)"])], [torch.zeros(1)], [torch.zeros(1)])
    with pytest.raises(ConstraintcError, match="no query predicate 'dsep'.*made for"):
        rc.log_wmc([(["B", "C"], [], ["dsep(B,C,{})"])], [torch.zeros(1)], [torch.zeros(1)])



def test_an_atom_a_parameter_excludes_names_the_parameters():
    from constraintc import SemanticLoss
    from constraintc.errors import ConstraintcError

    atom = "dsep(B,F,{C,D,E})"  # three conditioning nodes; the dsep library rules default to cond_size=2
    graph = (["B", "C", "D", "E", "F"], [("B", "C"), ("C", "F")], [atom])
    with pytest.raises(ConstraintcError, match=r"rules parameter too small excludes it \(these rules' parameters: "
                                               r"cond_size=2; .*--param NAME=VALUE"):
        SemanticLoss("dsep").log_wmc([graph], [torch.zeros(1)], [torch.zeros(1)])
    # ... and with the parameter raised the atom is asked: the graph fixes its answer (C blocks B -> C -> F)
    lw = SemanticLoss("dsep", {"cond_size": 3}).log_wmc([graph], [torch.zeros(1)], [torch.full((1,), -math.inf)])
    assert lw[0].item() == 0.0
