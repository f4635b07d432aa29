"""The built-in back end: a top-down decision-DNNF compiler with a C++ core.

The core (``dnnf_core.cpp`` beside this file) is built with the system C++ compiler on first use
and cached per user by :mod:`constraintc.native` (checked before every load), keyed by a hash of
its source, so no build step is needed at install time and torch never becomes a build requirement.
``available()`` says whether it could be built; ``compile_cnf(backend="auto")`` uses PySDD when not.

>>> from constraintc.logic.cnf import CNF
>>> ir, stats = compile_builtin([CNF(3, [(1, 2), (-2, 3)])], num_vars=3)
>>> from constraintc.compile.counting import model_count
>>> model_count(ir), stats["decisions"] >= 1
(4, True)
"""

from __future__ import annotations

import ctypes
import threading
import time
from pathlib import Path

import numpy as np

from constraintc.budget import progress_reporter
from constraintc.compile.ir import CircuitIR
from constraintc.errors import BudgetExceeded, ConstraintcError

_SOURCE = Path(__file__).with_name("dnnf_core.cpp")
_FLAGS = ["-O2", "-std=c++17", "-shared", "-fPIC", "-pthread"]
_LIB = None
_BUILD_ERROR: str | None = None

# Variable-ordering heuristics of the core. dynamic: most occurrences in the component's open
# clauses (short clauses count more); static: lowest variable index; priority: lowest value of a
# given ``priority`` list; connectivity: a static maximum-connectivity order (see dnnf_core.cpp).
# Ties are broken by the priority list (by default the variable index).
HEURISTICS = {"dynamic": 0, "static": 1, "priority": 2, "connectivity": 3}

# dnnf_compile's statuses beyond 0 (see dnnf_core.cpp)
STATUS_TIME, STATUS_EDGES, STATUS_MEMORY, STATUS_INTERRUPTED = 2, 3, 6, 7

_PROGRESS = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_double, ctypes.c_int64, ctypes.c_int64,
                             ctypes.c_int64)


class CompilerUnavailable(ConstraintcError):
    """The C++ core of the built-in compiler could not be built (no C++ compiler?)."""


ABI = 2  # dnnf_abi() in dnnf_core.cpp


def native_library():
    """The core as a :class:`constraintc.native.NativeLibrary` (source, flags, ABI)."""
    from constraintc.native import NativeLibrary

    return NativeLibrary("libdnnf_core", _SOURCE, (tuple(_FLAGS),), abi_symbol="dnnf_abi", abi=ABI)


def _load():
    global _LIB, _BUILD_ERROR
    if _LIB is not None:
        return _LIB
    if _BUILD_ERROR is not None:
        raise CompilerUnavailable(_BUILD_ERROR)
    from constraintc.native import NativeBuildError, load_library

    try:
        lib = load_library(native_library())
    except NativeBuildError as exc:
        _BUILD_ERROR = (f"{exc}\nbackend='builtin' needs a C++ compiler (g++ or clang++) to build its "
                        "core on first use; install one or use backend='pysdd'.")
        raise CompilerUnavailable(_BUILD_ERROR) from None
    P = ctypes.c_void_p
    lib.dnnf_new.restype = P
    lib.dnnf_free.argtypes = [P]
    lib.dnnf_compile.restype = ctypes.c_int
    lib.dnnf_compile.argtypes = [P, ctypes.c_int, ctypes.c_int, ctypes.c_int, P, P, ctypes.c_int,
                                 ctypes.c_double, ctypes.c_int64,
                                 ctypes.c_int64, ctypes.c_int64, _PROGRESS, ctypes.c_double, P]
    lib.dnnf_interrupt.argtypes = [P]
    lib.dnnf_stats.argtypes = [P, P]
    lib.dnnf_set_priority.argtypes = [P, ctypes.c_int, P]
    lib.dnnf_finalize.argtypes = [P, P, ctypes.c_int, P]
    lib.dnnf_export.argtypes = [P, P, P, P, P, P]
    _LIB = lib
    return lib


def available() -> bool:
    """True when the C++ core is built (or can be built now)."""
    try:
        _load()
        return True
    except CompilerUnavailable:
        return False


def _ptr(a: np.ndarray) -> ctypes.c_void_p:
    return ctypes.c_void_p(a.ctypes.data)


class _Stopped(Exception):
    def __init__(self, status: int, stats: np.ndarray, index: int):
        self.status, self.stats, self.index = status, stats.copy(), index


def _flatten(cnf) -> tuple[np.ndarray, np.ndarray]:
    lens = np.fromiter((len(c) for c in cnf.clauses), dtype=np.int64, count=len(cnf.clauses))
    cptr = np.zeros(len(lens) + 1, dtype=np.int64)
    np.cumsum(lens, out=cptr[1:])
    flat = np.fromiter((x for c in cnf.clauses for x in c), dtype=np.int32, count=int(cptr[-1]))
    return flat, cptr


