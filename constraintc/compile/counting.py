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


def forced_atoms(ir: CircuitIR, atoms, root: int = 0) -> dict[int, bool | None]:
    """For each atom variable in ``atoms``: True (every model sets it), False (no model does) or
    None (models disagree), for root ``root``; decided with exact conditioned counts.

    >>> from constraintc.logic.cnf import CNF
    >>> from constraintc.compile import compile_cnf
    >>> forced_atoms(compile_cnf(CNF(3, [(1,), (2, 3)])).ir, [1, 2, 3])
    {1: True, 2: None, 3: None}
    """
    kinds = ir.kinds.tolist()
    lits = ir.lits.tolist()
    ptr = ir.child_ptr.tolist()
    kids = ir.children.tolist()
    masks = node_vars(ir, atoms_only=True)
    everything = ((1 << (ir.num_atoms + 1)) - 1) & ~1
    r = int(ir.roots[root])
    out: dict[int, bool | None] = {}
    for var in atoms:
        counts = {}
        for value in (True, False):
            fixed = 1 << var
            c = [0] * len(kinds)
            for i, k in enumerate(kinds):
                if k == TRUE:
                    c[i] = 1
                elif k == LIT:
                    lit = lits[i]
                    c[i] = 0 if abs(lit) == var and (lit > 0) != value else 1
                elif k == AND:
                    v = 1
                    for j in kids[ptr[i]:ptr[i + 1]]:
                        v *= c[j]
                        if not v:
                            break
                    c[i] = v
                elif k == OR:  # a child that does not mention a free atom counts both of its values
                    c[i] = sum(c[j] << ((masks[i] & ~masks[j]) & ~fixed).bit_count()
                               for j in kids[ptr[i]:ptr[i + 1]])
            counts[value] = c[r] << ((everything & ~masks[r]) & ~fixed).bit_count()
        out[var] = None if counts[True] and counts[False] else bool(counts[True])
    return out
