"""examples/sweep.py (runs side by side, reuse, deadline) and benchmarks/bench_gpu.py's own check."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--set", "train_records=48", "--set", "eval_records=8", "--set", "eval_splits=mix",
        "--set", "trace=none", "--set", "batch_groups=4", "--set", "plots=false"]


def _sweep(tmp: Path, *args: str, timeout: int = 300, **kw) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(ROOT / "examples" / "sweep.py"), "--config",
           str(ROOT / "examples" / "configs" / "finetune_transfer.toml"), "--seeds", "0",
           "--output-dir", str(tmp), "--jobs", "2", *TINY, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=tmp.parent, **kw)


@pytest.mark.slow
def test_sweep_runs_conditions_side_by_side_and_reuses_finished_runs(tmp_path):
    out = tmp_path / "sweep"
    first = _sweep(out, "--set", "steps=3", "--set", "eval_every=3")
    assert first.returncode == 0, first.stdout + first.stderr
    for tag, schedule in (("config-sl-s0", "adaptive"), ("config-ce-s0", "none")):
        config = json.loads((out / tag / "config.json").read_text())
        assert config["lambda_schedule"] == schedule and config["steps"] == 3 and config["trace"] == "none"
        assert config["plots"] is False
        assert (out / tag / "eval_after.json").is_file()
        assert str(out / tag) in first.stdout  # a row of the comparison table
    assert "mean adaptive none (1)" in first.stdout and "mean none none (1)" in first.stdout
    again = _sweep(out, "--set", "steps=3", "--set", "eval_every=3")
    assert again.returncode == 0
    assert "2 runs, 2 already finished" in again.stdout


@pytest.mark.slow
def test_sweep_deadline_evaluates_the_newest_checkpoint(tmp_path):
    out = tmp_path / "sweep"
    # started the way a shell starts a background job (`sweep.py ... &`): with Ctrl-C ignored,
    # which the runs must not inherit, or they never stop at the deadline
    result = _sweep(out, "--conditions", "ce", "--set", "steps=100000", "--set", "checkpoint_every=2",
                    "--set", "eval_every=1000", "--deadline", "20",
                    preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "config-ce-s0: stopped at step" in result.stdout
    step = int(result.stdout.split("config-ce-s0: stopped at step ")[1].split(";")[0])
    assert step >= 2 and step % 2 == 0
    run = json.loads((out / "config-ce-s0" / "run.json").read_text())
    assert run["finished"] and run["finished_step"] == step
    assert (out / "config-ce-s0" / "eval_after.json").is_file()


def test_sweep_rejects_bad_arguments(tmp_path):
    for args, words in ((["--conditions", "kl"], "--conditions 'kl'"), (["--seeds", "a"], "--seeds 'a'"),
                        (["--set", "steps"], "--set 'steps'")):
        result = _sweep(tmp_path / "s", *args, timeout=60)
        assert result.returncode == 2 and words in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_bench_gpu_checks_itself_under_the_triton_interpreter():
    pytest.importorskip("triton")
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_gpu.py"), "--device", "cpu", "--sizes", "3",
         "--batches", "8", "--reps", "1"], capture_output=True, text=True, timeout=600, env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all checks passed" in result.stdout
    row = [line.split() for line in result.stdout.splitlines() if line.split()[:3] == ["3", "12", "8"]]
    assert row and float(row[0][3]) < 1e-4 and float(row[0][4]) < 1e-9


def test_sweep_names_runs_after_the_model():
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        from sweep import _model_tag
    finally:
        sys.path.remove(str(ROOT / "examples"))
    assert _model_tag("/tmp/w/SmolLM2-135M-Instruct.Q4_1.gguf") == "SmolLM2-135M-Instruct.Q4_1"
    assert _model_tag("examples/configs/embedded_nope.toml") == "nope"
    assert _model_tag("google/gemma-3-270m") == "google_gemma-3-270m"
    assert _model_tag("embedded") == "embedded"


def test_gpu_pretrained_script_refuses_a_missing_gguf(tmp_path):
    result = subprocess.run(["bash", str(ROOT / "examples" / "gpu_pretrained.sh"), str(tmp_path / "out"),
                             str(tmp_path / "none.gguf"), "10"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "no GGUF file at" in result.stderr
    assert not (tmp_path / "out").exists()
    usage = subprocess.run(["bash", str(ROOT / "examples" / "gpu_pretrained.sh")], capture_output=True, text=True,
                           timeout=60)
    assert usage.returncode != 0 and "usage: examples/gpu_pretrained.sh OUTDIR GGUF" in usage.stderr
