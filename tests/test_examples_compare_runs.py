"""examples/compare_runs.py reads run directories and prints each run's numbers and group means."""

from __future__ import annotations

import json
from pathlib import Path

from constraintc.evaluation.metrics import compute_report
from constraintc.tasks import generate



def _compare_runs():
    from conftest import load_example

    return load_example("compare_runs")


def _run(path: Path, seed: int, trace: str, answers, outputs=None) -> None:
    records = generate("transitivity", "train", 20, seed=0, traces=True)
    path.mkdir()
    report = compute_report(records, [{"id": r["id"], "prediction": answers(r)} for r in records])
    if outputs is not None:
        report["reasoning"] = compute_report(records, [{"id": r["id"], **outputs(r)} for r in records])
    (path / "eval_after.json").write_text(json.dumps(report))
    (path / "config.json").write_text(json.dumps({"lambda_schedule": "adaptive", "seed": seed, "trace": trace}))


def test_rows_groups_and_reasoning_columns(tmp_path, capsys):
    _run(tmp_path / "oracle", 0, "keep", lambda r: r["label"],
         lambda r: {"output": f"{r['trace']}\nAnswer: {r['label']}"})
    _run(tmp_path / "yes", 1, "keep", lambda r: "Yes", lambda r: {"output": "Answer: Yes"})
    _run(tmp_path / "plain", 0, "none", lambda r: "Yes")
    assert _compare_runs().main([str(tmp_path / "oracle"), str(tmp_path / "yes"), str(tmp_path / "plain")]) == 0
    out = capsys.readouterr().out.splitlines()
    # columns after the run path: lambda trace seed bal.acc yes-rate MCC violations collapsed
    # written-bal.acc valid sound
    oracle, yes, plain = (line.split()[-11:] for line in out[1:4])
    assert oracle[:4] == ["adaptive", "keep", "0", "1.000"] and oracle[-2:] == ["1.000", "1.000"]
    assert yes[3] == "0.500" and yes[7] == "COLLAPSED" and yes[-2] == "0.000"  # no reasoning: not valid
    assert plain[1] == "none" and plain[-3:] == ["-", "-", "-"]
    assert any(line.startswith("lambda=adaptive trace=keep: 2 runs, balanced accuracy mean 0.750") for line in out)
