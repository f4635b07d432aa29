"""The recipe end to end on the embedded default: learning, exact resume, data parallel == serial."""

from __future__ import annotations

import json
import re
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from constraintc.train.config import validate
from constraintc.train.recipe import FinetuneRecipe

SMALL = dict(
    train_records=96, eval_records=0, final_eval=False, plots=False, batch_groups=4,
    warmup_steps=0, lr=3e-3, eval_every=1000, threads=1,
)


def _run(tmp: Path, **over) -> tuple[FinetuneRecipe, list[dict]]:
    cfg = validate({**SMALL, "output_dir": str(tmp), **over})
    recipe = FinetuneRecipe(cfg, progress=False)
    recipe.run()
    return recipe, _metrics(tmp)


def _metrics(out: Path) -> list[dict]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    for r in rows:
        r.pop("seconds")
    return rows


def _first_last(rows, key, k=3):
    vals = [r[key] for r in rows]
    return sum(vals[:k]) / k, sum(vals[-k:]) / k


@pytest.mark.slow
def test_loss_decreases_with_and_without_semantic_loss(tmp_path):
    _, ce_rows = _run(tmp_path / "ce", steps=12, lambda_schedule="none", checkpoint_every=100)
    first, last = _first_last(ce_rows, "loss")
    assert last < first - 0.5, (first, last)
    assert all(r["semantic"] is None for r in ce_rows)

    _, sl_rows = _run(tmp_path / "sl", steps=12, lambda_schedule="constant", lambda_start=1.0, checkpoint_every=100)
    first, last = _first_last(sl_rows, "loss")
    assert last < first - 0.5, (first, last)
    first_sl, last_sl = _first_last(sl_rows, "semantic")
    assert last_sl < first_sl, (first_sl, last_sl)
    # the semantic run asks every ordered pair; the CE-only run only the labelled questions
    assert sl_rows[0]["questions"] > ce_rows[0]["questions"]
    assert all(r["lambda"] == 1.0 for r in sl_rows)


def test_position_stretch_changes_training_and_only_training(tmp_path):
    """--position-stretch moves the training positions (the loss of step 1 changes); the held-out
    check of the untrained model, at plain positions, does not change."""
    over = dict(steps=1, checkpoint_every=100, eval_records=16, eval_every=1, lr=1e-12, warmup_steps=0)
    _, plain = _run(tmp_path / "plain", **over)
    _, stretched = _run(tmp_path / "stretched", position_stretch=4.0, **over)
    assert stretched[0]["loss"] != pytest.approx(plain[0]["loss"], rel=1e-6)
    assert stretched[0]["heldout_balanced_accuracy"] == plain[0]["heldout_balanced_accuracy"]
    assert stretched[0]["heldout_yes_rate"] == plain[0]["heldout_yes_rate"]


def test_grad_accum_splits_shortest_first_and_keeps_the_step(tmp_path, monkeypatch):
    """--grad-accum N: the step's graphs go through the model in N micro-batches, shortest first
    (each padded to its own longest row); the step's losses and gradient norm are those of one
    batch (every term is a sum over the global batch divided by its count)."""
    rows, seen = {}, {}
    over = dict(steps=1, checkpoint_every=100, trace="keep", batch_groups=8, lambda_schedule="constant",
                lambda_start=0.5, curriculum_steps=0)
    for accum in (1, 2, 4):
        cfg = validate({**SMALL, **over, "grad_accum": accum, "output_dir": str(tmp_path / f"a{accum}")})
        recipe = FinetuneRecipe(cfg, progress=False)
        recipe.setup()
        real = recipe._forward
        calls: list = []
        monkeypatch.setattr(recipe, "_forward", lambda graphs, step=None: (calls.append([g.length for g in graphs]), real(graphs, step))[1])
        rows[accum] = recipe.train_step(0)
        seen[accum] = calls
    assert [len(c) for c in seen[4]] == [2, 2, 2, 2] and len(seen[2]) == 2 and len(seen[1]) == 1
    for calls in (seen[2], seen[4]):
        flat = [n for c in calls for n in c]
        assert flat == sorted(flat) == sorted(seen[1][0])
    for accum in (2, 4):
        for key in ("loss", "ce", "semantic", "trace_ce", "grad_norm", "yes_rate", "violation_rate"):
            assert rows[accum][key] == pytest.approx(rows[1][key], rel=1e-5, abs=1e-9), (accum, key)
        assert rows[accum]["questions"] == rows[1]["questions"]


