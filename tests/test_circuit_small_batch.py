"""The one-call path of the CPU kernel (``CpuCircuit.fused``: forward and backward together).

Used by ``Circuit.semantic_loss_and_grad`` at every batch size and, for small batches, by the
autograd functions behind ``semantic_loss`` / ``log_wmc`` / ``log_wmc_log``. Checked
differentially against the torch reference evaluator (through autograd), against brute-force
enumeration of the assignments, and against the two-call kernel path, including probabilities
exactly 0 and 1 and evidence that makes a root false (loss ``+inf``, zero gradient).
"""

from __future__ import annotations

import itertools
import threading

import pytest
import torch
from hypothesis import given, settings, strategies as st

from constraintc.circuit import Circuit, cpu_kernel
from constraintc.circuit.evaluate import FUSED_MAX_BATCH, FusedLogWMC, LogWMC
from constraintc.compile import compile_cnf
from constraintc.logic.cnf import CNF

pytestmark = pytest.mark.skipif(not cpu_kernel.available(), reason="no C++ compiler for the CPU kernel")


def _models(cnf: CNF) -> list[tuple[bool, ...]]:
    return [bits for bits in itertools.product([False, True], repeat=cnf.num_vars)
            if all(any(bits[abs(l) - 1] == (l > 0) for l in c) for c in cnf.clauses)]


