"""Checkpoints and output directories as attacks and accidents leave them: a pickle that would
run code, damaged and foreign checkpoints, a reused output directory, a finished run resumed
by mistake, changed flags on resume, kills (also mid-checkpoint) and Ctrl-C."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from constraintc.cli import main
from constraintc.train import checkpoint as ckpt
from constraintc.train import rundir
from constraintc.train.checkpoint import CheckpointError, decode_state, encode_state, load_checkpoint, save_checkpoint
from constraintc.train.config import validate
from constraintc.train.recipe import FinetuneRecipe

SMALL = dict(
    train_records=96, eval_records=0, final_eval=False, plots=False, batch_groups=4,
    warmup_steps=0, lr=3e-3, lr_schedule="constant", eval_every=1000, threads=1,
)
SMALL_FLAGS = [
    "--train-records", "96", "--eval-records", "0", "--no-final-eval", "--no-plots", "--batch-groups", "4",
    "--warmup-steps", "0", "--lr", "3e-3", "--lr-schedule", "constant", "--threads", "1", "--no-progress",
]


def _metrics(out: Path) -> list[dict]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    for r in rows:
        r.pop("seconds")
    return rows


def _weights(out: Path) -> dict:
    return load_file(out / "model" / "model.safetensors")


def _same_weights(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for name in wa:
        assert torch.equal(wa[name], wb[name]), name


# ---------------------------------------------------------------------------------- the format
def _real_state() -> dict:
    """The state a run checkpoints, from a real optimizer and schedule after a few steps."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 1))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.85, 0.99))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 3))
    for _ in range(3):
        model(torch.randn(5, 3)).pow(2).sum().backward()
        opt.step()
        sched.step()
        opt.zero_grad()
    random.seed(5)
    random.random()
    return {
        "step": 3, "model": {n: p.detach().clone() for n, p in model.named_parameters()},
        "optimizer": opt.state_dict(), "lr_scheduler": sched.state_dict(), "lambda_schedule": {"current": 0.05},
        "torch_rng": torch.get_rng_state(), "python_rng": random.getstate(), "config": {"lr": 1e-2, "targets": ["q"]},
    }


def _equal(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def test_a_real_state_round_trips_exactly_without_pickle(tmp_path):
    state = _real_state()
    path = save_checkpoint(tmp_path, 3, state, keep=2, run_id="r1")
    assert sorted(p.name for p in path.iterdir()) == ["manifest.json", "state.json", "tensors.safetensors"]
    back = load_checkpoint(path, run_id="r1")
    assert _equal(state, back)  # tuples stay tuples, integer keys stay integers, tensors bit-equal
    random.setstate(back["python_rng"])
    torch.set_rng_state(back["torch_rng"])
    value, tensors = encode_state(back)
    assert _equal(decode_state(json.loads(json.dumps(value)), tensors), state)


@pytest.mark.parametrize("bad", [
    {"$tensor": "missing"}, {"$tuple": 3}, {"$dict": [[1]]}, {"$eval": "os.system('x')"},
    {"$tensor": "t0", "extra": 1}, {"$dict": [[[1, 2], 3]]},
])
def test_only_the_written_tags_decode(bad):
    with pytest.raises(ValueError):
        decode_state({"x": bad}, {"t0": torch.zeros(1)})


def _payload(marker: Path):
    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    return Payload()


def _finished_run(out: Path, **over) -> None:
    cfg = validate({**SMALL, "output_dir": str(out), "steps": 2, "checkpoint_every": 1, "keep_checkpoints": 0, **over})
    FinetuneRecipe(cfg, progress=False).run()


def test_a_pickle_that_would_run_code_is_never_unpickled(tmp_path, capsys):
    out = tmp_path / "run"
    _finished_run(out)
    marker = tmp_path / "PWNED"
    # the old loader's torch.load(weights_only=False) ran this; now it is only a file
    planted = out / "checkpoints" / "step-000200"
    planted.mkdir()
    torch.save({"step": 200, "model": _payload(marker)}, planted / "state.pt")
    code = main(["finetune", "--resume", "--output-dir", str(out), "--steps", "3", "--allow-config-change", *SMALL_FLAGS])
    err = capsys.readouterr().err
    assert not marker.exists(), "the planted pickle ran"
    assert "skipping checkpoint" in err and "pickled state.pt" in err and "not loaded" in err
    assert code == 0  # it fell back to the run's own newest intact checkpoint (step 2) and trained on
    assert "resumed from" in err and "step-000002 at step 2" in err
    assert [r["step"] for r in _metrics(out)] == [1, 2, 3]
    # named directly, the planted checkpoint is an error, not a fallback
    code = main(["finetune", "--resume", str(planted), *SMALL_FLAGS])
    err = capsys.readouterr().err
    assert code == 1 and "pickled state.pt" in err and "Traceback" not in err
    assert not marker.exists()


def test_a_forged_checkpoint_with_matching_digests_runs_nothing(tmp_path):
    out = tmp_path / "run"
    path = save_checkpoint(out, 4, _real_state() | {"step": 4}, keep=0, run_id="r1")
    marker = tmp_path / "PWNED"
    torch.save(_payload(marker), path / "tensors.safetensors")  # a pickle where the tensors go
    manifest = json.loads((path / "manifest.json").read_text())
    digest, size = ckpt._sha256(path / "tensors.safetensors")
    manifest["files"]["tensors.safetensors"] = {"sha256": digest, "size": size}
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="malformed checkpoint"):
        load_checkpoint(path)
    assert not marker.exists()


