"""Exact model counting on a decomposable, deterministic circuit IR (Python ints, no floats).

Compiled circuits are not smooth: an atom that an OR child does not mention is free in that
child's models, and an atom the root does not mention is free in all of them. Counting keeps
track of each node's atom set and multiplies by 2 per free atom, so the count is exact.

Auxiliary variables (beyond ``num_atoms``) are ignored: with weight 1 on both of their literals
the count is ``2^atoms`` times the circuit's value at p = 1/2, which is the number of atom
assignments that satisfy the constraint whether the circuit keeps auxiliary literals (a PySDD
result: every proof then fixes every auxiliary, as the CNF defines them) or forgets them (the
built-in compiler's result, a d-DNNF of the projection onto the atoms).

>>> from constraintc.compile.ir import IRBuilder
>>> b = IRBuilder(num_vars=3)
>>> root = b.disj([b.lit(1), b.conj([b.lit(-1), b.lit(2)])])   # x1 | (~x1 & x2)
>>> model_count(b.build([root], num_atoms=3))                  # x3 is free everywhere
6
"""

from __future__ import annotations

from constraintc.compile.ir import AND, FALSE, LIT, OR, TRUE, CircuitIR


def node_vars(ir: CircuitIR, atoms_only: bool = False) -> list[int]:
    """The variable set of every node, as a bit mask (bit ``v`` set when variable ``v`` occurs).

    With ``atoms_only``, auxiliary variables (``> num_atoms``) are left out of the masks.
    """
    kinds = ir.kinds.tolist()
    lits = ir.lits.tolist()
    ptr = ir.child_ptr.tolist()
    kids = ir.children.tolist()
    masks = [0] * len(kinds)
    for i, k in enumerate(kinds):
        if k == LIT:
            v = abs(lits[i])
            masks[i] = 1 << v if not atoms_only or v <= ir.num_atoms else 0
        elif k == AND or k == OR:
            m = 0
            for c in kids[ptr[i] : ptr[i + 1]]:
                m |= masks[c]
            masks[i] = m
    return masks


def _counts(ir: CircuitIR) -> tuple[list[int], list[int]]:
    kinds = ir.kinds.tolist()
    ptr = ir.child_ptr.tolist()
    kids = ir.children.tolist()
    masks = node_vars(ir, atoms_only=True)
    sizes = [m.bit_count() for m in masks]
    counts = [0] * len(kinds)
    for i, k in enumerate(kinds):
        if k == TRUE or k == LIT:
            counts[i] = 1
        elif k == FALSE:
            counts[i] = 0
        elif k == AND:
            c = 1
            for j in kids[ptr[i] : ptr[i + 1]]:
                c *= counts[j]
                if not c:
                    break
            counts[i] = c
        else:  # OR: children are disjoint, each counted over the OR's variables
            s, n = 0, sizes[i]
            for j in kids[ptr[i] : ptr[i + 1]]:
                s += counts[j] << (n - sizes[j])
            counts[i] = s
    return counts, masks


def model_count(ir: CircuitIR, root: int = 0) -> int:
    """Exact number of assignments to the atoms ``1..num_atoms`` that satisfy root ``root``.

    Assumes the IR is decomposable and deterministic (what ``compile_cnf`` produces).

    >>> from constraintc.logic.cnf import CNF
    >>> from constraintc.compile import compile_cnf
    >>> model_count(compile_cnf(CNF(num_vars=3, clauses=[(1, 2), (-1, -2)])).ir)
    4
    """
    return model_counts(ir)[root]


def model_counts(ir: CircuitIR) -> list[int]:
    """``model_count`` for every root, sharing one pass over the DAG."""
    counts, masks = _counts(ir)
    atoms = ((1 << (ir.num_atoms + 1)) - 1) & ~1
    out = []
    for r in ir.roots.tolist():
        missing = (atoms & ~masks[r]).bit_count()
        out.append(counts[r] << missing)
    return out
