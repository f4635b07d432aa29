"""`constraintc eval` end to end: predictions files, errors, outputs, and a tiny Gemma model."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from constraintc.cli import main
from constraintc.tasks import generate
from constraintc.tasks.io import write_jsonl
from constraintc.tasks.prompts import format_prompt

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("eval")
    records = generate("transitivity", "train", 30, seed=1) + generate("dsep", "adversarial", 30, seed=1)
    write_jsonl(records, d / "data.jsonl")
    write_jsonl([{"id": r["id"], "prediction": "Yes"} for r in records], d / "yes.jsonl")
    write_jsonl([{"id": r["id"], "prediction": r["label"]} for r in records], d / "oracle.jsonl")
    return d, records


def test_markdown_report_on_stdout(data, capsys):
    d, _ = data
    assert main(["eval", "--data", str(d / "data.jsonl"), "--predictions", str(d / "yes.jsonl")]) == 0
    out = capsys.readouterr().out
    assert "| transitivity/train | 30 | 0.500 | 0.500 | 0.000 |" in out
    assert "**COLLAPSED**" in out and "## dsep/adversarial" in out and "| always_yes |" in out


def test_json_report_and_fail_on_collapse(data, capsys):
    d, _ = data
    code = main(["eval", "--data", str(d / "data.jsonl"), "--predictions", str(d / "yes.jsonl"), "--json", "--fail-on-collapse"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    assert report["collapsed_splits"] == ["transitivity/train", "dsep/adversarial"]
    assert main(["eval", "--data", str(d / "data.jsonl"), "--predictions", str(d / "oracle.jsonl"), "--json", "--fail-on-collapse"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["overall"]["balanced_accuracy"] == 1.0


def test_out_directory_holds_report_and_plots(data, tmp_path):
    d, _ = data
    out = tmp_path / "out"
    assert main(["eval", "--data", str(d / "data.jsonl"), "--predictions", str(d / "oracle.jsonl"), "--out", str(out)]) == 0
    assert json.loads((out / "report.json").read_text())["n_records"] == 60
    assert (out / "report.md").read_text().startswith("# constraintc eval")
    for name in ("balanced_accuracy.png", "yes_rate.png"):
        blob = (out / name).read_bytes()
        assert blob.startswith(PNG) and len(blob) > 5000


def test_user_errors_are_reported_without_traceback(data, tmp_path):
    d, _ = data
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "prediction": "Yes"}\n{"id": "y", "prediction": "perhaps"}\n')
    proc = subprocess.run(
        [sys.executable, "-m", "constraintc", "eval", "--data", str(d / "data.jsonl"), "--predictions", str(bad)],
        capture_output=True, text=True,
    )
    assert proc.returncode == 1 and f"{bad}:2:1:" in proc.stderr and "Traceback" not in proc.stderr
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"id": "x"}\n{"id": \n')
    proc = subprocess.run(
        [sys.executable, "-m", "constraintc", "eval", "--data", str(broken), "--predictions", str(bad)],
        capture_output=True, text=True,
    )
    assert proc.returncode == 1 and f"{broken}:2:" in proc.stderr and "invalid JSON" in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "constraintc", "eval", "--data", str(tmp_path / "nope.jsonl"), "--predictions", str(bad)],
        capture_output=True, text=True,
    )
    assert proc.returncode == 2 and "--data=" in proc.stderr and "Traceback" not in proc.stderr
    assert main(["eval", "--data", str(d / "data.jsonl"), "--predictions", str(bad), "--batch-size", "0"]) == 2


def test_model_path_on_a_tiny_gemma(data, tmp_path, capsys):
    from constraintc.lm import build_tiny_model, load_model, score_prompts

    d, records = data
    model, tok = build_tiny_model(texts=[format_prompt(r) + " Yes No" for r in records])
    assert type(model).__name__ == "Gemma3ForCausalLM"
    model_dir = tmp_path / "tiny"
    model.save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    out = tmp_path / "run"
    argv = ["eval", "--data", str(d / "data.jsonl"), "--model", str(model_dir), "--out", str(out), "--batch-size", "8", "--json"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert "eval" in captured.err  # the progress bar
    preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [p["id"] for p in preds] == [r["id"] for r in records]
    # differential: the CLI's p_yes are the scorer's on the same prompts
    m2, t2 = load_model(str(model_dir))
    direct = score_prompts(m2, t2, [format_prompt(r) for r in records]).tolist()
    # (float32 model: batches padded differently agree to ~1e-8)
    assert max(abs(p["p_yes"] - q) for p, q in zip(preds, direct)) < 1e-6
    assert all(p["prediction"] == ("Yes" if p["p_yes"] >= 0.5 else "No") for p in preds)
    assert report["overall"]["n"] == 60 and report["overall"]["mean_entropy"] is not None
    assert (out / "balanced_accuracy.png").read_bytes().startswith(PNG)
    # a rerun resumes from the checkpoint instead of scoring again
    assert main(argv) == 0
    assert "resuming: 60 predictions" in capsys.readouterr().err


def test_model_traces_path_on_a_tiny_gemma(data, tmp_path, capsys):
    from constraintc.lm import build_tiny_model
    from constraintc.tasks.prompts import reasoning_prompt

    d, records = data
    texts = [reasoning_prompt(r) + " Yes No" for r in records]
    model, tok = build_tiny_model(texts=texts)
    model_dir = tmp_path / "tiny"
    model.save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    out = tmp_path / "run"
    argv = ["eval", "--data", str(d / "data.jsonl"), "--model", str(model_dir), "--traces", "6", "--limit", "12",
            "--out", str(out), "--json", "--no-plots"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    traces = report["overall"]["traces"]
    assert traces["n"] == 12 and sum(traces["status_counts"].values()) == 12
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 12 and all(r["finish_reason"] in ("stop", "length") and "output" in r for r in rows)
    # a valid trace needs a finished generation with a final answer
    assert traces["status_counts"]["valid"] <= sum(
        1 for r in rows if r["finish_reason"] == "stop" and r["prediction"] is not None
    )
    assert main(["eval", "--data", str(d / "data.jsonl"), "--predictions", str(d / "yes.jsonl"), "--traces", "5"]) == 2


def test_rules_option_reports_violations(data, capsys):
    d, _ = data
    argv = ["eval", "--data", str(d / "data.jsonl"), "--predictions", str(d / "oracle.jsonl"), "--json",
            "--rules", "transitivity", "--rules-max-nodes", "4"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["splits"]["transitivity/train"]["rule_violation_rate"] == 0.0
    # the dsep records have no causes(...) question: skipped, with the reason
    skipped = report["splits"]["dsep/adversarial"]["rule_violations"]["skipped"]
    assert any("no query predicate 'dsep'" in why for why in skipped)
    assert main(argv[:-2] + ["--rules-param", "cond_size"]) == 2


def test_name_pool_asks_the_model_in_the_pool_names(data, tmp_path, capsys):
    """--name-pool N: the model reads each graph renamed into N names (as finetune trained it)."""
    from constraintc.lm import build_tiny_model, load_model, score_prompts
    from constraintc.tasks.rename import rename_records

    d, records = data
    renamed = rename_records(records, 6, seed=0)
    assert all(set(r["nodes"]) <= set("BCDEFG") for r in renamed if len(r["nodes"]) <= 6)
    assert sum(format_prompt(a) != format_prompt(b) for a, b in zip(records, renamed)) > len(records) // 2
    model, tok = build_tiny_model(texts=[format_prompt(r) + " Yes No" for r in records + renamed])
    model_dir = tmp_path / "tiny"
    model.save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    out = tmp_path / "run"
    argv = ["eval", "--data", str(d / "data.jsonl"), "--model", str(model_dir), "--out", str(out),
            "--name-pool", "6", "--json", "--no-progress"]
    assert main(argv) == 0
    preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    m2, t2 = load_model(str(model_dir))
    direct = score_prompts(m2, t2, [format_prompt(r) for r in renamed]).tolist()
    assert max(abs(p["p_yes"] - q) for p, q in zip(preds, direct)) < 1e-6
    report = json.loads(capsys.readouterr().out)
    assert report["overall"]["n"] == len(records)
    assert main(["eval", "--data", str(d / "data.jsonl"), "--predictions", str(d / "yes.jsonl"), "--name-pool", "-1"]) == 2
    assert "--name-pool" in capsys.readouterr().err


def test_consistent_answers_have_no_violations_and_follow_the_rules(tmp_path, capsys):
    """--consistent: the MPE answers never violate the rules; on a chain the rules and the premise
    decide every question, so marginal and MPE answers are right whatever P(Yes) the model gave."""
    import random

    from constraintc.tasks import generate

    records = generate("transitivity", "chains_shuffled", 24, seed=3) + generate("transitivity", "branching_large", 24, seed=3)
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    rng = random.Random(0)
    preds = tmp_path / "p.jsonl"
    preds.write_text("".join(json.dumps({"id": r["id"], "p_yes": rng.random()}) + "\n" for r in records))
    out = tmp_path / "rep"
    assert main(["eval", "--data", str(data), "--predictions", str(preds), "--rules", "transitivity",
                 "--consistent", "--out", str(out), "--no-plots", "--no-progress"]) == 0
    report = json.loads((out / "report.json").read_text())
    cons = report["consistent"]
    chains = "transitivity/chains_shuffled"
    assert cons["mpe"]["splits"][chains]["balanced_accuracy"] == 1.0
    assert cons["marginal"]["splits"][chains]["balanced_accuracy"] == 1.0
    for split in cons["mpe"]["splits"].values():
        assert split["rule_violation_rate"] == 0.0
    assert report["overall"]["rule_violation_rate"] > 0.0  # random raw answers do violate the rules
    assert "## Consistent answering" in capsys.readouterr().out
    # the rules are read twice in all: once as the violation rates of all three reports check
    # them, once in float64 for the conditioning; and the reports do not change by it
    import constraintc.semantic as semantic

    read, real_init = [], semantic.SemanticLoss.__init__

    def counting(self, rules="transitivity", *args, **kwargs):
        read.append((str(rules), kwargs.get("schema_seconds")))
        real_init(self, rules, *args, **kwargs)

    again = tmp_path / "again"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(semantic.SemanticLoss, "__init__", counting)
        assert main(["eval", "--data", str(data), "--predictions", str(preds), "--rules", "transitivity",
                     "--consistent", "--out", str(again), "--no-plots", "--no-progress"]) == 0
    assert sorted(read, key=str) == [("transitivity", 5.0), ("transitivity", None)]
    twice = json.loads((again / "report.json").read_text())
    assert twice["consistent"] == cons and twice["splits"] == report["splits"] and twice["rules"] == "transitivity"
    capsys.readouterr()
    # the same without p_yes is refused with a clear message
    bare = tmp_path / "bare.jsonl"
    bare.write_text("".join(json.dumps({"id": r["id"], "prediction": "Yes"}) + "\n" for r in records))
    assert main(["eval", "--data", str(data), "--predictions", str(bare), "--rules", "transitivity", "--consistent"]) == 2
    assert "p_yes" in capsys.readouterr().err
