"""Run one finetune recipe over seeds, conditions and models side by side, then compare.

Each run is a `constraintc finetune` process of its own (its own output directory, resumable as
usual); up to --jobs of them run at once, sharing the machine's cores or one GPU. Conditions:
``sl`` is the recipe as written (cross-entropy + the semantic loss), ``ce`` the same with
``--lambda-schedule none`` (cross-entropy only, the baseline). At the end the table of
``examples/compare_runs.py`` is printed (every split, per run, mean and min per group).

With --deadline SECONDS, runs still training at the deadline are interrupted (Ctrl-C) and their
final evaluation is run on their newest checkpoint (``--set checkpoint_every=N`` bounds the steps
lost), so that every run reports; the sweep prints which runs stopped at which step (their
learning rate had not finished its schedule).

    python examples/sweep.py --config examples/configs/finetune_transfer.toml --seeds 0,1,2 \\
        --conditions sl,ce --output-dir runs/sweep
    python examples/sweep.py --config examples/configs/finetune_transfer.toml --seeds 0,1,2 \\
        --models embedded,examples/configs/embedded_nope.toml --set steps=6000 --jobs 12 \\
        --deadline 420 --output-dir runs/gpu-sweep         # on one GPU: device auto picks it

Run directories are named MODEL-CONDITION-sSEED under --output-dir; a directory that already
holds a finished run is skipped (its results are reused), so a sweep can be rerun to fill gaps.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONDITIONS = {"sl": [], "ce": ["--lambda-schedule", "none"]}


def _model_tag(model: str) -> str:
    """The run-directory prefix of a --model value: an architecture or GGUF file by its stem
    (``embedded_nope.toml`` -> ``nope``), a hub id or directory with ``/`` as ``_``."""
    if model.lower().endswith((".toml", ".gguf")):
        return Path(model).stem.replace("embedded_", "")
    return model.strip("/").replace("/", "_")


def _finished(run: Path) -> bool:
    try:
        return json.loads((run / "run.json").read_text()).get("finished", False) and (run / "eval_after.json").is_file()
    except (OSError, ValueError):
        return False


def _newest_checkpoint(run: Path) -> int | None:
    steps = sorted(int(p.name.split("-")[1]) for p in (run / "checkpoints").glob("step-*") if p.name[5:].isdigit())
    return steps[-1] if steps else None


def _cli() -> list[str]:
    return [sys.executable, "-m", "constraintc"]


def _run_pool(pending: list, out: Path, jobs: int, deadline: float, report: bool = True) -> dict[str, int | None]:
    """Run ``(tag, command)`` pairs, ``jobs`` at once, each logging to ``out/TAG.log``. With a
    ``deadline`` (seconds), what still runs then is interrupted (Ctrl-C; its checkpoints stay);
    returns those runs' newest checkpoint steps."""
    start = time.monotonic()
    pending = list(pending)
    running: dict[str, tuple[subprocess.Popen, object]] = {}
    stopped: dict[str, int | None] = {}
    while pending or running:
        while pending and len(running) < jobs:
            tag, cmd = pending.pop(0)
            log = open(out / f"{tag}.log", "a")
            running[tag] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), log)
            if report:
                print(f"[{time.monotonic() - start:6.0f}s] started {tag}", flush=True)
        time.sleep(2 if report else 1)
        for tag, (proc, log) in list(running.items()):
            if proc.poll() is not None:
                log.close()
                del running[tag]
                state = "done" if proc.returncode == 0 else f"exit {proc.returncode} (see {out / tag}.log)"
                if report:
                    print(f"[{time.monotonic() - start:6.0f}s] {tag}: {state}", flush=True)
        if deadline and time.monotonic() - start > deadline and running:
            for tag, (proc, _) in running.items():
                proc.send_signal(signal.SIGINT)  # the run stops; its checkpoints stay
            for tag, (proc, log) in running.items():
                proc.wait()
                log.close()
                stopped[tag] = _newest_checkpoint(out / tag)
            running.clear()
            pending.clear()
    return stopped


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="the finetune TOML every run starts from")
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    ap.add_argument("--conditions", default="sl,ce", help="comma-separated: sl (the recipe), ce (no semantic loss)")
    ap.add_argument("--models", default="", help="comma-separated --model values (default: the config's)")
    ap.add_argument("--set", action="append", default=[], metavar="OPTION=VALUE",
                    help="another finetune flag for every run, e.g. steps=6000 (repeatable)")
    ap.add_argument("--jobs", type=int, default=1, help="runs at once (default 1)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per run (default 1)")
    ap.add_argument("--deadline", type=float, default=0, help="seconds; then interrupt and evaluate (0: none)")
    ap.add_argument("--output-dir", default="runs/sweep", help="parent of the run directories")
    args = ap.parse_args(argv)
    # A shell starts a background job (`sweep.py ... &`) with Ctrl-C ignored, and the finetune
    # processes would inherit that and never stop at --deadline: handle it here, so that they
    # start with the default (exec resets a handled signal, but keeps an ignored one).
    signal.signal(signal.SIGINT, signal.default_int_handler)

    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        ap.error(f"--seeds {args.seeds!r}: expected whole numbers separated by commas")
    conditions = [c.strip() for c in args.conditions.split(",") if c.strip()]
    bad = [c for c in conditions if c not in CONDITIONS]
    if bad:
        ap.error(f"--conditions {bad[0]!r}: expected sl or ce")
    if args.jobs < 1 or args.threads < 1:
        ap.error("--jobs and --threads must be at least 1")
    extra: list[str] = []
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            ap.error(f"--set {item!r}: expected OPTION=VALUE, e.g. steps=6000")
        flag, value = key.strip().replace("_", "-"), value.strip()
        if value.lower() in ("true", "false"):  # switches: --plots / --no-plots
            extra.append(f"--{flag}" if value.lower() == "true" else f"--no-{flag}")
        else:
            extra += [f"--{flag}", value]
    models = [m.strip() for m in args.models.split(",") if m.strip()] or [None]

    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    plan = []
    for model in models:
        for cond in conditions:
            for seed in seeds:
                tag = f"{_model_tag(model) if model else 'config'}-{cond}-s{seed}"
                cmd = [*_cli(), "finetune", "--config", args.config, "--seed", str(seed), "--output-dir",
                       str(out / tag), "--threads", str(args.threads), "--no-progress", *CONDITIONS[cond], *extra]
                if model:
                    cmd += ["--model", model]
                plan.append((tag, cmd))

    pending = [(t, c) for t, c in plan if not _finished(out / t)]
    print(f"{len(plan)} runs, {len(plan) - len(pending)} already finished; {args.jobs} at once", flush=True)
    stopped = _run_pool(pending, out, args.jobs, args.deadline)
    # the stopped runs' final evaluations, --jobs at once
    evals = []
    for tag, step in stopped.items():
        if step is None:
            print(f"{tag}: stopped before its first checkpoint; no result", flush=True)
            continue
        print(f"{tag}: stopped at step {step}; evaluating that checkpoint", flush=True)
        evals.append((tag, [*_cli(), "finetune", "--resume", "--output-dir", str(out / tag), "--steps", str(step),
                            "--allow-config-change", "--no-progress", "--threads", str(args.threads)]))
    _run_pool(evals, out, args.jobs, 0, report=False)
    done = [str(out / t) for t, _ in plan if _finished(out / t)]
    if not done:
        print("no run finished", flush=True)
        return 1
    for tag, step in stopped.items():
        if step is not None:
            print(f"note: {tag} stopped at step {step} (deadline)")
    return subprocess.call([sys.executable, str(HERE / "compare_runs.py"), "--split", "all", *done])


if __name__ == "__main__":
    sys.exit(main())
