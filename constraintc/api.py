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

from constraintc.errors import OptionError

CNF_SUFFIXES = (".cnf", ".dimacs")


def _compile_and_wrap(cnf, meta: dict, backend: str, max_seconds, max_edges, progress, root_name: str):
    from constraintc.circuit import Circuit
    from constraintc.compile import compile_cnf

    compiled = compile_cnf(cnf, backend=backend, max_seconds=max_seconds, max_edges=max_edges,
                           progress=progress)
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


def compile_rules(source, nodes, graph=None, params=None, backend: str = "auto", cache: bool = True,
                  max_seconds: float | None = None, max_edges: int | None = None,
                  progress: bool = False):
    """Ground a ``.rules`` file (path or library name) over ``nodes`` (and optionally a graph),
    compile it, and return a :class:`~constraintc.circuit.Circuit` with one root.

    Results are cached by a content hash of the rules text, nodes, graph, params and back end
    (``$CONSTRAINTC_CACHE``, default ``~/.cache/constraintc``); ``cache=False`` recompiles.

    >>> c = compile_rules("transitivity", nodes=3, cache=False)   # doctest: +SKIP
    >>> c.num_atoms                                               # doctest: +SKIP
    12
    """
    from constraintc.circuit.artifact import content_key
    from constraintc.language import load_rules
    from constraintc.language.library import resolve_rules_path

    path = resolve_rules_path(source)
    text = Path(path).read_bytes()
    graph_key = None if graph is None else [list(map(str, e)) for e in graph]
    nodes_key = nodes if isinstance(nodes, int) else [str(x) for x in nodes]
    key = content_key("rules", text, nodes_key, graph_key, dict(params or {}), backend,
                      toolchain_hash())
    hit = _cached(key, cache)
    if hit is not None:
        return hit
    from constraintc.logic import ground

    start = time.perf_counter()
    program = load_rules(source, params=params)
    grounding = ground(program, nodes, graph=graph)
    ground_seconds = time.perf_counter() - start
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
    circuit = _compile_and_wrap(grounding.cnf, meta, backend, max_seconds, max_edges, progress,
                                root_name=Path(str(path)).stem)
    return _store(circuit, key, cache)


def compile_file(path, nodes=None, graph=None, params=None, backend: str = "auto",
                 cache: bool = True, max_seconds: float | None = None, max_edges: int | None = None,
                 progress: bool = False):
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
        meta = {"source": str(path), "source_hash": content_key(text), "kind": "cnf"}
        circuit = _compile_and_wrap(cnf, meta, backend, max_seconds, max_edges, progress, root_name=p.stem)
        return _store(circuit, key, cache)
    if nodes is None:
        if graph is None:
            raise OptionError("--nodes", None, "a number of nodes or names a,b,c to ground the rules over "
                                               "(or give --graph)")
        nodes = list(dict.fromkeys(x for edge in graph for x in edge))
    return compile_rules(path, nodes, graph=graph, params=params, backend=backend, cache=cache,
                         max_seconds=max_seconds, max_edges=max_edges, progress=progress)
