"""Metrics that tell reasoning from collapse, per split, next to shortcut baselines.

``compute_report(records, predictions)`` joins predictions to records by ``id`` and reports, for
every ``task/split`` present and overall: accuracy, balanced accuracy, MCC, F1 per class, yes-rate,
mean prediction entropy, a collapse flag with its reasons, context sensitivity over minimal
pairs, every shortcut baseline and the gap to the best one, the model's accuracy where each
shortcut is wrong, accuracy by graph size and (transitivity) by the links between the two nodes,
reasoning-trace statistics when predictions carry traces, and the rule violation rate when a
rules file is given. See docs/evaluation.md for the definitions.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from typing import Iterable

from constraintc.errors import ConstraintcError

REPORT_VERSION = 1


@dataclass(frozen=True)
class Thresholds:
    """When a split is flagged as collapsed (documented in docs/evaluation.md).

    A split is *collapsed* when one answer takes at least ``dominance`` of the predictions; or when
    balanced accuracy is at chance (at most ``0.5 + max(chance_margin, 1/sqrt(n))``, about two
    standard errors of a coin) while one answer still takes at least ``skewed_dominance``; or when
    ``p_yes`` is given and practically constant (standard deviation below ``p_spread``). A
    predictor at chance that uses both answers evenly is reported as ``at_chance``, not collapsed:
    it guesses, it has not collapsed onto one answer.
    """

    dominance: float = 0.90
    skewed_dominance: float = 0.75
    chance_margin: float = 0.05
    p_spread: float = 0.01
    min_records: int = 10  # below this many records no flag is raised (too little evidence)


class EvaluationError(ConstraintcError):
    """Predictions that cannot be scored against the data (no overlap, bad values)."""


def normalize_answer(value) -> str | None:
    """"Yes"/"No" from a prediction value (case-insensitive; booleans allowed); None if absent.

    >>> normalize_answer(" yes"), normalize_answer(False), normalize_answer(None)
    ('Yes', 'No', None)
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, str):
        text = value.strip().rstrip(".").lower()
        if text == "yes":
            return "Yes"
        if text == "no":
            return "No"
    raise ValueError(f"expected 'Yes' or 'No', got {value!r}")


def _where(pred: dict, source: str) -> str:
    line = pred.get("_line")
    return f"{source}:{line}:1" if line is not None else f"{source}: prediction {pred.get('id')!r}"


def check_records(records: list[dict], path: str) -> None:
    """Records to evaluate on: each with an ``id`` (unique) and a Yes/No ``label``; a
    :class:`~constraintc.tasks.io.DataError` naming FILE:LINE otherwise."""
    from constraintc.tasks.io import DataError

    seen = set()
    for r in records:
        where = f"{path}:{r.get('_line', '?')}:1"
        for name in ("id", "label"):
            if name not in r:
                raise DataError(f"{where}: error: record without the {name!r} field")
        if r["label"] not in ("Yes", "No"):
            raise DataError(f"{where}: error: label={r['label']!r}: expected 'Yes' or 'No'")
        if r["id"] in seen:
            raise DataError(f"{where}: error: duplicate record id {r['id']!r}")
        seen.add(r["id"])


def prepare_predictions(predictions: Iterable[dict], source: str = "predictions") -> dict[str, dict]:
    """id -> {"prediction": "Yes"/"No", "p_yes": float | None, ...the rest}.

    ``prediction`` may be missing when ``p_yes`` is present (then Yes iff p_yes >= 0.5); both
    missing means the model gave no answer (counted, scored as wrong). Raises
    :class:`EvaluationError` naming the line of a bad value or a duplicate id.
    """
    out: dict[str, dict] = {}
    for pred in predictions:
        if "id" not in pred:
            raise EvaluationError(f"{_where(pred, source)}: error: prediction without an 'id' field")
        pid = str(pred["id"])
        if pid in out:
            raise EvaluationError(f"{_where(pred, source)}: error: duplicate prediction for id {pid!r}")
        p_yes = pred.get("p_yes")
        if p_yes is not None:
            if isinstance(p_yes, bool) or not isinstance(p_yes, (int, float)) or not 0.0 <= float(p_yes) <= 1.0:
                raise EvaluationError(f"{_where(pred, source)}: error: p_yes={p_yes!r}: expected a number in [0, 1]")
            p_yes = float(p_yes)
        try:
            answer = normalize_answer(pred.get("prediction"))
        except ValueError as err:
            raise EvaluationError(f"{_where(pred, source)}: error: prediction: {err}") from None
        if answer is None and p_yes is not None:
            answer = "Yes" if p_yes >= 0.5 else "No"
        out[pid] = {**pred, "prediction": answer, "p_yes": p_yes}
    return out