def test_adam_beta2_reaches_the_optimizer(tmp_path):
    cfg = validate({**SMALL, "output_dir": str(tmp_path), "steps": 1, "adam_beta2": 0.95})
    recipe = FinetuneRecipe(cfg, progress=False)
    recipe.setup()
    assert recipe.optimizer.param_groups[0]["betas"] == (0.9, 0.95)


@pytest.mark.slow
def test_resume_after_interruption_is_exact(tmp_path):
    over = dict(steps=6, checkpoint_every=3, eval_records=16, eval_every=2, lambda_schedule="adaptive", lambda_up=2.0,
                position_stretch=3.0)
    _run(tmp_path / "full", **over)
    full_w = load_file(tmp_path / "full" / "model" / "model.safetensors")

    cfg = validate({**SMALL, "output_dir": str(tmp_path / "cut"), **over})
    crashed = FinetuneRecipe(cfg, progress=False)
    crashed.setup()
    crashed.train(stop_at=4)  # checkpoint at step 3 exists; step 4's metrics row must be dropped
    del crashed
    resumed = FinetuneRecipe(cfg, resume="latest", progress=False)
    resumed.run()
    assert resumed.step == 6
    cut_w = load_file(tmp_path / "cut" / "model" / "model.safetensors")
    assert full_w.keys() == cut_w.keys()
    for name in full_w:
        assert torch.equal(full_w[name], cut_w[name]), name
    assert _metrics(tmp_path / "full") == _metrics(tmp_path / "cut")


PRETRAIN = dict(trace="keep", trace_search="depth_first", pretrain_steps=3, pretrain_batch=4, pretrain_accum=2, pretrain_lr=1e-2,
                label_yes_rate=0.75, lr=3e-3)


def test_pretrain_decay_lowers_the_stage_learning_rate_to_a_tenth_then_hands_over(tmp_path):
    cfg = validate({**SMALL, **PRETRAIN, "pretrain_steps": 4, "pretrain_decay_steps": 3, "output_dir": str(tmp_path),
                    "steps": 1, "checkpoint_every": 100})
    recipe = FinetuneRecipe(cfg, progress=False)
    recipe.setup()
    recipe.train()
    lrs = [r["lr"] for r in _metrics(tmp_path)]
    # constant, then a half cosine over the last 3 steps: 1, 0.55, 0.1 of pretrain_lr; the main recipe's lr after
    assert lrs == pytest.approx([1e-2, 1e-2, 5.5e-3, 1e-3, 3e-3])


def test_pretrain_stage_trains_traces_then_hands_over_with_fresh_moments(tmp_path):
    cfg = validate({**SMALL, **PRETRAIN, "output_dir": str(tmp_path), "steps": 2, "checkpoint_every": 100})
    recipe = FinetuneRecipe(cfg, progress=False)
    recipe.setup()
    # the stage's targets keep every label: the No answers --label-yes-rate dropped are traced too
    gold = [c.answer for g in recipe.pretrain_groups for c in g.completions]
    kept = [lab for g in recipe.train_graphs for lab in g.labels if lab is not None]
    assert gold.count("No") == gold.count("Yes") == kept.count("Yes") > kept.count("No")
    recipe.train(stop_at=3)
    rows = _metrics(tmp_path)
    assert [r["stage"] for r in rows] == ["traces"] * 3
    assert all(r["ce"] is None and r["semantic"] is None and r["trace_ce"] > 0 for r in rows)
    assert [r["lr"] for r in rows] == pytest.approx([1e-2] * 3)  # no warm-up in SMALL: pretrain_lr from the first step
    assert all(r["graphs"] == 4 and r["trace_tokens"] > 0 for r in rows)
    assert {s["step"].item() for s in recipe.optimizer.state.values()} == {3.0}
    assert (tmp_path / "checkpoints" / "step-000003").is_dir()  # the stage boundary is checkpointed
    # ... and its model saved as a model directory, the weights of that checkpoint
    from constraintc.lm.models import load_model
    from constraintc.train.checkpoint import load_checkpoint

    saved, _ = load_model(str(tmp_path / "model-traces"))
    state = load_checkpoint(tmp_path / "checkpoints" / "step-000003")["model"]
    own = dict(saved.named_parameters())
    assert state and all(torch.equal(own[n], t) for n, t in state.items())
    recipe.train()
    rows = _metrics(tmp_path)
    assert [r.get("stage") for r in rows] == ["traces"] * 3 + [None] * 2
    assert rows[3]["ce"] is not None and rows[3]["lr"] == pytest.approx(3e-3)
    # AdamW's moments restarted at the main recipe's first step: two steps since
    assert {s["step"].item() for s in recipe.optimizer.state.values()} == {2.0}
    # the boundary's checkpoint is never pruned (keep_checkpoints = 2 keeps the newest two others)
    recipe.cfg.keep_checkpoints = 1
    recipe.save_checkpoint()
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-000003", "step-000005"]


