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

from constraintc.compile.ir import AND, LIT, OR, TRUE, CircuitIR


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


def _counts(ir: CircuitIR, masks: list[int], fixed: tuple[int, bool] | None = None) -> list[int]:
    """Every node's model count over its own atoms; with ``fixed = (var, value)``, counting only
    the models that give ``var`` that value (it is then no longer free anywhere)."""
    kinds = ir.kinds.tolist()
    lits = ir.lits.tolist()
    ptr = ir.child_ptr.tolist()
    kids = ir.children.tolist()
    var, value = fixed if fixed is not None else (0, True)
    pinned = 1 << var if fixed is not None else 0
    counts = [0] * len(kinds)
    for i, k in enumerate(kinds):
        if k == TRUE:
            counts[i] = 1
        elif k == LIT:
            lit = lits[i]
            counts[i] = 0 if abs(lit) == var and (lit > 0) != value else 1
        elif k == AND:
            c = 1
            for j in kids[ptr[i] : ptr[i + 1]]:
                c *= counts[j]
                if not c:
                    break
            counts[i] = c
        elif k == OR:  # children are disjoint; an atom a child does not mention is free in it
            counts[i] = sum(counts[j] << ((masks[i] & ~masks[j]) & ~pinned).bit_count()
                            for j in kids[ptr[i] : ptr[i + 1]])
    return counts


def _scaled_to_all_atoms(ir: CircuitIR, masks: list[int], counts: list[int], node: int,
                         pinned: int = 0) -> int:
    every_atom = ((1 << (ir.num_atoms + 1)) - 1) & ~1
    return counts[node] << ((every_atom & ~masks[node]) & ~pinned).bit_count()


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
    masks = node_vars(ir, atoms_only=True)
    counts = _counts(ir, masks)
    return [_scaled_to_all_atoms(ir, masks, counts, r) for r in ir.roots.tolist()]


def forced_atoms(ir: CircuitIR, atoms, root: int = 0) -> dict[int, bool | None]:
    """For each atom variable in ``atoms``: True (every model sets it), False (no model does) or
    None (models disagree), for root ``root``; decided with exact conditioned counts.

    >>> from constraintc.logic.cnf import CNF
    >>> from constraintc.compile import compile_cnf
    >>> forced_atoms(compile_cnf(CNF(3, [(1,), (2, 3)])).ir, [1, 2, 3])
    {1: True, 2: None, 3: None}
    """
    masks = node_vars(ir, atoms_only=True)
    r = int(ir.roots[root])
    out: dict[int, bool | None] = {}
    for var in atoms:
        count = {value: _scaled_to_all_atoms(ir, masks, _counts(ir, masks, (var, value)), r, 1 << var)
                 for value in (True, False)}
        out[var] = None if count[True] and count[False] else bool(count[True])
    return out
