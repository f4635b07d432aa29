"""The circuit IR: a hash-consed NNF DAG in topological order (children before parents).

Node kinds: ``FALSE``, ``TRUE``, ``LIT`` (a signed DIMACS literal), ``AND``, ``OR``. A circuit
produced by a knowledge compiler is decomposable (AND children share no variable) and
deterministic (OR children are mutually exclusive); ``CircuitIR`` stores the structure only and
does not assume either property. Several roots share one DAG (one per constraint or rule).

Children are stored in CSR form: node ``i``'s children are
``children[child_ptr[i]:child_ptr[i + 1]]``.

>>> b = IRBuilder(num_vars=2)
>>> root = b.disj([b.conj([b.lit(1), b.lit(2)]), b.conj([b.lit(-1), b.lit(2)])])
>>> ir = b.build([root], num_atoms=2, atom_names=["a", "b"])
>>> ir.num_nodes, ir.num_edges
(6, 6)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

FALSE, TRUE, LIT, AND, OR = 0, 1, 2, 3, 4
KIND_NAMES = ("false", "true", "lit", "and", "or")


@dataclass(frozen=True, eq=False)
class CircuitIR:
    num_vars: int
    num_atoms: int
    kinds: np.ndarray  # int8 [nodes]
    lits: np.ndarray  # int32 [nodes], the literal for LIT nodes, 0 elsewhere
    child_ptr: np.ndarray  # int64 [nodes + 1]
    children: np.ndarray  # int32 [edges]
    roots: np.ndarray  # int32 [roots]
    root_names: list[str] = field(default_factory=list)
    atom_names: list[str] = field(default_factory=list)

    @property
    def num_nodes(self) -> int:
        return int(self.kinds.shape[0])

    @property
    def num_edges(self) -> int:
        return int(self.children.shape[0])

    def node_children(self, i: int) -> np.ndarray:
        return self.children[self.child_ptr[i] : self.child_ptr[i + 1]]

    def validate(self) -> None:
        """Check the structural invariants the evaluator relies on; raises :class:`IRError`.

        Shapes and dtypes of the arrays, topological order (children before parents), the CSR
        layout, node kinds, literal range, atom and root names. Plain ``if`` checks, so
        ``python -O`` keeps them.
        """
        n = self.num_nodes

        def need(ok, what: str) -> None:
            if not ok:
                raise IRError(what)

        arrays = (("kinds", self.kinds), ("lits", self.lits), ("child_ptr", self.child_ptr),
                  ("children", self.children), ("roots", self.roots))
        for name, a in arrays:
            need(isinstance(a, np.ndarray) and a.ndim == 1 and a.dtype.kind in "iu",
                 f"{name} must be a one-dimensional integer array")
        need(isinstance(self.num_vars, int) and isinstance(self.num_atoms, int)
             and 0 <= self.num_atoms <= self.num_vars,
             f"num_atoms={self.num_atoms!r} must be an integer in 0..num_vars={self.num_vars!r}")
        need(self.lits.shape == (n,), f"lits has {self.lits.shape[0]} entries for {n} nodes")
        need(self.child_ptr.shape == (n + 1,), f"child_ptr has {self.child_ptr.shape[0]} entries for {n} nodes")
        need(np.all((self.kinds >= FALSE) & (self.kinds <= OR)), "node kinds must be 0..4")
        need(self.child_ptr[0] == 0 and self.child_ptr[-1] == self.num_edges,
             "child_ptr must start at 0 and end at the number of edges")
        arity = np.diff(self.child_ptr)
        need(np.all(arity >= 0), "child_ptr must not decrease")
        owner = np.repeat(np.arange(n), arity)
        need(np.all((self.children >= 0) & (self.children < owner)), "children must precede their parents")
        is_lit = self.kinds == LIT
        need(np.all(self.lits[is_lit] != 0) and np.all(np.abs(self.lits.astype(np.int64)) <= self.num_vars),
             f"literals must be nonzero and within +-{self.num_vars}")
        need(np.all(self.lits[~is_lit] == 0), "only literal nodes carry a literal")
        inner = (self.kinds == AND) | (self.kinds == OR)
        need(np.all(arity[~inner] == 0), "only AND/OR nodes have children")
        need(np.all(arity[inner] > 0), "AND/OR nodes need at least one child")
        need(self.roots.shape[0] > 0 and np.all((self.roots >= 0) & (self.roots < n)), "roots must be nodes")
        need(len(self.atom_names) == self.num_atoms and all(isinstance(a, str) for a in self.atom_names),
             f"{len(self.atom_names)} atom names for {self.num_atoms} atoms")
        need(len(self.root_names) == self.roots.shape[0] and all(isinstance(r, str) for r in self.root_names),
             f"{len(self.root_names)} root names for {self.roots.shape[0]} roots")


class IRError(ValueError):
    """A ``CircuitIR`` that breaks a structural invariant (the message says which)."""


class IRBuilder:
    """Builds a ``CircuitIR`` bottom-up with hash-consing and constant folding.

    ``conj``/``disj`` drop neutral constants, short-circuit on absorbing ones, flatten nothing
    (flattening would break sharing) and return an existing node when an identical one exists.
    """

    def __init__(self, num_vars: int):
        self.num_vars = num_vars
        self._kinds: list[int] = [FALSE, TRUE]
        self._lits: list[int] = [0, 0]
        self._children: list[tuple[int, ...]] = [(), ()]
        self._index: dict[tuple, int] = {("c", FALSE): 0, ("c", TRUE): 1}

    def false(self) -> int:
        return 0

    def true(self) -> int:
        return 1

    def _add(self, key: tuple, kind: int, lit: int, children: tuple[int, ...]) -> int:
        node = self._index.get(key)
        if node is None:
            node = len(self._kinds)
            self._kinds.append(kind)
            self._lits.append(lit)
            self._children.append(children)
            self._index[key] = node
        return node

    def lit(self, literal: int) -> int:
        if literal == 0 or abs(literal) > self.num_vars:
            raise ValueError(f"literal {literal} outside 1..{self.num_vars}")
        return self._add(("l", literal), LIT, literal, ())

    def conj(self, children) -> int:
        kids = []
        for c in children:
            if c == 0:
                return 0
            if c != 1:
                kids.append(c)
        if not kids:
            return 1
        if len(kids) == 1:
            return kids[0]
        kids_t = tuple(sorted(set(kids)))
        if len(kids_t) == 1:
            return kids_t[0]
        return self._add(("a", kids_t), AND, 0, kids_t)

    def disj(self, children) -> int:
        kids = []
        for c in children:
            if c == 1:
                return 1
            if c != 0:
                kids.append(c)
        if not kids:
            return 0
        kids_t = tuple(sorted(set(kids)))
        if len(kids_t) == 1:
            return kids_t[0]
        return self._add(("o", kids_t), OR, 0, kids_t)

    def build(self, roots, num_atoms: int | None = None, atom_names=None, root_names=None):
        """Freeze into a ``CircuitIR`` keeping only nodes reachable from ``roots``."""
        roots = [int(r) for r in roots]
        keep = np.zeros(len(self._kinds), dtype=bool)
        stack = list(roots)
        while stack:
            i = stack.pop()
            if not keep[i]:
                keep[i] = True
                stack.extend(self._children[i])
        old = np.flatnonzero(keep)  # ids are already topological: children are created first
        remap = np.full(len(self._kinds), -1, dtype=np.int64)
        remap[old] = np.arange(len(old))
        kids = [self._children[i] for i in old]
        ptr = np.zeros(len(old) + 1, dtype=np.int64)
        ptr[1:] = np.cumsum([len(k) for k in kids])
        flat = np.fromiter((remap[c] for k in kids for c in k), dtype=np.int32, count=int(ptr[-1]))
        num_atoms = self.num_vars if num_atoms is None else num_atoms
        return CircuitIR(
            num_vars=self.num_vars,
            num_atoms=num_atoms,
            kinds=np.asarray([self._kinds[i] for i in old], dtype=np.int8),
            lits=np.asarray([self._lits[i] for i in old], dtype=np.int32),
            child_ptr=ptr,
            children=flat,
            roots=remap[np.asarray(roots, dtype=np.int64)].astype(np.int32),
            root_names=list(root_names) if root_names else [f"root{i}" for i in range(len(roots))],
            atom_names=list(atom_names) if atom_names else [f"x{v}" for v in range(1, num_atoms + 1)],
        )
