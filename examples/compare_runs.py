"""Compare fine-tuning runs: balanced accuracy, yes-rate, rule violations and collapse per split.

    python examples/compare_runs.py runs/sl-0 runs/sl-1 runs/ce-0 runs/ce-1
    python examples/compare_runs.py --split transitivity/train runs/*
    python examples/compare_runs.py --split all runs/*       # one column per split

Reads each run's eval_after.json (written by `constraintc finetune`) and prints one row per run,
then the mean and range per group of runs that share a lambda schedule and trace mode. Runs with
--trace also show their written reasoning: the balanced accuracy of the answers the model writes
after reasoning, the share of valid traces (reasoning, then an answer) and of sound traces (valid,
and every stated step true).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--split", default="overall", help="a split key (e.g. transitivity/train), 'overall', or 'all' (a table of every split)")
    args = parser.parse_args(argv)
    if args.split == "all":
        return split_table(args.runs)
    groups: dict[str, list[tuple[float, float]]] = {}
    print(
        f"{'run':<28} {'lambda':<10}{'trace':<6}{'seed':>5}{'bal.acc':>9}{'yes-rate':>10}{'MCC':>8}{'violations':>12}"
        f"  {'collapsed':<10}{'written bal.acc':>16}{'valid traces':>14}{'sound traces':>14}"
    )
    for run in args.runs:
        report_path = run / "eval_after.json"
        if not report_path.is_file():
            print(f"{str(run):<28}(no eval_after.json)")
            continue
        cfg = json.loads((run / "config.json").read_text())
        report = json.loads(report_path.read_text())
        m = report["overall"] if args.split == "overall" else report["splits"].get(args.split)
        if m is None:
            print(f"{str(run):<28}(no split {args.split})")
            continue
        viol = m.get("rule_violation_rate")
        trace = cfg.get("trace", "none")
        reasoning = report.get("reasoning")
        r = None
        if reasoning:
            r = reasoning["overall"] if args.split == "overall" else reasoning["splits"].get(args.split)
        written = valid = sound = "-"
        if r:
            written = f"{r['balanced_accuracy']:.3f}"
            t = r.get("traces") or {}
            valid = f"{t['valid_rate']:.3f}" if t.get("valid_rate") is not None else "-"
            sound = f"{t['sound_traces'] / t['n']:.3f}" if t.get("n") else "-"
        print(
            f"{str(run):<28} {cfg['lambda_schedule']:<10}{trace:<6}{cfg['seed']:>5}{m['balanced_accuracy']:>9.3f}"
            f"{m['yes_rate']:>10.3f}{m['mcc']:>8.3f}{'-' if viol is None else f'{viol:.3f}':>12}"
            f"  {'COLLAPSED' if m['collapsed'] else 'ok':<10}{written:>16}{valid:>14}{sound:>14}"
        )
        groups.setdefault((cfg["lambda_schedule"], trace), []).append((m["balanced_accuracy"], m["yes_rate"]))
    for (name, trace), vals in groups.items():
        b = [v[0] for v in vals]
        y = [v[1] for v in vals]
        print(
            f"lambda={name} trace={trace}: {len(vals)} runs, balanced accuracy mean {statistics.mean(b):.3f} "
            f"[{min(b):.3f}, {max(b):.3f}], yes-rate mean {statistics.mean(y):.3f} [{min(y):.3f}, {max(y):.3f}]"
        )
    return 0


def split_table(runs: list[Path]) -> int:
    """Balanced accuracy per split (and the best shortcut of each split), one row per run, then
    the mean and range of each group of runs that share a lambda schedule and trace mode."""
    reports = []
    for run in runs:
        path = run / "eval_after.json"
        if path.is_file():
            reports.append((run, json.loads((run / "config.json").read_text()), json.loads(path.read_text())))
        else:
            print(f"{run}: no eval_after.json")
    if not reports:
        return 1
    splits = list(reports[0][2]["splits"])
    short = [k.split("/")[-1] for k in splits]
    width = max(9, *(len(k) + 1 for k in short))
    print(f"{'run':<28}{'lambda':<10}{'trace':<6}" + "".join(f"{k:>{width}}" for k in short) + f"{'collapsed':>11}")
    groups: dict[tuple, list[list[float]]] = {}
    for run, cfg, rep in reports:
        vals = [rep["splits"].get(k, {}).get("balanced_accuracy") for k in splits]
        flags = sum(bool(rep["splits"].get(k, {}).get("collapsed")) for k in splits)
        cells = "".join(f"{'-' if v is None else f'{v:.3f}':>{width}}" for v in vals)
        print(f"{str(run):<28}{cfg['lambda_schedule']:<10}{cfg.get('trace', 'none'):<6}{cells}{flags:>11}")
        groups.setdefault((cfg["lambda_schedule"], cfg.get("trace", "none")), []).append(vals)
    best = [reports[0][2]["splits"][k].get("best_baseline_balanced_accuracy") for k in splits]
    print(f"{'best shortcut':<44}" + "".join(f"{'-' if v is None else f'{v:.3f}':>{width}}" for v in best))
    for (name, trace), rows in groups.items():
        cols = list(zip(*rows))
        means = "".join(
            f"{statistics.mean([v for v in c if v is not None]):>{width}.3f}" if any(v is not None for v in c) else f"{'-':>{width}}"
            for c in cols
        )
        print(f"{'mean ' + name + ' ' + trace + f' ({len(rows)})':<44}{means}")
        lows = "".join(f"{min(v for v in c if v is not None):>{width}.3f}" if any(v is not None for v in c) else f"{'-':>{width}}" for c in cols)
        print(f"{'  min':<44}{lows}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
