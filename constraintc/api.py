"""The Python API behind ``constraintc compile``: rules or DIMACS in, a cached ``Circuit`` out.

>>> from constraintc.api import compile_rules
>>> circuit = compile_rules("transitivity", nodes=3)          # doctest: +SKIP
>>> circuit.atoms[:2], circuit.model_count()                  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import hashlib
import os
import time
from pathlib import Path

from constraintc.errors import OptionError, Unsatisfiable

CNF_SUFFIXES = (".cnf", ".dimacs")


def _compile_and_wrap(cnf, meta: dict, backend: str, budget, max_edges, root_name: str):
    from constraintc.circuit import Circuit
    from constraintc.compile import compile_cnf

    try:
        compiled = compile_cnf(cnf, backend=backend, max_edges=max_edges, budget=budget)
    finally:
        budget.done()
    ir = compiled.ir
    ir.root_names[:] = [root_name]
    stats = {k: v for k, v in compiled.stats.items() if k != "model_counts"}
    meta = dict(meta, stats=stats)
    circuit = Circuit.from_ir(ir, meta=meta)
    circuit._model_counts[0] = int(compiled.stats["model_count"])
    return circuit


@functools.lru_cache(maxsize=1)
def toolchain_hash() -> str:
    """A digest of the code that turns input into a circuit (grammar, grounding, compiler).

    It is part of every cache key, so a cached circuit is never one that an older compiler built.
    """
    import constraintc
    from constraintc import resources

    root = Path(constraintc.__file__).parent
    files = [resources.grammar_path()]
    for stage in ("language", "logic", "compile"):
        files += sorted((root / stage).glob("*.py")) + sorted((root / stage).glob("*.cpp"))
    digest = hashlib.sha256(constraintc.__version__.encode())
    for f in files:
        digest.update(f.name.encode() + b"\0" + f.read_bytes())
    return digest.hexdigest()


def _warn(message: str) -> None:
    import sys

    print(f"constraintc: warning: {message}", file=sys.stderr, flush=True)


def _cached(key: str, cache: bool):
    """The cache entry of ``key`` when it is ours, intact and really compiled under ``key``;
    else None (the caller recompiles and overwrites it), with a warning saying why."""
    from constraintc.circuit import Circuit
    from constraintc.circuit.artifact import ArtifactError, cached_path, load_artifact, trusted_cache_file

    path = cached_path(key)
    if not cache or not os.path.lexists(path):
        return None
    why = trusted_cache_file(path)
    if why is not None:
        _warn(f"cache entry {path} not used ({why}); recompiling")
        return None
    try:
        ir, meta = load_artifact(path, expected_key=key)
    except ArtifactError as exc:
        _warn(f"cache entry refused, recompiling: {str(exc).removeprefix('error: ')}")
        return None
    circuit = Circuit(ir, meta=meta)
    circuit.meta["cache"] = {"hit": True, "path": str(path)}
    return circuit


def _store(circuit, key: str, cache: bool):
    from constraintc.circuit.artifact import cached_path, trusted_cache_file
    from constraintc.native import make_private_dir

    circuit.meta["cache_key"] = key
    if cache:
        path = cached_path(key)
        try:
            make_private_dir(path.parent)
            if os.path.lexists(path) and trusted_cache_file(path) is not None:
                os.unlink(path)  # a foreign or loose entry: replaced by a file of ours
            circuit.save(path)
        except OSError as exc:
            _warn(f"could not write the cache entry {path} ({exc.strerror}); the circuit is compiled but not cached")
            return circuit
        circuit.meta["cache"] = {"hit": False, "path": str(path)}
    return circuit


def _budget(max_seconds, max_memory, max_clauses, progress):
    from constraintc.budget import Budget, Progress

    if isinstance(progress, Progress):
        shown = progress
    else:
        shown = Progress() if progress else None
    if max_memory == "default":
        return Budget(max_seconds=max_seconds, max_clauses=max_clauses, progress=shown)
    return Budget(max_seconds=max_seconds, max_memory=max_memory, max_clauses=max_clauses,
                  progress=shown)


def compile_rules(source, nodes, graph=None, params=None, backend: str = "auto", cache: bool = True,
                  max_seconds: float | None = None, max_edges: int | None = None,
                  progress=False, max_memory="default", max_clauses: int | None = None,
                  budget=None):
    """Ground a ``.rules`` file (path or library name) over ``nodes`` (and optionally a graph),
    compile it, and return a :class:`~constraintc.circuit.Circuit` with one root.

    Results are cached by a content hash of the rules text, nodes, graph, params and back end
    (``$CONSTRAINTC_CACHE``, default ``~/.cache/constraintc``); ``cache=False`` recompiles.

    The budgets cover the whole pipeline: ``max_seconds`` counts from this call (grounding and
    compiling), ``max_memory`` (bytes, estimated; default 4 GiB or half the machine's memory,
    ``None`` for no limit) and ``max_clauses`` bound the grounding, ``max_edges`` the circuit;
    each is checked before and while the work runs, and ``BudgetExceeded`` says which ran out.
    ``progress=True`` reports long work on stderr. A :class:`~constraintc.budget.Budget`
    (``budget``) replaces those four arguments (its clock may have started earlier).

    >>> c = compile_rules("transitivity", nodes=3, cache=False)   # doctest: +SKIP
    >>> c.num_atoms                                               # doctest: +SKIP
    12
    """
    from constraintc.circuit.artifact import content_key
    from constraintc.logic import load_rules
    from constraintc.language.library import resolve_rules_path

    from constraintc.logic.evidence import normalize_graph

    budget = budget or _budget(max_seconds, max_memory, max_clauses, progress)
    path = resolve_rules_path(source)
    text = Path(path).read_bytes()
    graph = None if graph is None else normalize_graph(graph)
    graph_key = None if graph is None else [list(map(str, e)) for e in graph]
    from constraintc.logic.evidence import node_names

    if not isinstance(nodes, int) or isinstance(nodes, bool):
        nodes = node_names(nodes)  # checked and normalised before anything is looked up
    nodes_key = nodes
    key = content_key("rules", text, nodes_key, graph_key, dict(params or {}), backend,
                      toolchain_hash())
    hit = _cached(key, cache)
    if hit is not None:
        return hit
    from constraintc.logic import ground

    start = time.perf_counter()
    program = load_rules(source, params=params)
    try:
        grounding = ground(program, nodes, graph=graph, budget=budget)
    except BaseException:
        budget.done()
        raise
    ground_seconds = time.perf_counter() - start
    budget.held = grounding.stats["memory_estimate"]
    meta = {
        "source": str(source),
        "source_path": str(path),
        "source_hash": content_key(text),
        "kind": "rules",
        "nodes": list(grounding.nodes),
        "graph": None if graph is None else [list(e) for e in graph],
        "params": dict(program.params),
        "query_atoms": grounding.query_atoms,
        "given_atoms": grounding.given_atoms,
        "rules": list(program.rules),
        "ground_seconds": ground_seconds,
    }
    try:
        circuit = _compile_and_wrap(grounding.cnf, meta, backend, budget, max_edges,
                                    root_name=Path(str(path)).stem)
    except Unsatisfiable as err:
        from constraintc.logic.evidence import cycle_text, find_cycle

        cycle = None if graph is None else find_cycle(graph)
        if cycle is None:
            raise
        raise Unsatisfiable(f"{err}\nnote: the graph has the cycle {cycle_text(cycle)}; these rules "
                            f"may hold only on graphs without cycles (declare 'given acyclic' to "
                            f"have such graphs refused with that reason)") from None
    return _store(circuit, key, cache)


def compile_file(path, nodes=None, graph=None, params=None, backend: str = "auto",
                 cache: bool = True, max_seconds: float | None = None, max_edges: int | None = None,
                 progress=False, max_memory="default", max_clauses: int | None = None,
                 budget=None):
    """Compile a DIMACS ``.cnf`` file or a ``.rules`` file (or library name) into a ``Circuit``.

    A ``.cnf`` file keeps its variable order as the atom order (``c atoms K`` marks the first K
    variables as atoms, the rest auxiliary); ``nodes``/``graph``/``params`` apply to rules only.

    >>> import tempfile, os
    >>> d = tempfile.mkdtemp(); f = os.path.join(d, "or.cnf")
    >>> _ = open(f, "w").write("p cnf 2 1\\n1 2 0\\n")
    >>> compile_file(f, cache=False).model_count()
    3
    """
    p = Path(str(path))
    if p.suffix.lower() in CNF_SUFFIXES:
        if nodes is not None or graph is not None or params:
            raise OptionError("--nodes/--graph/--param", str(path), "no grounding options for a .cnf input")
        from constraintc.circuit.artifact import content_key
        from constraintc.logic.cnf import CNF

        if not p.is_file():
            raise OptionError("INPUT", str(path), "an existing .cnf file")
        text = p.read_bytes()
        key = content_key("cnf", text, backend, toolchain_hash())
        hit = _cached(key, cache)
        if hit is not None:
            return hit
        cnf = CNF.read(p)
        budget = budget or _budget(max_seconds, max_memory, max_clauses, progress)
        budget.check_clauses(len(cnf.clauses), f"reading {path}")
        meta = {"source": str(path), "source_hash": content_key(text), "kind": "cnf"}
        circuit = _compile_and_wrap(cnf, meta, backend, budget, max_edges, root_name=p.stem)
        return _store(circuit, key, cache)
    if nodes is None:
        if graph is None:
            raise OptionError("--nodes", None, "a number of nodes or names a,b,c to ground the rules over "
                                               "(or give --graph)")
        from constraintc.logic.evidence import normalize_graph

        graph = normalize_graph(graph)
        nodes = list(dict.fromkeys(x for edge in graph for x in edge))
    return compile_rules(path, nodes, graph=graph, params=params, backend=backend, cache=cache,
                         max_seconds=max_seconds, max_edges=max_edges, progress=progress,
                         max_memory=max_memory, max_clauses=max_clauses, budget=budget)


# Graphs of this many nodes are probed for given atoms that the rules force.
PROBE_NODES = 3


def rule_warnings(program, nodes: int = PROBE_NODES, max_seconds: float = 5.0) -> list[str]:
    """Warnings about what the rules allow on ``nodes`` nodes: no model at all (whatever the
    graph), or atoms of a given predicate forced on every graph (the rules then hold on no graph
    with that edge, or only on graphs with it), in particular no graph with any edge. An empty
    list when nothing is wrong, or when the probe does not fit a small budget (it then says
    nothing).

    >>> from constraintc.language import parse_rules
    >>> prog = parse_rules("given e(X: node, Y: node) where X != Y\\nquery q(X: node)\\n"
    ...                    "rule none: forall X, Y: ~e(X, Y) & (q(X) | ~q(X))")
    >>> print(rule_warnings(prog)[0])                               # doctest: +ELLIPSIS
    <string>:1:7: warning: no graph with an e satisfies the rules: on 3 nodes each of the 6 e(...) atoms ...
    """
    from constraintc.budget import Budget
    from constraintc.compile import compile_cnf
    from constraintc.compile.counting import forced_atoms
    from constraintc.errors import BudgetExceeded, SourcePosition, Unsatisfiable
    from constraintc.logic import ground

    if not program.rules:
        return []
    budget = Budget(max_seconds=max_seconds, max_memory=256 * 2**20)
    try:
        grounding = ground(program, nodes, budget=budget)
        compiled = compile_cnf(grounding.cnf, budget=budget, max_edges=2_000_000)
    except BudgetExceeded:
        return []
    except Unsatisfiable:
        return [f"{program.filename}: warning: the rules have no model on {nodes} nodes, whatever "
                f"the graph: their semantic loss is infinite and compiling them fails"]
    given = {i + 1: a for i, a in enumerate(grounding.atom_info) if a.kind == "given"}
    forced = forced_atoms(compiled.ir, list(given))
    warnings = []
    for name, pred in program.givens.items():
        atoms = [(str(a), forced[v]) for v, a in given.items() if a.pred == name]
        if not atoms:
            continue
        pos = SourcePosition(program.filename, pred.span.line, pred.span.column)
        false = [a for a, f in atoms if f is False]
        true = [a for a, f in atoms if f is True]
        if len(false) == len(atoms):
            warnings.append(f"{pos}: warning: no graph with an {name} satisfies the rules: on "
                            f"{nodes} nodes each of the {len(atoms)} {name}(...) atoms is false in "
                            f"every model (only the graph without {name} is allowed)")
        elif false or true:
            shown = [f"{a} is always false" for a in false[:3]] + [f"{a} is always true" for a in true[:3]]
            more = len(false) + len(true) - len(shown)
            warnings.append(f"{pos}: warning: the rules force {len(false) + len(true)} of the "
                            f"{len(atoms)} atoms of given {name} on {nodes} nodes: "
                            f"{', '.join(shown)}{f' (and {more} more)' if more else ''}; graphs "
                            f"that differ there have no model")
    return warnings