@st.composite
def circuits(draw):
    """A circuit over 1..8 atoms with one or two roots, and the CNF of every root."""
    n = draw(st.integers(1, 8))
    lit = st.integers(1, n).flatmap(lambda v: st.sampled_from([v, -v]))
    clauses = draw(st.lists(st.lists(lit, min_size=1, max_size=3).map(tuple), min_size=1, max_size=12))
    cnfs = [CNF(n, clauses)]
    if draw(st.booleans()):
        cnfs.append(CNF(n, clauses[: len(clauses) // 2 + 1]))
    cnfs = [c for c in cnfs if _models(c)] or [CNF(n, [(1, -1)])]
    return Circuit.from_ir(compile_cnf(cnfs).ir, backend="cpu"), cnfs


def brute_force(cnf: CNF, probs: torch.Tensor):
    """``(-log W, d(-log W)/dp)`` per row by enumerating the models, in float64."""
    probs = probs.double()
    batch, n = probs.shape
    loss = torch.empty(batch, dtype=torch.float64)
    grad = torch.zeros(batch, n, dtype=torch.float64)
    models = _models(cnf)
    for b in range(batch):
        p = probs[b].tolist()
        W = 0.0
        dW = [0.0] * n
        for bits in models:
            w = [p[i] if bits[i] else 1.0 - p[i] for i in range(n)]
            prod = 1.0
            for x in w:
                prod *= x
            W += prod
            for i in range(n):  # d prod / d p_i = +-(product of the other weights)
                rest = 1.0
                for j in range(n):
                    if j != i:
                        rest *= w[j]
                dW[i] += rest if bits[i] else -rest
        loss[b] = float("inf") if W == 0 else -torch.log(torch.tensor(W, dtype=torch.float64))
        if W > 0:
            grad[b] = -torch.tensor(dW, dtype=torch.float64) / W
    return loss, grad


def random_probs(gen, batch, atoms, dtype, clamp=0.3):
    probs = torch.rand(batch, atoms, generator=gen, dtype=torch.float64)
    mask = torch.rand(batch, atoms, generator=gen) < clamp  # exact 0/1, as evidence is
    return torch.where(mask, torch.round(probs), probs).to(dtype)


def reference(circuit: Circuit, probs: torch.Tensor, root: int):
    """Loss and gradient through the torch reference back end and autograd."""
    ref = Circuit.from_ir(circuit.ir, backend="torch")
    p = probs.clone().requires_grad_(True)
    loss = ref.semantic_loss(p, root)
    (grad,) = torch.autograd.grad(loss.masked_fill(torch.isinf(loss), 0).sum(), p)
    return loss.detach(), grad


def assert_same(a: torch.Tensor, b: torch.Tensor, dtype):
    assert not torch.isnan(a).any()
    assert torch.equal(torch.isinf(a), torch.isinf(b))
    fin = torch.isfinite(b)
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(a[fin], b[fin].to(a.dtype), **tol)


@settings(max_examples=40)
@given(case=circuits(), batch=st.sampled_from([1, 2, 3, 64, 65, 130]),
       dtype=st.sampled_from([torch.float64, torch.float32]), data=st.data())
def test_loss_and_grad_equal_reference_and_brute_force(case, batch, dtype, data):
    circuit, cnfs = case
    root = data.draw(st.integers(0, circuit.num_roots - 1))
    gen = torch.Generator().manual_seed(data.draw(st.integers(0, 2**31 - 1)))
    probs = random_probs(gen, batch, circuit.num_atoms, dtype)
    loss, grad = circuit.semantic_loss_and_grad(probs, root)
    assert loss.shape == (batch,) and grad.shape == (batch, circuit.num_atoms)
    assert loss.dtype == dtype and grad.dtype == dtype
    assert not torch.isnan(grad).any() and torch.isfinite(grad).all()
    ref_loss, ref_grad = reference(circuit, probs, root)
    assert_same(loss, ref_loss, dtype)
    assert_same(grad, ref_grad, dtype)
    # a false root has loss +inf and gradient exactly zero
    assert (grad[torch.isinf(loss)] == 0).all()
    if batch <= 3:
        bf_loss, bf_grad = brute_force(cnfs[root], probs)
        assert_same(loss.double(), bf_loss, dtype)
        assert_same(grad.double(), bf_grad, dtype)


@settings(max_examples=25)
@given(case=circuits(), batch=st.sampled_from([1, 3, FUSED_MAX_BATCH, FUSED_MAX_BATCH + 1]),
       data=st.data())
def test_autograd_paths_equal_reference(case, batch, data):
    circuit, _ = case
    gen = torch.Generator().manual_seed(data.draw(st.integers(0, 2**31 - 1)))
    probs = random_probs(gen, batch, circuit.num_atoms, torch.float64)
    # upstream gradients of either sign, one per output
    upstream = torch.randn(batch, circuit.num_roots, generator=gen, dtype=torch.float64)
    ref = Circuit.from_ir(circuit.ir, backend="torch")
    root = data.draw(st.integers(0, circuit.num_roots - 1))

    def loss_grad(c, fn):
        p = probs.clone().requires_grad_(True)
        out = fn(c, p)
        # upstream gradients reach infinite outputs too: a false root must pass back zero
        (g,) = torch.autograd.grad(out, p, upstream[:, 0] if out.dim() == 1 else upstream)
        return out.detach(), g

    for fn in (lambda c, p: c.semantic_loss(p, root), lambda c, p: c.log_wmc(p)):
        out, g = loss_grad(circuit, fn)
        out_ref, g_ref = loss_grad(ref, fn)
        assert_same(out, out_ref, torch.float64)
        assert_same(g, g_ref, torch.float64)
    # log inputs: gradients w.r.t. both log p and log(1-p)
    z = torch.logit(probs).detach()
    F = torch.nn.functional
    grads = {}
    for name, c in (("cpu", circuit), ("torch", ref)):
        zz = z.clone().requires_grad_(True)
        lp, lq = F.logsigmoid(zz), F.logsigmoid(-zz)
        lp.retain_grad()
        lq.retain_grad()
        out = c.log_wmc_log(lp, lq)
        out.backward(upstream)
        grads[name] = (out.detach(), lp.grad, lq.grad, zz.grad)
    for a, b in zip(grads["cpu"], grads["torch"]):
        assert_same(a, b, torch.float64)


def test_autograd_uses_the_fused_function_for_small_batches():
    c = Circuit.from_ir(compile_cnf(CNF(3, [(1, 2), (-2, 3)])).ir, backend="cpu")
    small = torch.full((FUSED_MAX_BATCH, 3), 0.5, requires_grad=True)
    large = torch.full((FUSED_MAX_BATCH + 1, 3), 0.5, requires_grad=True)
    assert c.semantic_loss(small).grad_fn.name() == FusedLogWMC.__name__ + "Backward"
    assert c.log_wmc(small).grad_fn.name() == FusedLogWMC.__name__ + "Backward"
    assert c.semantic_loss(large).grad_fn.name() != FusedLogWMC.__name__ + "Backward"
    assert LogWMC.__name__ in c.log_wmc(large).grad_fn.name()


def test_exact_at_zero_one_and_unsatisfiable_evidence():
    # (a or b) and not c: p = (0, 1, 0) satisfies it with W = 1; p_c = 1 makes it false
    c = Circuit.from_ir(compile_cnf(CNF(3, [(1, 2), (-3,)])).ir, backend="cpu")
    probs = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 0.5], [0.3, 0.6, 1.0]], dtype=torch.float64)
    loss, grad = c.semantic_loss_and_grad(probs)
    assert loss[0] == 0.0
    # W = 1 - (1-pa)(1-pb) times (1-pc): dW/dpa = (1-pb)(1-pc) = 0, dW/dpb = 1, dW/dpc = -1
    torch.testing.assert_close(grad[0], torch.tensor([0.0, -1.0, 1.0], dtype=torch.float64))
    assert loss[1] == float("inf") and loss[2] == float("inf")
    assert (grad[1:] == 0).all()
    p = probs.clone().requires_grad_(True)
    lossa = c.semantic_loss(p)
    lossa.masked_fill(torch.isinf(lossa), 0).sum().backward()
    torch.testing.assert_close(p.grad, grad)
    assert torch.equal(lossa.detach(), loss)


