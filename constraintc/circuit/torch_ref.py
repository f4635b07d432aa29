"""The pure-torch evaluator: the reference every fused kernel is checked against, and the fallback.

Values ``V`` and adjoints ``R`` are ``[rows, batch]`` tensors in log space (row layout in
:mod:`constraintc.circuit.layers`). The forward pass is one gather plus one segment reduction per
layer block. The backward pass computes, for every row, ``R[row] = log(dW/dW_row) - log W``
(times the seed), pulled from the row's parents:

* an OR parent ``P`` passes ``R[P]`` (``dW_P/dW_c = 1``);
* an AND parent passes ``R[P] + (sum of the siblings' log values)``. The sibling sum is
  ``V[P] - V[c]`` when ``V[c]`` is finite, and otherwise the sum of the finite siblings when
  ``c`` is the only zero child (else ``-inf``): that is what keeps gradients exact at p in {0, 1}
  where a ratio ``W_P / W_c`` would be ``0/0``.

Nothing here divides by a weight or subtracts two infinities, so no NaN can appear.
"""

from __future__ import annotations

import torch

from constraintc.circuit.layers import LayerPlan

NEG_INF = float("-inf")


class TorchPlan:
    """``LayerPlan`` index arrays as torch tensors on one device, sliced per layer once."""

    def __init__(self, plan: LayerPlan, device: torch.device | str = "cpu", tensors: dict | None = None):
        # ``tensors``: the plan's index arrays already on ``device`` (a Circuit's buffers)
        def t(name):
            if tensors is not None and name in tensors:
                return tensors[name].to(torch.int64)
            return torch.as_tensor(getattr(plan, name), dtype=torch.int64).to(device)

        self.plan = plan
        self.device = torch.device(device)
        child_rows, edge_node = t("child_rows"), t("edge_node")
        self.blocks_fwd = []  # (row0, row1, child_rows, segment ids, is_or)
        for a, m, b in zip(plan.layer_start, plan.layer_mid, plan.layer_end):
            for lo, hi, is_or in ((int(a), int(m), False), (int(m), int(b), True)):
                if hi > lo:
                    e0, e1 = int(plan.node_ptr[lo]), int(plan.node_ptr[hi])
                    self.blocks_fwd.append(
                        (plan.base + lo, plan.base + hi, child_rows[e0:e1], edge_node[e0:e1] - lo, is_or)
                    )
        # AND statistics for exclusive sibling sums: slot of each AND node
        is_and_node = torch.as_tensor(plan.is_or == 0).to(device)
        and_nodes = torch.nonzero(is_and_node).flatten()
        self.num_and = int(and_nodes.shape[0])
        slot = torch.zeros(plan.num_inner, dtype=torch.int64, device=device)
        slot[and_nodes] = torch.arange(self.num_and, device=device)
        edge_is_and = is_and_node[edge_node]
        self.and_edge_children = child_rows[edge_is_and]
        self.and_edge_slot = slot[edge_node[edge_is_and]]

        rev_edge, rev_parent = t("rev_edge"), t("rev_parent")
        rev_child = child_rows[rev_edge]
        rev_node = edge_node[rev_edge]
        self.blocks_bwd = []  # (row0, row1, parents, children, segment ids, is_and, and slot)
        for r0, r1 in plan.backward_blocks():
            q0, q1 = int(plan.rev_ptr[r0]), int(plan.rev_ptr[r1])
            if q1 == q0:
                continue
            nodes = rev_node[q0:q1]
            self.blocks_bwd.append(
                (r0, r1, rev_parent[q0:q1], rev_child[q0:q1], rev_child[q0:q1] - r0,
                 is_and_node[nodes], slot[nodes])
            )


def _segment_logsumexp(vals: torch.Tensor, seg: torch.Tensor, n: int) -> torch.Tensor:
    batch = vals.shape[1]
    mx = torch.full((n, batch), NEG_INF, dtype=vals.dtype, device=vals.device)
    mx.scatter_reduce_(0, seg[:, None].expand(-1, batch), vals, "amax", include_self=True)
    # an all -inf segment would give -inf - -inf = NaN: shift it by 0 instead, log(0) = -inf
    mx = torch.where(torch.isfinite(mx), mx, torch.zeros((), dtype=vals.dtype, device=vals.device))
    s = torch.zeros((n, batch), dtype=vals.dtype, device=vals.device)
    s.index_add_(0, seg, torch.exp(vals - mx[seg]))
    return mx + torch.log(s)


def forward(tp: TorchPlan, V: torch.Tensor) -> None:
    """Fill the inner rows of ``V`` (leaf rows already set), in place."""
    batch = V.shape[1]
    for r0, r1, kids, seg, is_or in tp.blocks_fwd:
        vals = V[kids]
        if is_or:
            V[r0:r1] = _segment_logsumexp(vals, seg, r1 - r0)
        else:
            out = torch.zeros((r1 - r0, batch), dtype=V.dtype, device=V.device)
            V[r0:r1] = out.index_add_(0, seg, vals)


def backward(tp: TorchPlan, V: torch.Tensor, R: torch.Tensor) -> None:
    """Fill ``R`` top-down; the root rows of ``R`` hold the seeds, every other row is written."""
    plan = tp.plan
    batch = V.shape[1]
    R[: plan.num_rows - plan.num_roots] = NEG_INF
    kids = V[tp.and_edge_children]
    inf = torch.isinf(kids)
    finsum = torch.zeros((tp.num_and + 1, batch), dtype=V.dtype, device=V.device)
    finsum.index_add_(0, tp.and_edge_slot, torch.where(inf, torch.zeros_like(kids), kids))
    ninf = torch.zeros((tp.num_and + 1, batch), dtype=V.dtype, device=V.device)
    ninf.index_add_(0, tp.and_edge_slot, inf.to(V.dtype))
    neg_inf = torch.full((), NEG_INF, dtype=V.dtype, device=V.device)
    for r0, r1, parents, children, seg, is_and, slot in tp.blocks_bwd:
        rp = R[parents]
        vc = V[children]
        sib_zero = torch.where(ninf[slot] == 1, finsum[slot], neg_inf)
        excl = torch.where(torch.isfinite(vc), V[parents] - vc, sib_zero)
        contrib = torch.where(is_and[:, None], rp + excl, rp)
        R[r0:r1] = _segment_logsumexp(contrib, seg, r1 - r0)