# ---------------------------------------------------------------------------------------------
# binary metrics


def _safe_div(a: float, b: float) -> float | None:
    return a / b if b else None


def binary_entropy(p: float) -> float:
    """H(p) in bits, exactly 0 at p in {0, 1}.

    >>> binary_entropy(0.5), binary_entropy(0.0), binary_entropy(1.0)
    (1.0, 0.0, 0.0)
    """
    if p <= 0.0 or p >= 1.0:
        return 0.0
    return -(p * math.log2(p) + (1.0 - p) * math.log2(1.0 - p))


def confusion(labels: list[str], preds: list[str | None]) -> dict[str, int]:
    """tp/fn/fp/tn with Yes as positive; a missing prediction counts as wrong (the other class)."""
    c = {"tp": 0, "fn": 0, "fp": 0, "tn": 0}
    for y, p in zip(labels, preds):
        if y == "Yes":
            c["tp" if p == "Yes" else "fn"] += 1
        else:
            c["tn" if p == "No" else "fp"] += 1
    return c


def classification_metrics(labels: list[str], preds: list[str | None]) -> dict:
    """Accuracy, balanced accuracy, MCC, F1 per class, yes-rate for Yes/No labels and predictions.

    Balanced accuracy is the mean recall over the classes present; MCC is 0 when undefined (a
    constant predictor or a single-class split), as in scikit-learn.

    >>> m = classification_metrics(["Yes", "No", "Yes", "No"], ["Yes", "Yes", "Yes", "Yes"])
    >>> m["balanced_accuracy"], m["mcc"], m["yes_rate"]
    (0.5, 0.0, 1.0)
    """
    n = len(labels)
    c = confusion(labels, preds)
    tp, fn, fp, tn = c["tp"], c["fn"], c["fp"], c["tn"]
    recall_yes = _safe_div(tp, tp + fn)
    recall_no = _safe_div(tn, tn + fp)
    recalls = [r for r in (recall_yes, recall_no) if r is not None]
    denom = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)
    mcc = (tp * tn - fp * fn) / math.sqrt(denom) if denom else 0.0
    answered = sum(p is not None for p in preds)
    yes_pred = sum(p == "Yes" for p in preds)
    return {
        "n": n,
        "answered": answered,
        "accuracy": _safe_div(tp + tn, n),
        "balanced_accuracy": sum(recalls) / len(recalls) if recalls else None,
        "mcc": mcc,
        "recall_yes": recall_yes,
        "recall_no": recall_no,
        "precision_yes": _safe_div(tp, tp + fp),
        "precision_no": _safe_div(tn, tn + fn),
        "f1_yes": _safe_div(2 * tp, 2 * tp + fp + fn),
        "f1_no": _safe_div(2 * tn, 2 * tn + fn + fp),
        "yes_rate": _safe_div(yes_pred, answered),
        "label_yes_rate": _safe_div(tp + fn, n),
        "confusion": c,
    }


def collapse_check(metrics: dict, p_values: list[float], thresholds: Thresholds) -> dict:
    """The collapse flag, the reasons for it, and whether the split is at chance."""
    n = metrics["answered"]
    yes_rate = metrics["yes_rate"]
    bacc = metrics["balanced_accuracy"]
    reasons: list[str] = []
    at_chance = False
    if n >= thresholds.min_records and yes_rate is not None:
        dominance = max(yes_rate, 1.0 - yes_rate)
        chance_line = 0.5 + max(thresholds.chance_margin, 1.0 / math.sqrt(n))
        at_chance = bacc is not None and bacc <= chance_line
        top = "Yes" if yes_rate >= 0.5 else "No"
        if dominance >= thresholds.dominance:
            reasons.append(f"{top} takes {dominance:.1%} of predictions (>= {thresholds.dominance:.0%})")
        elif at_chance and dominance >= thresholds.skewed_dominance:
            reasons.append(
                f"balanced accuracy {bacc:.3f} is at chance (<= {chance_line:.3f}) and {top} takes "
                f"{dominance:.1%} of predictions (>= {thresholds.skewed_dominance:.0%})"
            )
        if len(p_values) >= thresholds.min_records:
            mean = sum(p_values) / len(p_values)
            std = math.sqrt(sum((p - mean) ** 2 for p in p_values) / len(p_values))
            if std < thresholds.p_spread:
                reasons.append(f"p_yes is constant (std {std:.2g} < {thresholds.p_spread})")
    return {"collapsed": bool(reasons), "collapse_reasons": reasons, "at_chance": at_chance}