def test_dsep_search_traces_train_in_the_traces_only_stage(tmp_path):
    """d-separation with --trace-search bayes_ball: the stage's completions are the written
    searches of the training records, and both stages train."""
    from constraintc.tasks.traces import trace_text
    from constraintc.train.records import training_records

    over = {**SMALL, **PRETRAIN, "task": "dsep", "rules": "dsep", "params": {"cond_size": 3}, "trace_search": "bayes_ball",
            "output_dir": str(tmp_path), "steps": 1, "checkpoint_every": 100, "label_yes_rate": 0.5}
    recipe = FinetuneRecipe(validate(over), progress=False)
    recipe.setup()
    texts = {c.text for g in recipe.pretrain_groups for c in g.completions}
    labelled: list[dict] = []
    training_records(validate(over), gold=labelled)
    searches = {f" {trace_text('dsep', r['nodes'], r['edges'], r['meta']['x'], r['meta']['y'], r['meta']['z'], search='bayes_ball')}\nAnswer:"
                for r in labelled}
    assert texts == searches and not any(t.lstrip().startswith("Trail") for t in texts)
    recipe.train()
    rows = _metrics(tmp_path)
    assert [r.get("stage") for r in rows] == ["traces"] * 3 + [None]
    assert all(r["trace_ce"] > 0 for r in rows) and rows[-1]["semantic"] is not None


@pytest.fixture
def salts_seen(monkeypatch) -> list[list[int]]:
    """The name salts of every pack_groups call from now on, one list per call."""
    import constraintc.lm.binding as binding

    seen: list[list[int]] = []
    real = binding.pack_groups

    def spy(*args, **kwargs):
        seen.append(list(kwargs.get("name_salts") or []))
        return real(*args, **kwargs)

    monkeypatch.setattr(binding, "pack_groups", spy)
    return seen


def test_pretrain_names_are_drawn_per_visit(tmp_path, salts_seen):
    """Each visit of a graph in the traces-only stage reads its names through a new salt; the
    main recipe keeps one salt per graph (test_main_recipe_name_salt)."""
    # 24 training graphs, 4 per step: step 6 starts the second epoch
    over = {**SMALL, **PRETRAIN, "output_dir": str(tmp_path), "steps": 2, "checkpoint_every": 100,
            "pretrain_steps": 7, "lr": 1e-12, "pretrain_lr": 1e-12}
    recipe = FinetuneRecipe(validate(over), progress=False)
    recipe.setup()
    recipe.train(stop_at=7)
    assert len(salts_seen) == 14 and len({s for salts in salts_seen for s in salts}) == 28  # two micro-batches a step
    from constraintc.train.data import batch_indices

    again = [i for s in range(6, 7) for i in batch_indices(len(recipe.pretrain_groups), 4, s, 0)]
    assert set(again) <= set(i for s in range(6) for i in batch_indices(len(recipe.pretrain_groups), 4, s, 0))


@pytest.mark.parametrize("salt", ["graph", "visit"])
def test_main_recipe_name_salt(tmp_path, salts_seen, salt):
    """--name-salt graph: a graph reads the same at every visit; visit: a new assignment each time."""
    # 24 graphs, 8 a step: steps 3 and 4 revisit the graphs of steps 0 and 1 (a new epoch)
    over = {**SMALL, "output_dir": str(tmp_path), "steps": 5, "checkpoint_every": 100, "batch_groups": 8,
            "curriculum_steps": 0, "name_salt": salt, "lr": 1e-12}
    recipe = FinetuneRecipe(validate(over), progress=False)
    recipe.setup()
    recipe.train()
    salts = [x for step in salts_seen for x in step]
    assert len(salts) == 40
    assert len(set(salts)) == (40 if salt == "visit" else 24)


