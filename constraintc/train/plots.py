"""Training plots: loss parts, lambda, and the held-out collapse monitors over the steps."""

from __future__ import annotations

import json
from pathlib import Path


def plot_metrics(metrics_path: str | Path, out_path: str | Path) -> Path:
    """Draw ``metrics.jsonl`` (one row per step) into a three-panel PNG and return its path.

    >>> plot_metrics("runs/finetune/metrics.jsonl", "runs/finetune/training.png")   # doctest: +SKIP
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in Path(metrics_path).read_text().splitlines() if line.strip()]
    steps = [r["step"] for r in rows]

    def series(key: str) -> list[float]:  # a value a row lacks (None) is a gap in the line
        return [float("nan") if r.get(key) is None else r[key] for r in rows]

    fig, axes = plt.subplots(3, 1, figsize=(7, 8), sharex=True)
    ax = axes[0]
    ax.plot(steps, series("ce"), label="cross-entropy (labelled)", lw=0.8)
    if any(r.get("semantic") is not None for r in rows):
        ax.plot(steps, series("semantic"), label="semantic loss", lw=0.8)
    if any(r.get("trace_ce") is not None for r in rows):
        ax.plot(steps, series("trace_ce"), label="trace cross-entropy", lw=0.8)
    ax.plot(steps, series("loss"), label="total", lw=1.2)
    first = [r["step"] for r in rows if r.get("stage") == "traces"]
    if first:
        for a in axes:
            a.axvline(max(first) + 0.5, color="grey", ls=":", lw=0.8)
        ax.text(max(first), ax.get_ylim()[1], " traces only | main ", ha="center", va="top", fontsize=7)
    ax.set_ylabel("loss")
    ax.legend(fontsize=8)
    ax = axes[1]
    ax.plot(steps, [r["lambda"] for r in rows], color="tab:purple")
    ax.set_ylabel("lambda(t)")
    ax = axes[2]
    ev = [r for r in rows if "heldout_balanced_accuracy" in r]
    ax.plot(steps, series("yes_rate"), label="yes-rate (train batch)", lw=0.6, alpha=0.6)
    if ev:
        es = [r["step"] for r in ev]
        ax.plot(es, [r["heldout_balanced_accuracy"] for r in ev], "o-", label="held-out balanced accuracy")
        ax.plot(es, [r["heldout_yes_rate"] for r in ev], "s-", label="held-out yes-rate")
        ax.plot(es, [r["heldout_violation_rate"] for r in ev], "^-", label="held-out rule violations")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("optimizer step")
    ax.legend(fontsize=8)
    fig.tight_layout()
    out_path = Path(out_path)
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
    return out_path
