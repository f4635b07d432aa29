"""Read and write d-DNNF in the ``.nnf`` formats of the c2d and d4 compilers.

c2d format: a header ``nnf <nodes> <edges> <variables>``, then one node per line in topological
order (children first): ``L <lit>``, ``A <c> <children...>`` (``A 0`` is true), ``O <var> <c>
<children...>`` (``<var>`` is the decision variable or 0; ``O 0 0`` is false). The last node is
the root.

d4 format: node lines ``o <id> 0`` / ``a <id> 0`` / ``t <id> 0`` / ``f <id> 0`` and arc lines
``<parent> <child> [<lits>...] 0`` (the child conjoined with the literals); node 1 is the root.

``read_nnf`` detects the format. ``write_nnf`` writes one root of an IR (the format has one root).

>>> import tempfile, os
>>> from constraintc.compile import compile_cnf, model_count
>>> from constraintc.logic.cnf import CNF
>>> ir = compile_cnf(CNF(3, [(1, 2), (-2, 3)])).ir
>>> path = os.path.join(tempfile.mkdtemp(), "c.nnf")
>>> write_nnf(ir, path)
>>> model_count(read_nnf(path, num_atoms=3))
4
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from constraintc.compile.ir import AND, FALSE, LIT, OR, TRUE, CircuitIR, IRBuilder
from constraintc.errors import ConstraintcError, SourcePosition


class NnfError(ConstraintcError):
    """A malformed ``.nnf`` file; the message names file, line and column."""


def _decision_var(ir: CircuitIR, node: int) -> int:
    """The variable an OR node decides on (0 when it is not a binary decision)."""
    kids = ir.node_children(node)
    if len(kids) != 2:
        return 0

    def lits_of(i):
        if ir.kinds[i] == LIT:
            return {int(ir.lits[i])}
        if ir.kinds[i] == AND:
            return {int(ir.lits[c]) for c in ir.node_children(i) if ir.kinds[c] == LIT}
        return set()

    a, b = lits_of(int(kids[0])), lits_of(int(kids[1]))
    for lit in a:
        if -lit in b:
            return abs(lit)
    return 0


def _reachable(ir: CircuitIR, root: int) -> np.ndarray:
    keep = np.zeros(ir.num_nodes, dtype=bool)
    keep[root] = True
    for i in range(root, -1, -1):  # children precede parents: one backward sweep suffices
        if keep[i]:
            keep[ir.children[ir.child_ptr[i] : ir.child_ptr[i + 1]]] = True
    return keep


def write_nnf(ir: CircuitIR, path: str | Path, root: int = 0, format: str = "c2d") -> None:
    """Write root ``root`` of ``ir`` to ``path`` in the c2d (default) or d4 ``.nnf`` format."""
    if format not in ("c2d", "d4"):
        raise ValueError(f"format={format!r}: expected 'c2d' or 'd4'")
    r = int(ir.roots[root])
    keep = _reachable(ir, r)
    order = np.flatnonzero(keep)
    Path(path).write_text(_c2d(ir, order) if format == "c2d" else _d4(ir, order, r))


def _c2d(ir: CircuitIR, order: np.ndarray) -> str:
    new = {int(old): i for i, old in enumerate(order)}
    lines = []
    edges = 0
    for old in order.tolist():
        k = ir.kinds[old]
        kids = [new[int(c)] for c in ir.node_children(old)]
        edges += len(kids)
        if k == LIT:
            lines.append(f"L {int(ir.lits[old])}")
        elif k == TRUE:
            lines.append("A 0")
        elif k == FALSE:
            lines.append("O 0 0")
        elif k == AND:
            lines.append(f"A {len(kids)} " + " ".join(map(str, kids)))
        else:
            lines.append(f"O {_decision_var(ir, old)} {len(kids)} " + " ".join(map(str, kids)))
    header = f"nnf {len(order)} {edges} {ir.num_vars}"
    return "\n".join([header, *lines]) + "\n"


def _d4(ir: CircuitIR, order: np.ndarray, root: int) -> str:
    # d4 numbers the root 1: number the inner nodes from the root down; literal children become
    # literals on arcs to one shared true node.
    inner = [int(i) for i in order[::-1] if ir.kinds[i] != LIT]
    ids = {old: i + 1 for i, old in enumerate(inner)}
    true_id = None
    node_lines, arc_lines = [], []
    for old in inner:
        k = ir.kinds[old]
        tag = {TRUE: "t", FALSE: "f", AND: "a", OR: "o"}[int(k)]
        node_lines.append(f"{tag} {ids[old]} 0")
    if ir.kinds[root] == LIT:  # a single literal: an AND with one arc carrying it
        return f"a 1 0\nt 2 0\n1 2 {int(ir.lits[root])} 0\n"
    for old in inner:
        lits = []
        for c in ir.node_children(old).tolist():
            if ir.kinds[c] == LIT:
                if ir.kinds[old] == AND:
                    lits.append(int(ir.lits[c]))
                    continue
                if true_id is None:
                    true_id = len(inner) + 1
                arc_lines.append(f"{ids[old]} {true_id} {int(ir.lits[c])} 0")
            else:
                arc_lines.append(f"{ids[old]} {ids[c]} 0")
        if lits:  # an AND's literals ride on one arc to the true node
            if true_id is None:
                true_id = len(inner) + 1
            arc_lines.append(f"{ids[old]} {true_id} " + " ".join(map(str, lits)) + " 0")
    if true_id is not None:
        node_lines.append(f"t {true_id} 0")
    return "\n".join(node_lines + arc_lines) + "\n"


def read_nnf(path: str | Path, num_atoms: int | None = None, num_vars: int | None = None,
             atom_names=None) -> CircuitIR:
    """Read a c2d or d4 ``.nnf`` file into a one-root ``CircuitIR``.

    ``num_vars`` defaults to the header's variable count (c2d) or the largest variable seen (d4),
    ``num_atoms`` to ``num_vars``. Constants are folded and identical nodes shared.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise NnfError(f"error: cannot read {path}: {exc.strerror}") from None
    lines = text.splitlines()
    for ln in lines:
        s = ln.strip()
        if s and not s.startswith("c"):
            is_c2d = s.startswith("nnf")
            break
    else:
        raise NnfError(f"{path}: error: empty .nnf file (expected an 'nnf' header or d4 nodes)")
    parse = _read_c2d if is_c2d else _read_d4
    return parse(str(path), lines, num_atoms, num_vars, atom_names)


