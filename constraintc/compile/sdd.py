"""The PySDD bridge: SDD -> ``CircuitIR``, and PySDD as a compiler back end in a child process.

An SDD decision node ``{(p1, s1), ..., (pk, sk)}`` means ``(p1 & s1) | ... | (pk & sk)`` with
mutually exclusive primes over variables disjoint from the subs: an OR of decomposable ANDs,
deterministic because the primes are exclusive. That is exactly how it is converted.

PySDD's compiler cannot be interrupted once it runs, so ``compile_pysdd`` runs it in a child
process that the parent kills when the time or memory budget runs out (or on Ctrl-C); the child
conjoins the clauses one at a time and stops itself when the SDD outgrows the edge budget.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections.abc import Sequence

import numpy as np

from constraintc.budget import progress_reporter
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


def _clause_order(clauses) -> list[int]:
    """Clauses bottom-up in the balanced vtree over variables 1..n (by their last variable,
    then their span, then length), the order in which conjoining them keeps SDDs small."""
    def key(i):
        vs = [abs(x) for x in clauses[i]] or [0]
        return (max(vs), max(vs) - min(vs), len(vs), i)

    return sorted(range(len(clauses)), key=key)


def _child(conn, cnf_clauses: list, num_vars: int, vtree: str, max_elements: int | None) -> None:
    import signal

    # Ctrl-C reaches the whole process group: the parent handles it and ends this process
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # stdout is silenced: the SDD library prints as it works
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    from pysdd.sdd import SddManager, Vtree

    builder = IRBuilder(num_vars=num_vars)
    roots = []
    last = time.perf_counter()
    for index, clauses in enumerate(cnf_clauses):
        # The SDD library's own CNF compiler cannot be watched while it runs; conjoining the
        # clauses one by one (its algorithm, with its automatic garbage collection and vtree
        # minimisation) lets the size budget be checked after every clause.
        mgr = SddManager.from_vtree(Vtree(var_count=num_vars, vtree_type=vtree.encode()))
        mgr.auto_gc_and_minimize_on()
        node = mgr.true()
        order = _clause_order(clauses)
        for done, i in enumerate(order, 1):
            clause = mgr.false()
            for lit in clauses[i]:
                clause = mgr.disjoin(clause, mgr.literal(lit))
            node = mgr.conjoin(clause, node)
            del clause  # its wrapper holds a reference: dropping it lets the SDD be collected
            size = mgr.live_size()
            if max_elements is not None and size > max_elements:
                conn.send(("edges", (index, done, len(order), size)))
                conn.close()
                return
            now = time.perf_counter()
            if now - last >= 0.25:
                last = now
                conn.send(("progress", (index, done, len(order), size)))
        # node ids are per manager: one memo per manager
        roots.append(_sdd_to_builder(builder, node, {}))
        del mgr, node
    ir = builder.build(roots)
    conn.send(("done", _ir_to_arrays(ir)))
    conn.close()


def _child_memory(pid: int) -> int | None:
    """Resident bytes of a process (Linux /proc), or None where that cannot be read."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def compile_pysdd(cnfs, num_vars: int, max_seconds: float | None = None,
                  vtree: str = "balanced", progress=False, max_edges: int | None = None,
                  max_memory: int | None = None) -> tuple[CircuitIR, dict]:
    """Compile CNFs with PySDD in a child process; returns (ir without names, extra stats).

    Each CNF gets its own SDD manager; the converted circuits share one hash-consed DAG. The
    budgets hold while it runs: ``max_seconds`` (the child is killed), ``max_edges`` (checked
    by the child after every clause: an SDD of more elements than that converts to a circuit of
    more edges), ``max_memory`` (the child's resident memory, where the OS reports it); each
    raises ``BudgetExceeded``. Ctrl-C ends the child at once.
    """
    if num_vars == 0:  # the SDD library crashes on a manager without variables; nothing to do
        b = IRBuilder(num_vars=0)
        return b.build([b.true()] * len(cnfs)), {}
    # An empty clause would make the SDD library exit the process; it is unsatisfiable anyway.
    clause_lists = [[tuple(c) for c in cnf.clauses] for cnf in cnfs]
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, clause_lists, num_vars, vtree, max_edges),
                       daemon=True)
    start = time.perf_counter()
    proc.start()
    child.close()
    shown, report = progress_reporter(progress)
    state = (0, 0, sum(len(c) for c in clause_lists[:1]), 0)  # cnf, clauses done, of, SDD size
    result = None

    def where() -> str:
        index, done, total, size = state
        which = f" of CNF {index + 1} of {len(cnfs)}" if len(cnfs) > 1 else ""
        return (f"{done} of {total} clauses{which} conjoined, an SDD of {size} elements, after "
                f"{time.perf_counter() - start:.1f} s")

    try:
        while True:
            remaining = None if max_seconds is None else max_seconds - (time.perf_counter() - start)
            if remaining is not None and remaining <= 0:
                raise BudgetExceeded(
                    f"error: compile budget max_seconds={max_seconds:g} exceeded: the PySDD back end "
                    f"had {where()}; raise the budget or try backend='builtin'")
            if max_memory is not None:
                held = _child_memory(proc.pid)
                if held is not None and held > max_memory:
                    from constraintc.budget import format_bytes

                    raise BudgetExceeded(
                        f"error: compile budget max_memory={format_bytes(max_memory)} exceeded: the "
                        f"PySDD back end holds {format_bytes(held)} with {where()}; raise the budget "
                        f"or try backend='builtin'")
            wait = 0.1 if remaining is None else min(0.1, remaining)
            if parent.poll(wait):
                try:
                    tag, payload = parent.recv()
                except EOFError:
                    proc.join()
                    raise RuntimeError(
                        f"PySDD child process died (exit code {proc.exitcode}) while compiling"
                    ) from None
                if tag == "progress":
                    state = payload
                    if report is not None:
                        index, done, total, size = payload
                        report("compiling (pysdd)", f"{done} of {total} clauses, SDD of {size} "
                               f"elements", (index + done / max(total, 1)) / len(cnfs))
                elif tag == "edges":
                    state = payload
                    raise BudgetExceeded(
                        f"error: compile budget max_edges={max_edges} exceeded: the PySDD back end "
                        f"had {where()} (its circuit has at least one edge per element); raise the "
                        f"budget or try backend='builtin'")
                else:
                    result = payload
                    break
            elif not proc.is_alive() and not parent.poll():
                raise RuntimeError(
                    f"PySDD child process died (exit code {proc.exitcode}) while compiling"
                )
    finally:
        if shown is not None:
            shown.close()
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