# ---------------------------------------------------------------------------------- falling back
def _three_checkpoints(out: Path, run_id: str = "r1") -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    rundir.write_run(out, {"format": rundir.RUN_FORMAT, "run_id": run_id, "finished": False})
    base = _real_state()
    return [save_checkpoint(out, s, {**base, "step": s}, keep=0, run_id=run_id) for s in (2, 4, 6)]


def _flip_tensor_bit(p: Path):
    data = bytearray((p / "tensors.safetensors").read_bytes())
    data[-7] ^= 0x20
    (p / "tensors.safetensors").write_bytes(data)


DAMAGE = {
    "bit_flip_in_tensors": _flip_tensor_bit,
    "truncated_state": lambda p: (p / "state.json").write_bytes((p / "state.json").read_bytes()[:40]),
    "emptied_tensors": lambda p: (p / "tensors.safetensors").write_bytes(b""),
    "no_manifest": lambda p: (p / "manifest.json").unlink(),
    "garbage_manifest": lambda p: (p / "manifest.json").write_bytes(b"\x00\xff{"),
    "another_runs_checkpoint": lambda p: (p / "manifest.json").write_text(
        (p / "manifest.json").read_text().replace('"r1"', '"someone-else"')),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_resume_falls_back_to_the_newest_intact_checkpoint(tmp_path, damage):
    out = tmp_path / "run"
    paths = _three_checkpoints(out)
    DAMAGE[damage](paths[-1])
    point = rundir.find_resume("latest", out)
    assert point.step == 4 and point.checkpoint == paths[1]
    assert [p for p, _ in point.skipped] == [paths[2]]
    with pytest.raises(CheckpointError):
        load_checkpoint(paths[2], run_id="r1")
    # named explicitly, the damaged checkpoint is an error, not a silent fallback
    with pytest.raises(CheckpointError):
        rundir.find_resume(str(paths[2]), out)


def test_no_intact_checkpoint_lists_every_reason(tmp_path):
    out = tmp_path / "run"
    for p, damage in zip(_three_checkpoints(out), ("bit_flip_in_tensors", "no_manifest", "truncated_state")):
        DAMAGE[damage](p)
    with pytest.raises(rundir.RunDirError) as info:
        rundir.find_resume("latest", out)
    message = str(info.value)
    assert message.count("step-00000") == 3 and "does not match the digest" in message and "no manifest.json" in message


def test_pruning_never_deletes_another_runs_checkpoints(tmp_path):
    out = tmp_path / "run"
    base = _real_state()
    theirs = [save_checkpoint(out, s, {**base, "step": s}, keep=0, run_id="old") for s in (100, 200, 300)]
    ours = [save_checkpoint(out, s, {**base, "step": s}, keep=2, run_id="new") for s in (1, 2, 3)]
    assert all(p.is_dir() for p in theirs)  # the old run's higher steps sorted last and were pruned
    assert [p.is_dir() for p in ours] == [False, True, True]
    # numeric order: step 1,000,000 is newer than step 999,999
    big = [save_checkpoint(out, s, {**base, "step": s}, keep=1, run_id="big") for s in (999_999, 1_000_000)]
    assert [p.is_dir() for p in big] == [False, True]


def test_a_kill_mid_checkpoint_leaves_the_previous_one_usable(tmp_path, monkeypatch):
    out = tmp_path / "run"
    paths = _three_checkpoints(out)
    real = ckpt._write_synced

    def dies_at_the_manifest(path, data):
        if path.name == "manifest.json":
            raise KeyboardInterrupt  # the process is gone before the manifest is written
        real(path, data)

    monkeypatch.setattr(ckpt, "_write_synced", dies_at_the_manifest)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(out, 8, {**_real_state(), "step": 8}, keep=0, run_id="r1")
    # and a kill in the window where step 6 is being replaced by a new step 6
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(out, 6, {**_real_state(), "step": 6}, keep=0, run_id="r1")
    monkeypatch.undo()
    paths[2].rename(out / "checkpoints" / ".old-step-000006-1")
    assert rundir.find_resume("latest", out).step == 4
    ckpt.remove_partial_writes(out)
    assert not list((out / "checkpoints").glob(".*"))
    assert rundir.find_resume("latest", out).step == 6  # put back, intact


# ---------------------------------------------------------------------------------- directories
def test_a_new_run_refuses_a_directory_holding_another_run(tmp_path, capsys):
    out = tmp_path / "run"
    _finished_run(out)
    (out / "notes.txt").write_text("mine")
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    code = main(["finetune", "--output-dir", str(out), "--steps", "1", *SMALL_FLAGS])
    err = capsys.readouterr().err
    assert code == 2 and "holds another run" in err and "--overwrite" in err and "--resume" in err
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before  # nothing emptied, nothing pruned
    old_id = rundir.read_run(out)["run_id"]
    code = main(["finetune", "--output-dir", str(out), "--steps", "1", "--overwrite", *SMALL_FLAGS])
    assert code == 0
    assert rundir.read_run(out)["run_id"] != old_id
    assert [r["step"] for r in _metrics(out)] == [1]
    assert [s for s, _ in ckpt.checkpoint_dirs(out)] == [1]  # the old run's checkpoints went with it
    assert (out / "notes.txt").read_text() == "mine"  # --overwrite deletes run files only


def test_a_run_that_failed_while_setting_up_does_not_block_the_next(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["finetune", "--output-dir", str(out), "--data", str(tmp_path / "missing.jsonl"), *SMALL_FLAGS]) != 0
    assert rundir.run_files(out) and not rundir.trained(out)  # run.json and config.json only
    capsys.readouterr()
    assert main(["finetune", "--output-dir", str(out), "--steps", "1", *SMALL_FLAGS]) == 0
    assert "stopped before its first step" in capsys.readouterr().err
    assert [r["step"] for r in _metrics(out)] == [1]


def test_an_output_dir_that_is_a_file_is_an_option_error(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["finetune", "--output-dir", str(f), *SMALL_FLAGS]) == 2
    assert "--output-dir" in capsys.readouterr().err


def test_resume_alone_means_latest_and_needs_a_run(tmp_path, capsys, monkeypatch):
    from constraintc.cli import build_parser

    args = build_parser("finetune").parse_args(["--resume"])
    assert args.resume == "latest"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["finetune", "--resume", "--output-dir", str(empty), *SMALL_FLAGS]) == 2
    assert "holds no run to resume" in capsys.readouterr().err
    assert main(["finetune", "--resume", "--overwrite", "--output-dir", str(empty)]) == 2
    assert "contradict" in capsys.readouterr().err


