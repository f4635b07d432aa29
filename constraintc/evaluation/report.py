"""Render evaluation reports: Markdown tables, PNG plots (matplotlib, Agg backend), and the
before -> after tables of a fine-tuning run."""

from __future__ import annotations

from pathlib import Path


def _f(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:+.{digits}f}" if digits < 0 else f"{value:.{digits}f}"
    return str(value)


def _gap(value) -> str:
    return "-" if value is None else f"{value:+.3f}"


def markdown(report: dict, title: str = "constraintc evaluation") -> str:
    """The report as Markdown: one summary row per split, then one table per split with the
    model next to every shortcut baseline (and its accuracy where that shortcut is wrong).

    >>> from constraintc.tasks import generate
    >>> from constraintc.evaluation.metrics import compute_report
    >>> recs = generate("dsep", "train", 20, seed=0)
    >>> md = markdown(compute_report(recs, [{"id": r["id"], "prediction": r["label"]} for r in recs]))
    >>> "| dsep/train | 20 |" in md
    True
    """
    lines = [f"# {title}", ""]
    lines.append(
        f"{report['n_records']} records, {report['n_predictions']} predictions, "
        f"{report['missing_predictions']} records without a prediction, "
        f"{report['unmatched_predictions']} predictions without a record."
    )
    if report["collapsed_splits"]:
        lines.append(f"**Collapsed:** {', '.join(report['collapsed_splits'])}.")
    lines += ["", "## Summary", ""]
    header = (
        "| split | n | acc | bal. acc | MCC | F1 yes | F1 no | yes-rate | entropy | collapse | ctx. sens. "
        "| best shortcut | shortcut bal. acc | gap | rule viol. |"
    )
    lines += [header, "|" + "---|" * (header.count("|") - 1)]
    rows = list(report["splits"].items()) + [("overall", report["overall"])]
    for key, m in rows:
        lines.append(
            f"| {key} | {m['n']} | {_f(m['accuracy'])} | {_f(m['balanced_accuracy'])} | {_f(m['mcc'])} "
            f"| {_f(m['f1_yes'])} | {_f(m['f1_no'])} | {_f(m['yes_rate'])} "
            f"| {_f(m['mean_entropy'] if m['mean_entropy'] is not None else m['answer_entropy'])} "
            f"| {'**COLLAPSED**' if m['collapsed'] else ('chance' if m['at_chance'] else 'no')} "
            f"| {_f(m['context_sensitivity'])} | {m['best_baseline'] or '-'} "
            f"| {_f(m['best_baseline_balanced_accuracy'])} | {_gap(m['shortcut_gap'])} "
            f"| {_f(m['rule_violation_rate'])} |"
        )
    lines += [
        "",
        "entropy: mean binary entropy of p_yes in bits when p_yes is given, else the entropy of the "
        "answer distribution; gap: balanced accuracy minus the best shortcut's.",
    ]
    if report.get("consistent"):
        lines += consistent_section(report)
    for key, m in report["splits"].items():
        lines += ["", f"## {key}", ""]
        for reason in m["collapse_reasons"]:
            lines.append(f"- collapse: {reason}")
        if m["collapse_reasons"]:
            lines.append("")
        lines += [
            "| predictor | acc | bal. acc | MCC | model acc where it is wrong (n) |",
            "|---|---|---|---|---|",
            f"| **model** | {_f(m['accuracy'])} | {_f(m['balanced_accuracy'])} | {_f(m['mcc'])} | |",
        ]
        for name, b in m["baselines"].items():
            c = m["conflict_accuracy"].get(name, {})
            lines.append(
                f"| {name} | {_f(b['accuracy'])} | {_f(b['balanced_accuracy'])} | {_f(b['mcc'])} "
                f"| {_f(c.get('accuracy'))} ({c.get('n', 0)}) |"
            )
        sizes, links = m.get("by_graph_size") or {}, m.get("by_links") or {}
        if len(sizes) > 1:
            lines += ["", "by graph size (nodes), balanced accuracy: "
                      + "; ".join(f"{k}: {_f(b['balanced_accuracy'])} ({b['n']})" for k, b in sizes.items()) + "."]
        if links:
            lines += ["", "by where X and Y stand in the graph, accuracy: "
                      + "; ".join(f"{k}: {_f(b['accuracy'])} ({b['n']})" for k, b in links.items()) + "."]
        ends = m.get("by_ends") or {}
        if ends:
            lines += ["", "by how many of X and Y sit at an end of the graph (no parent or no child), balanced accuracy: "
                      + "; ".join(f"{k}: {_f(b['balanced_accuracy'])} ({b['n']})" for k, b in ends.items()) + "."]
        if m["pairs"]:
            lines += ["", f"minimal pairs: {m['pairs']}, answer changes on {_f(m['context_sensitivity'])}, "
                      f"both right on {_f(m['pair_accuracy'])}."]
        t = m.get("traces")
        if t:
            counts = ", ".join(f"{s} {c}" for s, c in t["status_counts"].items())
            lines += [
                "",
                f"traces: {counts}; steps {t['steps']} ({t['true_steps']} true, precision "
                f"{_f(t['step_precision'])}); accuracy {_f(t['accuracy'])}, given a valid trace "
                f"{_f(t['accuracy_given_valid'])}, given no valid trace {_f(t['accuracy_given_not_valid'])}, "
                f"given a sound trace {_f(t['accuracy_given_sound'])}.",
            ]
        v = m.get("rule_violations")
        if v:
            lines += ["", f"rule violations: {v['violated']} of {v['checked']} graphs checked ({v['groups']} graphs; skipped: {v['skipped'] or 'none'})."]
    return "\n".join(lines) + "\n"


