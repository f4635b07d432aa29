"""Differential tests of the circuit evaluator against brute-force enumeration of the CNF.

Circuits come from PySDD (converted with ``constraintc.compile.from_pysdd``), from the project's
own compiler (``compile_cnf``) and from hand-built IRs; the oracle never looks at the circuit:
it enumerates every assignment of the CNF's variables (auxiliary variables weigh 1) and builds
``log WMC`` as a torch expression, so autograd through it gives the reference gradients.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from pysdd.sdd import SddManager

from constraintc.circuit import Circuit
from constraintc.compile import from_pysdd
from constraintc.compile.ir import IRBuilder
from constraintc.logic.cnf import CNF

BACKENDS = ["torch", "cpu"]


# -- oracles ---------------------------------------------------------------------------------
def sat_table(cnf: CNF) -> tuple[np.ndarray, np.ndarray]:
    """All assignments of the CNF's variables (rows) and which of them satisfy it."""
    X = np.array(list(itertools.product([False, True], repeat=cnf.num_vars)), dtype=bool)
    X = X.reshape(-1, cnf.num_vars)
    sat = np.ones(X.shape[0], dtype=bool)
    for clause in cnf.clauses:
        ok = np.zeros(X.shape[0], dtype=bool)
        for lit in clause:
            ok |= X[:, abs(lit) - 1] == (lit > 0)
        sat &= ok
    return X, sat


def brute_wmc(cnf: CNF, probs: torch.Tensor) -> torch.Tensor:
    """``WMC [batch]`` as a differentiable torch expression (products, exact at 0 and 1)."""
    X, sat = sat_table(cnf)
    X = torch.as_tensor(X[sat][:, : cnf.num_atoms])
    total = 0 * probs.sum(1)  # keeps the graph for unsatisfiable CNFs
    for row in X:
        w = torch.ones(probs.shape[0], dtype=probs.dtype)
        for i in range(cnf.num_atoms):
            w = w * (probs[:, i] if row[i] else 1 - probs[:, i])
        total = total + w
    return total


def brute_log_wmc_log(cnf: CNF, log_p: torch.Tensor, log_not_p: torch.Tensor) -> torch.Tensor:
    X, sat = sat_table(cnf)
    X = torch.as_tensor(X[sat][:, : cnf.num_atoms])
    terms = torch.where(X[None], log_p[:, None, :], log_not_p[:, None, :]).sum(-1)
    if terms.shape[1] == 0:
        return torch.where(torch.ones_like(log_p[:, 0], dtype=torch.bool), float("-inf"), log_p[:, 0])
    return torch.logsumexp(terms, dim=1)


def brute_count(cnf: CNF) -> int:
    X, sat = sat_table(cnf)
    return len({tuple(r[: cnf.num_atoms]) for r in X[sat]})


# -- circuit sources -------------------------------------------------------------------------
def sdd_circuit(cnf: CNF, backend: str = "torch") -> Circuit:
    mgr = SddManager(var_count=max(cnf.num_vars, 1))
    f = mgr.true()
    for clause in cnf.clauses:
        c = mgr.false()
        for lit in clause:
            c = c | mgr.literal(lit)
        f = f & c
    ir = from_pysdd(mgr, f, num_atoms=cnf.num_atoms, num_vars=cnf.num_vars,
                    atom_names=cnf.atom_names)
    return Circuit.from_ir(ir, backend=backend)


def tseitin_cnf(num_atoms: int, defs: list[tuple[str, int, int]], top: list[tuple[int, ...]]) -> CNF:
    """Atoms ``1..num_atoms``, then one auxiliary ``z <-> (a op b)`` per definition (full
    equivalence, so counts are preserved), then the ``top`` clauses over all of them."""
    clauses: list[tuple[int, ...]] = []
    v = num_atoms
    for op, a, b in defs:
        v += 1
        if op == "and":
            clauses += [(-v, a), (-v, b), (v, -a, -b)]
        else:
            clauses += [(v, -a), (v, -b), (-v, a, b)]
    clauses += top
    return CNF(num_vars=v, num_atoms=num_atoms, clauses=clauses)