def test_pretrain_micro_batches_compute_the_same_step(tmp_path):
    """--pretrain-accum only regroups the step's graphs (by length): the loss, the gradient norm
    and the gradient (clipped, as the optimizer gets it) are those of one batch, up to float
    rounding."""
    out = {}
    for accum in (1, 4):
        over = {**SMALL, **PRETRAIN, "output_dir": str(tmp_path / str(accum)), "steps": 1, "checkpoint_every": 100,
                "pretrain_steps": 1, "pretrain_accum": accum}
        recipe = FinetuneRecipe(validate(over), progress=False)
        recipe.setup()
        grads: dict = {}
        model = recipe.model
        recipe.optimizer.register_step_pre_hook(
            lambda *_, g=grads, m=model: g.update({n: p.grad.clone() for n, p in m.named_parameters()})
        )
        row = recipe.train_step(0)
        out[accum] = (row, grads)
    (one, g1), (four, g4) = out[1], out[4]
    assert one["trace_tokens"] == four["trace_tokens"]
    assert four["trace_ce"] == pytest.approx(one["trace_ce"], rel=1e-6)
    assert four["grad_norm"] == pytest.approx(one["grad_norm"], rel=1e-5)
    assert g1.keys() == g4.keys() and len(g1) > 10
    for name in g1:
        assert torch.allclose(g1[name], g4[name], rtol=1e-4, atol=1e-7), name


def test_position_stretch_reaches_the_traces_only_stage(tmp_path, monkeypatch):
    """--position-stretch stretches the traces-only stage's rows too: each row's position ids
    are its plain ones times a factor in [1, X] (floored), drawn per graph and step, the same
    in a second run."""
    import constraintc.lm.binding as binding

    seen: list[torch.Tensor] = []
    real = binding.packed_logits
    monkeypatch.setattr(binding, "packed_logits", lambda model, batch: (seen.append(batch.position_ids.clone()), real(model, batch))[1])

    def first_step(stretch: float, **extra) -> tuple[list[torch.Tensor], float]:
        seen.clear()
        over = {**SMALL, **PRETRAIN, "output_dir": str(tmp_path / f"{stretch}-{len(runs)}"), "steps": 1,
                "checkpoint_every": 100, "pretrain_steps": 1, "position_stretch": stretch, **extra}
        recipe = FinetuneRecipe(validate(over), progress=False)
        recipe.setup()
        ce = recipe.train_step(0)["trace_ce"]
        return list(seen), ce

    runs: list = []
    runs.append(first_step(1.0))
    runs.append(first_step(3.0))
    runs.append(first_step(3.0))
    (plain, plain_ce), (stretched, stretched_ce), (again, again_ce) = runs
    assert len(plain) == len(stretched) == 2  # two micro-batches
    for p, s in zip(plain, stretched):
        ratio = s.max(1).values.double() / p.max(1).values.double()  # the last real position of each row
        assert bool((s >= p).all()) and bool((ratio >= 1).all()) and bool((ratio <= 3).all())
        assert bool((s > p).any())
    assert stretched_ce != pytest.approx(plain_ce, rel=1e-6)
    assert all(torch.equal(a, b) for a, b in zip(stretched, again)) and again_ce == stretched_ce
    # the stage's own factor: 3 here while the main recipe's is off gives the same rows as 3 in
    # both; 1 here turns the stage's stretch off whatever the main recipe's
    runs.append(first_step(1.0, pretrain_position_stretch=3.0))
    runs.append(first_step(3.0, pretrain_position_stretch=1.0))
    (own, own_ce), (off, off_ce) = runs[3:]
    assert all(torch.equal(a, b) for a, b in zip(own, stretched)) and own_ce == stretched_ce
    assert all(torch.equal(a, b) for a, b in zip(off, plain)) and off_ce == plain_ce


