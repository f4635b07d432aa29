"""Hash-consed Boolean circuits for grounding, their Tseitin CNF and their sympy view.

Grounding builds millions of tiny formulas; sympy objects are too slow for that loop, so the
grounder works on integer literals of an and-inverter-style graph (a node id, negative for the
negation; ``TRUE = 1``, ``FALSE = -1``) with constant folding and structural sharing, and only
converts to sympy when a caller asks for it.

>>> b = BoolBuilder()
>>> x, y = b.var("x"), b.var("y")
>>> b.and_([x, TRUE, y]) == b.and_([y, x])
True
>>> b.or_([x, -x])
1
>>> num_vars, clauses = tseitin(b, [x, y], [b.or_([x, y])])
>>> num_vars, clauses
(2, [(2, 1)])
"""

from __future__ import annotations

TRUE = 1
FALSE = -1

# tseitin() calls its ``check`` after about this many new clauses
CHECK_CLAUSES = 4096

CONST, VAR, AND, IFF = 0, 1, 2, 3


class BoolBuilder:
    """Literals are ints: ``n`` is node ``n``, ``-n`` its negation; node 1 is the constant true."""

    __slots__ = ("kind", "children", "names", "_table", "edges")

    def __init__(self) -> None:
        self.kind: list[int] = [CONST, CONST]  # slot 0 unused so ids start at 1
        self.children: list[tuple[int, ...]] = [(), ()]
        self.names: dict[int, str] = {}
        self._table: dict[tuple, int] = {}
        self.edges = 0  # children of all gates: with len(self), what the builder holds

    def __len__(self) -> int:
        return len(self.kind) - 1

    def _node(self, kind: int, children: tuple[int, ...]) -> int:
        key = (kind, children)
        node = self._table.get(key)
        if node is None:
            node = len(self.kind)
            self.kind.append(kind)
            self.children.append(children)
            self._table[key] = node
            self.edges += len(children)
        return node

    def var(self, name: str) -> int:
        """A fresh input variable (an atom)."""
        node = len(self.kind)
        self.kind.append(VAR)
        self.children.append(())
        self.names[node] = name
        return node

    def and_(self, lits) -> int:
        out: set[int] = set()
        kind, children = self.kind, self.children
        for lit in lits:
            if lit == TRUE:
                continue
            if lit == FALSE:
                return FALSE
            if lit > 0 and kind[lit] == AND:
                out.update(children[lit])
            else:
                out.add(lit)
        if not out:
            return TRUE
        for lit in out:
            if -lit in out:
                return FALSE
        if len(out) == 1:
            return next(iter(out))
        return self._node(AND, tuple(sorted(out)))

    def or_(self, lits) -> int:
        return -self.and_([-lit for lit in lits])

    def iff(self, a: int, b: int) -> int:
        if a == b:
            return TRUE
        if a == -b:
            return FALSE
        if abs(a) == TRUE:
            return b if a == TRUE else -b
        if abs(b) == TRUE:
            return a if b == TRUE else -a
        negate = (a < 0) != (b < 0)
        a, b = sorted((abs(a), abs(b)))
        node = self._node(IFF, (a, b))
        return -node if negate else node

    def counts(self, lits, k: int) -> list[int]:
        """``s[j]`` = "at least j of ``lits`` are true" for j = 0..k (a sequential counter whose
        every gate is a function of the inputs, so Tseitin keeps model counts)."""
        s = [TRUE] + [FALSE] * k
        for x in lits:
            if x == FALSE:
                continue
            for j in range(k, 0, -1):
                s[j] = self.or_((s[j], self.and_((x, s[j - 1]))))
        return s


