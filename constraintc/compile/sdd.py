"""The PySDD bridge: SDD -> ``CircuitIR``, and PySDD as a compiler back end in a child process.

An SDD decision node ``{(p1, s1), ..., (pk, sk)}`` means ``(p1 & s1) | ... | (pk & sk)`` with
mutually exclusive primes over variables disjoint from the subs: an OR of decomposable ANDs,
deterministic because the primes are exclusive. That is exactly how it is converted.

PySDD's compiler cannot be interrupted once it runs, so ``compile_pysdd`` runs it in a child
process that the parent kills when the time budget runs out.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections.abc import Sequence

import numpy as np

from constraintc.compile.ir import CircuitIR, IRBuilder
from constraintc.errors import BudgetExceeded


def _sdd_to_builder(builder: IRBuilder, node, memo: dict[int, int]) -> int:
    """Add the SDD rooted at ``node`` to ``builder`` (iteratively: SDDs can be deep)."""
    stack = [(node, False)]
    while stack:
        cur, expanded = stack.pop()
        key = cur.id
        if key in memo:
            continue
        if cur.is_true():
            memo[key] = builder.true()
        elif cur.is_false():
            memo[key] = builder.false()
        elif cur.is_literal():
            memo[key] = builder.lit(int(cur.literal))
        elif not expanded:
            stack.append((cur, True))
            for prime, sub in cur.elements():
                if prime.id not in memo:
                    stack.append((prime, False))
                if sub.id not in memo:
                    stack.append((sub, False))
        else:
            ands = [builder.conj([memo[p.id], memo[s.id]]) for p, s in cur.elements()]
            memo[key] = builder.disj(ands)
    return memo[node.id]


def from_pysdd(
    manager,
    nodes,
    num_atoms: int | None = None,
    atom_names: Sequence[str] | None = None,
    root_names: Sequence[str] | None = None,
    num_vars: int | None = None,
) -> CircuitIR:
    """Convert PySDD node(s) of ``manager`` into one ``CircuitIR`` (one root per node, shared DAG).

    ``num_vars`` defaults to the manager's variable count and ``num_atoms`` to ``num_vars``.

    >>> from pysdd.sdd import SddManager
    >>> mgr = SddManager(var_count=2)
    >>> a, b = mgr.literal(1), mgr.literal(2)
    >>> ir = from_pysdd(mgr, a | b)
    >>> from constraintc.compile import model_count
    >>> model_count(ir)
    3
    """
    single = not isinstance(nodes, (list, tuple))
    roots_in = [nodes] if single else list(nodes)
    num_vars = int(manager.var_count()) if num_vars is None else num_vars
    builder = IRBuilder(num_vars=num_vars)
    memo: dict[int, int] = {}
    roots = [_sdd_to_builder(builder, r, memo) for r in roots_in]
    return builder.build(roots, num_atoms=num_atoms, atom_names=atom_names, root_names=root_names)


def _ir_to_arrays(ir: CircuitIR) -> dict:
    return {
        "kinds": ir.kinds, "lits": ir.lits, "child_ptr": ir.child_ptr,
        "children": ir.children, "roots": ir.roots,
    }


def _child(conn, dimacs_texts: list[str], num_vars: int, vtree: str) -> None:
    # stdout is silenced: the SDD library prints "Read CNF: ..." for every file.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    from pysdd.sdd import SddManager

    builder = IRBuilder(num_vars=num_vars)
    roots = []
    for text in dimacs_texts:
        mgr, node = SddManager.from_cnf_string(text, vtree.encode())
        # node ids are per manager: one memo per manager
        roots.append(_sdd_to_builder(builder, node, {}))
        del mgr, node
        conn.send(("progress", len(roots)))
    ir = builder.build(roots)
    conn.send(("done", _ir_to_arrays(ir)))
    conn.close()


def _plain_dimacs(num_vars: int, clauses) -> str:
    lines = [f"p cnf {num_vars} {len(clauses)}"]
    lines += [" ".join(map(str, c)) + " 0" for c in clauses]
    return "\n".join(lines) + "\n"


def compile_pysdd(cnfs, num_vars: int, max_seconds: float | None = None,
                  vtree: str = "balanced", progress: bool = False) -> tuple[CircuitIR, dict]:
    """Compile CNFs with PySDD in a child process; returns (ir without names, extra stats).

    Each CNF gets its own SDD manager (as ``SddManager.from_cnf_string`` does); the converted
    circuits share one hash-consed DAG. Raises ``BudgetExceeded`` when ``max_seconds`` runs out.
    """
    if num_vars == 0:  # the SDD library crashes on a manager without variables; nothing to do
        b = IRBuilder(num_vars=0)
        return b.build([b.true()] * len(cnfs)), {}
    texts = []
    for cnf in cnfs:
        # An empty clause would make the SDD library exit the process; it is unsatisfiable anyway.
        texts.append(_plain_dimacs(num_vars, cnf.clauses))
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, texts, num_vars, vtree), daemon=True)
    start = time.perf_counter()
    proc.start()
    child.close()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(texts), desc="pysdd", unit="cnf", file=None, leave=False)
    done_cnfs = 0
    result = None
    try:
        while True:
            remaining = None if max_seconds is None else max_seconds - (time.perf_counter() - start)
            if remaining is not None and remaining <= 0:
                raise BudgetExceeded(
                    f"error: compile budget max_seconds={max_seconds:g} exceeded: the PySDD back end "
                    f"had compiled {done_cnfs} of {len(texts)} CNF(s) after "
                    f"{time.perf_counter() - start:.1f} s (PySDD cannot report finer progress); "
                    "raise the budget or try backend='builtin'"
                )
            wait = 0.2 if remaining is None else min(0.2, remaining)
            if parent.poll(wait):
                try:
                    tag, payload = parent.recv()
                except EOFError:
                    proc.join()
                    raise RuntimeError(
                        f"PySDD child process died (exit code {proc.exitcode}) while compiling"
                    ) from None
                if tag == "progress":
                    done_cnfs = payload
                    if bar is not None:
                        bar.update(1)
                else:
                    result = payload
                    break
            elif not proc.is_alive() and not parent.poll():
                raise RuntimeError(
                    f"PySDD child process died (exit code {proc.exitcode}) while compiling"
                )
    finally:
        if bar is not None:
            bar.close()
        if proc.is_alive():
            proc.kill()
        proc.join()
        parent.close()
    ir = CircuitIR(
        num_vars=num_vars, num_atoms=num_vars,
        kinds=np.asarray(result["kinds"]), lits=np.asarray(result["lits"]),
        child_ptr=np.asarray(result["child_ptr"]), children=np.asarray(result["children"]),
        roots=np.asarray(result["roots"]),
    )
    return ir, {}