def context_sensitivity(records: list[dict], preds: dict[str, str | None]) -> dict:
    """Over minimal pairs (records sharing ``pair``): how often the answer changes, and how often
    both answers are right. The truth changes on every pair, so a reasoner scores 1.0."""
    pairs: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        if r.get("pair") is not None:
            pairs[r["pair"]].append(r)
    changed = both_right = counted = 0
    for members in pairs.values():
        if len(members) != 2:
            continue
        a, b = members
        pa, pb = preds.get(a["id"]), preds.get(b["id"])
        if pa is None or pb is None:
            continue
        counted += 1
        changed += pa != pb
        both_right += pa == a["label"] and pb == b["label"]
    return {
        "pairs": counted,
        "context_sensitivity": _safe_div(changed, counted),
        "pair_accuracy": _safe_div(both_right, counted),
    }


def _with_inverses(answers: dict[str, str]) -> dict[str, str]:
    """The shortcuts' answers and their inverses (``not_NAME``): a model can learn a cue with
    either polarity (on reversed chains "the cause is stated later" is right every time)."""
    flip = {"Yes": "No", "No": "Yes"}
    out = dict(answers)
    for name, answer in answers.items():
        if name not in ("always_yes", "always_no"):  # their inverses are each other
            out[f"not_{name}"] = flip.get(answer, answer)
    return out


def shortcut_baselines(records: list[dict], preds: list[str | None], answers: list[dict[str, str] | None]) -> dict:
    """Every shortcut's scores on these records (each surface cue with both polarities), the best
    one, and the model's accuracy on the records where each shortcut is wrong ("conflict
    accuracy")."""
    labels = [r["label"] for r in records]
    usable = [i for i, a in enumerate(answers) if a is not None]
    if not usable:
        return {"baselines": {}, "best_baseline": None, "best_baseline_balanced_accuracy": None, "conflict_accuracy": {}}
    answers = [_with_inverses(a) if a is not None else None for a in answers]
    names = list(answers[usable[0]])
    baselines = {}
    conflict = {}
    for name in names:
        ys = [labels[i] for i in usable]
        ps = [answers[i][name] for i in usable]
        m = classification_metrics(ys, ps)
        baselines[name] = {"accuracy": m["accuracy"], "balanced_accuracy": m["balanced_accuracy"], "mcc": m["mcc"]}
        wrong = [i for i in usable if answers[i][name] != labels[i]]
        right = sum(preds[i] == labels[i] for i in wrong)
        conflict[name] = {"n": len(wrong), "accuracy": _safe_div(right, len(wrong))}
    best = max(names, key=lambda k: (baselines[k]["balanced_accuracy"] or 0.0, k not in ("always_yes", "always_no")))
    return {
        "baselines": baselines,
        "best_baseline": best,
        "best_baseline_balanced_accuracy": baselines[best]["balanced_accuracy"],
        "conflict_accuracy": conflict,
    }


def _shortcut_answers(record: dict) -> dict[str, str] | None:
    from constraintc.tasks.shortcuts import shortcut_answers

    try:
        return shortcut_answers(record)
    except (KeyError, ValueError, TypeError):
        return None  # a record from elsewhere without atom/edges: no baselines for it


# graph sizes reported apart: the generators' training sizes (<= 6) and three bands above
SIZE_BANDS = ((0, 6, "<=6"), (7, 9, "7-9"), (10, 12, "10-12"), (13, 15, "13-15"), (16, None, ">=16"))
LINK_BANDS = ("x->y 1 link", "x->y 2-3 links", "x->y 4-6 links", "x->y 7+ links", "y->x", "unrelated")
END_BANDS = ("both interior", "one at an end", "both at ends")


def size_band(nodes: int) -> str:
    """The :data:`SIZE_BANDS` label of a graph of ``nodes`` nodes.

    >>> [size_band(n) for n in (3, 7, 12, 15, 20)]
    ['<=6', '7-9', '10-12', '13-15', '>=16']
    """
    for low, high, label in SIZE_BANDS:
        if nodes >= low and (high is None or nodes <= high):
            return label
    raise ValueError(f"no size band for {nodes} nodes")


