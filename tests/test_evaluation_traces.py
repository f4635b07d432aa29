"""Reasoning traces: status classification, step checking against the graph, conditional accuracy."""

from __future__ import annotations

import zlib

import networkx as nx
import pytest

from constraintc.evaluation.metrics import compute_report
from constraintc.evaluation.traces import check_steps, classify_trace, parse_output, trace_metrics
from constraintc.tasks import generate

REC = {"id": "r", "label": "Yes", "nodes": ["B", "C", "D", "E"], "edges": [["B", "C"], ["C", "D"]],
       "task": "transitivity", "split": "train", "atom": "causes(B,D)"}


@pytest.mark.parametrize(
    "pred, status",
    [
        ({"trace": "B causes C and C causes D.", "prediction": "Yes"}, "valid"),
        ({"trace": None, "prediction": "Yes"}, "missing"),
        ({"prediction": "Yes"}, "missing"),
        ({"trace": "   ", "prediction": "Yes"}, "empty"),
        ({"trace": "<think></think>", "prediction": "Yes"}, "empty"),
        ({"trace": "B causes C and", "prediction": None}, "truncated"),
        ({"trace": "B causes C.", "prediction": "Yes", "finish_reason": "length"}, "truncated"),
        ({"trace": "<think>B causes C", "prediction": "Yes"}, "truncated"),
        ({"output": "<think>B causes C. C causes D.</think>\nAnswer: Yes", "prediction": "Yes"}, "valid"),
        ({"output": "B causes C, C causes D, so the answer is Yes.", "prediction": "Yes"}, "valid"),
        ({"output": "Yes", "prediction": "Yes"}, "missing"),
        ({"output": "<think> </think> Yes", "prediction": "Yes"}, "empty"),
        ({"output": "<think>B causes C. Then", "prediction": None}, "truncated"),
        ({"output": "B causes C. C causes", "prediction": None}, "truncated"),
        ({"output": "B causes C. Yes", "prediction": "Yes", "truncated": True}, "truncated"),
    ],
)
def test_classify_trace(pred, status):
    assert classify_trace(pred)[0] == status


def test_parse_output_takes_the_last_answer():
    assert parse_output("No edge goes back, so no cycle. Answer: Yes") == ("No edge goes back, so no cycle.", "Yes", False)


def test_steps_checked_against_reachability_on_random_graphs():
    # differential: every stated step is judged exactly as networkx reachability judges it
    for r in generate("transitivity", "length", 60, seed=9):
        g = nx.DiGraph([tuple(e) for e in r["edges"]])
        sentences, expected_true, premise = [], 0, 0
        for x in r["nodes"][:5]:
            for y in r["nodes"][:5]:
                if x == y:
                    continue
                reach = nx.has_path(g, x, y)
                positive = zlib.crc32(f"{x}{y}{r['id']}".encode()) % 2 == 0
                sentences.append(f"{x} causes {y}." if positive else f"{x} does not cause {y}.")
                expected_true += reach == positive
                premise += positive and g.has_edge(x, y)
        got = check_steps(" ".join(sentences) + " This causes nothing.", r)
        assert got == {"steps": len(sentences), "true": expected_true, "in_premise": premise}


def test_accuracy_conditional_on_valid_trace():
    recs = [dict(REC, id=f"r{i}", label="Yes" if i % 2 == 0 else "No") for i in range(8)]
    preds = {}
    for i, r in enumerate(recs):
        if i < 4:  # valid traces, answers right
            preds[r["id"]] = {"id": r["id"], "prediction": r["label"], "p_yes": None, "trace": "B causes C. C causes D."}
        else:  # no trace, answers wrong
            preds[r["id"]] = {"id": r["id"], "prediction": "No" if r["label"] == "Yes" else "Yes", "p_yes": None, "trace": None}
    preds["r0"]["trace"] = "D causes B."  # valid but unsound
    m = trace_metrics(recs, preds)
    assert m["status_counts"] == {"valid": 4, "empty": 0, "missing": 4, "truncated": 0}
    assert m["accuracy"] == 0.5 and m["accuracy_given_valid"] == 1.0 and m["accuracy_given_not_valid"] == 0.0
    assert m["sound_traces"] == 3 and m["accuracy_given_sound"] == 1.0
    assert m["steps"] == 7 and m["true_steps"] == 6
    report = compute_report(recs, list(preds.values()))
    assert report["overall"]["traces"]["valid_rate"] == 0.5


def test_no_traces_means_no_trace_section():
    recs = generate("dsep", "train", 6, seed=0)
    rep = compute_report(recs, [{"id": r["id"], "prediction": "Yes"} for r in recs])
    assert rep["overall"]["traces"] is None