def test_resume_latest_does_not_rerun_a_finished_default_run(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default output directory, runs/finetune, lands here
    assert main(["finetune", "--steps", "2", "--checkpoint-every", "1", *SMALL_FLAGS]) == 0
    out = tmp_path / "runs" / "finetune"
    weights = (out / "model" / "model.safetensors").stat().st_mtime_ns
    assert rundir.read_run(out)["finished"] is True
    capsys.readouterr()
    assert main(["finetune", "--resume", "latest"]) == 2  # no --output-dir, no flags
    err = capsys.readouterr().err
    assert "already finished (step 2 of 2)" in err
    assert (out / "model" / "model.safetensors").stat().st_mtime_ns == weights


def test_resume_uses_the_saved_settings_and_refuses_changed_ones(tmp_path, capsys):
    out = tmp_path / "run"
    cfg = validate({**SMALL, "output_dir": str(out), "steps": 4, "checkpoint_every": 2, "lr": 1e-2})
    crashed = FinetuneRecipe(cfg, progress=False)
    crashed.setup()
    crashed.train(stop_at=3)
    rundir.unlock(out)
    capsys.readouterr()
    # the flags differ from the checkpoint's settings: listed, refused, nothing written
    code = main(["finetune", "--resume", "--output-dir", str(out), "--lr", "5e-3", "--seed", "3"])
    err = capsys.readouterr().err
    assert code == 2
    assert "lr: 0.01 in the checkpoint, 0.005 now" in err and "seed: 0 in the checkpoint, 3 now" in err
    assert "--allow-config-change" in err
    # a setting that does not change training needs no permission; the saved lr and steps are used
    code = main(["finetune", "--resume", "--output-dir", str(out), "--no-progress", "--checkpoint-every", "1"])
    assert code == 0
    assert [r["step"] for r in _metrics(out)] == [1, 2, 3, 4]
    assert all(r["lr"] == 1e-2 for r in _metrics(out))
    assert json.loads((out / "config.json").read_text())["lr"] == 1e-2


def test_a_second_process_cannot_write_the_same_directory(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    rundir.lock(out)
    try:
        code = (
            "import sys\nfrom constraintc.train import rundir\n"
            f"try:\n    rundir.lock({str(out)!r})\nexcept rundir.RunDirError as e:\n    print(e)\n    sys.exit(3)\n"
        )
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
        assert proc.returncode == 3 and f"process {os.getpid()}" in proc.stdout
    finally:
        rundir.unlock(out)


# ---------------------------------------------------------------------------------- interruptions
def test_the_ctrl_c_message_fits_where_the_run_was(tmp_path):
    cfg = validate({**SMALL, "output_dir": str(tmp_path / "a b"), "checkpoint_every": 50})
    recipe = FinetuneRecipe(cfg, progress=False)
    assert "run the same command again" in recipe.resume_hint()  # before set-up claimed the directory
    recipe.run_id, recipe.step = "r", 7  # a new run, before its first checkpoint
    assert "nothing to resume" in recipe.resume_hint() and "--overwrite" in recipe.resume_hint()
    recipe.saved_step = 50  # a resumed run interrupted while it set up
    recipe.step = 0
    hint = recipe.resume_hint()
    assert "interrupted at step 50; the last checkpoint is step 50. Continue with:" in hint
    assert f"constraintc finetune --resume --output-dir '{tmp_path / 'a b'}'" in hint  # quoted for the shell


INTERRUPT_FLAGS = ["--steps", "32", "--checkpoint-every", "4", *SMALL_FLAGS]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("full") / "run"
    assert main(["finetune", "--output-dir", str(out), *INTERRUPT_FLAGS]) == 0
    return out


# generous: on the shared machine a niced suite's subprocess can get a few percent of a core
PATIENCE = 900


def _start(log: Path, *argv: str) -> subprocess.Popen:
    """``constraintc finetune ARGV`` in a subprocess, stderr to ``log`` (a file, not a pipe that
    could fill up while the test waits)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    with open(log, "w") as fh:
        return subprocess.Popen([sys.executable, "-m", "constraintc", "finetune", *argv],
                                stdout=subprocess.DEVNULL, stderr=fh, env=env)


def _wait_for_checkpoint(proc: subprocess.Popen, log: Path, out: Path, step: int) -> None:
    deadline = time.monotonic() + PATIENCE
    while not (out / "checkpoints" / f"step-{step:06d}" / "manifest.json").exists():
        assert proc.poll() is None, log.read_text()[-2000:]
        assert time.monotonic() < deadline, f"no checkpoint in {PATIENCE} s:\n{log.read_text()[-2000:]}"
        time.sleep(0.05)


@pytest.mark.slow
def test_sigkill_then_ctrl_c_then_resume_is_bit_identical(tmp_path, uninterrupted):
    """A run killed anywhere (also mid-checkpoint), resumed, interrupted with Ctrl-C, resumed with
    the command Ctrl-C printed: the weights and metrics of one uninterrupted run, to the bit."""
    out, log = tmp_path / "run", tmp_path / "stderr.txt"
    proc = _start(log, "--output-dir", str(out), *INTERRUPT_FLAGS)
    _wait_for_checkpoint(proc, log, out, 4)
    time.sleep(random.Random(os.environ.get("CONSTRAINTC_TEST_SEED")).uniform(0, 0.4))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=PATIENCE)
    killed_at = max(s for s, _ in ckpt.checkpoint_dirs(out))
    proc = _start(log, "--resume", "--output-dir", str(out), "--no-progress")
    _wait_for_checkpoint(proc, log, out, killed_at + 4)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=PATIENCE)
    err = log.read_text()
    assert proc.returncode == 130, err[-2000:]
    assert f"resumed from {out / 'checkpoints'}" in err and "Traceback" not in err
    match = re.search(r"interrupted at step (\d+); the last checkpoint is step (\d+).*\n  (constraintc finetune --resume .*)", err)
    assert match, err[-2000:]
    assert int(match.group(2)) >= killed_at + 4
    argv = match.group(3).split()[1:]  # the printed command, as a user would paste it
    assert main([*argv, "--no-progress"]) == 0
    _same_weights(out, uninterrupted)
    assert _metrics(out) == _metrics(uninterrupted)


def test_ctrl_c_after_a_checkpoint_landed_names_that_checkpoint(tmp_path, monkeypatch):
    """Ctrl-C while a complete checkpoint is synced or older ones are pruned: the checkpoint is
    on disk, and the printed hint says so (it said the previous one)."""
    cfg = validate({**SMALL, "output_dir": str(tmp_path / "run"), "steps": 4, "checkpoint_every": 100})
    recipe = FinetuneRecipe(cfg, progress=False)
    recipe.setup()
    recipe.train(stop_at=2)
    recipe.save_checkpoint()
    assert recipe.saved_step == 2
    recipe.train(stop_at=3)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt, "prune_checkpoints", interrupted)
    with pytest.raises(KeyboardInterrupt):
        recipe.save_checkpoint()
    assert (tmp_path / "run" / "checkpoints" / "step-000003" / "manifest.json").is_file()
    assert recipe.saved_step == 3
    assert "interrupted at step 3; the last checkpoint is step 3." in recipe.resume_hint()
    rundir.unlock(tmp_path / "run")
