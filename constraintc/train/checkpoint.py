"""Checkpoints of a fine-tuning run: ``OUTPUT_DIR/checkpoints/step-NNNNNN/state.pt``.

A checkpoint directory appears only once it is complete (written under a temporary name, then
renamed), and the newest ``keep`` are kept. Resuming drops the metrics rows that the interrupted
run wrote after its last checkpoint, so a resumed run's ``metrics.jsonl`` equals an
uninterrupted one's.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from constraintc.errors import ConstraintcError


def save_checkpoint(out: Path, step: int, state: dict, keep: int) -> Path:
    """Write ``state`` as checkpoint ``step`` under ``out/checkpoints``; prune all but ``keep``."""
    ckpt_root = Path(out) / "checkpoints"
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / f"step-{step:06d}"
    tmp = ckpt_root / f".tmp-step-{step:06d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    torch.save(state, tmp / "state.pt")
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)  # a checkpoint directory exists only once it is complete
    old = sorted(ckpt_root.glob("step-*"))[: -keep or None]
    for d in old if keep else []:
        shutil.rmtree(d, ignore_errors=True)
    return final


def find_checkpoint(out: Path, spec: str) -> Path:
    """The checkpoint ``--resume=spec`` names: ``latest`` (in ``out``), a checkpoint directory,
    or an output directory (its newest checkpoint)."""
    path = Path(spec)
    if spec in ("latest", "auto"):
        found = sorted((Path(out) / "checkpoints").glob("step-*"))
        if not found:
            raise ConstraintcError(f"error: --resume={spec!r}: no checkpoint under {Path(out) / 'checkpoints'}")
        return found[-1]
    if path.is_dir() and (path / "state.pt").is_file():
        return path
    if path.is_dir() and (path / "checkpoints").is_dir():
        found = sorted((path / "checkpoints").glob("step-*"))
        if found:
            return found[-1]
    raise ConstraintcError(f"error: --resume={spec!r}: expected a checkpoint directory, an output directory or 'latest'")


def load_checkpoint(path: Path) -> dict:
    """The state dictionary saved by :func:`save_checkpoint`."""
    return torch.load(Path(path) / "state.pt", weights_only=False)


def truncate_metrics(metrics: Path, step: int) -> None:
    """Keep the rows of ``metrics.jsonl`` up to ``step`` (those an interrupted run wrote after its
    last checkpoint are replayed by the resumed run)."""
    rows = metrics.read_text().splitlines() if metrics.is_file() else []
    kept = [r for r in rows if r.strip() and json.loads(r)["step"] <= step]
    metrics.write_text("".join(r + "\n" for r in kept))
