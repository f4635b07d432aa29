"""Written answers carry p_yes: the probability of the answer token at the step the model wrote it,
checked against teacher-forced scoring of the same text; --consistent conditions them on the rules."""

from __future__ import annotations

import json
import re

import pytest
import torch

from constraintc.evaluation.generation import generate_traces
from constraintc.lm.models import build_embedded_model
from constraintc.lm.scoring import score_prompts
from constraintc.tasks.corpus import task_text

PROMPTS = [
    "B causes C. C causes D. Does B cause D?\nReasoning:",
    "B causes C. C causes D. Does D cause B?\nReasoning:",
]
TEXTS = [" B causes C. C causes D.\nAnswer: Yes", " D causes nothing.\nAnswer: No"]


@pytest.fixture(scope="module")
def taught():
    """The embedded model, taught the two texts (a few dozen steps: it then writes them)."""
    torch.manual_seed(0)
    model, tok = build_embedded_model(task_text, seed=0, traces=True)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    enc = [torch.tensor([tok(p + t)["input_ids"] + [tok.eos_token_id]]) for p, t in zip(PROMPTS, TEXTS)]
    model.train()
    for _ in range(60):
        loss = sum(model(input_ids=ids, labels=ids).loss for ids in enc)
        loss.backward()
        opt.step()
        opt.zero_grad()
    return model.eval(), tok


def test_written_p_yes_is_the_answer_tokens_probability(taught):
    model, tok = taught
    rows = generate_traces(model, tok, PROMPTS, max_new_tokens=24, batch_size=2, yes="Yes", no="No")
    assert [r["prediction"] for r in rows] == ["Yes", "No"], rows
    # the oracle: the same text, teacher-forced up to "Answer:", scored at the answer position
    # (decoded word by word, "Answer:" reads "Answer :")
    prefixes = [p + " " + r["output"][: list(re.finditer(r"Answer\s*:", r["output"]))[-1].end()]
                for p, r in zip(PROMPTS, rows)]
    forced = score_prompts(model, tok, prefixes, "Yes", "No")
    for row, p in zip(rows, forced.tolist()):
        assert row["p_yes"] == pytest.approx(p, abs=1e-5), (row, p)
    assert rows[0]["p_yes"] > 0.5 > rows[1]["p_yes"]
    # without the verbalizers nothing is recorded
    assert "p_yes" not in generate_traces(model, tok, PROMPTS[:1], max_new_tokens=24)[0]


def test_no_written_answer_no_p_yes(taught):
    model, tok = taught
    rows = generate_traces(model, tok, PROMPTS, max_new_tokens=3, batch_size=2, yes="Yes", no="No")
    assert all(r["prediction"] is None and r["p_yes"] is None for r in rows), rows


def test_eval_consistent_with_written_answers(taught, tmp_path, capsys):
    """`constraintc eval --traces N --consistent` reports raw and consistent written answers; the
    consistent ones break no rule."""
    from constraintc.cli import main
    from constraintc.tasks import generate
    from constraintc.tasks.io import write_jsonl

    model, tok = taught
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    write_jsonl(generate("transitivity", "mix", 16, seed=3), tmp_path / "d.jsonl")
    code = main(["eval", "--data", str(tmp_path / "d.jsonl"), "--model", str(tmp_path / "m"), "--traces", "24",
                 "--rules", "transitivity", "--consistent", "--json", "--no-progress", "--output-dir", str(tmp_path / "o")])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    preds = [json.loads(line) for line in (tmp_path / "o" / "predictions.jsonl").read_text().splitlines()]
    answered = [p for p in preds if p["p_yes"] is not None]
    assert answered and all((p["p_yes"] >= 0.5) == (p["prediction"] == "Yes") for p in answered)
    for name in ("marginal", "mpe"):
        part = report["consistent"][name]
        assert part["answered"] == len(answered)
        assert part["overall"]["rule_violation_rate"] == 0.0


def test_eval_consistent_when_the_model_never_answers(taught, tmp_path, capsys, monkeypatch):
    """A model whose reasoning never reaches an answer still gets its raw report; --consistent
    says there is nothing to condition instead of failing. A --predictions file without p_yes
    stays an error (the user's file lacks what the option needs)."""
    import constraintc.evaluation.answers as answers
    from constraintc.cli import main
    from constraintc.tasks import generate
    from constraintc.tasks.io import write_jsonl

    real = answers.model_answers

    def never_answered(*args, **kw):  # the model's outputs, cut before any answer
        return [{**p, "output": "B causes", "prediction": None, "p_yes": None} for p in real(*args, **kw)]

    monkeypatch.setattr(answers, "model_answers", never_answered)
    model, tok = taught
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    write_jsonl(generate("transitivity", "mix", 8, seed=3), tmp_path / "d.jsonl")
    code = main(["eval", "--data", str(tmp_path / "d.jsonl"), "--model", str(tmp_path / "m"), "--traces", "8",
                 "--rules", "transitivity", "--consistent", "--json", "--no-progress"])
    assert code == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert "consistent" not in report and report["overall"]["n"] == 8
    assert "none of the model's 8 outputs ends in an answer" in captured.err
    (tmp_path / "p.jsonl").write_text("".join(json.dumps({"id": r["id"], "prediction": "Yes"}) + "\n"
                                              for r in generate("transitivity", "mix", 8, seed=3)))
    code = main(["eval", "--data", str(tmp_path / "d.jsonl"), "--predictions", str(tmp_path / "p.jsonl"),
                 "--rules", "transitivity", "--consistent"])
    assert code != 0
    assert "--consistent" in capsys.readouterr().err


def test_finetune_reports_consistent_written_answers(taught, tmp_path):
    """The recipe's final evaluation conditions the written answers on the run's rules, and the
    reasoning table shows their balanced accuracy."""
    from constraintc.evaluation.report import reasoning_table
    from constraintc.train.config import validate
    from constraintc.train.recipe import FinetuneRecipe
    from constraintc.train.records import evaluation_records

    cfg = validate({"output_dir": str(tmp_path / "run"), "steps": 1, "train_records": 48, "eval_records": 16,
                    "eval_splits": ["mix"], "trace": "keep", "trace_tokens": 24, "threads": 1})
    recipe = FinetuneRecipe(cfg, progress=False)
    recipe.setup()
    recipe.model, recipe.tokenizer = taught
    report = recipe.reasoning_report(evaluation_records(cfg))
    answered = report["consistent"]["mpe"]["answered"]
    assert 0 < answered <= 16
    assert report["consistent"]["mpe"]["overall"]["rule_violation_rate"] == 0.0
    assert report["consistent"]["marginal"]["overall"]["rule_violation_rate"] is not None
    table = reasoning_table(None, {"reasoning": report})
    header, *rows = table.splitlines()
    assert header.rstrip().endswith("consistent bal.acc after")
    overall = report["consistent"]["mpe"]["overall"]["balanced_accuracy"]
    assert rows[-1].startswith("overall") and rows[-1].rstrip().endswith(f"{overall:.3f}")
