"""Circuit artifacts (one safetensors file) and the content-addressed compile cache.

An artifact holds the circuit IR as safetensors tensors (``kinds``, ``lits``, ``child_ptr``,
``children``, ``roots``) and its metadata as one JSON document in the safetensors header under the
key ``constraintc``: format version, versions of constraintc and the compiler, atoms in order,
root names, source hash, the cache key it was compiled under, compile statistics and the exact
model count of every root (as decimal strings: they outgrow 64 bits). The layerized program is
rebuilt on load (deterministic, fast), so the file stays valid if the evaluator's layout changes.

Integrity: the header also holds ``sha256``, the SHA-256 of the whole file with that digest's
own 64 characters written as zeros. Loading recomputes it before anything else is trusted, so
one flipped bit anywhere in the file is an :class:`ArtifactError`; so is a file whose structure,
metadata or circuit breaks an invariant (plain checks, kept under ``python -O``). A digest is
not a signature: it catches damage, not a forger who rewrites it; the cache therefore also
serves only files owned by the current user and writable by nobody else.

The cache lives in ``$CONSTRAINTC_CACHE`` (default ``~/.cache/constraintc``) under
``circuits/<key>.cc`` where ``key`` is a SHA-256 of everything that determines the circuit; the
key is stored in the entry too, and a cache hit whose stored key differs (a valid circuit of
another constraint under this name) is refused like a damaged one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import tempfile
from pathlib import Path

import numpy as np

from constraintc.compile.ir import CircuitIR, IRError
from constraintc.errors import ConstraintcError
from constraintc.resources import cache_dir  # the cache's root; re-exported for callers here

FORMAT = "constraintc-circuit"
FORMAT_VERSION = 2  # 2: whole-file digest and cache key (version 1 had neither)
DIGEST_KEY = "sha256"
_ZERO_DIGEST = "0" * 64
_TENSORS = {"kinds": np.int8, "lits": np.int32, "child_ptr": np.int64, "children": np.int32, "roots": np.int32}
_MAX_HEADER = 1 << 28


class ArtifactError(ConstraintcError):
    """A file that is not a readable, intact constraintc circuit artifact (the message names it)."""


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


def save_artifact(circuit, path: str | Path, cache_key: str | None = None) -> Path:
    """Write ``circuit`` (a :class:`~constraintc.circuit.Circuit`) atomically to ``path``.

    ``cache_key`` (default: the circuit's ``meta["cache_key"]``, if any) is stored in the file;
    :func:`load_artifact` can then require it.
    """
    ir: CircuitIR = circuit.ir
    meta = {k: v for k, v in circuit.meta.items() if k != "cache"}
    if cache_key is not None:
        meta["cache_key"] = cache_key
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
    tensors = {name: np.ascontiguousarray(getattr(ir, name), dtype=dtype) for name, dtype in _TENSORS.items()}
    return write_artifact_file(tensors, meta, path)


def write_artifact_file(tensors: dict, meta: dict, path: str | Path) -> Path:
    """The file layer of :func:`save_artifact`: safetensors bytes with ``meta`` and the digest,
    written to a temporary file and renamed (a crash never leaves half an artifact)."""
    from safetensors.numpy import save

    data = bytearray(save(tensors, metadata={"constraintc": json.dumps(meta, sort_keys=True),
                                             DIGEST_KEY: _ZERO_DIGEST}))
    header_end = 8 + int.from_bytes(data[:8], "little")
    at = bytes(data[:header_end]).index(_ZERO_DIGEST.encode())
    data[at:at + 64] = hashlib.sha256(data).hexdigest().encode()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _header(data: bytes, bad) -> tuple[dict, int]:
    if len(data) < 8:
        raise bad(f"{len(data)} bytes, too short for a safetensors header")
    n = int.from_bytes(data[:8], "little")
    if n > min(len(data) - 8, _MAX_HEADER):
        raise bad(f"header length {n} exceeds the file ({len(data)} bytes)")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise bad(f"unreadable header ({exc})") from None
    if not isinstance(header, dict):
        raise bad("the header is not a JSON object")
    return header, 8 + n


def _check_digest(data: bytes, header_end: int, claimed: object, bad) -> None:
    if not (isinstance(claimed, str) and re.fullmatch(r"[0-9a-f]{64}", claimed)):
        raise bad("no valid content digest in the header")
    head = data[:header_end]
    if head.count(claimed.encode()) != 1:
        raise bad("the content digest does not match the file (damaged or modified)")
    at = head.index(claimed.encode())
    actual = hashlib.sha256(data[:at] + _ZERO_DIGEST.encode() + data[at + 64:]).hexdigest()
    if actual != claimed:
        raise bad("the content digest does not match the file (damaged or modified since it was written)")


def _need(ok: bool, what: str, bad) -> None:
    if not ok:
        raise bad(f"invalid metadata: {what}")


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def load_artifact(path: str | Path, expected_key: str | None = None) -> tuple[CircuitIR, dict]:
    """Read and verify an artifact; returns ``(ir, metadata)``.

    Raises :class:`ArtifactError` for a missing, unreadable, damaged (digest mismatch) or
    malformed file, and, with ``expected_key``, for an intact artifact compiled under another
    cache key.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ArtifactError(f"error: {path}: no such circuit artifact") from None
    except OSError as exc:
        raise ArtifactError(f"error: {path}: cannot read it ({exc.strerror})") from None
    return parse_artifact(data, str(path), expected_key)


def parse_artifact(data: bytes, source: str = "<bytes>", expected_key: str | None = None) -> tuple[CircuitIR, dict]:
    """:func:`load_artifact` on the file's bytes; ``source`` names it in errors."""
    from safetensors.numpy import load

    path = source

    def bad(why: str) -> ArtifactError:
        return ArtifactError(f"error: {path}: not a valid constraintc circuit artifact: {why}")

    header, header_end = _header(data, bad)
    extra = header.get("__metadata__")
    if not isinstance(extra, dict) or "constraintc" not in extra:
        raise ArtifactError(f"error: {path}: safetensors file without constraintc metadata")
    if DIGEST_KEY in extra:  # before anything else is read: a damaged file says so
        _check_digest(data, header_end, extra[DIGEST_KEY], bad)
    try:
        meta = json.loads(extra["constraintc"])
    except (TypeError, ValueError) as exc:
        raise bad(f"unreadable constraintc metadata ({exc})") from None
    _need(isinstance(meta, dict) and meta.get("format") == FORMAT, "format is not constraintc-circuit", bad)
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        why = ("written by an older constraintc, without a content digest; compile it again"
               if _is_int(version) and version < FORMAT_VERSION else
               f"format version {version!r}; this constraintc reads version {FORMAT_VERSION}")
        raise ArtifactError(f"error: {path}: circuit artifact {why}")
    if DIGEST_KEY not in extra:
        raise bad("no content digest in the header")
    try:
        arrays = load(bytes(data))
    except Exception as exc:  # the digest matched: only a hand-made file gets here
        raise bad(f"unreadable tensors ({exc})") from None
    missing = sorted(set(_TENSORS) - set(arrays))
    if missing:
        raise ArtifactError(f"error: {path}: artifact lacks tensors {missing}")
    for name, dtype in _TENSORS.items():
        _need(arrays[name].dtype == dtype and arrays[name].ndim == 1, f"tensor {name} must be 1-D {np.dtype(dtype)}", bad)
    for key in ("num_vars", "num_atoms"):
        _need(_is_int(meta.get(key)) and meta[key] >= 0, f"{key} must be a non-negative integer", bad)
    for key in ("atoms", "roots"):
        _need(isinstance(meta.get(key), list) and all(isinstance(a, str) for a in meta[key]),
              f"{key} must be a list of names", bad)
    counts = meta.get("model_counts", {})
    _need(isinstance(counts, dict) and all(isinstance(v, str) and v.isdigit() for v in counts.values()),
          "model_counts must map roots to decimal strings", bad)
    ir = CircuitIR(
        num_vars=meta["num_vars"],
        num_atoms=meta["num_atoms"],
        kinds=arrays["kinds"],
        lits=arrays["lits"],
        child_ptr=arrays["child_ptr"],
        children=arrays["children"],
        roots=arrays["roots"],
        root_names=list(meta["roots"]),
        atom_names=list(meta["atoms"]),
    )
    try:
        ir.validate()
    except IRError as exc:
        raise bad(f"the circuit is malformed: {exc}") from None
    if expected_key is not None and meta.get("cache_key") != expected_key:
        raise ArtifactError(
            f"error: {path}: holds the circuit compiled under key {meta.get('cache_key')!r}, "
            f"not {expected_key!r}"
        )
    return ir, meta


def trusted_cache_file(path: Path) -> str | None:
    """Why the cache entry ``path`` must not be served (None when it may be): it must be a
    regular file owned by the current user and writable by nobody else."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        return exc.strerror
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if st.st_uid != os.geteuid():
        return f"owned by uid {st.st_uid}, not by the current user"
    if st.st_mode & 0o022:
        return f"writable by group or others (mode {stat.S_IMODE(st.st_mode):o})"
    return None
