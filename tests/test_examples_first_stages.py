"""examples/first_stages.py (when a first stage's lookups came) and examples/gpu_first_stages.sh
(the first stages side by side, evaluated), run end to end at a few steps on the CPU."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
import first_stages  # noqa: E402


@settings(max_examples=200, deadline=None, print_blob=True)
@given(ticks=st.lists(st.integers(0, 64), max_size=40), window=st.integers(1, 8), below=st.integers(0, 64))
def test_lookups_is_the_first_windowed_mean_below_the_threshold(ticks, window, below):
    # trace CEs in steps of 1/64: every window's sum is exact, so a brute-force mean is the same float
    ce = [t / 64 for t in ticks]
    rows = [{"step": i + 1, "trace_ce": x} for i, x in enumerate(ce)]
    last, came = first_stages.lookups(rows, window, below / 64)
    if len(ce) < window:
        assert (last, came) == (None, None)
        return
    means = {end: sum(ce[end - window:end]) / window for end in range(window, len(ce) + 1)}
    assert last == means[len(ce)]
    assert came == next((end for end, m in means.items() if m < below / 64), None)


def test_the_table_reads_runs_and_reports(tmp_path, capsys):
    run = tmp_path / "plain-s3"
    (run / "eval").mkdir(parents=True)
    ce = [0.5] * 60 + [0.05] * 60
    rows = [{"step": i + 1, "stage": "traces", "trace_ce": x, "seconds": 0.2, "position_stretch": 1.0}
            for i, x in enumerate(ce)] + [{"step": 121, "loss": 0.3, "seconds": 0.4}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    splits = {f"transitivity/{s}": {"balanced_accuracy": 0.5 + i / 100} for i, s in enumerate(first_stages.SPLITS)}
    mpe = {f"transitivity/{s}": {"balanced_accuracy": 0.9} for s in first_stages.SPLITS[:2]}
    (run / "eval" / "report.json").write_text(json.dumps({"splits": splits, "consistent": {"mpe": {"splits": mpe}}}))
    assert first_stages.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    # the 50-step mean first drops below 0.1 at step 105 (steps 56-105: five of 0.5, 45 of 0.05)
    row = next(line for line in out.splitlines() if line.startswith("| plain-s3 "))
    assert row.startswith("| plain-s3 | 120 | 0.200 | 0.050 | 105 | - | 0.500 | 0.510 | 0.520 | 0.530 | 0.540 | 0.550 | 0.900 | 0.900 | - |")
    assert "plain: lookups came in 1 of 1 runs" in out


def test_the_table_refuses_a_directory_without_runs(tmp_path, capsys):
    assert first_stages.main([str(tmp_path)]) == 2
    assert "no run directory with a metrics.jsonl" in capsys.readouterr().err


@pytest.mark.slow
def test_gpu_first_stages_runs_both_arms_and_evaluates_them(tmp_path):
    data = tmp_path / "q.jsonl"
    made = subprocess.run(["constraintc", "data", "transitivity", "--split", "mix", "--n", "4", "--seed", "2",
                           "-o", str(data)], capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    env = dict(os.environ, STEPS="3", EVAL_SECONDS="240")
    proc = subprocess.run([str(ROOT / "examples" / "gpu_first_stages.sh"), str(tmp_path / "out"), str(data), "0", "0"],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for arm in ("plain", "after"):
        run = tmp_path / "out" / "runs" / f"{arm}-s0"
        config = json.loads((run / "config.json").read_text())
        assert config["pretrain_steps"] == 3 and config["steps"] == 1 and config["trace_search"] == "depth_first"
        assert config["pretrain_stretch_after"] == (0.1 if arm == "after" else 0.0)
        assert (run / "model-traces").is_dir() and (run / "eval" / "report.json").is_file()
        assert re.search(rf"^\| {arm}-s0 \| 3 \| \d+\.\d{{3}} \| - \| - \| - \| \d\.\d{{3}} \|", proc.stdout, re.M), proc.stdout
    assert "plain: lookups came in 0 of 1 runs; mean of 1 evaluated" in proc.stdout
    assert "after: lookups came in 0 of 1 runs; mean of 1 evaluated" in proc.stdout
    unknown = subprocess.run([str(ROOT / "examples" / "gpu_first_stages.sh"), str(tmp_path / "y"), str(data), "0", "0"],
                             capture_output=True, text=True, timeout=60, env=dict(env, ARMS="stretched"))
    assert unknown.returncode == 2 and "unknown arm 'stretched'" in unknown.stderr
    missing = subprocess.run([str(ROOT / "examples" / "gpu_first_stages.sh"), str(tmp_path / "x"), str(tmp_path / "none.jsonl")],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "no data file" in missing.stderr