def test_stretch_after_waits_for_the_trace_ce_and_resumes_exactly(tmp_path, monkeypatch):
    """--pretrain-stretch-after T: the traces-only rows keep plain positions until the mean trace
    CE of the last LOOKUP_WINDOW steps is below T, then are stretched (the metrics say which); the
    window and the switch survive a resume; without T every step is stretched."""
    import constraintc.train.recipe as recipe_mod

    monkeypatch.setattr(recipe_mod, "LOOKUP_WINDOW", 2)
    over = dict(PRETRAIN, pretrain_steps=6, steps=1, checkpoint_every=100, pretrain_position_stretch=3.0)
    _, always = _run(tmp_path / "always", **over)
    assert [r["position_stretch"] for r in always[:6]] == [3.0] * 6
    # a threshold above every trace CE: the window of 2 is full after step 2, stretched from step 3
    _, wait = _run(tmp_path / "wait", **over, pretrain_stretch_after=1e9)
    assert [r["position_stretch"] for r in wait[:6]] == [1.0, 1.0, 3.0, 3.0, 3.0, 3.0]
    # the first two steps read the same rows as a plain run's, the rest as an always-stretched one's
    _, plain = _run(tmp_path / "plain", **{**over, "pretrain_position_stretch": 1.0})
    assert [r["trace_ce"] for r in wait[:2]] == [r["trace_ce"] for r in plain[:2]]
    assert wait[2]["trace_ce"] != plain[2]["trace_ce"]
    # a threshold below every trace CE: never stretched
    _, never = _run(tmp_path / "never", **over, pretrain_stretch_after=1e-9)
    assert [r["position_stretch"] for r in never[:6]] == [1.0] * 6
    assert [r["trace_ce"] for r in never[:6]] == [r["trace_ce"] for r in plain[:6]]
    # interrupted at step 3 and resumed from step 1's checkpoint (the window half full, no switch
    # yet): the window comes back and the resumed run switches where the whole one did
    cfg = validate({**SMALL, "output_dir": str(tmp_path / "cut"), **over, "checkpoint_every": 1,
                    "keep_checkpoints": 0, "pretrain_stretch_after": 1e9})
    crashed = FinetuneRecipe(cfg, progress=False)
    crashed.setup()
    crashed.train(stop_at=3)
    assert crashed.stretch_from == 2
    del crashed
    import shutil

    for step in (2, 3):
        shutil.rmtree(tmp_path / "cut" / "checkpoints" / f"step-{step:06d}")
    resumed = FinetuneRecipe(cfg, resume="latest", progress=False)
    resumed.setup()
    assert resumed.step == 1 and resumed.stretch_from is None and len(resumed.recent_trace_ce) == 1
    resumed.train()
    assert resumed.stretch_from == 2
    assert _metrics(tmp_path / "cut") == wait


def test_the_first_stage_says_whether_its_lookups_came_and_how_to_go_on(tmp_path, monkeypatch, capsys):
    """After the traces-only stage, finetune says when the windowed trace CE first fell below
    LOOKUPS_CAME, or warns that it never did and prints a command that trains the stage longer
    from its end; that command (with a shorter extension) works and continues the stage."""
    import shlex

    import constraintc.train.recipe as recipe_mod
    from constraintc.cli import main

    monkeypatch.setattr(recipe_mod, "LOOKUP_WINDOW", 2)
    flags = ["--train-records", "96", "--eval-records", "0", "--no-final-eval", "--no-plots", "--batch-groups", "4",
             "--warmup-steps", "0", "--threads", "1", "--no-progress", "--trace", "keep", "--trace-search", "depth_first",
             "--pretrain-steps", "3", "--pretrain-batch", "4", "--pretrain-accum", "2", "--steps", "1"]
    monkeypatch.setattr(recipe_mod, "LOOKUPS_CAME", 1e9)  # every window is below it: came at step 2
    assert main(["finetune", "--output-dir", str(tmp_path / "came"), *flags]) == 0
    out = capsys.readouterr().out
    assert re.search(r"traces-only stage: the mean trace CE of its last 2 steps is \d+\.\d{3}; its lookups came at step 2", out)
    # the next measured step for a transitivity search (docs/finetune.md), from the saved traces-only model
    assert f"400 more traces-only steps on mix_wide from {tmp_path / 'came' / 'model-traces'} " in out
    assert (tmp_path / "came" / "model-traces").is_dir()
    monkeypatch.setattr(recipe_mod, "LOOKUPS_CAME", 1e-9)  # none is: a warning with a command
    assert main(["finetune", "--output-dir", str(tmp_path / "not"), *flags]) == 0
    out = capsys.readouterr().out
    line = next(l for l in out.splitlines() if l.startswith("warning: traces-only stage"))
    assert "its lookups have not come" in line
    command = shlex.split(line.split("from its end: ", 1)[1])
    assert command[:3] == ["constraintc", "finetune", "--resume"]
    assert command[3] == str(tmp_path / "not" / "checkpoints" / "step-000003") and Path(command[3]).is_dir()
    assert command[4:] == ["--pretrain-steps", "503", "--allow-config-change"]
    command[5] = "5"  # two more traces-only steps, then the main recipe's one
    assert main([*command[1:], "--no-progress"]) == 0
    rows = _metrics(tmp_path / "not")
    assert [r.get("stage") for r in rows] == ["traces"] * 5 + [None]
    assert [r["step"] for r in rows] == list(range(1, 7))


