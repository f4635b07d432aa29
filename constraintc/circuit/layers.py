"""Layerize a ``CircuitIR`` into the flat index arrays every evaluator (torch, C, Triton) runs.

The evaluators hold node values as one ``[rows, batch]`` array in log space. Its rows are laid
out so that the inputs need no gather at all:

=====================  =====================================================================
row 0                  the constant FALSE (log 0 = -inf)
row 1                  the constant TRUE, and every literal of an auxiliary variable (weight 1)
rows 2 .. 2+A          ``log p`` of atoms 1..A (the positive literals)
rows 2+A .. 2+2A       ``log (1-p)`` of atoms 1..A (the negative literals)
rows base ..           inner (AND/OR) nodes, layer by layer; inside a layer the AND nodes come
                       first, then the OR nodes, so each layer is two contiguous blocks
last R rows            one virtual single-child OR node per root (the output rows)
=====================  =====================================================================

A node's layer is one more than its deepest child's, so a layer reads only rows written by
earlier layers: one gather plus one segment reduction per block (sum for AND, logsumexp for OR).
The virtual root rows let a root be any node (a literal, a constant, a node shared by two roots)
and give the backward pass one place to put its seeds.

For the top-down (backward) pass the edges are also sorted by child row (``rev_*``), so each
row *pulls* its adjoint from its parents: no two threads ever write the same row.

>>> from constraintc.compile.ir import IRBuilder
>>> b = IRBuilder(num_vars=2)
>>> root = b.disj([b.conj([b.lit(1), b.lit(2)]), b.conj([b.lit(-1), b.lit(-2)])])
>>> plan = layerize(b.build([root]))
>>> plan.num_rows, plan.num_layers   # 2 + 2*2 leaf rows, 2 AND + 1 OR, 1 virtual root
(10, 3)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from constraintc.compile.ir import AND, FALSE, LIT, OR, TRUE, CircuitIR


@dataclass(frozen=True, eq=False)
class LayerPlan:
    """Index arrays of a layerized circuit (numpy, int64 unless noted).

    Inner nodes (including the virtual roots) are numbered ``k = 0..M-1``; node ``k`` lives in
    row ``base + k`` and its children rows are ``child_rows[node_ptr[k]:node_ptr[k+1]]``.
    Layer ``l`` holds nodes ``layer_start[l]:layer_end[l]``, of which
    ``layer_start[l]:layer_mid[l]`` are AND nodes and the rest OR nodes.
    """

    num_atoms: int
    num_roots: int
    base: int  # first inner row = 2 + 2 * num_atoms
    num_rows: int
    node_ptr: np.ndarray  # [M + 1]
    child_rows: np.ndarray  # [E]
    edge_node: np.ndarray  # [E] owning inner node k of each edge
    is_or: np.ndarray  # uint8 [M]
    layer_start: np.ndarray  # [L]
    layer_mid: np.ndarray  # [L]
    layer_end: np.ndarray  # [L]
    rev_ptr: np.ndarray  # [num_rows + 1] parent edges of each row, sorted by child row
    rev_edge: np.ndarray  # [E] forward edge index of each reverse entry
    rev_parent: np.ndarray  # [E] parent row of each reverse entry
    node_rows: np.ndarray  # [ir.num_nodes] row of each IR node

    @property
    def num_layers(self) -> int:
        return int(self.layer_start.shape[0])

    @property
    def num_inner(self) -> int:
        return int(self.node_ptr.shape[0] - 1)

    @property
    def num_edges(self) -> int:
        return int(self.child_rows.shape[0])

    @property
    def root_rows(self) -> np.ndarray:
        return np.arange(self.num_rows - self.num_roots, self.num_rows, dtype=np.int64)

    def backward_blocks(self) -> list[tuple[int, int]]:
        """Row ranges in the order the top-down pass fills them: inner layers from the top
        (the virtual root layer is seeded, not pulled), then the literal rows."""
        blocks = [
            (self.base + int(self.layer_start[l]), self.base + int(self.layer_end[l]))
            for l in range(self.num_layers - 2, -1, -1)
        ]
        blocks.append((2, self.base))
        return [(a, b) for a, b in blocks if b > a]


def _depths(kinds: np.ndarray, ptr: np.ndarray, children: np.ndarray) -> np.ndarray:
    # one pass in topological order; python ints are fast enough (~0.1 s per 400k edges) and
    # need no assumption on the number of children
    depth = [0] * len(kinds)
    kids = children.tolist()
    p = ptr.tolist()
    inner = np.flatnonzero((kinds == AND) | (kinds == OR)).tolist()
    for i in inner:
        a, b = p[i], p[i + 1]
        if a < b:
            depth[i] = 1 + max(depth[c] for c in kids[a:b])
    return np.asarray(depth, dtype=np.int64)


def layerize(ir: CircuitIR) -> LayerPlan:
    """Turn ``ir`` into a :class:`LayerPlan` (see the module docstring for the row layout)."""
    kinds = np.asarray(ir.kinds)
    lits = np.asarray(ir.lits, dtype=np.int64)
    ptr = np.asarray(ir.child_ptr, dtype=np.int64)
    children = np.asarray(ir.children, dtype=np.int64)
    num_atoms = int(ir.num_atoms)
    n = kinds.shape[0]
    base = 2 + 2 * num_atoms
    nkids = np.diff(ptr)

    rows = np.full(n, -1, dtype=np.int64)
    rows[kinds == FALSE] = 0
    rows[kinds == TRUE] = 1
    is_lit = kinds == LIT
    var = np.abs(lits)
    rows[is_lit & (var > num_atoms)] = 1  # auxiliary: weight 1 on both literals
    pos = is_lit & (var <= num_atoms) & (lits > 0)
    neg = is_lit & (var <= num_atoms) & (lits < 0)
    rows[pos] = 2 + var[pos] - 1
    rows[neg] = 2 + num_atoms + var[neg] - 1
    # childless inner nodes are constants: AND() = TRUE, OR() = FALSE
    rows[(kinds == AND) & (nkids == 0)] = 1
    rows[(kinds == OR) & (nkids == 0)] = 0

    inner = np.flatnonzero(((kinds == AND) | (kinds == OR)) & (nkids > 0))
    depth = _depths(kinds, ptr, children)
    # AND before OR inside a layer; ties keep topological (id) order for locality
    order = inner[np.lexsort((inner, kinds[inner], depth[inner]))]
    num_real = order.shape[0]
    rows[order] = base + np.arange(num_real)

    roots = np.asarray(ir.roots, dtype=np.int64)
    num_roots = roots.shape[0]
    top = int(depth[inner].max()) + 1 if num_real else 1

    # children of the ordered inner nodes, then one child (the root's row) per virtual node
    counts = nkids[order]
    starts = ptr[order]
    offsets = np.concatenate([[0], np.cumsum(counts)])
    idx = np.repeat(starts - offsets[:-1], counts) + np.arange(offsets[-1])
    child_rows = np.concatenate([rows[children[idx]], rows[roots]]).astype(np.int64)
    node_ptr = np.concatenate([offsets, offsets[-1] + 1 + np.arange(num_roots)]).astype(np.int64)
    num_inner = num_real + num_roots
    is_or = np.concatenate([(kinds[order] == OR), np.ones(num_roots, dtype=bool)]).astype(np.uint8)
    node_depth = np.concatenate([depth[order], np.full(num_roots, top)])
    edge_node = np.repeat(np.arange(num_inner), np.diff(node_ptr))

    layer_ids = np.unique(node_depth)
    layer_start = np.searchsorted(node_depth, layer_ids, side="left")
    layer_end = np.searchsorted(node_depth, layer_ids, side="right")
    # inside a layer, AND (is_or == 0) sorts first
    layer_mid = np.array(
        [a + int(np.count_nonzero(is_or[a:b] == 0)) for a, b in zip(layer_start, layer_end)],
        dtype=np.int64,
    )
    num_rows = base + num_inner

    rev_edge = np.argsort(child_rows, kind="stable")
    rev_counts = np.bincount(child_rows, minlength=num_rows)
    rev_ptr = np.concatenate([[0], np.cumsum(rev_counts)]).astype(np.int64)
    rev_parent = base + edge_node[rev_edge]

    return LayerPlan(
        num_atoms=num_atoms,
        num_roots=num_roots,
        base=base,
        num_rows=num_rows,
        node_ptr=node_ptr,
        child_rows=child_rows,
        edge_node=edge_node.astype(np.int64),
        is_or=is_or,
        layer_start=layer_start.astype(np.int64),
        layer_mid=layer_mid,
        layer_end=layer_end.astype(np.int64),
        rev_ptr=rev_ptr,
        rev_edge=rev_edge.astype(np.int64),
        rev_parent=rev_parent.astype(np.int64),
        node_rows=rows,
    )