def plot(report: dict, out_dir: str | Path) -> list[Path]:
    """Write ``balanced_accuracy.png`` (model and shortcut baselines per split) and
    ``yes_rate.png`` (predicted and true yes-rate per split, collapse band shaded)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    keys = list(report["splits"])
    splits = [report["splits"][k] for k in keys]
    xs = list(range(len(keys)))
    width = max(6.0, 1.1 * len(keys) + 2)
    paths = []

    fig, ax = plt.subplots(figsize=(width, 4.2))
    model = [m["balanced_accuracy"] or 0.0 for m in splits]
    best = [m["best_baseline_balanced_accuracy"] or 0.0 for m in splits]
    ax.bar([x - 0.2 for x in xs], model, width=0.4, label="model", color="#3b6ea8")
    ax.bar([x + 0.2 for x in xs], best, width=0.4, label="best shortcut", color="#c9c9c9")
    names = sorted({n for m in splits for n in m["baselines"]} - {"always_yes", "always_no"})
    markers = "o^sDvP*X"
    for j, name in enumerate(names):
        ys = [m["baselines"].get(name, {}).get("balanced_accuracy") for m in splits]
        pts = [(x + 0.2, y) for x, y in zip(xs, ys) if y is not None]
        if pts:
            ax.scatter(*zip(*pts), marker=markers[j % len(markers)], s=18, zorder=3, label=name)
    for x, m in zip(xs, splits):
        if m["collapsed"]:
            ax.text(x - 0.2, (m["balanced_accuracy"] or 0) + 0.02, "collapsed", rotation=90, ha="center", va="bottom", fontsize=7, color="#a33")
    ax.axhline(0.5, color="black", lw=0.8, ls="--", label="chance")
    ax.set_ylim(0, 1.05)
    paths.append(_save(plt, fig, ax, xs, keys, "balanced accuracy",
                       "Balanced accuracy per split, with shortcut baselines", out / "balanced_accuracy.png"))

    fig, ax = plt.subplots(figsize=(width, 3.8))
    dom = report["thresholds"]["dominance"]
    ax.axhspan(dom, 1.0, color="#f3d0d0", label="collapse (one answer)")
    ax.axhspan(0.0, 1.0 - dom, color="#f3d0d0")
    ax.bar(xs, [m["yes_rate"] or 0.0 for m in splits], width=0.5, color="#3b6ea8", label="predicted yes-rate")
    ax.scatter(xs, [m["label_yes_rate"] or 0.0 for m in splits], color="black", marker="_", s=400, zorder=3, label="true yes-rate")
    ax.set_ylim(0, 1.0)
    paths.append(_save(plt, fig, ax, xs, keys, "fraction answered Yes", "Yes-rate per split",
                       out / "yes_rate.png"))
    return paths


def _save(plt, fig, ax, xs, keys, ylabel: str, title: str, path: Path) -> Path:
    """Label a per-split figure (split names under the bars, legend outside) and write it."""
    ax.set_xticks(xs, keys, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def consistent_section(report: dict) -> list[str]:
    """The raw answers beside the answers conditioned on the rules (``--consistent``)."""
    cons = report["consistent"]
    lines = [
        "",
        "## Consistent answering",
        "",
        "The model's P(Yes) conditioned on the rules and the graph: *marginal* answers Yes when "
        "P(atom | rules) >= 0.5, *MPE* is the most probable answer set the rules allow (no "
        "violations by construction).",
        "",
        "| split | n | bal. acc raw | marginal | MPE | rule viol. raw | marginal | MPE |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rows = list(report["splits"].items()) + [("overall", report["overall"])]
    for key, m in rows:
        mar = cons["marginal"]["overall"] if key == "overall" else cons["marginal"]["splits"].get(key, {})
        mpe = cons["mpe"]["overall"] if key == "overall" else cons["mpe"]["splits"].get(key, {})
        lines.append(
            f"| {key} | {m['n']} | {_f(m['balanced_accuracy'])} | {_f(mar.get('balanced_accuracy'))} "
            f"| {_f(mpe.get('balanced_accuracy'))} | {_f(m.get('rule_violation_rate'))} "
            f"| {_f(mar.get('rule_violation_rate'))} | {_f(mpe.get('rule_violation_rate'))} |"
        )
    return lines


# ---------------------------------------------------------------- before -> after tables
def _fmt(x) -> str:
    return "  -  " if x is None else f"{x:.3f}"


def _shortcut(m: dict) -> str:
    name, bacc = m.get("best_baseline"), m.get("best_baseline_balanced_accuracy")
    return "-" if name is None or bacc is None else f"{name} {bacc:.3f}"


def comparison_table(before: dict | None, after: dict | None) -> str:
    """A before/after table per split: balanced accuracy, yes-rate, MCC, rule violations, collapse,
    and the best shortcut baseline on the same records (a surface cue, either polarity): a model
    that does not beat it has not shown that it reasons."""
    if after is None:
        return ""
    lines = [
        f"{'split':<30}{'n':>5}  {'bal.acc before -> after':>24}  {'best shortcut':>28}  "
        f"{'yes-rate before -> after':>25}  {'MCC after':>9}  {'violations before -> after':>27}  collapsed before -> after"
    ]
    for key, m in list(after["splits"].items()) + [("overall", after["overall"])]:
        b = (before["splits"].get(key) if key != "overall" else before["overall"]) if before else None
        flag = lambda s: "-" if s is None else ("COLLAPSED" if s["collapsed"] else "ok")  # noqa: E731
        lines.append(
            f"{key:<30}{m['n']:>5}  {_fmt(b and b['balanced_accuracy']):>11} -> {_fmt(m['balanced_accuracy']):<9}"
            f"  {_shortcut(m):>28}"
            f"  {_fmt(b and b['yes_rate']):>12} -> {_fmt(m['yes_rate']):<9}  {_fmt(m['mcc']):>9}"
            f"  {_fmt(b and b.get('rule_violation_rate')):>14} -> {_fmt(m.get('rule_violation_rate')):<9}"
            f"  {flag(b):>9} -> {flag(m)}"
        )
    for key, m in after["splits"].items():
        for reason in m.get("collapse_reasons", []):
            lines.append(f"  after, {key}: collapsed: {reason}")
    return "\n".join(lines)


def _breakdown_table(after: dict | None, key: str, bands: list[str], suffix: str = "") -> str:
    """Balanced accuracy after training per split (rows) and band of ``after``'s ``key`` breakdown
    (columns), each cell with its question count; empty when no split has the breakdown."""
    if not after:
        return ""
    splits = {k: m[key] for k, m in after["splits"].items() if m.get(key)}
    if not splits:
        return ""
    shown = [b for b in bands if any(b in by for by in splits.values())]
    width = max(16, max(len(b + suffix) for b in shown) + 2)
    lines = [f"{'split':<30}" + "".join(f"{band + suffix:>{width}}" for band in shown)]
    for name, by in splits.items():
        cells = []
        for band in shown:
            m = by.get(band)
            cells.append(f"{'-':>{width}}" if m is None else f"{_fmt(m['balanced_accuracy']) + ' (' + str(m['n']) + ')':>{width}}")
        lines.append(f"{name:<30}" + "".join(cells))
    return "\n".join(lines)


def size_table(after: dict | None) -> str:
    """Balanced accuracy after training per split and graph-size band (``by_graph_size``), each
    cell with its question count: where a model that transfers to new names still falls off with
    larger graphs. Empty when no split has a breakdown."""
    from constraintc.evaluation.metrics import SIZE_BANDS

    return _breakdown_table(after, "by_graph_size", [b[2] for b in SIZE_BANDS], " nodes")


def ends_table(after: dict | None) -> str:
    """Balanced accuracy after training per split by how many of the question's two nodes sit at
    an end of the graph (``by_ends``): a model that follows links scores alike in every column,
    one that ranks nodes from the graph's ends scores at chance on ``both interior``."""
    from constraintc.evaluation.metrics import END_BANDS

    return _breakdown_table(after, "by_ends", list(END_BANDS))