def link_band(record: dict) -> str | None:
    """Where a transitivity question's two nodes stand: ``x->y`` with the fewest links from X
    to Y (a Yes question), ``y->x`` (Y causes X: No), or ``unrelated`` (No); ``None`` for a
    record without ``edges`` and ``meta.x``/``meta.y`` or of another task.

    >>> r = {"task": "transitivity", "edges": [["a", "b"], ["b", "c"]], "meta": {"x": "a", "y": "c"}}
    >>> link_band(r), link_band({**r, "meta": {"x": "c", "y": "a"}})
    ('x->y 2-3 links', 'y->x')
    """
    meta, edges = record.get("meta"), record.get("edges")
    if record.get("task") != "transitivity" or not isinstance(meta, dict) or not isinstance(edges, list):
        return None
    x, y = meta.get("x"), meta.get("y")
    succ: dict = defaultdict(list)
    try:
        for u, v in edges:
            succ[u].append(v)
    except (TypeError, ValueError):
        return None

    def links(a, b) -> int | None:  # breadth-first: the fewest links from a to b
        frontier, seen, k = [a], {a}, 0
        while frontier:
            k += 1
            nxt = []
            for u in frontier:
                for v in succ.get(u, ()):
                    if v == b:
                        return k
                    if v not in seen:
                        seen.add(v)
                        nxt.append(v)
            frontier = nxt
        return None

    forward = links(x, y)
    if forward is not None:
        return LINK_BANDS[0 if forward == 1 else 1 if forward <= 3 else 2 if forward <= 6 else 3]
    return LINK_BANDS[4] if links(y, x) is not None else LINK_BANDS[5]


def end_band(record: dict) -> str | None:
    """How many of a transitivity question's two nodes sit at an end of the premise graph (a
    source: no parent; or a sink: no child): ``both interior``, ``one at an end`` or ``both at
    ends``; ``None`` for a record without ``nodes``, ``edges`` and ``meta.x``/``meta.y`` or of
    another task. A model that ranks nodes by how close they are to the graph's ends, instead of
    following the links, answers the end questions and fails the interior ones.

    >>> r = {"task": "transitivity", "nodes": list("abcd"), "edges": [["a", "b"], ["b", "c"], ["c", "d"]],
    ...      "meta": {"x": "b", "y": "c"}}
    >>> end_band(r), end_band({**r, "meta": {"x": "a", "y": "c"}}), end_band({**r, "meta": {"x": "d", "y": "a"}})
    ('both interior', 'one at an end', 'both at ends')
    """
    from constraintc.tasks.graphs import interior_nodes

    meta, nodes, edges = record.get("meta"), record.get("nodes"), record.get("edges")
    if record.get("task") != "transitivity" or not isinstance(meta, dict) or not isinstance(edges, list) \
            or not isinstance(nodes, list):
        return None
    try:
        inner = interior_nodes(nodes, [(u, v) for u, v in edges])
    except (TypeError, ValueError):
        return None
    x, y = meta.get("x"), meta.get("y")
    if x not in nodes or y not in nodes:
        return None
    return END_BANDS[(x not in inner) + (y not in inner)]


def breakdown(records: list[dict], preds: list[str | None], key) -> dict[str, dict]:
    """Per value of ``key(record)`` (records where it is ``None`` left out): n, accuracy,
    balanced accuracy, yes-rate; in :data:`SIZE_BANDS` / :data:`LINK_BANDS` / :data:`END_BANDS` order."""
    groups: dict[str, tuple[list, list]] = defaultdict(lambda: ([], []))
    for r, p in zip(records, preds):
        k = key(r)
        if k is not None:
            groups[k][0].append(r["label"])
            groups[k][1].append(p)
    order = [b[2] for b in SIZE_BANDS] + list(LINK_BANDS) + list(END_BANDS)
    out = {}
    for k in sorted(groups, key=lambda k: (order.index(k) if k in order else len(order), k)):
        m = classification_metrics(*groups[k])
        out[k] = {f: m[f] for f in ("n", "accuracy", "balanced_accuracy", "yes_rate")}
    return out


def _size_key(record: dict) -> str | None:
    nodes = record.get("nodes")
    return size_band(len(nodes)) if isinstance(nodes, list) and nodes else None


def split_metrics(
    records: list[dict],
    pred_map: dict[str, dict],
    thresholds: Thresholds = Thresholds(),
    answers: list[dict[str, str] | None] | None = None,
) -> dict:
    """All metrics for one set of records (one split, or everything)."""
    from constraintc.evaluation.traces import trace_metrics

    labels = [r["label"] for r in records]
    preds = [pred_map[r["id"]]["prediction"] if r["id"] in pred_map else None for r in records]
    p_values = [pred_map[r["id"]]["p_yes"] for r in records if r["id"] in pred_map and pred_map[r["id"]]["p_yes"] is not None]
    out = classification_metrics(labels, preds)
    out["mean_entropy"] = sum(map(binary_entropy, p_values)) / len(p_values) if p_values else None
    out["mean_p_yes"] = sum(p_values) / len(p_values) if p_values else None
    out["answer_entropy"] = binary_entropy(out["yes_rate"]) if out["yes_rate"] is not None else None
    out.update(collapse_check(out, p_values, thresholds))
    out.update(context_sensitivity(records, {r["id"]: p for r, p in zip(records, preds)}))
    if answers is None:
        answers = [_shortcut_answers(r) for r in records]
    out.update(shortcut_baselines(records, preds, answers))
    best = out["best_baseline_balanced_accuracy"]
    bacc = out["balanced_accuracy"]
    out["shortcut_gap"] = bacc - best if (best is not None and bacc is not None) else None
    out["by_graph_size"] = breakdown(records, preds, _size_key)
    out["by_links"] = breakdown(records, preds, link_band)
    out["by_ends"] = breakdown(records, preds, end_band)
    out["traces"] = trace_metrics(records, pred_map)
    return out


