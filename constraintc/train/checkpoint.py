"""Checkpoints of a fine-tuning run, without pickle: ``OUTPUT_DIR/checkpoints/step-NNNNNN/``.

Each checkpoint is three files:

* ``tensors.safetensors``: every tensor of the state (trained weights, optimizer moments, the
  torch RNG state);
* ``state.json``: everything else (step, optimizer hyper-parameters, LR and lambda schedules,
  python's ``random`` state, the config), tensors referenced by name;
* ``manifest.json``: format, step, the run it belongs to, and the SHA-256 and size of the two
  files above.

Reading one runs no code from the file: safetensors holds raw arrays and JSON holds plain
values; the few non-JSON shapes (tuples, dicts with integer keys, tensors) are tagged objects
that decode to exactly those types and nothing else. A checkpoint whose files are missing,
damaged (digest mismatch), malformed or of another run is refused with the reason
(:class:`CheckpointError`), and resuming falls back to the newest intact one. A pickled
``state.pt`` (constraintc before this format) is never unpickled.

A checkpoint directory appears only once it is complete (its files are written and synced
under a temporary name, then renamed), and pruning keeps the newest ``keep`` of the current run
and never touches another run's. Resuming drops the metrics rows that the interrupted run
wrote after its last checkpoint, so a resumed run's ``metrics.jsonl`` equals an uninterrupted
one's.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

from constraintc.errors import ConstraintcError

FORMAT = "constraintc-checkpoint"
FORMAT_VERSION = 1
TENSORS, STATE, MANIFEST = "tensors.safetensors", "state.json", "manifest.json"
LEGACY = "state.pt"
_STEP_DIR = re.compile(r"step-(\d+)")


class CheckpointError(ConstraintcError):
    """A checkpoint that cannot be used (the message names it and says why)."""


# ---------------------------------------------------------------------------------- encoding
def encode_state(state) -> tuple[object, dict]:
    """``(json_value, tensors)``: ``state`` (nested dicts, lists, tuples, numbers, strings, None,
    tensors) as a JSON-able value whose tensors are ``{"$tensor": name}`` references.

    >>> import torch
    >>> value, tensors = encode_state({"step": 3, "betas": (0.9, 0.99), 0: torch.zeros(2)})
    >>> value
    {'$dict': [['step', 3], ['betas', {'$tuple': [0.9, 0.99]}], [0, {'$tensor': 't0'}]]}
    >>> decode_state(value, tensors)
    {'step': 3, 'betas': (0.9, 0.99), 0: tensor([0., 0.])}
    """
    import torch

    tensors: dict[str, torch.Tensor] = {}

    def enc(x):
        if x is None or isinstance(x, (bool, int, float, str)):
            return x
        if isinstance(x, torch.Tensor):
            name = f"t{len(tensors)}"
            tensors[name] = x.detach().to("cpu", copy=True).contiguous()
            return {"$tensor": name}
        if isinstance(x, tuple):
            return {"$tuple": [enc(v) for v in x]}
        if isinstance(x, list):
            return [enc(v) for v in x]
        if isinstance(x, dict):
            if all(isinstance(k, str) and not k.startswith("$") for k in x):
                return {k: enc(v) for k, v in x.items()}
            return {"$dict": [[enc(k), enc(v)] for k, v in x.items()]}
        raise TypeError(f"a checkpoint cannot hold a {type(x).__name__} ({x!r:.60})")

    return enc(state), tensors


def decode_state(value, tensors: dict):
    """The inverse of :func:`encode_state`; raises ``ValueError`` on anything it did not write."""

    def dec(x):
        if x is None or isinstance(x, (bool, int, float, str)):
            return x
        if isinstance(x, list):
            return [dec(v) for v in x]
        if not isinstance(x, dict):
            raise ValueError(f"unexpected JSON value {x!r:.60}")
        tags = [k for k in x if k.startswith("$")]
        if not tags:
            return {k: dec(v) for k, v in x.items()}
        if len(x) != 1:
            raise ValueError(f"malformed tagged value {x!r:.60}")
        tag, body = next(iter(x.items()))
        if tag == "$tensor" and isinstance(body, str) and body in tensors:
            return tensors[body]
        if tag == "$tuple" and isinstance(body, list):
            return tuple(dec(v) for v in body)
        if tag == "$dict" and isinstance(body, list) and all(isinstance(p, list) and len(p) == 2 for p in body):
            out = {}
            for k, v in body:
                k = dec(k)
                try:
                    out[k] = dec(v)
                except TypeError:
                    raise ValueError(f"unhashable key {k!r:.60}") from None
            return out
        raise ValueError(f"unknown or malformed tag {tag!r} ({x!r:.60})")

    return dec(value)


# ---------------------------------------------------------------------------------- files
def _sha256(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def checkpoint_dirs(out: Path) -> list[tuple[int, Path]]:
    """``(step, directory)`` of every ``step-N`` directory under ``out/checkpoints``, oldest
    first (by step number: ``step-1000000`` comes after ``step-999999``)."""
    root = Path(out) / "checkpoints"
    found = []
    if root.is_dir():
        for d in root.iterdir():
            m = _STEP_DIR.fullmatch(d.name)
            if m and d.is_dir():
                found.append((int(m.group(1)), d))
    return sorted(found)


def read_manifest(path: Path) -> dict:
    """The manifest of checkpoint ``path``, checked for shape (not yet against the files)."""
    path = Path(path)
    if not (path / MANIFEST).is_file():
        if (path / LEGACY).exists():
            raise CheckpointError(
                f"error: {path}: a pickled {LEGACY} (constraintc's old checkpoint format); it is not "
                "loaded, since unpickling a file can run arbitrary code. Start the run again "
                "(--overwrite), or resume it with the constraintc version that wrote it."
            )
        raise CheckpointError(f"error: {path}: not a checkpoint (no {MANIFEST}; an interrupted write?)")
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"error: {path / MANIFEST}: unreadable ({exc})") from None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    ok = (
        isinstance(manifest, dict) and manifest.get("format") == FORMAT
        and isinstance(manifest.get("step"), int) and isinstance(manifest.get("run_id"), str)
        and isinstance(files, dict)
        and all(isinstance(files.get(n), dict) and isinstance(files[n].get("sha256"), str)
                and isinstance(files[n].get("size"), int) for n in (TENSORS, STATE))
    )
    if not ok:
        raise CheckpointError(f"error: {path / MANIFEST}: not a {FORMAT} manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"error: {path}: checkpoint format version {manifest.get('format_version')!r}; "
            f"this constraintc reads version {FORMAT_VERSION}"
        )
    return manifest


def save_checkpoint(out: Path, step: int, state: dict, keep: int, run_id: str, keep_steps: tuple = ()) -> Path:
    """Write ``state`` as checkpoint ``step`` of run ``run_id`` under ``out/checkpoints``; then
    delete this run's checkpoints but the newest ``keep`` (0 keeps all)."""
    from safetensors.torch import save_file

    ckpt_root = Path(out) / "checkpoints"
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / f"step-{step:06d}"
    if final.exists():
        try:
            owner = read_manifest(final)["run_id"]
        except CheckpointError:
            owner = None
        if owner is not None and owner != run_id:
            raise CheckpointError(f"error: {final}: belongs to another run ({owner}); not replaced")
    tmp = ckpt_root / f".tmp-step-{step:06d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    value, tensors = encode_state(state)
    save_file(tensors, str(tmp / TENSORS))
    with open(tmp / TENSORS, "rb+") as fh:
        os.fsync(fh.fileno())
    _write_synced(tmp / STATE, json.dumps(value).encode())
    files = {}
    for name in (TENSORS, STATE):
        digest, size = _sha256(tmp / name)
        files[name] = {"sha256": digest, "size": size}
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "step": int(step), "run_id": run_id,
                "files": files}
    _write_synced(tmp / MANIFEST, json.dumps(manifest, indent=1).encode())
    _fsync_dir(tmp)
    if final.exists():  # a checkpoint of this run at the same step (a resumed run redoing it)
        old = ckpt_root / f".old-step-{step:06d}-{os.getpid()}"
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(final)  # a checkpoint directory exists only once it is complete
    _fsync_dir(ckpt_root)
    if keep:
        prune_checkpoints(out, keep, run_id, keep_steps)
    return final


