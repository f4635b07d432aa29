"""Probability inputs as careless code produces them: NaN, negative, above one, infinite; half
precision; empty batches. Before, NaN/negative/-inf gave a NaN loss and gradient, +inf a loss of
-inf, 1.5 a finite loss, half precision came back float32 and an empty batch raised
ZeroDivisionError in ``marginals``."""

from __future__ import annotations

import math
import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from constraintc.circuit import Circuit
from constraintc.compile import compile_cnf
from constraintc.logic.cnf import CNF

BACKENDS = ["cpu", "torch"]
BAD = [math.nan, -0.25, 1.5, math.inf, -math.inf, -1e-300, 1 + 1e-15]


def _circuit(backend: str) -> Circuit:
    # atom 4 occurs in no clause: a bad value there never reaches the circuit's arithmetic,
    # which is how 1.5 used to give a finite loss
    c = Circuit.from_ir(compile_cnf(CNF(4, [(1, 2), (-2, 3)])).ir, backend=backend)
    return c


def _methods(c: Circuit):
    return {
        "log_wmc": lambda p: c.log_wmc(p),
        "semantic_loss": lambda p: c.semantic_loss(p),
        "semantic_loss_and_grad": lambda p: c.semantic_loss_and_grad(p),
        "marginals": lambda p: c.marginals(p),
        "forward": lambda p: c(p),
    }


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batch", [1, 3, 100])  # the one-call path and the two-call path
@pytest.mark.parametrize("bad", BAD)
def test_invalid_probabilities_are_refused_with_their_index(backend, batch, bad):
    c = _circuit(backend)
    row, col = batch - 1, 3
    for name, call in _methods(c).items():
        for dtype in (torch.float32, torch.float64):
            p = torch.full((batch, 4), 0.5, dtype=dtype)
            p[row, col] = bad
            if dtype == torch.float32 and float(p[row, col]) in (0.0, 1.0):
                continue  # -1e-300 and 1 + 1e-15 round to valid float32 values
            expected = re.escape(f"probs[{row}, {col}] = ") + r".*atom 'x4'.*in \[0, 1\]"
            with pytest.raises(ValueError, match=expected):
                call(p)
            with pytest.raises(ValueError, match=expected):
                call(p.clone().requires_grad_(True))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bad", [math.nan, 0.5, math.inf, 1e-300])
def test_invalid_log_probabilities_are_refused_with_their_index(backend, bad):
    c = _circuit(backend)
    log_p = torch.full((2, 4), math.log(0.5), dtype=torch.float64)
    log_q = log_p.clone()
    log_q[1, 0] = bad
    with pytest.raises(ValueError, match=re.escape("log_not_p[1, 0] = ") + r".*atom 'x1'.*<= 0"):
        c.log_wmc_log(log_p, log_q)
    # -inf is log 0: valid, exact
    log_q[1, 0] = -math.inf
    log_p[1, 0] = 0.0
    value = c.log_wmc_log(log_p, log_q)
    assert torch.isfinite(value).all()


@settings(max_examples=60)
@given(data=st.data())
def test_the_first_bad_entry_is_named(data):
    c = _circuit("cpu")
    batch = data.draw(st.integers(1, 80))
    p = torch.full((batch, 4), 0.25, dtype=torch.float64)
    cells = data.draw(st.lists(st.tuples(st.integers(0, batch - 1), st.integers(0, 3)), min_size=1, max_size=5, unique=True))
    for r, k in cells:
        p[r, k] = data.draw(st.sampled_from(BAD))
    first = min(cells)  # row-major order
    with pytest.raises(ValueError, match=re.escape(f"probs[{first[0]}, {first[1]}] = ")) as info:
        c.semantic_loss(p)
    count = len(cells)
    assert f"({count} such entr" in str(info.value)


@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_and_one_stay_valid_and_exact(backend):
    c = _circuit(backend)
    p = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 1.0, 0.0]], dtype=torch.float64, requires_grad=True)
    loss = c.semantic_loss(p)
    assert loss[0].item() == 0.0 and loss[1].item() == 0.0
    loss.sum().backward()
    assert torch.isfinite(p.grad).all()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_in_half_precision_out(backend, dtype):
    c = _circuit(backend)
    gen = torch.Generator().manual_seed(3)
    p64 = torch.rand(5, 4, generator=gen, dtype=torch.float64) * 0.9 + 0.05
    p = p64.to(dtype)
    ref = _circuit("torch")
    exact = p.to(torch.float64)  # the rounded inputs, evaluated exactly
    tol = dict(rtol=2e-2, atol=2e-2)
    out = c.log_wmc(p)
    assert out.dtype == dtype
    torch.testing.assert_close(out.double(), ref.log_wmc(exact), **tol)
    loss = c.semantic_loss(p)
    assert loss.dtype == dtype
    loss_g, grad_g = c.semantic_loss_and_grad(p)
    assert loss_g.dtype == grad_g.dtype == dtype
    ref_loss, ref_grad = ref.semantic_loss_and_grad(exact)
    torch.testing.assert_close(loss_g.double(), ref_loss, **tol)
    torch.testing.assert_close(grad_g.double(), ref_grad, **tol)
    marg = c.marginals(p)
    assert marg.dtype == dtype
    torch.testing.assert_close(marg.double(), ref.marginals(exact), **tol)
    lp, lq = torch.log(p.float()).to(dtype), torch.log1p(-p.float()).to(dtype)
    assert c.log_wmc_log(lp, lq).dtype == dtype
    x = p.clone().requires_grad_(True)
    c.semantic_loss(x).sum().backward()
    assert x.grad.dtype == dtype
    torch.testing.assert_close(x.grad.double(), ref_grad, **tol)
    out_buf = (torch.empty(5, dtype=dtype), torch.empty(5, 4, dtype=dtype))
    got = c.semantic_loss_and_grad(p, out=out_buf)
    assert got[0] is out_buf[0] and torch.equal(got[1], grad_g)


def test_integer_inputs_give_the_default_dtype():
    c = _circuit("cpu")
    p = torch.tensor([[1, 0, 1, 1]])
    assert c.log_wmc(p).dtype == torch.get_default_dtype()
    with pytest.raises(ValueError, match=r"probs\[0, 1\] = 2"):
        c.log_wmc(torch.tensor([[1, 2, 1, 1]]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_batches_give_empty_results(backend):
    c = _circuit(backend)
    two_roots = Circuit.from_ir(compile_cnf([CNF(4, [(1, 2)]), CNF(4, [(-3,)])]).ir, backend=backend)
    for circuit, roots in ((c, 1), (two_roots, 2)):
        for dtype in (torch.float32, torch.float64):
            e = torch.zeros(0, 4, dtype=dtype)
            assert circuit.log_wmc(e).shape == (0, roots)
            assert circuit.marginals(e).shape == (0, 4)
            assert circuit.semantic_loss(e).shape == (0,)
            loss, grad = circuit.semantic_loss_and_grad(e)
            assert loss.shape == (0,) and grad.shape == (0, 4)
            assert circuit.log_wmc_log(e, e).shape == (0, roots)
            x = torch.zeros(100, 4, dtype=dtype)[:0].requires_grad_(True)
            circuit.log_wmc(x).sum().backward()
            assert x.grad.shape == (0, 4)