@st.composite
def cnfs(draw, max_atoms=6, max_aux=3):
    A = draw(st.integers(1, max_atoms))
    defs = []
    for _ in range(draw(st.integers(0, max_aux))):
        n = A + len(defs)
        a = draw(st.integers(1, n)) * draw(st.sampled_from([1, -1]))
        b = draw(st.integers(1, n)) * draw(st.sampled_from([1, -1]))
        defs.append((draw(st.sampled_from(["and", "or"])), a, b))
    n = A + len(defs)
    lit = st.integers(1, n).flatmap(lambda x: st.sampled_from([x, -x]))
    top = draw(st.lists(st.lists(lit, min_size=1, max_size=3).map(tuple), max_size=8))
    return tseitin_cnf(A, defs, top)


@st.composite
def prob_rows(draw, num_atoms, batch=3):
    # mixes exact 0/1 (evidence clamps) with interior values
    val = st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0.01, 0.99))
    return torch.tensor([[draw(val) for _ in range(num_atoms)] for _ in range(batch)],
                        dtype=torch.float64)


def assert_no_nan(*ts):
    for t in ts:
        assert not torch.isnan(t).any(), t


# -- values and gradients --------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=30)
@given(data=st.data())
def test_log_wmc_and_gradients_match_brute_force(backend, data):
    cnf = data.draw(cnfs())
    probs = data.draw(prob_rows(cnf.num_atoms))
    circuit = sdd_circuit(cnf, backend)

    p = probs.clone().requires_grad_(True)
    out = circuit.log_wmc(p)[:, 0]
    ref_w = brute_wmc(cnf, probs)
    assert out.dtype == torch.float64
    # exactly -inf where the evidence makes the constraint false, equal elsewhere
    assert torch.equal(torch.isinf(out), ref_w == 0)
    fin = ref_w > 0
    torch.testing.assert_close(out[fin], torch.log(ref_w[fin]), rtol=1e-10, atol=1e-12)

    # mixed-sign upstream gradient, through autograd of the brute force (finite rows only)
    g = torch.linspace(-1.0, 1.5, probs.shape[0], dtype=torch.float64)
    (grad,) = torch.autograd.grad((out.masked_fill(~fin, 0) * g).sum(), p)
    pr = probs.clone().requires_grad_(True)
    w = brute_wmc(cnf, pr)
    ref_out = torch.log(torch.where(fin, w, torch.ones_like(w)))
    (ref_grad,) = torch.autograd.grad((ref_out * g * fin).sum(), pr)
    assert_no_nan(grad)
    torch.testing.assert_close(grad[fin], ref_grad[fin], rtol=1e-9, atol=1e-10)
    # a false constraint has a zero gradient, never NaN
    assert torch.all(grad[~fin] == 0)


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=25)
@given(data=st.data())
def test_log_inputs_match_brute_force(backend, data):
    cnf = data.draw(cnfs())
    probs = data.draw(prob_rows(cnf.num_atoms))
    circuit = sdd_circuit(cnf, backend)
    # the intended use: log-probabilities of yes/no logits, exact at z = +-inf (p in {0, 1});
    # the circuit is not smoothed, so only derivatives along log p ++ log(1-p) = 0 are defined
    z = torch.logit(probs).requires_grad_(True)
    log_p, log_q = torch.nn.functional.logsigmoid(z), torch.nn.functional.logsigmoid(-z)
    out = circuit.log_wmc_log(log_p, log_q)[:, 0]
    ref = brute_log_wmc_log(cnf, log_p, log_q)
    assert torch.equal(torch.isinf(out), torch.isinf(ref))
    fin = torch.isfinite(ref)
    torch.testing.assert_close(out[fin], ref[fin], rtol=1e-10, atol=1e-12)
    if fin.any():
        (gz,) = torch.autograd.grad(out[fin].sum(), z, retain_graph=True)
        (rz,) = torch.autograd.grad(ref[fin].sum(), z)
        assert_no_nan(gz)
        ok = torch.isfinite(z) & fin[:, None]  # d/dz at z = +-inf is 0 on both sides
        assert torch.all(gz[~fin] == 0)
        torch.testing.assert_close(gz[ok], rz[ok], rtol=1e-9, atol=1e-10)
    # partial derivatives equal those of the smoothed polynomial (the brute-force sum)
    lp = log_p.detach().requires_grad_(True)
    lq = log_q.detach().requires_grad_(True)
    out = circuit.log_wmc_log(lp, lq)[:, 0]
    ref = brute_log_wmc_log(cnf, lp, lq)
    if fin.any():
        g = torch.autograd.grad(out[fin].sum(), (lp, lq))
        r = torch.autograd.grad(ref[fin].sum(), (lp, lq))
        for a, b in zip(g, r):
            assert_no_nan(a)
            torch.testing.assert_close(a[fin], b[fin], rtol=1e-9, atol=1e-10)
    # the same numbers as the probability interface
    torch.testing.assert_close(out, circuit.log_wmc(probs)[:, 0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_finite_differences_float64(backend):
    rng = np.random.default_rng(0)
    cnf = tseitin_cnf(5, [("and", 1, -2), ("or", 6, 3)], [(7, 4), (-5, -1, 2), (6, -7, 5)])
    circuit = sdd_circuit(cnf, backend)
    p = torch.tensor(rng.uniform(0.1, 0.9, (4, 5)), dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(circuit.log_wmc, (p,), eps=1e-6, atol=1e-8)
    z = torch.logit(p.detach()).requires_grad_(True)
    F = torch.nn.functional

    def from_logits(z):
        return circuit.log_wmc_log(F.logsigmoid(z), F.logsigmoid(-z))

    assert torch.autograd.gradcheck(from_logits, (z,), eps=1e-6, atol=1e-8)


@pytest.mark.parametrize("backend", BACKENDS)
def test_false_under_evidence_is_minus_inf_with_zero_grad(backend):
    # a -> b; evidence a = 1, b = 0 makes it false
    circuit = sdd_circuit(CNF(num_vars=3, clauses=[(-1, 2), (2, 3)]), backend)
    for dtype in (torch.float32, torch.float64):
        p = torch.tensor([[1.0, 0.0, 0.3], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype=dtype,
                         requires_grad=True)
        loss = circuit.semantic_loss(p)
        assert loss.dtype == dtype
        assert loss[0] == math.inf and loss[1] == 0.0 and loss[2] == 0.0
        (grad,) = torch.autograd.grad(loss.sum(), p)
        assert_no_nan(grad)
        assert torch.all(torch.isfinite(grad))
        assert torch.all(grad[0] == 0)
        # rows 1 and 2 satisfy it: gradients equal autograd through the brute force
        pr = p.detach()[1:].double().requires_grad_(True)
        ref = -torch.log(brute_wmc(CNF(3, [(-1, 2), (2, 3)]), pr))
        (ref_grad,) = torch.autograd.grad(ref.sum(), pr)
        torch.testing.assert_close(grad[1:].double(), ref_grad)


@pytest.mark.parametrize("backend", BACKENDS)
def test_exact_at_zero_and_one(backend):
    # (a | b) & (b -> c): gradient wrt p_a at p_a = 0 must be (W_a - W_not_a) / W, not 0/0
    cnf = CNF(num_vars=3, clauses=[(1, 2), (-2, 3)])
    circuit = sdd_circuit(cnf, backend)
    probs = torch.tensor([[0.0, 0.5, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 1.0]], dtype=torch.float64)
    p = probs.clone().requires_grad_(True)
    out = circuit.log_wmc(p)[:, 0]
    (grad,) = torch.autograd.grad(out.sum(), p)
    pr = probs.clone().requires_grad_(True)
    ref = torch.log(brute_wmc(cnf, pr))
    (ref_grad,) = torch.autograd.grad(ref.sum(), pr)
    torch.testing.assert_close(out, ref.detach(), rtol=0, atol=1e-15)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-12, atol=1e-12)
    assert grad[0, 0] == pytest.approx(1.0)  # W(a)=1, W(~a)=0.5 -> (1 - 0.5) / 0.5


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_close_to_float64(backend):
    rng = np.random.default_rng(1)
    cnf = tseitin_cnf(6, [("or", 1, 2), ("and", 7, -3)], [(8, 4, 5), (-6, 1), (2, 3, -4)])
    circuit = sdd_circuit(cnf, backend)
    p64 = torch.tensor(rng.uniform(0, 1, (16, 6)), dtype=torch.float64)
    p32 = p64.float().requires_grad_(True)
    out32 = circuit.log_wmc(p32)
    assert out32.dtype == torch.float32
    torch.testing.assert_close(out32.double(), circuit.log_wmc(p64), rtol=1e-5, atol=1e-6)
    (g32,) = torch.autograd.grad(out32.sum(), p32)
    p = p64.clone().requires_grad_(True)
    (g64,) = torch.autograd.grad(circuit.log_wmc(p).sum(), p)
    torch.testing.assert_close(g32.double(), g64, rtol=1e-4, atol=1e-5)


# -- marginals and counts --------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=20)
@given(data=st.data())
def test_marginals_and_model_count(backend, data):
    cnf = data.draw(cnfs())
    probs = data.draw(prob_rows(cnf.num_atoms))
    circuit = sdd_circuit(cnf, backend)
    w = brute_wmc(cnf, probs)
    m = circuit.marginals(probs)
    assert_no_nan(m)
    for i in range(cnf.num_atoms):
        forced = CNF(cnf.num_vars, cnf.clauses + [(i + 1,)], num_atoms=cnf.num_atoms)
        wi = brute_wmc(forced, probs)
        ref = torch.where(w > 0, wi / torch.where(w > 0, w, torch.ones_like(w)), torch.zeros_like(w))
        torch.testing.assert_close(m[:, i], ref, rtol=1e-9, atol=1e-12)
    assert circuit.model_count() == brute_count(cnf)


def test_transitivity_model_counts_and_multiple_roots():
    from constraintc.compile import compile_cnf

    from constraintc.compile.workloads import transitivity_cnf as transitivity

    comp = compile_cnf([transitivity(4), CNF(12, [(1, 2)])])
    circuit = Circuit.from_ir(comp.ir)
    assert circuit.model_count(0) == 219 and circuit.model_count(1) == 3 * 2**10
    assert circuit.model_count("root1") == 3 * 2**10
    p = torch.full((2, 12), 0.5, dtype=torch.float64)
    out = circuit.log_wmc(p)
    torch.testing.assert_close(out[0], torch.tensor([math.log(219 / 2**12), math.log(0.75)],
                                                    dtype=torch.float64))
    assert Circuit.from_ir(compile_cnf(transitivity(5)).ir).model_count() == 4231


@pytest.mark.parametrize("backend", BACKENDS)
def test_roots_that_are_leaves_or_constants_and_mixed_sign_seeds(backend):
    b = IRBuilder(num_vars=3)
    x = b.disj([b.conj([b.lit(1), b.lit(2)]), b.conj([b.lit(-1), b.lit(3)])])
    ir = b.build([x, b.lit(-2), b.true(), x], root_names=["f", "not_b", "top", "f_again"])
    c = Circuit.from_ir(ir, backend=backend)
    assert c.root_names == ["f", "not_b", "top", "f_again"]
    probs = torch.tensor([[0.2, 0.7, 0.0], [1.0, 0.4, 0.9]], dtype=torch.float64)
    p = probs.clone().requires_grad_(True)
    out = c.log_wmc(p)
    a, bb, cc = probs.unbind(1)
    f = a * bb + (1 - a) * cc
    torch.testing.assert_close(out, torch.stack([f.log(), (1 - bb).log(), torch.zeros(2, dtype=torch.float64), f.log()], 1))
    g = torch.tensor([[1.0, -2.0, 3.0, -0.5], [-1.0, 0.5, 0.0, 2.0]], dtype=torch.float64)
    (grad,) = torch.autograd.grad((out * g).sum(), p)
    pr = probs.clone().requires_grad_(True)
    a, bb, cc = pr.unbind(1)
    f = a * bb + (1 - a) * cc
    ref = torch.stack([f.log(), (1 - bb).log(), torch.zeros(2, dtype=torch.float64), f.log()], 1)
    (ref_grad,) = torch.autograd.grad((ref * g).sum(), pr)
    torch.testing.assert_close(grad, ref_grad)


def test_shape_errors_are_clear():
    b = IRBuilder(num_vars=2)
    c = Circuit.from_ir(b.build([b.conj([b.lit(1), b.lit(2)])]))
    with pytest.raises(ValueError, match=r"shape \[batch, 2\]"):
        c.log_wmc(torch.zeros(3, 5))
    with pytest.raises(KeyError, match="no root named"):
        c.semantic_loss(torch.zeros(1, 2), root="nope")


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=15)
@given(data=st.data())
def test_semantic_loss_and_grad_equals_autograd(backend, data):
    cnf = data.draw(cnfs())
    probs = data.draw(prob_rows(cnf.num_atoms))
    circuit = sdd_circuit(cnf, backend)
    loss, grad = circuit.semantic_loss_and_grad(probs)
    p = probs.clone().requires_grad_(True)
    ref = circuit.semantic_loss(p)
    (ref_grad,) = torch.autograd.grad(ref.masked_fill(torch.isinf(ref), 0).sum(), p)
    assert torch.equal(loss, ref.detach())
    torch.testing.assert_close(grad, ref_grad, rtol=1e-12, atol=1e-12)