def prune_checkpoints(out: Path, keep: int, run_id: str, keep_steps: tuple = ()) -> list[Path]:
    """Delete run ``run_id``'s checkpoints but the newest ``keep`` and those of ``keep_steps``;
    returns what was deleted. Checkpoints of other runs, unreadable ones and old-format ones are
    left alone."""
    ours = []
    for step, d in checkpoint_dirs(out):
        if step in keep_steps:
            continue
        try:
            if read_manifest(d)["run_id"] == run_id:
                ours.append(d)
        except CheckpointError:
            continue
    removed = ours[: -keep or None] if keep else []
    for d in removed:
        shutil.rmtree(d, ignore_errors=True)
    return removed


def load_checkpoint(path: Path, run_id: str | None = None) -> dict:
    """The state saved by :func:`save_checkpoint` at ``path``, after checking its manifest,
    the digests of its files, and (given ``run_id``) that it belongs to that run."""
    from safetensors.torch import load as load_tensors

    path = Path(path)
    manifest = read_manifest(path)
    if run_id is not None and manifest["run_id"] != run_id:
        raise CheckpointError(f"error: {path}: belongs to another run ({manifest['run_id']}, not {run_id})")
    blobs = {}
    for name in (TENSORS, STATE):
        try:
            data = (path / name).read_bytes()
        except OSError as exc:
            raise CheckpointError(f"error: {path / name}: unreadable ({exc.strerror})") from None
        want = manifest["files"][name]
        if len(data) != want["size"] or hashlib.sha256(data).hexdigest() != want["sha256"]:
            raise CheckpointError(
                f"error: {path / name}: does not match the digest in its manifest "
                f"({len(data)} bytes, expected {want['size']}): damaged or modified"
            )
        blobs[name] = data
    try:
        tensors = load_tensors(blobs[TENSORS])
        state = decode_state(json.loads(blobs[STATE].decode("utf-8")), tensors)
    except Exception as exc:  # the digests matched: only a hand-made file gets here
        raise CheckpointError(f"error: {path}: malformed checkpoint ({exc})") from None
    if not isinstance(state, dict) or state.get("step") != manifest["step"]:
        raise CheckpointError(f"error: {path}: malformed checkpoint (its state is not that of step {manifest['step']})")
    return state


def remove_partial_writes(out: Path) -> None:
    """Clean up after checkpoint writes that were interrupted: delete their temporary
    directories, and put back a replaced checkpoint whose replacement never landed."""
    root = Path(out) / "checkpoints"
    if not root.is_dir():
        return
    for d in root.glob(".old-step-*"):
        m = re.fullmatch(r"\.old-(step-\d+)-\d+", d.name)
        if m and not (root / m.group(1)).exists():
            d.rename(root / m.group(1))
        else:
            shutil.rmtree(d, ignore_errors=True)
    for d in root.glob(".tmp-step-*"):
        shutil.rmtree(d, ignore_errors=True)


def truncate_metrics(metrics: Path, step: int) -> None:
    """Keep the rows of ``metrics.jsonl`` up to ``step`` (those an interrupted run wrote after its
    last checkpoint are replayed by the resumed run). A torn last line (a kill mid-write) goes too."""
    rows = metrics.read_text().splitlines() if metrics.is_file() else []
    kept = []
    for r in rows:
        try:
            if json.loads(r)["step"] <= step:
                kept.append(r)
        except (ValueError, KeyError, TypeError):
            continue
    metrics.write_text("".join(r + "\n" for r in kept))