def reasoning_table(before: dict | None, after: dict | None) -> str:
    """With --trace: the generated answers' balanced accuracy and rule violations (share of graphs)
    and the traces' validity per split; where the written answers carry ``p_yes``, the balanced
    accuracy of their most probable consistent answer set after training (0 violations)."""
    if not after or not after.get("reasoning"):
        return ""
    b_rep = (before or {}).get("reasoning")
    mpe = ((after["reasoning"].get("consistent") or {}).get("mpe")) or {}
    lines = [
        f"{'split':<30}{'n':>5}  {'bal.acc before -> after':>24}  {'valid traces before -> after':>29}  "
        f"{'sound traces before -> after':>29}  {'step precision after':>20}  {'violations before -> after':>27}"
        + (f"  {'consistent bal.acc after':>24}" if mpe else "")
    ]
    for key, m in list(after["reasoning"]["splits"].items()) + [("overall", after["reasoning"]["overall"])]:
        b = (b_rep["splits"].get(key) if key != "overall" else b_rep["overall"]) if b_rep else None
        t, bt = m.get("traces") or {}, (b or {}).get("traces") or {}
        sound = lambda tr: tr["sound_traces"] / tr["n"] if tr.get("n") else None  # noqa: E731
        c = (mpe.get("splits") or {}).get(key) if key != "overall" else mpe.get("overall")
        lines.append(
            f"{key:<30}{m['n']:>5}  {_fmt(b and b['balanced_accuracy']):>11} -> {_fmt(m['balanced_accuracy']):<9}"
            f"  {_fmt(bt.get('valid_rate')):>16} -> {_fmt(t.get('valid_rate')):<9}"
            f"  {_fmt(sound(bt)):>16} -> {_fmt(sound(t)):<9}  {_fmt(t.get('step_precision')):>20}"
            f"  {_fmt(b and b.get('rule_violation_rate')):>14} -> {_fmt(m.get('rule_violation_rate')):<9}"
            + (f"  {_fmt(c and c['balanced_accuracy']):>24}" if mpe else "")
        )
    return "\n".join(lines)
