"""``compile_cnf``: CNF(s) -> a decomposable, deterministic circuit, with diagnostics and budgets.

Two back ends behind one interface:

- ``"builtin"``: a top-down decision-DNNF compiler (unit propagation, component decomposition,
  component caching, a race between a static connectivity order and a dynamic occurrence
  heuristic) with a C++ core built on first use (``constraintc.compile.dnnf``); it honours both
  budgets while it runs and reports progress.
- ``"pysdd"``: PySDD's bottom-up SDD compiler, run in a child process so that the time budget can
  stop it; the SDD is converted to the IR as an OR of (prime AND sub).

``"auto"`` picks the built-in compiler (faster and smaller on the measured workloads, see
``benchmarks/bench_compile.py``) and falls back to PySDD when no C++ compiler is available.

The IR guarantees: decomposable ANDs, deterministic ORs, constants folded away unless a root is
constant; NOT smooth. A variable that an OR child does not mention is free in that child, so
weighted model counts with normalized atom weights (``p`` and ``1 - p``: a free atom contributes
``p + (1 - p) = 1``) are exact without smoothing. The built-in back end forgets auxiliary (Tseitin)
variables: its circuit mentions atoms only and is a d-DNNF of the constraint projected onto the
atoms (exact because the CNF defines each auxiliary as a function of the atoms). PySDD's circuit
keeps auxiliary literals; weight 1 on both is exact there (every proof fixes every auxiliary).
Either way: evaluate with atom weights ``(p, 1 - p)`` and weight 1 for any literal beyond
``num_atoms``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from constraintc.compile.counting import model_counts
from constraintc.compile.ir import CircuitIR
from constraintc.errors import BudgetExceeded, OptionError, Unsatisfiable
from constraintc.logic.cnf import CNF

BACKENDS = ("auto", "builtin", "pysdd")


@dataclass
class Compiled:
    """A compiled constraint: ``ir`` (one root per input CNF) and ``stats`` (diagnostics).

    ``stats`` keys: ``variables``, ``atoms``, ``clauses``, ``nodes``, ``edges``, ``model_count``
    (an int for one CNF, a list for several), ``model_counts`` (always a list, one per root),
    ``compile_seconds``, ``backend``; the built-in back end adds ``decisions``, ``cache_hits``
    and ``heuristic`` (the variable order that won).
    """

    ir: CircuitIR
    stats: dict = field(default_factory=dict)


def _check_options(backend, max_seconds, max_edges, max_memory=None) -> None:
    if backend not in BACKENDS:
        raise OptionError("backend", backend, "one of " + ", ".join(BACKENDS))
    if max_seconds is not None and not (isinstance(max_seconds, (int, float)) and max_seconds > 0):
        raise OptionError("max_seconds", max_seconds, "a positive number of seconds (or None)")
    if max_edges is not None and not (isinstance(max_edges, int) and max_edges > 0):
        raise OptionError("max_edges", max_edges, "a positive integer (or None)")
    if max_memory is not None and not (isinstance(max_memory, int) and max_memory > 0):
        raise OptionError("max_memory", max_memory, "a positive number of bytes (or None)")


def _resolve_backend(backend: str) -> str:
    if backend != "auto":
        return backend
    try:
        from constraintc.compile import dnnf
    except ImportError:
        return "pysdd"
    return "builtin" if dnnf.available() else "pysdd"


def compile_cnf(
    cnf: CNF | list[CNF],
    backend: str = "auto",
    max_seconds: float | None = None,
    max_edges: int | None = None,
    progress=False,
    max_memory: int | None = None,
    budget=None,
) -> Compiled:
    """Compile one CNF (or several sharing one DAG, one root each) into a circuit IR.

    Atoms are the CNF variables ``1..num_atoms``; all CNFs of a list must agree on ``num_atoms``.
    Raises ``Unsatisfiable`` when a CNF has no model and ``BudgetExceeded`` when ``max_seconds``,
    ``max_edges`` or ``max_memory`` (bytes the compiler holds, estimated) runs out; both back
    ends check them while they run. A :class:`~constraintc.budget.Budget` (``budget``) gives
    what is left of a whole pipeline's time and memory, and its progress display. Ctrl-C stops
    either back end within about a second.

    >>> from constraintc.logic.cnf import CNF
    >>> out = compile_cnf([CNF(2, [(1, 2)]), CNF(2, [(-1,), (2,)])])
    >>> out.stats["model_counts"], out.ir.roots.shape
    ([3, 1], (2,))
    """
    _check_options(backend, max_seconds, max_edges, max_memory)
    if budget is not None:
        left = budget.seconds_left()
        max_seconds = left if max_seconds is None or left is not None and left < max_seconds else max_seconds
        room = budget.memory_left()
        max_memory = room if max_memory is None or room is not None and room < max_memory else max_memory
        if progress is False and budget.progress is not None:
            progress = budget.progress.update
    single = isinstance(cnf, CNF)
    cnfs = [cnf] if single else list(cnf)
    if not cnfs or not all(isinstance(c, CNF) for c in cnfs):
        raise TypeError("compile_cnf takes a CNF or a non-empty list of CNFs")
    num_atoms = cnfs[0].num_atoms
    if any(c.num_atoms != num_atoms for c in cnfs):
        raise ValueError(
            "all CNFs compiled together must have the same atoms; num_atoms differ: "
            + ", ".join(str(c.num_atoms) for c in cnfs)
        )
    num_vars = max(c.num_vars for c in cnfs)
    chosen = _resolve_backend(backend)
    start = time.perf_counter()
    extra: dict = {}
    unsat = [i for i, c in enumerate(cnfs) if any(len(cl) == 0 for cl in c.clauses)]
    if unsat:
        _raise_unsat(cnfs, unsat[0], single, "it contains an empty clause")
    if chosen == "pysdd":
        from constraintc.compile.sdd import compile_pysdd

        raw, extra = compile_pysdd(cnfs, num_vars, max_seconds=max_seconds, progress=progress,
                                   max_edges=max_edges, max_memory=max_memory)
        if max_edges is not None and raw.num_edges > max_edges:
            raise BudgetExceeded(
                f"error: compile budget max_edges={max_edges} exceeded: the PySDD result has "
                f"{raw.num_edges} edges ({raw.num_nodes} nodes) after "
                f"{time.perf_counter() - start:.1f} s; raise the budget"
            )
    else:
        from constraintc.compile.dnnf import compile_builtin

        raw, extra = compile_builtin(cnfs, num_vars, max_seconds=max_seconds,
                                     max_edges=max_edges, progress=progress, max_memory=max_memory)
    seconds = time.perf_counter() - start
    ir = CircuitIR(
        num_vars=num_vars, num_atoms=num_atoms, kinds=raw.kinds, lits=raw.lits,
        child_ptr=raw.child_ptr, children=raw.children, roots=raw.roots,
        root_names=[f"root{i}" for i in range(len(cnfs))],
        atom_names=cnfs[0].atom_names,
    )
    counts = model_counts(ir)
    for i, c in enumerate(counts):
        if c == 0:
            _raise_unsat(cnfs, i, single, "every assignment violates some clause")
    stats = {
        "variables": num_vars,
        "atoms": num_atoms,
        "clauses": sum(len(c.clauses) for c in cnfs),
        "nodes": ir.num_nodes,
        "edges": ir.num_edges,
        "model_count": counts[0] if single else counts,
        "model_counts": counts,
        "compile_seconds": seconds,
        "backend": chosen,
        **extra,
    }
    return Compiled(ir=ir, stats=stats)


def _raise_unsat(cnfs: list[CNF], index: int, single: bool, why: str) -> None:
    c = cnfs[index]
    which = "the constraint" if single else f"constraint {index} (root{index})"
    raise Unsatisfiable(
        f"error: {which} is unsatisfiable ({c.num_vars} variables, {len(c.clauses)} clauses): "
        f"{why}; its semantic loss would be infinite. Check the rules (or the evidence) for a "
        "contradiction."
    )


__all__ = ["Compiled", "compile_cnf", "BACKENDS"]
