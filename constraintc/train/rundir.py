"""Output directories of fine-tuning runs: which run a directory holds, who writes it, and where
a resumed run starts.

A run's output directory holds ``run.json`` (a random run id, the creation time, whether the run
finished), ``config.json``, ``metrics.jsonl``, ``checkpoints/``, ``model/``, the evaluation
reports and ``training.png``. Every checkpoint records the run id, so:

* a new run refuses a directory that holds another run, unless told to replace it
  (``--overwrite``, which deletes exactly those files and nothing else in the directory); a run
  that stopped before its first step (a failed set-up) holds nothing to lose and is replaced;
* resuming takes the newest *intact* checkpoint of the directory's own run (a damaged or
  foreign one is skipped, with the reason), and a checkpoint is never pruned by another run;
* one process at a time writes a directory (``.lock``, an advisory ``flock`` released when the
  process ends, also when it is killed).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from constraintc.errors import ConstraintcError, OptionError
from constraintc.train.checkpoint import (
    LEGACY,
    MANIFEST,
    CheckpointError,
    checkpoint_dirs,
    load_checkpoint,
)

RUN_FILE = "run.json"
RUN_FORMAT = "constraintc-run"
LOCK_FILE = ".lock"
# what a run writes into its directory; --overwrite deletes these and only these
RULES_COPY = "rules.rules"  # the rules source the run trained with
TRACES_MODEL = "model-traces"  # the model at the end of the traces-only stage (--pretrain-steps)
RUN_FILES = (RUN_FILE, "config.json", "metrics.jsonl", "checkpoints", "model", "eval_before.json",
             "eval_after.json", "training.png", RULES_COPY, TRACES_MODEL)
# settings that do not change what is trained: resuming with other values needs no permission
NOT_TRAINING = ("output_dir", "threads", "device", "plots", "final_eval", "eval_splits", "trace_tokens",
                "keep_checkpoints", "checkpoint_every")


class RunDirError(ConstraintcError):
    """An output directory that cannot be used as asked (the message says what to do)."""

    exit_code = 2


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_files(out: Path) -> list[str]:
    """The names of :data:`RUN_FILES` present in ``out``."""
    out = Path(out)
    return [name for name in RUN_FILES if os.path.lexists(out / name)]


def describe(out: Path) -> str:
    """A short account of the run in ``out``: its files and last checkpoint."""
    steps = [s for s, _ in checkpoint_dirs(out)]
    parts = [n for n in run_files(out) if n != "checkpoints"]
    if steps:
        parts.append(f"{len(steps)} checkpoint{'s' if len(steps) > 1 else ''} up to step {steps[-1]}")
    run = read_run(out)
    if run and run.get("finished"):
        parts.append(f"finished at step {run.get('finished_step')}")
    return ", ".join(parts)


def check_writable(out: Path) -> None:
    """Create ``out`` if needed; an :class:`OptionError` when it is a file or cannot be written."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OptionError("--output-dir", str(out), "a directory (this is a file)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise OptionError("--output-dir", str(out), f"a directory this user can write ({exc.strerror})") from None


# ---------------------------------------------------------------------------------- the lock
_HELD: dict[str, int] = {}


