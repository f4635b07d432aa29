"""Circuit artifacts (one safetensors file) and the content-addressed compile cache.

An artifact holds the circuit IR as safetensors tensors (``kinds``, ``lits``, ``child_ptr``,
``children``, ``roots``) and its metadata as one JSON document in the safetensors header under the
key ``constraintc``: format version, versions of constraintc and the compiler, atoms in order,
root names, source hash, compile statistics and the exact model count of every root (as decimal
strings: they outgrow 64 bits). The layerized program is rebuilt on load (deterministic, fast),
so the file stays valid if the evaluator's layout changes.

The cache lives in ``$CONSTRAINTC_CACHE`` (default ``~/.cache/constraintc``) under
``circuits/<key>.cc`` where ``key`` is a SHA-256 of everything that determines the circuit.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from constraintc.compile.ir import CircuitIR
from constraintc.errors import ConstraintcError
from constraintc.resources import cache_dir  # the cache's root; re-exported for callers here

FORMAT = "constraintc-circuit"
FORMAT_VERSION = 1


class ArtifactError(ConstraintcError):
    """A file that is not a readable constraintc circuit artifact."""


def content_key(*parts: object) -> str:
    """SHA-256 over a canonical JSON of ``parts`` (bytes are hashed as their hex digest).

    >>> content_key("p cnf 1 1\\n1 0\\n", {"backend": "auto"}) == content_key("p cnf 1 1\\n1 0\\n", {"backend": "auto"})
    True
    """

    def norm(x):
        if isinstance(x, bytes):
            return {"sha256": hashlib.sha256(x).hexdigest()}
        if isinstance(x, dict):
            return {str(k): norm(v) for k, v in sorted(x.items(), key=lambda kv: str(kv[0]))}
        if isinstance(x, (list, tuple)):
            return [norm(v) for v in x]
        if isinstance(x, Path):
            return str(x)
        return x

    text = json.dumps([FORMAT_VERSION, *[norm(p) for p in parts]], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def cached_path(key: str) -> Path:
    return cache_dir() / "circuits" / f"{key}.cc"


def _versions() -> dict:
    import constraintc

    out = {"constraintc": constraintc.__version__}
    try:
        import safetensors

        out["safetensors"] = safetensors.__version__
    except Exception:  # pragma: no cover - safetensors is a dependency
        pass
    return out


def save_artifact(circuit, path: str | Path) -> Path:
    """Write ``circuit`` (a :class:`~constraintc.circuit.Circuit`) atomically to ``path``."""
    from safetensors.numpy import save_file

    ir: CircuitIR = circuit.ir
    meta = dict(circuit.meta)
    meta.update(
        format=FORMAT,
        format_version=FORMAT_VERSION,
        versions={**meta.get("versions", {}), **_versions()},
        num_vars=int(ir.num_vars),
        num_atoms=int(ir.num_atoms),
        atoms=list(ir.atom_names),
        roots=list(ir.root_names),
        nodes=int(ir.num_nodes),
        edges=int(ir.num_edges),
        model_counts={str(k): str(circuit.model_count(k)) for k in range(circuit.num_roots)},
    )
    tensors = {
        "kinds": np.ascontiguousarray(ir.kinds, dtype=np.int8),
        "lits": np.ascontiguousarray(ir.lits, dtype=np.int32),
        "child_ptr": np.ascontiguousarray(ir.child_ptr, dtype=np.int64),
        "children": np.ascontiguousarray(ir.children, dtype=np.int32),
        "roots": np.ascontiguousarray(ir.roots, dtype=np.int32),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # write then rename: a crash never leaves a half-written artifact in the cache
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={"constraintc": json.dumps(meta, sort_keys=True)})
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_artifact(path: str | Path) -> tuple[CircuitIR, dict]:
    """Read an artifact; returns ``(ir, metadata)``."""
    from safetensors import safe_open

    path = Path(path)
    if not path.exists():
        raise ArtifactError(f"error: {path}: no such circuit artifact")
    try:
        with safe_open(str(path), framework="numpy") as f:
            header = f.metadata() or {}
            arrays = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:
        raise ArtifactError(f"error: {path}: not a safetensors circuit artifact ({exc})") from None
    if "constraintc" not in header:
        raise ArtifactError(f"error: {path}: safetensors file without constraintc metadata")
    meta = json.loads(header["constraintc"])
    if meta.get("format") != FORMAT or int(meta.get("format_version", -1)) > FORMAT_VERSION:
        raise ArtifactError(
            f"error: {path}: artifact format {meta.get('format')!r} version "
            f"{meta.get('format_version')!r}; this constraintc reads {FORMAT!r} <= {FORMAT_VERSION}"
        )
    missing = {"kinds", "lits", "child_ptr", "children", "roots"} - set(arrays)
    if missing:
        raise ArtifactError(f"error: {path}: artifact lacks tensors {sorted(missing)}")
    ir = CircuitIR(
        num_vars=int(meta["num_vars"]),
        num_atoms=int(meta["num_atoms"]),
        kinds=arrays["kinds"].astype(np.int8),
        lits=arrays["lits"].astype(np.int32),
        child_ptr=arrays["child_ptr"].astype(np.int64),
        children=arrays["children"].astype(np.int32),
        roots=arrays["roots"].astype(np.int32),
        root_names=list(meta["roots"]),
        atom_names=list(meta["atoms"]),
    )
    ir.validate()
    return ir, meta