def _fail(filename: str, lines: list[str], lineno: int, col: int, msg: str) -> NnfError:
    line = lines[lineno - 1] if 0 < lineno <= len(lines) else ""
    pos = SourcePosition(filename, lineno, col)
    return NnfError(f"{pos}: error: {msg}\n    {line}\n    {' ' * (col - 1)}^")


def _ints(filename, lines, lineno, tokens, start=0) -> list[int]:
    out = []
    line = lines[lineno - 1]
    col = 0
    for tok in tokens[start:]:
        col = line.index(tok, col)
        try:
            out.append(int(tok))
        except ValueError:
            raise _fail(filename, lines, lineno, col + 1, f"expected an integer, found {tok!r}") from None
        col += len(tok)
    return out


def _read_c2d(filename, lines, num_atoms, num_vars, atom_names) -> CircuitIR:
    header = None
    raw: list[tuple[str, list[int], int]] = []
    for lineno, line in enumerate(lines, 1):
        toks = line.split()
        if not toks or toks[0] == "c":
            continue
        if header is None:
            if toks[0] != "nnf" or len(toks) != 4:
                raise _fail(filename, lines, lineno, 1, "expected a header 'nnf <nodes> <edges> <variables>'")
            header = _ints(filename, lines, lineno, toks, 1)
            continue
        kind = toks[0]
        if kind not in ("L", "A", "O"):
            raise _fail(filename, lines, lineno, line.index(toks[0]) + 1,
                        f"expected a node 'L', 'A' or 'O', found {toks[0]!r}")
        raw.append((kind, _ints(filename, lines, lineno, toks, 1), lineno))
    if header is None:
        raise NnfError(f"{filename}: error: no 'nnf <nodes> <edges> <variables>' header found")
    nodes_declared, _, declared_vars = header
    if len(raw) != nodes_declared:
        raise NnfError(f"{filename}: error: header declares {nodes_declared} nodes, file has {len(raw)}")
    if not raw:
        raise NnfError(f"{filename}: error: the circuit has no nodes")
    nv = declared_vars if num_vars is None else num_vars
    b = IRBuilder(num_vars=nv)
    ids: list[int] = []
    for i, (kind, vals, lineno) in enumerate(raw):
        if kind == "L":
            if len(vals) != 1 or vals[0] == 0 or abs(vals[0]) > nv:
                raise _fail(filename, lines, lineno, 1, f"expected 'L <literal>' with a literal in 1..{nv}")
            ids.append(b.lit(vals[0]))
            continue
        count_at = 0 if kind == "A" else 1
        if len(vals) <= count_at or vals[count_at] != len(vals) - count_at - 1:
            raise _fail(filename, lines, lineno, 1,
                        f"the child count does not match the children listed (expected '{kind} "
                        + ("" if kind == "A" else "<var> ") + "<count> <children...>')")
        kids = vals[count_at + 1 :]
        bad = [k for k in kids if not 0 <= k < i]
        if bad:
            raise _fail(filename, lines, lineno, 1,
                        f"child {bad[0]} is not an earlier node (nodes are numbered from 0 in order)")
        ids.append(b.conj([ids[k] for k in kids]) if kind == "A" else b.disj([ids[k] for k in kids]))
    return b.build([ids[-1]], num_atoms=num_atoms, atom_names=atom_names)