def _call_interruptibly(lib, handle, call):
    """Run ``call()`` (a ctypes call into the core, which releases the GIL) on a worker thread
    while this thread waits: Ctrl-C then raises here at once, asks the core to stop
    (``dnnf_interrupt``: it polls at every search step) and re-raises once it has stopped, so
    that the handle is never freed under a running search. (An event, not ``Thread.join``:
    a join interrupted by Ctrl-C may later return while the thread still runs.)"""
    result: list = []
    finished = threading.Event()

    def work():
        try:
            result.append(call())
        finally:
            finished.set()

    worker = threading.Thread(target=work, name="constraintc-dnnf", daemon=True)
    worker.start()
    try:
        while not finished.wait(0.05):
            pass
    except KeyboardInterrupt:
        lib.dnnf_interrupt(handle)
        while not finished.is_set():
            try:
                finished.wait(0.05)
            except KeyboardInterrupt:  # a second Ctrl-C: the core is already stopping
                pass
        raise
    if not result:  # pragma: no cover - a ctypes call raises only on misuse
        raise RuntimeError("the compiler core failed without a status")
    return result[0]


def _attempt(lib, cnfs, num_vars, heuristic, deadline, edge_cap, report, priority=None,
             decision_cap=None, max_memory=None):
    """One compilation of every CNF with one heuristic; raises ``_Stopped`` on a budget."""
    handle = lib.dnnf_new()
    stats_buf = np.zeros(6, dtype=np.float64)
    base = [0.0]

    def on_progress(done, nodes, edges, decisions):
        if report is not None:
            try:
                report(f"compiling ({heuristic})", f"{nodes:,} nodes, {edges:,} edges, "
                       f"{decisions:,} decisions", (base[0] + done) / len(cnfs))
            except Exception:  # progress output must never stop the compiler
                pass
        return 0

    callback = _PROGRESS(on_progress)
    totals = {"decisions": 0, "cache_hits": 0}
    try:
        if priority is not None:
            prio = np.zeros(num_vars + 1, dtype=np.int32)
            prio[1:] = np.asarray(priority, dtype=np.int32)
            lib.dnnf_set_priority(handle, num_vars, _ptr(prio))
        roots = []
        for i, cnf in enumerate(cnfs):
            base[0] = i
            flat, cptr = _flatten(cnf)
            root = np.zeros(1, dtype=np.int32)
            left = -1.0 if deadline is None else max(1e-6, deadline - time.perf_counter())
            status = _call_interruptibly(lib, handle, lambda: lib.dnnf_compile(
                handle, num_vars, cnf.num_atoms, len(cnf.clauses), _ptr(flat), _ptr(cptr),
                HEURISTICS[heuristic], left, -1 if edge_cap is None else edge_cap,
                -1 if decision_cap is None else decision_cap,
                -1 if max_memory is None else max_memory, callback, 0.25, _ptr(root)))
            lib.dnnf_stats(handle, _ptr(stats_buf))
            totals["decisions"] += int(stats_buf[3])
            totals["cache_hits"] += int(stats_buf[4])
            if status == STATUS_INTERRUPTED:  # pragma: no cover - only an interrupt sets it
                raise KeyboardInterrupt
            if status != 0:
                raise _Stopped(status, stats_buf, i)
            roots.append(int(root[0]))
        roots_arr = np.asarray(roots, dtype=np.int32)
        sizes = np.zeros(2, dtype=np.int64)
        lib.dnnf_finalize(handle, _ptr(roots_arr), len(roots), _ptr(sizes))
        n, e = int(sizes[0]), int(sizes[1])
        kinds = np.empty(n, dtype=np.int8)
        lits = np.empty(n, dtype=np.int32)
        ptr = np.empty(n + 1, dtype=np.int64)
        kids = np.empty(e, dtype=np.int32)
        out_roots = np.empty(len(roots), dtype=np.int32)
        lib.dnnf_export(handle, _ptr(kinds), _ptr(lits), _ptr(ptr), _ptr(kids), _ptr(out_roots))
    finally:
        lib.dnnf_free(handle)
    ir = CircuitIR(num_vars=num_vars, num_atoms=num_vars, kinds=kinds, lits=lits, child_ptr=ptr,
                   children=kids, roots=out_roots)
    return ir, totals


# "auto" races these heuristics: round robin under an edge cap that grows 4x per round, so the
# one that finishes first costs at most about twice its own run; the others then get one more
# run each unless their last run extrapolates to a larger circuit, stopped as soon as they reach
# the winner's size or twice its decisions. Measured
# (benchmarks/bench_compile.py): connectivity is 3x smaller on the transitivity constraint,
# dynamic 1.5-3x smaller on random 3-CNFs.
PORTFOLIO = ("connectivity", "dynamic")
FIRST_CAP = 65_536