def lock(out: Path) -> None:
    """Hold ``out/.lock`` for this process; a :class:`RunDirError` naming the holder when
    another process writes the directory. Re-entrant within one process."""
    key = os.path.realpath(out)
    if key in _HELD:
        return
    path = Path(out) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        raise RunDirError(f"error: {path}: cannot open the directory's lock file ({exc.strerror})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise RunDirError(
            f"error: --output-dir={str(out)!r}: another run is writing this directory (process {holder}); "
            "wait for it, or choose another --output-dir"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    _HELD[key] = fd


def unlock(out: Path) -> None:
    fd = _HELD.pop(os.path.realpath(out), None)
    if fd is not None:
        os.close(fd)


# ---------------------------------------------------------------------------------- run.json
def read_run(out: Path) -> dict | None:
    """``run.json`` of ``out`` (None when absent); a :class:`RunDirError` when unreadable."""
    path = Path(out) / RUN_FILE
    if not path.is_file():
        return None
    try:
        run = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise RunDirError(f"error: {path}: unreadable ({exc})") from None
    if not (isinstance(run, dict) and run.get("format") == RUN_FORMAT and isinstance(run.get("run_id"), str)):
        raise RunDirError(f"error: {path}: not a {RUN_FORMAT} file")
    return run


def write_run(out: Path, run: dict) -> None:
    tmp = Path(out) / f".{RUN_FILE}.tmp"
    tmp.write_text(json.dumps(run, indent=1) + "\n")
    os.replace(tmp, Path(out) / RUN_FILE)


def trained(out: Path) -> bool:
    """Whether the run in ``out`` got anywhere: a checkpoint, a metrics row, a model, a final
    report or a plot. A run that failed while it set up leaves only ``run.json``,
    ``config.json`` (and perhaps ``eval_before.json``): nothing a new run could destroy."""
    out = Path(out)
    metrics = out / "metrics.jsonl"
    return bool(checkpoint_dirs(out)) or (metrics.is_file() and metrics.stat().st_size > 0) or any(
        os.path.lexists(out / name) for name in ("model", "eval_after.json", "training.png"))


def start_new_run(out: Path, overwrite: bool) -> str:
    """Claim ``out`` for a new run and return its id: refuse (or, with ``overwrite``, delete)
    another run's files, unless that run never trained a step; write ``run.json``. The caller
    holds the lock."""
    out = Path(out)
    present = run_files(out)
    if present and not trained(out):
        _log(f"replacing the run in {out} that stopped before its first step ({', '.join(present)})")
        overwrite = True
    if present:
        if not overwrite:
            has_ckpt = bool(checkpoint_dirs(out))
            hint = ("continue it with --resume, " if has_ckpt else "") + \
                "replace it with --overwrite (deletes it), or choose another --output-dir"
            raise RunDirError(
                f"error: --output-dir={str(out)!r} holds another run ({describe(out)}); {hint}"
            )
        _log(f"--overwrite: deleting the previous run in {out} ({describe(out)})")
        for name in present:
            target = out / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            else:
                target.unlink()
    run_id = uuid.uuid4().hex
    write_run(out, {"format": RUN_FORMAT, "run_id": run_id, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "finished": False})
    return run_id


def mark_finished(out: Path, step: int) -> None:
    run = read_run(out)
    if run is not None:
        write_run(out, {**run, "finished": True, "finished_step": int(step)})


def mark_unfinished(out: Path) -> None:
    run = read_run(out)
    if run is not None and run.get("finished"):
        write_run(out, {**run, "finished": False})


# ---------------------------------------------------------------------------------- resuming
@dataclass
class ResumePoint:
    """Where a resumed run starts: its directory and run id, the checkpoint and its state, and
    the newer checkpoints that were skipped (with the reason)."""

    out: Path
    run_id: str
    checkpoint: Path
    state: dict
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def step(self) -> int:
        return int(self.state["step"])

    @property
    def config(self) -> dict:
        return dict(self.state.get("config") or {})


def run_dir_of(spec: str, default_out: Path) -> tuple[Path, Path | None]:
    """``(output directory, named checkpoint or None)`` for ``--resume=spec``."""
    if spec in ("latest", "auto"):
        return Path(default_out), None
    path = Path(spec)
    in_checkpoints = path.parent.name == "checkpoints" and re.fullmatch(r"step-\d+", path.name)
    if path.is_dir() and (in_checkpoints or (path / MANIFEST).exists() or (path / LEGACY).exists()):
        if path.parent.name != "checkpoints":
            raise OptionError("--resume", spec, "a checkpoint inside an output directory (OUT/checkpoints/step-N)")
        return path.parent.parent, path
    if path.is_dir():
        return path, None
    what = "no such directory" if not path.exists() else "not a directory"
    raise OptionError("--resume", spec, f"'latest' (the default), an output directory or a checkpoint directory "
                                        f"(OUT/checkpoints/step-N); this is {what}")


def find_resume(spec: str, out: Path) -> ResumePoint:
    """The checkpoint ``--resume=spec`` continues from, for the run in ``out``.

    ``spec``: ``latest`` (the newest intact checkpoint of ``out``'s run), an output directory
    (the same, there; it must be ``out``) or one checkpoint directory (exactly that one).
    """
    run_dir, named = run_dir_of(spec, out)
    if os.path.realpath(run_dir) != os.path.realpath(out):
        raise OptionError("--resume", spec, f"a checkpoint of the run in --output-dir={str(out)!r}, "
                                            f"not of {str(run_dir)!r} (give one of the two)")
    if not Path(out).is_dir() or not run_files(out):
        raise RunDirError(
            f"error: --resume: {str(out)!r} holds no run to resume; start one without --resume"
            + ("" if spec != "latest" else " (or name its output directory with --output-dir)")
        )
    run = read_run(out)
    if run is None:
        raise RunDirError(
            f"error: --resume: {str(out)!r} holds a run without {RUN_FILE} (written by an older "
            "constraintc, with checkpoints that are not loaded); start it again with --overwrite"
        )
    candidates = [named] if named is not None else [d for _, d in reversed(checkpoint_dirs(out))]
    skipped: list[tuple[Path, str]] = []
    for path in candidates:
        try:
            state = load_checkpoint(path, run_id=run["run_id"])
        except CheckpointError as exc:
            if named is not None:
                raise
            skipped.append((path, str(exc).removeprefix("error: ")))
            continue
        return ResumePoint(Path(out), run["run_id"], path, state, skipped)
    if not candidates:
        raise RunDirError(
            f"error: --resume: the run in {str(out)!r} wrote no checkpoint yet (they come every "
            "checkpoint_every steps); start it again with --overwrite"
        )
    reasons = "\n  ".join(why for _, why in skipped)
    raise RunDirError(f"error: --resume: no intact checkpoint in {str(out)!r}:\n  {reasons}")


def config_differences(saved: dict, current: dict) -> list[tuple[str, object, object]]:
    """``(key, saved value, current value)`` for every training setting that differs. A setting
    the saved config lacks (written before the setting existed) had its default value.

    >>> from constraintc.train.config import FinetuneConfig
    >>> now = FinetuneConfig(steps=5).to_dict()
    >>> old = {k: v for k, v in now.items() if k != "name_salt"}
    >>> config_differences(old, now), config_differences(old, {**now, "name_salt": "visit"})
    ([], [('name_salt', 'graph', 'visit')])
    """
    from constraintc.train.config import FinetuneConfig

    defaults = FinetuneConfig().to_dict()
    keys = [k for k in current if k not in NOT_TRAINING]
    then = {k: saved.get(k, defaults.get(k)) for k in keys}
    return [(k, then[k], current[k]) for k in keys if then[k] != current[k]]