def test_a_stage_ending_on_another_split_is_extended_on_that_split(tmp_path):
    """The command that trains a stage longer keeps the steps it already took on
    --pretrain-then-split its last ones: both counts grow by the same 500."""
    cfg = validate({**SMALL, "output_dir": str(tmp_path), "trace": "keep", "pretrain_steps": 1650,
                    "pretrain_then_split": "mix_wide", "pretrain_then_steps": 400})
    recipe = FinetuneRecipe(cfg, progress=False)
    recipe.step, recipe.recent_trace_ce, recipe.lookups_step = 1650, [0.3, 0.2], None
    note = recipe.first_stage_note()
    assert note.startswith("warning: traces-only stage: the mean trace CE of its last 2 steps is 0.250;")
    assert note.endswith(f"--resume {tmp_path / 'checkpoints' / 'step-001650'} --pretrain-steps 2150 "
                         f"--pretrain-then-steps 900 --allow-config-change")
    extended = validate({**SMALL, "output_dir": str(tmp_path), "trace": "keep", "pretrain_steps": 2150,
                         "pretrain_then_split": "mix_wide", "pretrain_then_steps": 900})
    # steps 1250-1649 read mix_wide before and after
    assert extended.pretrain_steps - extended.pretrain_then_steps == cfg.pretrain_steps - cfg.pretrain_then_steps
    recipe.lookups_step = 700
    assert "its lookups came at step 700" in recipe.first_stage_note()
    assert "400 more traces-only steps on mix_wide" not in recipe.first_stage_note()  # the file already does