def tseitin(builder: BoolBuilder, atoms: list[int], assertions: list[int],
            check=None) -> tuple[int, list[tuple[int, ...]]]:
    """CNF of the conjunction of ``assertions``: atom ``atoms[i]`` becomes variable ``i+1``; every
    gate the assertions need gets a variable defined by a FULL equivalence (count preserving).

    Top-level conjunctions are split and top-level disjunctions become clauses directly, so
    the root structure costs no auxiliary variables. ``check(clauses)``, if given, is called
    every few thousand new clauses with their number (a budget raises from it).
    """
    var_of: dict[int, int] = {}
    checked = [0]

    def emitted() -> None:
        if check is not None and len(clauses) - checked[0] >= CHECK_CLAUSES:
            checked[0] = len(clauses)
            check(len(clauses))

    for i, node in enumerate(atoms, 1):
        if builder.kind[node] != VAR:
            raise ValueError(f"atom {i} is not an input variable")
        var_of[node] = i
    next_var = len(atoms) + 1
    clauses: list[tuple[int, ...]] = []
    kind, children = builder.kind, builder.children

    def encode(lit: int) -> int:
        """The CNF literal of ``lit``, emitting the definitions of gates below it (iteratively)."""
        nonlocal next_var
        root = abs(lit)
        if root not in var_of:
            stack = [root]
            while stack:
                node = stack[-1]
                if node in var_of:
                    stack.pop()
                    continue
                k = kind[node]
                if k == VAR:
                    raise ValueError(f"variable {builder.names.get(node)} is not among the atoms")
                pending = [abs(c) for c in children[node] if abs(c) not in var_of]
                if pending:
                    stack.extend(pending)
                    continue
                stack.pop()
                z = next_var
                next_var += 1
                var_of[node] = z
                cs = [var_of[c] if c > 0 else -var_of[-c] for c in children[node]]
                if k == AND:
                    for c in cs:
                        clauses.append((-z, c))
                    clauses.append((z, *[-c for c in cs]))
                elif k == IFF:
                    a, b = cs
                    clauses.extend([(-z, -a, b), (-z, a, -b), (z, a, b), (z, -a, -b)])
                else:  # pragma: no cover
                    raise ValueError(f"constant node {node} inside a formula")
                emitted()
        v = var_of[root]
        return v if lit > 0 else -v

    todo = list(reversed(assertions))
    while todo:
        lit = todo.pop()
        if lit == TRUE:
            continue
        if lit == FALSE:
            clauses.append(())
            continue
        node = abs(lit)
        k = kind[node]
        if k == AND and lit > 0:
            todo.extend(reversed(children[node]))
        elif k == AND:
            clauses.append(tuple(encode(-c) for c in children[node]))
        elif k == IFF:
            a, b = (encode(c) for c in children[node])
            if lit < 0:
                b = -b
            clauses.extend([(-a, b), (a, -b)])
        else:
            clauses.append((encode(lit),))
        emitted()
    # the same clause often comes from symmetric instances of a rule (asymmetry for X,Y and Y,X)
    seen: set[frozenset] = set()
    unique = []
    for clause in clauses:
        key = frozenset(clause)
        if key not in seen:
            seen.add(key)
            unique.append(clause)
    return next_var - 1, unique


def _raw(cls, args):
    """A sympy And/Or built without sympy's canonical ordering: that ordering computes sort keys
    of whole subformulas, which on a shared (DAG-shaped) grounding is exponential (dsep on 5
    nodes: 135 s). The circuit is already simplified and deterministically ordered."""
    import sympy

    obj = sympy.Basic.__new__(cls, *args)
    obj._argset = frozenset(args)
    return obj


def conjunction(args):
    """The sympy conjunction of already-built formulas (true/false folded), unordered."""
    import sympy

    args = [a for a in args if a is not sympy.true]
    if any(a is sympy.false for a in args):
        return sympy.false
    if not args:
        return sympy.true
    return args[0] if len(args) == 1 else _raw(sympy.And, list(dict.fromkeys(args)))


def to_sympy(builder: BoolBuilder, lit: int, symbols: dict[int, object] | None = None,
             memo: dict[int, object] | None = None):
    """The sympy expression of a literal (shared subformulas become shared sympy objects)."""
    import sympy

    memo = {} if memo is None else memo
    symbols = {} if symbols is None else symbols

    def node_expr(node: int):
        # iterative post-order: deep unrolled recursions must not hit Python's recursion limit
        stack = [node]
        while stack:
            n = stack[-1]
            if n in memo:
                stack.pop()
                continue
            k = builder.kind[n]
            if k == CONST:
                memo[n] = sympy.true
                stack.pop()
                continue
            if k == VAR:
                if n not in symbols:
                    symbols[n] = sympy.Symbol(builder.names[n])
                memo[n] = symbols[n]
                stack.pop()
                continue
            pending = [abs(c) for c in builder.children[n] if abs(c) not in memo]
            if pending:
                stack.extend(pending)
                continue
            stack.pop()
            args = [memo[c] if c > 0 else sympy.Not(memo[-c]) for c in builder.children[n]]
            if k == AND:
                memo[n] = _raw(sympy.And, args)
            else:
                a, b = args
                memo[n] = _raw(sympy.Or, [_raw(sympy.And, [a, b]),
                                          _raw(sympy.And, [sympy.Not(a), sympy.Not(b)])])
        return memo[node]

    expr = node_expr(abs(lit))
    return expr if lit > 0 else sympy.Not(expr)
