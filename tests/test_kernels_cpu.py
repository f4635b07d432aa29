"""The fused CPU kernel equals the torch reference: values and adjoints, every layout corner."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from hypothesis import given, settings, strategies as st

from constraintc.circuit import Circuit, cpu_kernel
from constraintc.compile import compile_cnf
from constraintc.logic.cnf import CNF


@st.composite
def circuits(draw):
    n = draw(st.integers(2, 9))
    lit = st.integers(1, n).flatmap(lambda v: st.sampled_from([v, -v]))
    clauses = draw(st.lists(st.lists(lit, min_size=1, max_size=3).map(tuple), min_size=1, max_size=12))
    cnf = CNF(num_vars=n, clauses=clauses)
    # a second root shares the DAG; constants and unsatisfiable CNFs are skipped by compile_cnf
    sat = [c for c in (cnf, CNF(n, clauses[: len(clauses) // 2 + 1])) if _satisfiable(c)]
    if not sat:
        sat = [CNF(n, [(1, -1)])]
    return Circuit.from_ir(compile_cnf(sat).ir, backend="torch")


def _satisfiable(cnf: CNF) -> bool:
    import itertools

    for bits in itertools.product([False, True], repeat=cnf.num_vars):
        if all(any(bits[abs(l) - 1] == (l > 0) for l in c) for c in cnf.clauses):
            return True
    return False


def both(circuit, probs, seed_fill=0.0):
    """Root values and leaf adjoints through the torch reference and the CPU kernel."""
    ev = circuit.evaluator
    out = {}
    batch = probs.shape[0]
    for backend in ("torch", "cpu"):
        V = ev.run_forward(torch.log(probs), torch.log1p(-probs), backend)
        seed = torch.full((batch, circuit.num_roots), seed_fill, dtype=probs.dtype)
        R = ev.run_backward(V, seed, batch, backend)
        out[backend] = (ev.roots(V, batch), ev.get_rows(R, 2, ev.plan.base, batch).clone())
        ev.pool.give(V)
        ev.pool.give(R)
    return out


def test_kernel_builds():
    assert cpu_kernel.available(), cpu_kernel.unavailable_reason()


@settings(max_examples=25)
@given(circuit=circuits(), batch=st.sampled_from([1, 3, 64, 65, 130]),
       dtype=st.sampled_from([torch.float32, torch.float64]), data=st.data())
def test_kernel_equals_reference(circuit, batch, dtype, data):
    gen = torch.Generator().manual_seed(data.draw(st.integers(0, 2**31 - 1)))
    probs = torch.rand(batch, circuit.num_atoms, generator=gen, dtype=torch.float64)
    # clamp a random subset to exact 0/1, as evidence does
    clamp = torch.rand(batch, circuit.num_atoms, generator=gen) < 0.3
    probs = torch.where(clamp, torch.round(probs), probs).to(dtype)
    res = both(circuit, probs)
    (v_t, r_t), (v_c, r_c) = res["torch"], res["cpu"]
    assert torch.equal(torch.isinf(v_t), torch.isinf(v_c))
    assert torch.equal(torch.isinf(r_t), torch.isinf(r_c))
    assert not torch.isnan(v_c).any() and not torch.isnan(r_c).any()
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    fin = torch.isfinite(v_t)
    torch.testing.assert_close(v_c[fin], v_t[fin], **tol)
    fin = torch.isfinite(r_t)
    torch.testing.assert_close(r_c[fin], r_t[fin], **tol)


def test_kernel_large_circuit_matches_reference():
    # transitivity on 5 nodes: ~2.4k edges, 20 atoms; a batch that is not a multiple of the tile
    import itertools

    n = 5
    idx = {(i, j): k + 1 for k, (i, j) in enumerate(p for p in itertools.permutations(range(n), 2))}
    clauses = [(-idx[i, j], -idx[j, k], idx[i, k]) for i, j, k in itertools.permutations(range(n), 3)]
    clauses += [(-idx[i, j], -idx[j, i]) for i, j in itertools.combinations(range(n), 2)]
    circuit = Circuit.from_ir(compile_cnf(CNF(len(idx), clauses)).ir)
    probs = torch.rand(200, len(idx), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    res = both(circuit, probs, seed_fill=-0.5)
    torch.testing.assert_close(res["cpu"][0], res["torch"][0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(res["cpu"][1], res["torch"][1], rtol=1e-12, atol=1e-12)
    p32 = probs.float().requires_grad_(True)
    circuit.backend = "cpu"
    (g_cpu,) = torch.autograd.grad(circuit.semantic_loss(p32).sum(), p32)
    circuit.backend = "torch"
    p32b = probs.float().requires_grad_(True)
    (g_ref,) = torch.autograd.grad(circuit.semantic_loss(p32b).sum(), p32b)
    torch.testing.assert_close(g_cpu, g_ref, rtol=1e-4, atol=1e-5)


def test_auto_falls_back_to_torch_without_the_kernel(tmp_path):
    code = (
        "import torch\n"
        "from constraintc.circuit import Circuit, cpu_kernel\n"
        "from constraintc.compile.ir import IRBuilder\n"
        "b = IRBuilder(num_vars=2)\n"
        "c = Circuit.from_ir(b.build([b.conj([b.lit(1), b.lit(2)])]))\n"
        "assert not cpu_kernel.available()\n"
        "assert c.evaluator.resolve('auto', torch.device('cpu')) == 'torch'\n"
        "print(float(c.log_wmc(torch.tensor([[0.5, 0.5]])).exp()))\n"
    )
    env = dict(os.environ, CONSTRAINTC_NO_CPU_KERNEL="1", CONSTRAINTC_CACHE=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0.25"


def test_auto_picks_the_kernel_on_cpu():
    if not cpu_kernel.available():
        pytest.fail(cpu_kernel.unavailable_reason())
    from constraintc.circuit.evaluate import Evaluator
    from constraintc.circuit.layers import layerize
    from constraintc.compile.ir import IRBuilder

    b = IRBuilder(num_vars=1)
    ev = Evaluator(layerize(b.build([b.lit(1)])))
    assert ev.resolve("auto", torch.device("cpu")) == "cpu"


def test_fast_and_exact_backward_tiles_agree_with_reference():
    # 3 tiles of 64 columns: the first all-interior (fast path), the second with exact 0/1
    # evidence (general path), the third mixed; log inputs and probability inputs
    import itertools

    n = 4
    idx = {(i, j): k + 1 for k, (i, j) in enumerate(itertools.permutations(range(n), 2))}
    clauses = [(-idx[i, j], -idx[j, k], idx[i, k]) for i, j, k in itertools.permutations(range(n), 3)]
    clauses += [(-idx[i, j], -idx[j, i]) for i, j in itertools.combinations(range(n), 2)]
    ir = compile_cnf(CNF(len(idx), clauses)).ir
    gen = torch.Generator().manual_seed(11)
    probs = torch.rand(150, len(idx), generator=gen, dtype=torch.float64) * 0.9 + 0.05
    clamp = torch.rand(150, len(idx), generator=gen) < 0.2
    clamp[:64] = False
    probs = torch.where(clamp, torch.round(probs), probs)
    g = torch.randn(150, 1, generator=gen, dtype=torch.float64)
    res = {}
    for backend in ("torch", "cpu"):
        c = Circuit.from_ir(ir, backend=backend)
        p = probs.clone().requires_grad_(True)
        out = c.log_wmc(p)
        (gp,) = torch.autograd.grad((out.masked_fill(torch.isinf(out), 0) * g).sum(), p)
        z = torch.logit(probs).requires_grad_(True)
        F = torch.nn.functional
        out2 = c.log_wmc_log(F.logsigmoid(z), F.logsigmoid(-z))
        (gz,) = torch.autograd.grad((out2.masked_fill(torch.isinf(out2), 0) * g).sum(), z)
        res[backend] = (out.detach(), gp, gz)
    for a, b in zip(res["cpu"], res["torch"]):
        assert not torch.isnan(a).any()
        torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-11)
