"""Triton kernels for layerized circuits (CUDA), the same arithmetic as ``circuit_cpu.cpp``.

Layout ``[rows, batch]`` (that of :mod:`constraintc.circuit.torch_ref`). The forward pass
launches one kernel per layer: program ``(k, j)`` reduces inner node ``k``'s children over batch
block ``j`` (a sum for AND; an online logsumexp for OR, ``-inf`` exact). The backward pass
launches one kernel per row block (top-down), each program pulling a row's adjoint from its
parents exactly as ``torch_ref.backward`` does, including the sibling sum where the row's own
value is ``-inf``.

On this CPU-only project machine the kernels are verified with ``TRITON_INTERPRET=1`` (set before
importing triton) against the torch reference (``tests/test_kernels_triton.py``); their speed
can only be measured on a GPU.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

BLOCK = 64


@triton.jit
def _forward_layer(V, node_ptr, child_rows, is_or, base, k0, B, BLOCK: tl.constexpr):
    k = k0 + tl.program_id(0)
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < B
    e0 = tl.load(node_ptr + k)
    e1 = tl.load(node_ptr + k + 1)
    ninf = float("-inf")
    if tl.load(is_or + k) != 0:
        m = tl.full([BLOCK], ninf, V.dtype.element_ty)
        s = tl.zeros([BLOCK], V.dtype.element_ty)
        for e in range(e0, e1):
            c = tl.load(child_rows + e)
            v = tl.load(V + c * B + offs, mask=mask, other=0.0)
            # -|v - m| is -inf when either is -inf; a -inf child adds nothing (no inf - inf)
            d = tl.where(v == ninf, ninf, -tl.abs(v - m))
            ex = tl.exp(d)
            up = v > m
            s = tl.where(up, s * ex + 1.0, s + ex)
            m = tl.where(up, v, m)
        out = tl.where(m == ninf, ninf, m + tl.log(s))
    else:
        out = tl.zeros([BLOCK], V.dtype.element_ty)
        for e in range(e0, e1):
            c = tl.load(child_rows + e)
            out += tl.load(V + c * B + offs, mask=mask, other=0.0)
    tl.store(V + (base + k) * B + offs, out, mask=mask)


@triton.jit
def _backward_rows(V, R, rev_ptr, rev_parent, rev_edge, node_ptr, child_rows, is_or, base, r0, B,
                   BLOCK: tl.constexpr):
    r = r0 + tl.program_id(0)
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < B
    ninf = float("-inf")
    vc = tl.load(V + r * B + offs, mask=mask, other=0.0)
    zero = vc == ninf
    any_zero = tl.max(tl.where(zero, 1, 0), axis=0) > 0
    m = tl.full([BLOCK], ninf, V.dtype.element_ty)
    s = tl.zeros([BLOCK], V.dtype.element_ty)
    q0 = tl.load(rev_ptr + r)
    q1 = tl.load(rev_ptr + r + 1)
    for q in range(q0, q1):
        prow = tl.load(rev_parent + q)
        k = prow - base
        rp = tl.load(R + prow * B + offs, mask=mask, other=ninf)
        c = rp
        if tl.load(is_or + k) == 0:
            vp = tl.load(V + prow * B + offs, mask=mask, other=0.0)
            c = rp + (vp - vc)
            if any_zero:
                # where this child is 0 the ratio W_P / W_c is 0/0: sum the siblings instead
                sib = tl.zeros([BLOCK], V.dtype.element_ty)
                me = tl.load(rev_edge + q)
                for e in range(tl.load(node_ptr + k), tl.load(node_ptr + k + 1)):
                    if e != me:
                        sib += tl.load(V + tl.load(child_rows + e) * B + offs, mask=mask, other=0.0)
                c = tl.where(zero, rp + sib, c)
        d = tl.where(c == ninf, ninf, -tl.abs(c - m))
        ex = tl.exp(d)
        up = c > m
        s = tl.where(up, s * ex + 1.0, s + ex)
        m = tl.where(up, c, m)
    out = tl.where(m == ninf, ninf, m + tl.log(s))
    tl.store(R + r * B + offs, out, mask=mask)


class TritonCircuit:
    """A ``LayerPlan`` on one device; ``forward(V)`` / ``backward(V, R)`` in place."""

    def __init__(self, plan, device, tensors: dict | None = None):
        # ``tensors``: the plan's index arrays already on ``device`` (a Circuit's buffers)
        def t(name, dtype=torch.int64):
            x = tensors[name] if tensors is not None and name in tensors else getattr(plan, name)
            return torch.as_tensor(x).to(device=device, dtype=dtype).contiguous()

        self.plan = plan
        self.node_ptr = t("node_ptr")
        self.child_rows = t("child_rows")
        self.is_or = t("is_or", torch.int32)
        self.rev_ptr = t("rev_ptr")
        self.rev_parent = t("rev_parent")
        self.rev_edge = t("rev_edge")
        self.layers = [(int(a), int(b)) for a, b in zip(plan.layer_start, plan.layer_end)]
        self.blocks = plan.backward_blocks()

    def forward(self, V: torch.Tensor) -> None:
        B = V.shape[1]
        nb = triton.cdiv(B, BLOCK)
        for a, b in self.layers:
            _forward_layer[(b - a, nb)](V, self.node_ptr, self.child_rows, self.is_or,
                                        self.plan.base, a, B, BLOCK=BLOCK)

    def backward(self, V: torch.Tensor, R: torch.Tensor) -> None:
        B = V.shape[1]
        nb = triton.cdiv(B, BLOCK)
        R[:2] = float("-inf")
        for r0, r1 in self.blocks:
            _backward_rows[(r1 - r0, nb)](V, R, self.rev_ptr, self.rev_parent, self.rev_edge,
                                          self.node_ptr, self.child_rows, self.is_or,
                                          self.plan.base, r0, B, BLOCK=BLOCK)
