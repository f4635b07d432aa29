"""The library front door: differentiable atom scoring, the Trainer integration, the two
examples, and ``constraintc finetune`` on a user's own rules and data."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest
import torch

from constraintc import SemanticLoss
from constraintc.errors import ConstraintcError
from constraintc.lm import atom_logits, build_tiny_model
from constraintc.lm.binding import pack_groups, packed_answer_logits, score_groups

ROOT = Path(__file__).resolve().parents[1]


def _example(name: str):
    from conftest import load_example

    return load_example(name)


@pytest.fixture(scope="module")
def tiny():
    return build_tiny_model(seed=3)


@pytest.fixture
def one_thread():
    # a tiny model's matrices are too small to split; two OpenMP threads on busy cores spin-wait
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_atom_logits_carry_gradients_and_equal_the_scorers(tiny):
    model, tok = tiny
    groups = [["a causes b. b causes c.\nQuestion: Does a cause c?\nAnswer:",
               "a causes b. b causes c.\nQuestion: Does c cause a?\nAnswer:"],
              ["d causes e.\nQuestion: Does e cause d?\nAnswer:"]]
    model.eval()
    out = atom_logits(model, tok, groups)
    assert out.group_sizes == [2, 1] and out.yes.requires_grad
    # the same numbers as the no-grad scorer and as the full-vocabulary head
    p = torch.sigmoid((out.yes - out.no).double())
    assert torch.allclose(p, torch.cat(score_groups(model, tok, groups)), atol=1e-6)
    batch = pack_groups(tok, groups)
    full = packed_answer_logits(model, batch)
    q = torch.arange(3)
    ref = full[q, batch.yes_ids] - full[q, batch.no_ids]
    assert torch.allclose(out.yes - out.no, ref, atol=1e-5)
    # gradients through the two verbalizer rows equal those through the full head
    w = model.get_output_embeddings().weight
    (g1,) = torch.autograd.grad((out.yes - out.no).sum(), w, retain_graph=True)
    (g2,) = torch.autograd.grad(ref.sum(), w)
    assert torch.allclose(g1, g2, atol=1e-5) and g1.abs().sum() > 0
    sl = SemanticLoss("transitivity")
    graphs = [(["a", "b", "c"], [("a", "b"), ("b", "c")], ["causes(a,c)", "causes(c,a)"]),
              (["d", "e"], [("d", "e")], ["causes(e,d)"])]
    loss = sl(graphs, out.per_group())
    loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_collator_rows_and_errors(tiny):
    from constraintc.integrations import GraphCollator, Graphs

    _, tok = tiny
    collate = GraphCollator(tok, SemanticLoss("transitivity"), all_atoms=False)
    batch = collate([{"nodes": ["a", "b"], "edges": [["a", "b"]], "atoms": ["causes(a,b)", "causes(b,a)"],
                      "labels": ["Yes", None], "premise": "a causes b."}])
    assert isinstance(batch["graphs"], Graphs) and batch["labels"].tolist() == [1.0, -1.0]
    assert batch["packed"].num_questions == 2
    with pytest.raises(ConstraintcError, match="needs 'nodes' and 'edges'"):
        collate([{"nodes": ["a"]}])
    with pytest.raises(ConstraintcError, match="label 'maybe'"):
        collate([{"nodes": ["a", "b"], "edges": [], "labels": {"causes(a,b)": "maybe"}}])
    with pytest.raises(ConstraintcError, match="no query predicate 'dsep'"):
        collate([{"nodes": ["a", "b"], "edges": [], "atoms": ["dsep(a,b,{})"]}])


def test_trl_is_optional_and_lazy():
    import constraintc.integrations as integrations

    assert "trl" not in sys.modules or importlib.util.find_spec("trl") is not None
    if importlib.util.find_spec("trl") is None:
        with pytest.raises(ConstraintcError, match=r"pip install 'constraintc\[trl\]'"):
            integrations.SemanticSFTTrainer
    else:  # pragma: no cover - TRL is not installed on the project machine
        assert issubclass(integrations.SemanticSFTTrainer, integrations.SemanticLossMixin)


def test_trainer_with_the_semantic_loss_trains_and_the_loss_falls(tmp_path, one_thread):
    result = _example("hf_trainer").train(steps=20, output_dir=str(tmp_path))
    assert len(result["history"]) == 20
    assert result["after"] < result["before"], result


def test_own_training_loop_example_runs_and_the_loss_falls(one_thread):
    result = _example("own_training_loop").train(steps=20)
    assert len(result["history"]) == 20 and all(x == x for x in result["history"])
    assert result["after"] < result["before"], result
    # the bar: under 30 lines of constraintc-specific code
    text = (ROOT / "examples" / "own_training_loop.py").read_text()
    specific = [line for line in text.splitlines()
                if any(k in line for k in ("constraintc", "SemanticLoss", "loss_fn", "atom_logits", "graph_atoms"))]
    assert len(specific) < 30, specific


def test_finetune_on_own_rules_and_data_runs_to_the_end(tmp_path):
    from constraintc.cli import main
    from constraintc.train.config import validate
    from constraintc.train.records import user_records

    data = ROOT / "examples" / "data" / "confounding.jsonl"
    rules = ROOT / "examples" / "rules" / "confounding.rules"
    out = tmp_path / "run"
    argv = ["finetune", "--rules", str(rules), "--data", str(data), "--max-nodes", "0", "--steps", "4",
            "--batch-groups", "4", "--eval-every", "2", "--checkpoint-every", "4", "--eval-records", "30",
            "--output-dir", str(out), "--no-plots", "--no-progress"]
    assert main(argv) == 0
    after = json.loads((out / "eval_after.json").read_text())
    cfg = validate({"rules": str(rules), "data": str(data), "max_nodes": 0, "eval_records": 30})
    train, heldout, evaluation = user_records(cfg)
    assert after["n_records"] == len(evaluation) > 0 and set(after["splits"]) == {"confounding/train"}
    assert not {r["group"] for r in train} & {r["group"] for r in evaluation}
    assert {r["group"] for r in heldout} <= {r["group"] for r in evaluation}
    v = after["overall"]["rule_violations"]
    assert v["checked"] == v["groups"] == len({r["group"] for r in evaluation})
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 4 and "heldout_balanced_accuracy" in rows[-1]
    # the embedded model reads the data's own wording as words and its node names as names
    from constraintc.lm.models import load_model

    _, tok = load_model(str(out / "model"))
    record = train[0]
    words = re.findall(r"\w+", f"{record['premise']} {record['question']}")
    tokens = tok.convert_ids_to_tokens(tok(f"{record['premise']} {record['question']}", add_special_tokens=False)["input_ids"])
    wording = [w for w in words if w not in record["nodes"]]
    assert wording and all(w in tokens for w in wording)
    assert sum(t.startswith("[N") for t in tokens) == sum(w in record["nodes"] for w in words)


def test_rules_task_mismatch_names_the_fix(tmp_path, capsys):
    from constraintc.cli import main

    common = ["--steps", "1", "--output-dir", str(tmp_path / "x"), "--no-plots", "--no-progress"]
    assert main(["finetune", "--rules", "dsep", *common]) != 0
    err = capsys.readouterr().err
    assert "--task=transitivity generates questions like causes(" in err and "pass --task dsep" in err
    data = ROOT / "examples" / "data" / "confounding.jsonl"
    assert main(["finetune", "--rules", "transitivity", "--data", str(data), *common]) != 0
    err = capsys.readouterr().err
    assert "asks confounded(" in err and "pass --rules with the rules the data was made for" in err
    assert "Traceback" not in err