def compile_builtin(cnfs, num_vars: int, max_seconds: float | None = None,
                    max_edges: int | None = None, progress=False,
                    heuristic: str = "auto", priority=None,
                    max_memory: int | None = None) -> tuple[CircuitIR, dict]:
    """Compile CNFs into one shared decision-DNNF; returns (ir without names, extra stats).

    ``heuristic``: ``"auto"`` (race the ``PORTFOLIO`` heuristics, keep the smallest circuit) or
    one of ``HEURISTICS``. Raises ``BudgetExceeded`` naming the budget (``max_seconds``,
    ``max_edges``, ``max_memory``: bytes the core's tables hold, estimated), the time spent and
    the estimated fraction of the search space covered; Ctrl-C stops the core within a step of
    its search. ``progress``: True (a :class:`~constraintc.budget.Progress` on stderr) or a
    ``report(phase, detail, fraction)`` callable. An unsatisfiable root is the FALSE node (the
    caller raises ``Unsatisfiable``).
    """
    lib = _load()
    if heuristic != "auto" and heuristic not in HEURISTICS:
        raise ValueError(f"unknown heuristic {heuristic!r}; expected auto or one of {list(HEURISTICS)}")
    start = time.perf_counter()
    deadline = None if max_seconds is None else start + max_seconds
    pending = list(PORTFOLIO if heuristic == "auto" else (heuristic,))
    shown, report = progress_reporter(progress)
    best = None  # (ir, stats)
    failure = None  # the user's budget stopped this attempt: reported when nothing finishes
    predicted: dict[str, float] = {}  # edges a stopped heuristic would need: edges / fraction done

    def run(h, cap, limit, decision_cap):
        nonlocal best, failure
        try:
            ir, totals = _attempt(lib, cnfs, num_vars, h, limit, cap, report, priority, decision_cap,
                                  max_memory)
        except _Stopped as stop:
            done = stop.stats[0] / len(cnfs) if stop.index == len(cnfs) - 1 else 0.0
            if done > 0:
                predicted[h] = stop.stats[2] / done
            user_time = stop.status in (STATUS_TIME, STATUS_MEMORY)  # no other attempt can do better
            user_edges = stop.status == STATUS_EDGES and max_edges is not None and cap == max_edges
            if user_time or user_edges:
                if failure is None or stop.stats[0] > failure.stats[0]:
                    failure = stop
            return "time" if user_time else ("edges" if user_edges else "cap")
        if best is None or ir.num_edges < best[0].num_edges:
            best = (ir, {**totals, "heuristic": h})
        return "done"

    try:
        # The race is deterministic: its caps count edges and decisions, not seconds (only the
        # user's max_seconds is a clock), so the same CNF always gives the same circuit.
        cap = FIRST_CAP if len(pending) > 1 else None
        while pending and best is None:
            for h in list(pending):
                edge_cap = max_edges if cap is None else (cap if max_edges is None else min(cap, max_edges))
                outcome = run(h, edge_cap, deadline, cap)
                if outcome == "time":
                    pending = []
                    break
                if outcome in ("done", "edges"):
                    pending.remove(h)
                if outcome == "done":
                    break
            cap = None if cap is None else cap * 4
        if best is not None:
            for h in pending:
                if predicted.get(h, 0.0) >= best[0].num_edges:
                    continue  # its last run extrapolates to a larger circuit (a rough guess)
                edge_cap = best[0].num_edges if max_edges is None else min(max_edges, best[0].num_edges)
                run(h, edge_cap, deadline, 2 * best[1]["decisions"] + 1024)
    finally:
        if shown is not None:
            shown.close()
    if best is None:
        _raise_budget(failure.status, max_seconds, max_edges, failure.index, len(cnfs),
                      failure.stats, time.perf_counter() - start, max_memory)
    return best[0], best[1]


def _raise_budget(status, max_seconds, max_edges, index, total, stats, seconds,
                  max_memory=None) -> None:
    where = f" (CNF {index + 1} of {total})" if total > 1 else ""
    progress = (f"{stats[0] * 100:.1f}% of the search space covered{where}, {int(stats[1])} nodes, "
                f"{int(stats[2])} edges, {int(stats[3])} decisions, after {seconds:.1f} s")
    if status == STATUS_TIME:
        raise BudgetExceeded(f"error: compile budget max_seconds={max_seconds:g} exceeded: "
                             f"{progress}; raise the budget or simplify the constraint")
    if status == STATUS_MEMORY:
        from constraintc.budget import format_bytes

        raise BudgetExceeded(f"error: compile budget max_memory={format_bytes(max_memory)} exceeded "
                             f"(the compiler's tables, estimated): {progress}; raise the budget or "
                             f"simplify the constraint")
    raise BudgetExceeded(f"error: compile budget max_edges={max_edges} exceeded: "
                         f"{progress}; raise the budget or simplify the constraint")