def test_a_checkpoint_without_the_lookup_window_gets_it_back_from_the_metrics(tmp_path, monkeypatch, capsys):
    """Checkpoints written before the window was kept hold no "lookups": a run resumed from one
    rebuilds the window and the step the lookups came from metrics.jsonl, so the stage note says
    when they came (step 2 here), not that they never did or that they came after the resume."""
    import constraintc.train.recipe as recipe_mod
    from constraintc.cli import main

    monkeypatch.setattr(recipe_mod, "LOOKUP_WINDOW", 2)
    monkeypatch.setattr(recipe_mod, "LOOKUPS_CAME", 1e9)  # every full window is below it
    out = tmp_path / "old"
    flags = ["--train-records", "96", "--eval-records", "0", "--no-final-eval", "--no-plots", "--batch-groups", "4",
             "--warmup-steps", "0", "--threads", "1", "--no-progress", "--trace", "keep", "--trace-search", "depth_first",
             "--pretrain-batch", "4", "--pretrain-accum", "2", "--steps", "1", "--output-dir", str(out)]
    assert main(["finetune", "--pretrain-steps", "3", *flags]) == 0
    assert "its lookups came at step 2" in capsys.readouterr().out
    boundary = out / "checkpoints" / "step-000003"
    state = json.loads((boundary / "state.json").read_text())
    assert state.pop("lookups")["came"] == 2
    (boundary / "state.json").write_text(json.dumps(state))
    import hashlib  # the checkpoint as such a run wrote it: its manifest matches its files

    manifest = json.loads((boundary / "manifest.json").read_text())
    data = (boundary / "state.json").read_bytes()
    manifest["files"]["state.json"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    (boundary / "manifest.json").write_text(json.dumps(manifest))
    assert main(["finetune", "--resume", str(boundary), "--pretrain-steps", "5", "--allow-config-change", *flags]) == 0
    said = capsys.readouterr().out
    assert "its lookups came at step 2" in said, said
    rows = _metrics(out)
    assert [r.get("stage") for r in rows] == ["traces"] * 5 + [None]
    # the replay is the window the uninterrupted stage kept
    window, came = recipe_mod.replay_lookups(out / "metrics.jsonl", 3)
    assert came == 2 and window == [rows[1]["trace_ce"], rows[2]["trace_ce"]]


@pytest.mark.slow
def test_resume_across_the_stage_boundary_is_exact(tmp_path):
    over = dict(PRETRAIN, steps=3, checkpoint_every=2, eval_records=16, eval_every=2)
    _run(tmp_path / "full", **over)
    full_w = load_file(tmp_path / "full" / "model" / "model.safetensors")
    cfg = validate({**SMALL, "output_dir": str(tmp_path / "cut"), **over})
    crashed = FinetuneRecipe(cfg, progress=False)
    crashed.setup()
    crashed.train(stop_at=5)  # checkpoints at steps 2 and 3 (the boundary): the newest is kept
    del crashed
    import shutil

    shutil.rmtree(tmp_path / "cut" / "checkpoints" / "step-000004")  # resume from the boundary
    resumed = FinetuneRecipe(cfg, resume="latest", progress=False)
    resumed.run()
    assert resumed.step == 6
    cut_w = load_file(tmp_path / "cut" / "model" / "model.safetensors")
    for name in full_w:
        assert torch.equal(full_w[name], cut_w[name]), name
    assert _metrics(tmp_path / "full") == _metrics(tmp_path / "cut")


@pytest.mark.slow
def test_pretrain_then_split_is_the_stage_resumed_on_that_split(tmp_path):
    """A traces-only stage whose last steps read another split (pretrain_then_split) trains the
    weights of the stage run on --train-split, then resumed with that split as --train-split (the
    protocol docs/finetune.md measured the dsep search file's larger-graph ending with)."""
    from constraintc.train.checkpoint import load_checkpoint

    over = {**SMALL, **PRETRAIN, "steps": 1, "checkpoint_every": 1}
    one = FinetuneRecipe(validate({**over, "pretrain_steps": 3, "pretrain_then_split": "length",
                                   "pretrain_then_steps": 2, "output_dir": str(tmp_path / "one")}), progress=False)
    one.setup()
    # the later graphs are the length split's: longer traces than any of the mix graphs'
    assert min(g.length for g in one.pretrain_then_groups) > 0
    assert max(g.length for g in one.pretrain_then_groups) > max(g.length for g in one.pretrain_groups)
    one.train(stop_at=3)
    first = FinetuneRecipe(validate({**over, "pretrain_steps": 1, "output_dir": str(tmp_path / "two")}), progress=False)
    first.setup()
    first.train(stop_at=1)
    del first
    then = validate({**over, "pretrain_steps": 3, "train_split": "length", "output_dir": str(tmp_path / "two")})
    resumed = FinetuneRecipe(then, resume="latest", progress=False, allow_config_change=True)
    resumed.setup()
    assert resumed.step == 1
    resumed.train(stop_at=3)
    a = load_checkpoint(tmp_path / "one" / "checkpoints" / "step-000003")["model"]
    b = load_checkpoint(tmp_path / "two" / "checkpoints" / "step-000003")["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # ... step for step, the learning rate included: the resumed step 2 takes this run's rate (the
    # checkpoint's schedule had handed over to the main recipe's --lr there)
    assert _metrics(tmp_path / "one") == _metrics(tmp_path / "two")


@pytest.mark.slow
def test_a_first_stage_run_alone_then_continued_matches_one_run(tmp_path):
    """Train the traces-only stage once (``--steps 1``), then continue from its boundary
    checkpoint with the main recipe's settings (``--allow-config-change``): the same weights and
    metrics as one run of the whole recipe, so one first stage can serve several second stages
    (docs/finetune.md measures them this way)."""
    whole = dict(PRETRAIN, steps=3, checkpoint_every=100, eval_records=16, eval_every=2, pretrain_position_stretch=3.0)
    _run(tmp_path / "whole", **whole)
    first = dict(whole, steps=1, position_stretch=3.0, pretrain_position_stretch=0.0)
    _run(tmp_path / "cut", **first)  # checkpoints: the boundary (step 3) and the end (step 4)
    cfg = validate({**SMALL, "output_dir": str(tmp_path / "cut"), **whole})
    boundary = tmp_path / "cut" / "checkpoints" / "step-000003"
    from constraintc.train.rundir import RunDirError

    with pytest.raises(RunDirError, match="differ from the run's checkpoint"):
        FinetuneRecipe(cfg, resume=str(boundary), progress=False).setup()
    second = FinetuneRecipe(cfg, resume=str(boundary), allow_config_change=True, progress=False)
    second.run()
    assert second.step == 6
    a = load_file(tmp_path / "whole" / "model" / "model.safetensors")
    b = load_file(tmp_path / "cut" / "model" / "model.safetensors")
    for name in a:
        assert torch.equal(a[name], b[name]), name
    assert _metrics(tmp_path / "whole") == _metrics(tmp_path / "cut")


@pytest.mark.slow
def test_two_processes_match_one(tmp_path):
    # with --trace keep: the trace CE's sums and counts go through the same reduction as the rest
    # --position-stretch: each graph's factor must not depend on which process or micro-batch has it
    # --pretrain-steps: the traces-only stage's token-mean CE divides by the tokens of the global batch
    over = dict(steps=3, checkpoint_every=100, lambda_schedule="constant", lambda_start=0.5, grad_accum=2, trace="keep",
                position_stretch=3.0, pretrain_steps=2, pretrain_batch=4, pretrain_accum=2, pretrain_lr=3e-3)
    one, _ = _run(tmp_path / "one", **over)
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "constraintc", "finetune", "--output-dir", str(tmp_path / "two"), "--no-progress",
        "--steps", "3", "--checkpoint-every", "100", "--lambda-schedule", "constant", "--lambda-start", "0.5",
        "--grad-accum", "2", "--train-records", "96", "--eval-records", "0", "--no-final-eval", "--no-plots",
        "--batch-groups", "4", "--warmup-steps", "0", "--lr", "3e-3", "--threads", "1", "--trace", "keep",
        "--position-stretch", "3", "--pretrain-steps", "2", "--pretrain-batch", "4", "--pretrain-accum", "2", "--pretrain-lr", "3e-3",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    w1 = load_file(tmp_path / "one" / "model" / "model.safetensors")
    w2 = load_file(tmp_path / "two" / "model" / "model.safetensors")
    # Adam divides by sqrt(v): where a gradient entry is tiny, summation-order rounding (one
    # process sums micro-batches, two sum across ranks) moves its update, and five steps carry
    # that to a few entries (up to ~4e-4 seen, a mean up to ~2.1e-6 with the traces-only stage's
    # rows stretched); a process that missed the other's gradient would be off by ~lr = 3e-3 in
    # most entries (a mean near 1e-3)
    for name in w1:
        diff = (w1[name] - w2[name]).abs()
        assert diff.max() < 2e-3 and diff.mean() < 2e-5, (name, diff.max(), diff.mean())
    m1, m2 = _metrics(tmp_path / "one"), _metrics(tmp_path / "two")
    assert [r.get("stage") for r in m1] == ["traces", "traces", None, None, None]
    for a, b in zip(m1, m2, strict=True):
        for key in ("loss", "ce", "semantic", "trace_ce", "yes_rate", "violation_rate", "grad_norm"):
            if a[key] is None:
                assert b[key] is None, key
            else:
                # float32 rounding of the two layouts, carried by Adam over five steps: up to ~2e-5
                # relative (the gradient norm); a lost or doubled gradient is off by tens of percent
                assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-7), key
        assert a.get("trace_tokens") == b.get("trace_tokens")
    # and the weights moved: the comparison is not between two untouched initialisations
    from constraintc.lm.models import build_embedded_model
    from constraintc.tasks.corpus import task_text

    init, _ = build_embedded_model(task_text, seed=0, traces=True)
    moved = sum((w1[n] - p.detach()).abs().sum().item() for n, p in init.named_parameters() if n in w1)
    assert moved > 1e-3


def test_a_run_keeps_its_rules_and_refuses_changed_ones_on_resume(tmp_path):
    from constraintc.resources import rules_library_dir
    from constraintc.train.rundir import RunDirError

    rules = tmp_path / "mine.rules"
    original = (rules_library_dir() / "transitivity.rules").read_text()
    rules.write_text(original)
    out = tmp_path / "run"
    cfg = validate({**SMALL, "output_dir": str(out), "rules": str(rules), "steps": 4, "checkpoint_every": 2,
                    "eval_records": 8, "eval_splits": ["mix"], "final_eval": True, "trace": "none"})
    recipe = FinetuneRecipe(cfg, progress=False)
    recipe.setup()
    recipe.train(stop_at=2)  # interrupted after the first checkpoint
    assert (out / "rules.rules").read_text() == original
    # the file changes (here: disappears) while the run goes on: its evaluation uses the rules it read
    rules.unlink()
    recipe.train()
    recipe.cleanup()
    after = json.loads((out / "eval_after.json").read_text())
    assert after["rules"] == str(rules) and after["overall"]["rule_violation_rate"] is not None

    # a changed rules file is refused on --resume, and the run's copy is kept as it was
    rules.write_text(original)
    cut = validate({**cfg.to_dict(), "output_dir": str(tmp_path / "cut"), "final_eval": False})
    crashed = FinetuneRecipe(cut, progress=False)
    crashed.setup()
    crashed.train(stop_at=3)  # checkpoint at step 2
    del crashed
    rules.write_text(original.replace("rule asymmetric", "# rule asymmetric"))
    with pytest.raises(RunDirError, match=r"the rules .* changed since the checkpoint .*--allow-config-change"):
        FinetuneRecipe(cut, resume="latest", progress=False).setup()
    assert (tmp_path / "cut" / "rules.rules").read_text() == original
    # allowed: it goes on with the new rules, and the run's copy says so
    resumed = FinetuneRecipe(cut, resume="latest", progress=False, allow_config_change=True)
    resumed.run()
    assert resumed.step == 4 and "# rule asymmetric" in (tmp_path / "cut" / "rules.rules").read_text()
