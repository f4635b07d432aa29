"""Table of traces-only first stages: when their lookups came and how their models write.

    python examples/first_stages.py RUNS_DIR [--window N] [--below CE]

RUNS_DIR holds run directories named ARM-sSEED (as examples/gpu_first_stages.sh makes them),
each with the metrics.jsonl of a traces-only stage and, if evaluated, ``eval/report.json`` from
``constraintc eval --traces N --rules transitivity --consistent``. For each run it prints the
stage's steps, the mean trace CE of its last ``--window`` steps, the first step at which that
windowed mean was below ``--below`` (the lookups have come; "-" if never), the step from which
its positions were stretched (``--pretrain-stretch-after``), and per split the written answers'
balanced accuracy, raw and through the rules (MPE); then each arm's mean and how many of its
runs' lookups came.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from constraintc.train.recipe import LOOKUP_WINDOW, LOOKUPS_CAME, watch_window

SPLITS = ("mix", "chains_long", "chains_reversed", "chains_shuffled", "branching_large", "unseen_names")


def stage_rows(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [r for r in rows if r.get("stage") == "traces"]


def lookups(rows: list[dict], window: int, below: float) -> tuple[float | None, int | None]:
    """(mean trace CE of the last ``window`` steps, first step whose windowed mean is below
    ``below``): finetune's own watch (:func:`constraintc.train.recipe.watch_window`)."""
    last, came = [], None
    for r in rows:
        last, came = watch_window(last, came, r["step"], r["trace_ce"], window, below)
    if len(last) < window:
        return None, None
    return math.fsum(last) / window, came


def written(run: Path) -> tuple[dict, dict] | None:
    """Per split: raw balanced accuracy, and balanced accuracy through the rules (MPE)."""
    path = run / "eval" / "report.json"
    if not path.is_file():
        return None
    report = json.loads(path.read_text())
    raw = {k.split("/", 1)[1]: v["balanced_accuracy"] for k, v in report["splits"].items()}
    mpe = {k.split("/", 1)[1]: v["balanced_accuracy"]
           for k, v in report.get("consistent", {}).get("mpe", {}).get("splits", {}).items()}
    return raw, mpe


def _cells(values: dict) -> str:
    return " | ".join(f"{values[s]:.3f}" if s in values else "-" for s in SPLITS)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", type=Path, help="directory of ARM-sSEED run directories")
    ap.add_argument("--window", type=int, default=LOOKUP_WINDOW,
                    help=f"traces-only steps per windowed mean (default {LOOKUP_WINDOW}, as finetune's report)")
    ap.add_argument("--below", type=float, default=LOOKUPS_CAME,
                    help=f"the windowed trace CE under which the lookups have come (default {LOOKUPS_CAME:g})")
    args = ap.parse_args(argv)
    runs = sorted(p for p in args.runs.iterdir() if (p / "metrics.jsonl").is_file())
    if not runs:
        print(f"error: no run directory with a metrics.jsonl in {args.runs}", file=sys.stderr)
        return 2
    head = " | ".join(SPLITS)
    print(f"| run | steps | s/step | last-{args.window} trace CE | lookups by step | stretched from | "
          f"{head} (written, raw) | {head} (through the rules) |")
    print("|" + "---|" * (6 + 2 * len(SPLITS)))
    arms: dict[str, list] = defaultdict(list)
    for run in runs:
        rows = stage_rows(run)
        if not rows:
            continue
        last, came = lookups(rows, args.window, args.below)
        stretched = next((r["step"] for r in rows if r.get("position_stretch", 1.0) > 1), None)
        spp = statistics.median(r["seconds"] for r in rows[10:] or rows)
        scores = written(run)
        raw, mpe = scores if scores else ({}, {})
        arm = run.name.rsplit("-s", 1)[0]
        arms[arm].append((came, raw, mpe))
        print(f"| {run.name} | {rows[-1]['step']} | {spp:.3f} | {'-' if last is None else f'{last:.3f}'} | "
              f"{came or '-'} | {stretched or '-'} | {_cells(raw)} | {_cells(mpe)} |")
    print()
    for arm, items in arms.items():
        scored = [(raw, mpe) for _, raw, mpe in items if raw]
        mean = lambda key: {s: statistics.fmean(d[s] for d in (x[key] for x in scored) if s in d)
                            for s in SPLITS if any(s in x[key] for x in scored)}
        came = sum(c is not None for c, _, _ in items)
        print(f"{arm}: lookups came in {came} of {len(items)} runs; mean of {len(scored)} evaluated, "
              f"written raw: {_cells(mean(0)) if scored else '-'}; through the rules: {_cells(mean(1)) if scored else '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