def _transitivity(n: int) -> Circuit:
    idx = {(i, j): k + 1 for k, (i, j) in enumerate(itertools.permutations(range(n), 2))}
    clauses = [(-idx[i, j], -idx[j, k], idx[i, k]) for i, j, k in itertools.permutations(range(n), 3)]
    clauses += [(-idx[i, j], -idx[j, i]) for i, j in itertools.combinations(range(n), 2)]
    return Circuit.from_ir(compile_cnf(CNF(len(idx), clauses)).ir, backend="cpu")


def two_call(circuit: Circuit, probs: torch.Tensor):
    """The kernel's previous two-call path (eval, then grad), for comparison."""
    ev = circuit.evaluator
    batch = probs.shape[0]
    V = ev.alloc("cpu", batch, probs.dtype, probs.device)
    out = torch.empty((batch, circuit.num_roots), dtype=probs.dtype)
    kernel = ev.cpu_kernel()
    kernel.eval(probs, None, "probs", V, out)
    gout = torch.zeros((batch, circuit.num_roots), dtype=probs.dtype)
    gout[:, 0] = -1.0
    grad = torch.zeros_like(probs)
    kernel.grad("probs", V, None, gout, grad, None)
    ev.pool.give(V)
    return -out[:, 0], grad


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_many_tiles_and_threads_equal_the_two_call_path(dtype):
    # 2048 rows of a ~2.4k-edge circuit: enough work for the kernel to use threads
    c = _transitivity(5)
    gen = torch.Generator().manual_seed(5)
    probs = random_probs(gen, 2048, c.num_atoms, dtype, clamp=0.05)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        loss, grad = c.semantic_loss_and_grad(probs)
    finally:
        torch.set_num_threads(threads)
    ref_loss, ref_grad = two_call(c, probs)
    assert torch.equal(torch.isinf(loss), torch.isinf(ref_loss))
    torch.testing.assert_close(loss, ref_loss, rtol=0, atol=0)
    torch.testing.assert_close(grad, ref_grad, rtol=0, atol=0)


def test_out_reuse_root_names_and_layouts():
    c = Circuit.from_ir(compile_cnf([CNF(4, [(1, 2), (-3, 4)]), CNF(4, [(-1,)])]).ir, backend="cpu")
    gen = torch.Generator().manual_seed(1)
    probs = random_probs(gen, 5, 4, torch.float64)
    out = (torch.empty(5, dtype=torch.float64), torch.empty(5, 4, dtype=torch.float64))
    res = c.semantic_loss_and_grad(probs, "root1", out=out)
    assert res[0] is out[0] and res[1] is out[1]
    ref_loss, ref_grad = reference(c, probs, 1)
    assert_same(out[0], ref_loss, torch.float64)
    assert_same(out[1], ref_grad, torch.float64)
    # negative root index, a non-contiguous input, an input that requires grad
    wide = torch.zeros(5, 8, dtype=torch.float64)
    wide[:, ::2] = probs
    for x in (wide[:, ::2], probs.clone().requires_grad_(True)):
        loss, grad = c.semantic_loss_and_grad(x, -1)
        assert torch.equal(loss, out[0]) and torch.equal(grad, out[1])
        assert loss.grad_fn is None and grad.grad_fn is None
    with pytest.raises(ValueError):
        c.semantic_loss_and_grad(probs, out=(torch.empty(5), torch.empty(5, 4)))  # wrong dtype
    with pytest.raises(ValueError):
        c.semantic_loss_and_grad(probs[:, :3])
    # other dtypes still work (through the general path)
    loss16, _ = c.semantic_loss_and_grad(probs.half(), 1)
    assert loss16.dtype == torch.float16  # evaluated in float32, returned in the input dtype
    # the torch back end gives the same numbers through the same method
    ref = Circuit.from_ir(c.ir, backend="torch")
    loss_t, grad_t = ref.semantic_loss_and_grad(probs, 1)
    assert_same(out[0], loss_t, torch.float64)
    assert_same(out[1], grad_t, torch.float64)
    # an empty batch
    loss0, grad0 = c.semantic_loss_and_grad(probs[:0])
    assert loss0.shape == (0,) and grad0.shape == (0, 4)


def test_concurrent_callers_share_one_circuit():
    # ctypes releases the GIL: a second caller must not use the first one's scratch tile
    c = _transitivity(4)
    gen = torch.Generator().manual_seed(2)
    inputs = [random_probs(gen, b, c.num_atoms, torch.float64) for b in (1, 7, 64, 100)]
    expected = [two_call(c, p) for p in inputs]
    errors = []

    def work(seed):
        for r in range(200):
            i = (seed + r) % len(inputs)
            loss, grad = c.semantic_loss_and_grad(inputs[i])
            if not (torch.equal(loss, expected[i][0]) and torch.equal(grad, expected[i][1])):
                errors.append(i)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