def split_key(record: dict) -> str:
    return f"{record.get('task', '?')}/{record.get('split', '?')}"


def compute_report(
    records: list[dict],
    predictions: Iterable[dict] | dict[str, dict],
    *,
    thresholds: Thresholds = Thresholds(),
    rules=None,
    rules_max_nodes: int = 5,
    rules_params: dict[str, int] | None = None,
    source: str = "predictions",
    progress: bool = False,
) -> dict:
    """The evaluation report of ``predictions`` on ``records`` (JSON-serialisable dict).

    ``predictions``: dicts with ``id`` and ``prediction`` ("Yes"/"No") and/or ``p_yes``, optionally
    ``trace``/``output`` (reasoning), or an already prepared id -> prediction map.
    ``rules``: a rules file or library name (or a ``SemanticLoss`` holding rules already read, as
    a training run passes its own); when given, the rule violation rate per split is the
    fraction of graphs (groups) whose predicted answers contradict the rules (see
    :mod:`constraintc.evaluation.violations`).

    >>> from constraintc.tasks import generate
    >>> recs = generate("transitivity", "train", 40, seed=0)
    >>> rep = compute_report(recs, [{"id": r["id"], "prediction": "Yes"} for r in recs])
    >>> s = rep["splits"]["transitivity/train"]
    >>> s["balanced_accuracy"], s["mcc"], s["collapsed"]
    (0.5, 0.0, True)
    """
    if isinstance(predictions, dict):
        pred_map = predictions
    else:
        pred_map = prepare_predictions(predictions, source)
    records = list(records)
    ids = {r["id"] for r in records}
    matched = sum(1 for pid in pred_map if pid in ids)
    if records and not matched:
        raise EvaluationError(
            f"error: {source}: none of its {len(pred_map)} ids matches a record id of the data "
            f"(data ids look like {records[0]['id']!r})"
        )
    answers = {r["id"]: _shortcut_answers(r) for r in records}
    by_split: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_split[split_key(r)].append(r)
    violations = None
    if rules is not None:
        from constraintc.evaluation.violations import rule_violations

        violations = rule_violations(
            records, pred_map, rules, max_nodes=rules_max_nodes, params=rules_params, progress=progress
        )
    splits = {}
    for key, members in by_split.items():
        m = split_metrics(members, pred_map, thresholds, [answers[r["id"]] for r in members])
        m["rule_violations"] = _violation_summary(members, violations)
        m["rule_violation_rate"] = m["rule_violations"]["rate"] if m["rule_violations"] else None
        splits[key] = m
    overall = split_metrics(records, pred_map, thresholds, [answers[r["id"]] for r in records])
    overall["rule_violations"] = _violation_summary(records, violations)
    overall["rule_violation_rate"] = overall["rule_violations"]["rate"] if overall["rule_violations"] else None
    return {
        "version": REPORT_VERSION,
        "n_records": len(records),
        "n_predictions": len(pred_map),
        "missing_predictions": len(records) - sum(1 for r in records if r["id"] in pred_map),
        "unmatched_predictions": len(pred_map) - matched,
        "thresholds": asdict(thresholds),
        "rules": getattr(rules, "rules", rules),
        "splits": splits,
        "overall": overall,
        "collapsed_splits": [k for k, m in splits.items() if m["collapsed"]],
    }


def _violation_summary(records: list[dict], violations: dict | None) -> dict | None:
    if violations is None:
        return None
    groups = {r["group"] for r in records if "group" in r}
    checked = [g for g in groups if g in violations["groups"]]
    violated = sum(violations["groups"][g] for g in checked)
    return {
        "groups": len(groups),
        "checked": len(checked),
        "violated": violated,
        "rate": _safe_div(violated, len(checked)),
        "skipped": dict(Counter(violations["skipped"][g] for g in groups if g in violations["skipped"])),
    }
