"""Metrics: differential checks of the formulas and the collapse behaviour on known predictors."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from constraintc.evaluation.metrics import (
    EvaluationError,
    Thresholds,
    binary_entropy,
    classification_metrics,
    compute_report,
    prepare_predictions,
    end_band,
    link_band,
    size_band,
)
from constraintc.tasks import SPLITS, TASKS, generate
from constraintc.tasks.shortcuts import shortcut_answer


@pytest.fixture(scope="module")
def records():
    return [r for t in TASKS for s in SPLITS for r in generate(t, s, 300, seed=3)]


def _report(records, answer, **kw):
    return compute_report(records, [{"id": r["id"], **answer(r)} for r in records], **kw)


@settings(max_examples=200)
@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=60))
def test_classification_metrics_match_independent_formulas(pairs):
    labels = ["Yes" if y else "No" for y, _ in pairs]
    preds = ["Yes" if p else "No" for _, p in pairs]
    m = classification_metrics(labels, preds)
    y = np.array([a for a, _ in pairs], dtype=float)
    p = np.array([b for _, b in pairs], dtype=float)
    assert m["accuracy"] == pytest.approx(float((y == p).mean()))
    recalls = [float((p[y == c] == c).mean()) for c in (1.0, 0.0) if (y == c).any()]
    assert m["balanced_accuracy"] == pytest.approx(sum(recalls) / len(recalls))
    # MCC is Pearson's correlation of the two 0/1 vectors (0 when either is constant)
    expected = 0.0 if y.std() == 0 or p.std() == 0 else float(np.corrcoef(y, p)[0, 1])
    assert m["mcc"] == pytest.approx(expected, abs=1e-12)
    assert m["yes_rate"] == pytest.approx(float(p.mean()))
    for cls, value in (("f1_yes", 1.0), ("f1_no", 0.0)):
        tp = float(((p == value) & (y == value)).sum())
        denom = float((p == value).sum() + (y == value).sum())
        assert m[cls] == (pytest.approx(2 * tp / denom) if denom else None)


def test_binary_entropy_is_exact_at_the_ends():
    assert binary_entropy(0.0) == 0.0 and binary_entropy(1.0) == 0.0
    assert binary_entropy(0.5) == 1.0
    assert binary_entropy(0.1) == pytest.approx(-(0.1 * math.log2(0.1) + 0.9 * math.log2(0.9)))


@pytest.mark.parametrize("answer", ["Yes", "No"])
def test_constant_predictor_collapses_on_every_split(records, answer):
    rep = _report(records, lambda r: {"prediction": answer})
    assert len(rep["splits"]) == len(TASKS) * len(SPLITS)
    for key, m in rep["splits"].items():
        assert m["collapsed"], key
        assert m["balanced_accuracy"] == 0.5 and m["mcc"] == 0.0
        assert m["yes_rate"] == (1.0 if answer == "Yes" else 0.0)
        assert m["answer_entropy"] == 0.0
        assert m["shortcut_gap"] <= 0.0
        if key.endswith("adversarial"):
            assert m["context_sensitivity"] == 0.0 and m["pair_accuracy"] == 0.0
    assert set(rep["collapsed_splits"]) == set(rep["splits"])
    assert rep["overall"]["collapsed"]


def test_oracle_scores_one_without_collapse(records):
    rep = _report(records, lambda r: {"prediction": r["label"], "p_yes": 1.0 if r["label"] == "Yes" else 0.0})
    for key, m in rep["splits"].items():
        assert not m["collapsed"] and not m["at_chance"]
        assert m["accuracy"] == m["balanced_accuracy"] == m["mcc"] == 1.0
        assert m["f1_yes"] == m["f1_no"] == 1.0
        assert m["mean_entropy"] == 0.0
        # a chain told in causal (or exactly reversed) order is answered by statement order (or
        # its inverse) alone: there the oracle ties with a shortcut; everywhere else it beats them
        if key in ("transitivity/chains_long", "transitivity/chains_reversed"):
            assert m["best_baseline"] in ("statement_order", "not_statement_order")
            assert m["best_baseline_balanced_accuracy"] >= 0.95
        else:
            assert m["shortcut_gap"] > 0.0
        assert all(c["accuracy"] in (1.0, None) for c in m["conflict_accuracy"].values())
        if key.endswith("adversarial"):
            assert m["pairs"] == 75 and m["context_sensitivity"] == 1.0 and m["pair_accuracy"] == 1.0
    assert rep["collapsed_splits"] == []


def test_random_predictor_lands_at_chance_without_collapse(records):
    rng = random.Random(12345)
    rep = _report(records, lambda r: {"p_yes": rng.random()})
    above = []
    for key, m in rep["splits"].items():
        assert abs(m["balanced_accuracy"] - 0.5) < 0.12, key
        assert abs(m["mcc"]) < 0.25
        assert not m["collapsed"], (key, m["collapse_reasons"])
        # "at chance" is at most about two standard errors above 0.5, one-sided: a coin is
        # above that line on ~2.3% of splits, so on about 1 of these 34 (P(more than 4) < 0.3%)
        assert m["at_chance"] == (m["balanced_accuracy"] <= 0.5 + max(0.05, 1 / math.sqrt(m["answered"]))), key
        above += [] if m["at_chance"] else [(key, m["balanced_accuracy"])]
        assert 0.6 < m["mean_entropy"] < 0.8  # E[H(U)] = 1/(2 ln 2) = 0.721 bits
    assert len(above) <= 4, above
    assert abs(rep["overall"]["balanced_accuracy"] - 0.5) < 0.03


def test_skewed_guessing_counts_as_collapse(records):
    rng = random.Random(7)
    rep = _report(records, lambda r: {"prediction": "Yes" if rng.random() < 0.82 else "No"})
    m = rep["overall"]
    assert m["collapsed"] and "at chance" in m["collapse_reasons"][0]


def test_constant_p_yes_counts_as_collapse(records):
    subset = [r for r in records if r["split"] == "train"]
    rep = _report(subset, lambda r: {"prediction": r["label"], "p_yes": 0.5})
    assert rep["overall"]["collapsed"]
    assert any("constant" in reason for reason in rep["overall"]["collapse_reasons"])


def test_shortcut_predictor_matches_its_baseline(records):
    for name in ("statement_order", "overlap", "chain_length"):
        rep = _report(records, lambda r: {"prediction": shortcut_answer(name, r)})
        for key, m in rep["splits"].items():
            b = m["baselines"][name]
            assert m["balanced_accuracy"] == pytest.approx(b["balanced_accuracy"])
            assert m["shortcut_gap"] <= 1e-12
            assert m["conflict_accuracy"][name]["accuracy"] in (0.0, None)


def test_good_model_beats_shortcuts_on_adversarial(records):
    adv = [r for r in records if r["split"] == "adversarial"]
    rep = _report(adv, lambda r: {"prediction": r["label"]})
    for m in rep["splits"].values():
        assert m["best_baseline_balanced_accuracy"] < 0.8
        assert m["shortcut_gap"] > 0.2


def test_missing_predictions_count_as_wrong(records):
    subset = [r for r in records if r["split"] == "train" and r["task"] == "dsep"]
    half = subset[: len(subset) // 2]
    rep = compute_report(subset, [{"id": r["id"], "prediction": r["label"]} for r in half])
    assert rep["missing_predictions"] == len(subset) - len(half)
    assert rep["overall"]["accuracy"] == pytest.approx(len(half) / len(subset))


def test_prediction_errors_name_the_line():
    with pytest.raises(EvaluationError, match=r"p\.jsonl:7:1: .*prediction"):
        prepare_predictions([{"id": "a", "prediction": "maybe", "_line": 7}], "p.jsonl")
    with pytest.raises(EvaluationError, match=r"p\.jsonl:2:1: .*duplicate"):
        prepare_predictions([{"id": "a", "prediction": "Yes", "_line": 1}, {"id": "a", "prediction": "No", "_line": 2}], "p.jsonl")
    with pytest.raises(EvaluationError, match="p_yes=1.5"):
        prepare_predictions([{"id": "a", "p_yes": 1.5}], "p.jsonl")
    recs = generate("transitivity", "train", 4, seed=0)
    with pytest.raises(EvaluationError, match="none of its 1 ids"):
        compute_report(recs, [{"id": "zzz", "prediction": "Yes"}])


def test_thresholds_are_configurable(records):
    rng = random.Random(1)
    subset = [r for r in records if r["split"] == "train"]
    # Yes 70% of the time, the truth otherwise: 85% Yes answers, clearly above chance
    preds = [{"id": r["id"], "prediction": "Yes" if rng.random() < 0.7 else r["label"]} for r in subset]
    assert not compute_report(subset, preds)["overall"]["collapsed"]
    strict = compute_report(subset, preds, thresholds=Thresholds(dominance=0.8))["overall"]
    assert strict["collapsed"] and "(>= 80%)" in strict["collapse_reasons"][0]


def _question_on_random_dag(seed: int):
    """A random DAG of 2-9 nodes (edges in random order), its networkx view and two of its nodes."""
    import networkx as nx

    print(f"seed={seed}")
    rng = random.Random(seed)
    n = rng.randint(2, 9)
    nodes = [f"v{i}" for i in range(n)]
    edges = [[nodes[i], nodes[j]] for i in range(n) for j in range(i + 1, n) if rng.random() < 0.3]
    rng.shuffle(edges)
    g = nx.DiGraph(edges)
    g.add_nodes_from(nodes)
    x, y = rng.sample(nodes, 2)
    return nodes, edges, g, x, y


@settings(max_examples=60)
@given(st.integers(0, 10**6))
def test_link_bands_match_networkx_shortest_paths(seed):
    import networkx as nx

    nodes, edges, g, x, y = _question_on_random_dag(seed)
    band = link_band({"task": "transitivity", "edges": edges, "meta": {"x": x, "y": y}})
    if nx.has_path(g, x, y):
        k = nx.shortest_path_length(g, x, y)
        assert band == ("x->y 1 link" if k == 1 else "x->y 2-3 links" if k <= 3 else "x->y 4-6 links" if k <= 6 else "x->y 7+ links")
    elif nx.has_path(g, y, x):
        assert band == "y->x"
    else:
        assert band == "unrelated"
    assert link_band({"task": "dsep", "edges": edges, "meta": {"x": x, "y": y}}) is None
    assert link_band({"task": "transitivity", "edges": "x->y"}) is None


@settings(max_examples=60)
@given(st.integers(0, 10**6))
def test_end_bands_match_networkx_degrees(seed):
    nodes, edges, g, x, y = _question_on_random_dag(seed)
    at_end = sum(g.in_degree(v) == 0 or g.out_degree(v) == 0 for v in (x, y))
    record = {"task": "transitivity", "nodes": nodes, "edges": edges, "meta": {"x": x, "y": y}}
    assert end_band(record) == ["both interior", "one at an end", "both at ends"][at_end]
    assert end_band({**record, "task": "dsep"}) is None
    assert end_band({**record, "meta": {"x": x, "y": "nowhere"}}) is None
    assert end_band({**record, "edges": [["a", "b", "c"]]}) is None


def test_breakdowns_count_every_record_once_and_score_like_the_whole(records):
    # per split: the bands partition the records; each band's accuracy is recomputed by hand
    rng = random.Random(5)
    preds = {r["id"]: rng.choice(["Yes", "No"]) for r in records}
    report = compute_report(records, [{"id": k, "prediction": v} for k, v in preds.items()])
    for key, m in report["splits"].items():
        members = [r for r in records if f"{r['task']}/{r['split']}" == key]
        assert sum(b["n"] for b in m["by_graph_size"].values()) == len(members)
        for band, b in m["by_graph_size"].items():
            inside = [r for r in members if size_band(len(r["nodes"])) == band]
            assert b["n"] == len(inside)
            assert b["accuracy"] == pytest.approx(sum(preds[r["id"]] == r["label"] for r in inside) / len(inside))
        if key.startswith("transitivity/"):
            assert sum(b["n"] for b in m["by_links"].values()) == len(members)
            for band, b in m["by_links"].items():
                inside = [r for r in members if link_band(r) == band]
                assert {r["label"] for r in inside} == ({"Yes"} if band.startswith("x->y") else {"No"})
                assert b["accuracy"] == pytest.approx(sum(preds[r["id"]] == r["label"] for r in inside) / len(inside))
            assert sum(b["n"] for b in m["by_ends"].values()) == len(members)
            for band, b in m["by_ends"].items():
                inside = [r for r in members if end_band(r) == band]
                assert b["n"] == len(inside)
                assert b["accuracy"] == pytest.approx(sum(preds[r["id"]] == r["label"] for r in inside) / len(inside))
        else:
            assert m["by_links"] == {} and m["by_ends"] == {}
    assert set(report["splits"]["transitivity/chains_long"]["by_graph_size"]) == {"7-9", "10-12", "13-15"}