def _read_d4(filename, lines, num_atoms, num_vars, atom_names) -> CircuitIR:
    kinds: dict[int, str] = {}
    arcs: dict[int, list[tuple[int, list[int], int]]] = {}
    max_var = 0
    first = None
    for lineno, line in enumerate(lines, 1):
        toks = line.split()
        if not toks or toks[0] == "c":
            continue
        if toks[0] in ("o", "a", "t", "f"):
            vals = _ints(filename, lines, lineno, toks, 1)
            if len(vals) != 2 or vals[1] != 0 or vals[0] <= 0:
                raise _fail(filename, lines, lineno, 1, f"expected '{toks[0]} <id> 0' with a positive id")
            if vals[0] in kinds:
                raise _fail(filename, lines, lineno, 1, f"node {vals[0]} declared twice")
            kinds[vals[0]] = toks[0]
            first = vals[0] if first is None else first
            continue
        vals = _ints(filename, lines, lineno, toks)
        if len(vals) < 3 or vals[-1] != 0 or 0 in vals[:-1]:
            raise _fail(filename, lines, lineno, 1,
                        "expected a node ('o'/'a'/'t'/'f' <id> 0) or an arc '<parent> <child> [literals] 0'")
        lits = vals[2:-1]
        max_var = max([max_var, *(abs(x) for x in lits)])
        arcs.setdefault(vals[0], []).append((vals[1], lits, lineno))
    if not kinds:
        raise NnfError(f"{filename}: error: no nodes found")
    for parent, out in arcs.items():
        for child, _, lineno in out:
            for n in (parent, child):
                if n not in kinds:
                    raise _fail(filename, lines, lineno, 1, f"node {n} is used but never declared")
    nv = max_var if num_vars is None else num_vars
    b = IRBuilder(num_vars=nv)
    root = 1 if 1 in kinds else first
    built: dict[int, int] = {}
    on_stack: set[int] = set()
    stack = [(root, False)]
    while stack:  # post-order DFS: d4 lists nodes root first
        n, expanded = stack.pop()
        if n in built:
            continue
        if not expanded:
            if n in on_stack:
                raise NnfError(f"{filename}: error: the arcs form a cycle through node {n}")
            on_stack.add(n)
            stack.append((n, True))
            stack.extend((c, False) for c, _, _ in arcs.get(n, []) if c not in built)
            continue
        on_stack.discard(n)
        k = kinds[n]
        if k == "t":
            built[n] = b.true() if not arcs.get(n) else b.conj(
                [b.conj([b.lit(x) for x in lits] + [built[c]]) for c, lits, _ in arcs[n]])
        elif k == "f":
            built[n] = b.false()
        else:
            parts = [b.conj([b.lit(x) for x in lits] + [built[c]]) for c, lits, _ in arcs.get(n, [])]
            built[n] = b.conj(parts) if k == "a" else b.disj(parts)
    return b.build([built[root]], num_atoms=num_atoms, atom_names=atom_names)
