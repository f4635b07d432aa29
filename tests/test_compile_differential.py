"""Differential tests of knowledge compilation: every number against an independent oracle.

Oracles: brute-force enumeration (numpy) on small CNFs, PySDD's own model counter and WMC on larger
ones, and the labelled strict-partial-order counts for the transitivity constraint. The circuit is
evaluated by a reference evaluator written here (float64 and exact fractions), with normalized
weights and no smoothing: the invariant ``compile_cnf`` promises to the evaluator.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from constraintc.compile import compile_cnf, from_pysdd, model_count, node_vars
from constraintc.compile.counting import model_counts
from constraintc.compile.dnnf import HEURISTICS, compile_builtin
from constraintc.compile.ir import AND, FALSE, LIT, OR, TRUE, CircuitIR
from constraintc.compile.workloads import PARTIAL_ORDERS, transitivity_cnf
from constraintc.errors import Unsatisfiable
from constraintc.logic.cnf import CNF

# ---------------------------------------------------------------- oracles and reference evaluator


def brute_models(cnf: CNF) -> np.ndarray:
    """Distinct atom assignments (rows of bools) that extend to a model of the CNF."""
    n = cnf.num_vars
    x = ((np.arange(2**n)[:, None] >> np.arange(n)[None, :]) & 1).astype(bool)
    ok = np.ones(2**n, dtype=bool)
    for clause in cnf.clauses:
        sat = np.zeros(2**n, dtype=bool)
        for lit in clause:
            sat |= x[:, abs(lit) - 1] if lit > 0 else ~x[:, abs(lit) - 1]
        ok &= sat
    atoms = x[ok][:, : cnf.num_atoms]
    return np.unique(atoms, axis=0) if len(atoms) else atoms


def brute_wmc(models: np.ndarray, p) -> float | Fraction:
    total = 0
    for row in models:
        w = 1
        for i, bit in enumerate(row):
            w *= p[i] if bit else 1 - p[i]
        total += w
    return total


def eval_ir(ir, p, root=0):
    """WMC of a root with weight p_i on x_i and 1 - p_i on ~x_i (1 on both for auxiliaries)."""
    vals = [None] * ir.num_nodes
    for i in range(ir.num_nodes):
        k = ir.kinds[i]
        if k == TRUE:
            vals[i] = 1
        elif k == FALSE:
            vals[i] = 0
        elif k == LIT:
            lit = int(ir.lits[i])
            v = abs(lit)
            if v > ir.num_atoms:
                vals[i] = 1
            else:
                vals[i] = p[v - 1] if lit > 0 else 1 - p[v - 1]
        else:
            kids = [vals[c] for c in ir.node_children(i)]
            vals[i] = math.prod(kids) if k == AND else sum(kids)
    return vals[int(ir.roots[root])]


def truth_tables(ir) -> np.ndarray:
    """The Boolean function of every node as a table over all 2^num_vars assignments."""
    n = ir.num_vars
    x = ((np.arange(2**n)[:, None] >> np.arange(n)[None, :]) & 1).astype(bool)
    t = np.zeros((ir.num_nodes, 2**n), dtype=bool)
    for i in range(ir.num_nodes):
        k = ir.kinds[i]
        if k == TRUE:
            t[i] = True
        elif k == LIT:
            lit = int(ir.lits[i])
            t[i] = x[:, abs(lit) - 1] if lit > 0 else ~x[:, abs(lit) - 1]
        elif k == AND:
            t[i] = np.all(t[ir.node_children(i)], axis=0)
        elif k == OR:
            t[i] = np.any(t[ir.node_children(i)], axis=0)
    return t


def check_structure(ir) -> None:
    """Decomposable ANDs (structurally) and deterministic ORs (semantically)."""
    ir.validate()
    masks = node_vars(ir)
    tables = truth_tables(ir)
    for i in range(ir.num_nodes):
        kids = ir.node_children(i).tolist()
        if ir.kinds[i] == AND:
            for a, b in itertools.combinations(kids, 2):
                assert masks[a] & masks[b] == 0, f"AND node {i} is not decomposable"
        elif ir.kinds[i] == OR:
            assert tables[kids].sum(axis=0).max() <= 1, f"OR node {i} is not deterministic"


# ---------------------------------------------------------------- strategies

@st.composite
def cnfs(draw, max_vars=9, max_clauses=24, max_len=4):
    n = draw(st.integers(1, max_vars))
    lit = st.integers(1, n).flatmap(lambda v: st.sampled_from([v, -v]))
    clauses = draw(st.lists(st.lists(lit, min_size=1, max_size=max_len), max_size=max_clauses))
    return CNF(num_vars=n, clauses=[tuple(c) for c in clauses])


@st.composite
def tseitin_cnfs(draw):
    """Atoms 1..k plus auxiliaries each defined by a full equivalence over earlier variables."""
    k = draw(st.integers(1, 6))
    aux = draw(st.integers(1, 4))
    n = k + aux
    clauses = []
    for t in range(k + 1, n + 1):
        a, b = draw(st.integers(1, t - 1)), draw(st.integers(1, t - 1))
        a, b = a * draw(st.sampled_from([1, -1])), b * draw(st.sampled_from([1, -1]))
        if draw(st.booleans()):  # t <-> a & b
            clauses += [(-t, a), (-t, b), (t, -a, -b)]
        else:  # t <-> a | b
            clauses += [(t, -a), (t, -b), (-t, a, b)]
    lit = st.integers(1, n).flatmap(lambda v: st.sampled_from([v, -v]))
    clauses += [tuple(c) for c in draw(st.lists(st.lists(lit, min_size=1, max_size=3), max_size=6))]
    return CNF(num_vars=n, num_atoms=k, clauses=clauses)


probs = st.floats(0.0, 1.0, allow_nan=False)


def compile_or_unsat(cnf, **kw):
    try:
        return compile_cnf(cnf, **kw)
    except Unsatisfiable:
        return None


# ---------------------------------------------------------------- small CNFs vs brute force

@settings(max_examples=1500)
@given(cnfs(), st.sampled_from(["auto", *HEURISTICS]), st.data())
def test_builtin_matches_brute_force(cnf, heuristic, data):
    models = brute_models(cnf)
    ir, _ = compile_builtin([cnf], cnf.num_vars, heuristic=heuristic)  # unsat -> FALSE root
    ir = CircuitIR(ir.num_vars, cnf.num_atoms, ir.kinds, ir.lits, ir.child_ptr, ir.children, ir.roots)
    assert model_count(ir) == len(models)
    p = data.draw(st.lists(probs, min_size=cnf.num_atoms, max_size=cnf.num_atoms))
    assert eval_ir(ir, p) == pytest.approx(brute_wmc(models, p), rel=1e-9, abs=1e-12)


@settings(max_examples=400)
@given(cnfs(max_vars=7, max_clauses=14))
def test_structure_and_exact_wmc(cnf):
    out = compile_or_unsat(cnf)
    models = brute_models(cnf)
    if out is None:
        assert len(models) == 0
        return
    check_structure(out.ir)
    assert out.stats["model_count"] == len(models)
    rng = np.random.default_rng(len(cnf.clauses))
    p = [Fraction(int(a), 97) for a in rng.integers(0, 98, cnf.num_atoms)]  # 0 and 1 included
    assert eval_ir(out.ir, p) == brute_wmc(models, p)  # exact: no smoothing needed


@settings(max_examples=300)
@given(tseitin_cnfs(), st.data())
def test_tseitin_auxiliaries_weigh_one(cnf, data):
    models = brute_models(cnf)
    out = compile_or_unsat(cnf)
    if out is None:
        assert len(models) == 0
        return
    assert out.stats["model_count"] == len(models)
    assert out.stats["atoms"] == cnf.num_atoms
    # auxiliaries are forgotten: a d-DNNF over the atoms alone
    assert np.all(np.abs(out.ir.lits) <= cnf.num_atoms)
    check_structure(out.ir)
    p = data.draw(st.lists(probs, min_size=cnf.num_atoms, max_size=cnf.num_atoms))
    assert eval_ir(out.ir, p) == pytest.approx(brute_wmc(models, p), rel=1e-9, abs=1e-12)


@settings(max_examples=300)
@given(cnfs(max_vars=8, max_clauses=16))
def test_from_pysdd_matches_brute_force(cnf):
    from pysdd.sdd import SddManager

    mgr = SddManager(var_count=cnf.num_vars)
    node = mgr.true()
    for clause in cnf.clauses:
        c = mgr.false()
        for lit in clause:
            c = c | mgr.literal(lit)
        node = node & c
    ir = from_pysdd(mgr, node)
    models = brute_models(cnf)
    assert model_count(ir) == len(models)
    if len(models):
        check_structure(ir)
        p = [Fraction(k + 1, cnf.num_vars + 2) for k in range(cnf.num_vars)]
        assert eval_ir(ir, p) == brute_wmc(models, p)


@settings(max_examples=60)
@given(st.lists(cnfs(max_vars=6, max_clauses=10), min_size=2, max_size=4))
def test_several_roots_share_one_dag(cnf_list):
    n = max(c.num_vars for c in cnf_list)
    cnf_list = [CNF(num_vars=n, clauses=c.clauses) for c in cnf_list]
    counts = [len(brute_models(c)) for c in cnf_list]
    if 0 in counts:
        with pytest.raises(Unsatisfiable, match="unsatisfiable"):
            compile_cnf(cnf_list)
        return
    out = compile_cnf(cnf_list)
    assert out.stats["model_counts"] == counts == model_counts(out.ir)
    assert len(out.ir.roots) == len(cnf_list)


# ---------------------------------------------------------------- larger CNFs vs PySDD

def random_3cnf(rng, n, m):
    return CNF(num_vars=n, clauses=[
        tuple(int(v) * int(rng.choice([-1, 1])) for v in rng.choice(np.arange(1, n + 1), 3, replace=False))
        for _ in range(m)
    ])


def pysdd_count_and_wmc(cnf, p):
    from pysdd.sdd import SddManager

    mgr, node = SddManager.from_cnf_string(cnf.to_dimacs(), b"balanced")
    count = node.global_model_count() if not node.is_false() else 0
    wmc = node.wmc(log_mode=False)
    for v in range(1, cnf.num_vars + 1):
        wmc.set_literal_weight(mgr.literal(v), p[v - 1])
        wmc.set_literal_weight(mgr.literal(-v), 1 - p[v - 1])
    return count, wmc.propagate()


@settings(max_examples=100)
@given(st.integers(0, 2**32 - 1), st.integers(12, 22), st.floats(1.5, 4.5))
def test_larger_cnfs_match_pysdd(seed, n, ratio):
    rng = np.random.default_rng(seed)
    cnf = random_3cnf(rng, n, int(n * ratio))
    p = rng.uniform(0, 1, n).tolist()
    count, wmc = pysdd_count_and_wmc(cnf, p)
    out = compile_or_unsat(cnf, backend="builtin")
    if out is None:
        assert count == 0
        return
    assert out.stats["model_count"] == count
    assert eval_ir(out.ir, p) == pytest.approx(wmc, rel=1e-9)


# ---------------------------------------------------------------- transitivity oracle

@pytest.mark.parametrize("n", [4, 5, 6, 7])
def test_transitivity_counts_builtin(n):
    out = compile_cnf(transitivity_cnf(n), backend="builtin")
    assert out.stats["model_count"] == PARTIAL_ORDERS[n]
    assert out.stats["backend"] == "builtin"
    assert out.stats["variables"] == n * (n - 1) and out.stats["clauses"] == len(transitivity_cnf(n).clauses)
    if n == 7:  # the target: no more edges than KLay's layerization of PySDD's SDD (374,355)
        assert out.stats["edges"] <= 374_355
    # uniform weights: WMC = count / 2^variables, in float64 from the unsmoothed circuit
    assert eval_ir(out.ir, [0.5] * out.ir.num_atoms) == pytest.approx(
        PARTIAL_ORDERS[n] / 2 ** (n * (n - 1)), rel=1e-12)


@pytest.mark.parametrize("n", [4, 5])
def test_transitivity_counts_pysdd_backend(n):
    out = compile_cnf(transitivity_cnf(n), backend="pysdd")
    assert out.stats["model_count"] == PARTIAL_ORDERS[n]
    assert out.stats["backend"] == "pysdd"
    check_structure(out.ir) if n == 4 else out.ir.validate()


def test_stats_keys():
    out = compile_cnf(transitivity_cnf(4))
    for key in ("variables", "clauses", "nodes", "edges", "model_count", "compile_seconds", "backend"):
        assert key in out.stats
    assert out.stats["nodes"] == out.ir.num_nodes and out.stats["edges"] == out.ir.num_edges
    assert isinstance(out.stats["model_count"], int)


def fibonacci(k: int) -> int:
    a, b = 0, 1
    for _ in range(k):
        a, b = b, a + b
    return a


@pytest.mark.parametrize("backend", ["builtin", "pysdd"])
def test_long_chain_counts_are_fibonacci(backend):
    # x1 | x2, x2 | x3, ...: no two consecutive zeros, F(n + 2) models; deep recursion, big ints
    n = 3000 if backend == "builtin" else 200
    out = compile_cnf(CNF(n, [(i, i + 1) for i in range(1, n)]), backend=backend)
    assert out.stats["model_count"] == fibonacci(n + 2)


def test_pysdd_backend_several_roots():
    cnf_list = [transitivity_cnf(4), CNF(12, [(1, 2), (-3,)]), CNF(12, [(5,)])]
    out = compile_cnf(cnf_list, backend="pysdd")
    assert out.stats["model_counts"] == [219, 3 * 2**9, 2**11]
    assert out.stats["model_count"] == [219, 3 * 2**9, 2**11]


def test_builtin_is_deterministic():
    a = compile_cnf(random_3cnf(np.random.default_rng(7), 40, 100)).ir
    b = compile_cnf(random_3cnf(np.random.default_rng(7), 40, 100)).ir
    for name in ("kinds", "lits", "child_ptr", "children", "roots"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
