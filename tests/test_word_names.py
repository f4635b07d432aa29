"""Node names that are words of the embedded tokenizer's task text (``a``, ``d``, ``at``, ``by``).

The name-slot tokenizer reads every word it knows as that word; a graph whose nodes are named
``a``..``o`` (common in public sets) would have ``a`` and ``d`` read as words. ``constraintc eval``
asks the model such records with stand-in names. Checked against an independent reading: the
stand-in view must tokenize exactly like the same graph under names that are no words, up to a
renaming of the slot tokens (hypothesis, seed printed in the pytest header).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from constraintc.lm.models import build_embedded_model
from constraintc.logic.atoms import parse_atom
from constraintc.tasks import generate
from constraintc.tasks.corpus import task_text
from constraintc.tasks.io import write_jsonl
from constraintc.tasks.rename import names_apart_from_words, rename_record, rename_words


@pytest.fixture(scope="module")
def embedded():
    return build_embedded_model(task_text)


@pytest.fixture(scope="module")
def records():
    out = []
    for task in ("transitivity", "dsep"):
        for split in ("train", "chains_long", "branching_large"):
            if task == "dsep" and split == "chains_long":
                continue
            out += generate(task, split, 6, seed=11)
    return out


def _word_names(tokenizer) -> list[str]:
    return sorted(w for w in tokenizer.name_words if re.fullmatch(r"\w+", w) and w.lower() not in ("yes", "no"))


def _same_up_to_slots(ids_a: list[int], ids_b: list[int], slot_ids: set[int]) -> bool:
    """The two id sequences agree token by token, slot tokens matched by one bijection."""
    if len(ids_a) != len(ids_b):
        return False
    forward, backward = {}, {}
    for a, b in zip(ids_a, ids_b):
        if a in slot_ids or b in slot_ids:
            if a not in slot_ids or b not in slot_ids:
                return False
            if forward.setdefault(a, b) != b or backward.setdefault(b, a) != a:
                return False
        elif a != b:
            return False
    return True


def _ids(tokenizer, record: dict) -> list[int]:
    return tokenizer(record["premise"] + "\n" + record["question"])["input_ids"]


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_word_named_nodes_read_like_any_other_names_through_the_stand_ins(embedded, records, data):
    _, tok = embedded
    slot_ids = {tok.convert_tokens_to_ids(f"[N{k}]") for k in range(tok.name_slots)}
    words = _word_names(tok)
    record = data.draw(st.sampled_from(records))
    nodes = record["nodes"]
    # each node either keeps its (non-word) name or takes a distinct task word
    chosen = data.draw(st.lists(st.sampled_from(words), min_size=len(nodes), max_size=len(nodes), unique=True))
    keep = data.draw(st.lists(st.booleans(), min_size=len(nodes), max_size=len(nodes)))
    mapping = {n: (n if k else w) for n, w, k in zip(nodes, chosen, keep)}
    if len(set(mapping.values())) < len(nodes):
        return  # a kept name equals a chosen word: not injective
    named = rename_record(record, mapping)
    found = names_apart_from_words(named, tok.name_words)
    assert found is not None
    view, back = found
    # the model reads the view as it reads the same graph rebuilt from its structure under names
    # that are no words (ranked like the record's names, so that sets "{..}" list in the same order)
    ranked = {n: f"zz{i:03d}" for i, n in enumerate(sorted(named["nodes"]))}
    plain = rename_record(named, ranked)
    assert _same_up_to_slots(_ids(tok, view), _ids(tok, plain), slot_ids)
    # and the way back gives the record's own text
    assert rename_words(view["premise"], back) == named["premise"]
    assert rename_words(view["question"], back) == named["question"]
    clashing = {w for w in mapping.values() if w in tok.name_words}
    assert set(back.values()) == clashing
    _, args = parse_atom(named["atom"])
    shown = {u for e in named["edges"] for u in e} | {a for arg in args for a in (arg if isinstance(arg, frozenset) else [arg])}
    if clashing & shown:
        # without the stand-ins a text naming a node like a word reads differently
        assert not _same_up_to_slots(_ids(tok, named), _ids(tok, plain), slot_ids)


def test_names_that_are_no_words_and_text_in_another_format():
    plain = {"premise": "x causes y.", "question": "Does x cause y?"}
    assert names_apart_from_words(plain, {"a", "d", "cause"}) == (plain, {})
    other = {"premise": "a feeds b.", "question": "Does a eat b?", "nodes": ["a", "b"]}
    assert names_apart_from_words(other, {"a"}) is None
    assert names_apart_from_words(dict(other, nodes=["x", "b"]), {"a"}) == (dict(other, nodes=["x", "b"]), {})
    # a stand-in never takes a name the record already has
    taken = {"premise": "a causes a_1. a_1 causes b.", "question": "Does a cause b?"}
    view, back = names_apart_from_words(taken, {"a", "cause"})
    assert view["premise"] == "a_2 causes a_1. a_1 causes b." and back == {"a_2": "a"}


def test_dsep_question_keeps_its_words_and_renames_its_names():
    record = {"premise": "d causes B. B causes a.", "question": "Are d and a d-separated given {B, at}?"}
    view, back = names_apart_from_words(record, {"d", "a", "at", "Are", "and", "separated", "given"})
    assert view["question"] == "Are d_1 and a_1 d-separated given {B, at_1}?"
    assert view["premise"] == "d_1 causes B. B causes a_1."
    assert back == {"d_1": "d", "a_1": "a", "at_1": "at"}


def test_eval_asks_the_model_with_stand_ins_and_writes_the_names_back(tmp_path, embedded, monkeypatch, capsys):
    import constraintc.evaluation.answers as answers
    import constraintc.evaluation.generation as generation

    model, tok = embedded
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    base = generate("transitivity", "chains_long", 4, seed=5, traces=False)
    recs = []
    for r in base:
        letters = "abcdefghijklmnopqrstuvwxyz"
        recs.append(rename_record(r, dict(zip(r["nodes"], letters))))
    assert any("a" in r["nodes"] for r in recs)
    data = tmp_path / "lower.jsonl"
    write_jsonl(recs, data)

    seen = []

    def fake_generate(model, tokenizer, prompts, budget, batch_size, yes="Yes", no="No"):
        seen.extend(prompts)
        # echo the question line: the names the model was shown
        return [{"output": p.split("\n")[1], "finish_reason": "stop", "prediction": None} for p in prompts]

    monkeypatch.setattr(generation, "generate_traces", fake_generate)
    how = answers.Answering(str(tmp_path / "m"), traces=8, device="cpu")
    rows = answers.model_answers(recs, how, data, None, progress=False)
    assert "stand-in names" in capsys.readouterr().err
    for r, prompt, row in zip(recs, seen, rows):
        shown = prompt.split("\n")[1]
        if "a" in r["nodes"]:
            assert re.search(r"\ba_1\b", prompt) and not re.search(r"\ba\b", prompt.split("\nQuestion:")[0])
        assert row["output"] == "Question: " + r["question"]
        assert shown.startswith("Question: ")

    # direct answers: the same model and records give the same P(Yes) as the graph under other names
    # whose slots are the stand-ins' slots (names carry only identity)
    direct = answers.model_answers(recs, answers.Answering(str(tmp_path / "m"), device="cpu"), data, None,
                                   progress=False)
    views = [names_apart_from_words(r, tok.name_words)[0] for r in recs]
    view_path = tmp_path / "views.jsonl"
    write_jsonl(views, view_path)
    again = answers.model_answers(views, answers.Answering(str(tmp_path / "m"), device="cpu"), view_path, None,
                                  progress=False)
    assert [d["p_yes"] for d in direct] == pytest.approx([a["p_yes"] for a in again], abs=1e-6)
    json.dumps(direct)  # rows stay JSON


def test_finetune_trains_a_saved_model_on_word_like_names_with_stand_ins(tmp_path, embedded, capsys):
    """`finetune --model DIR --data FILE`: the data's nodes named like the tokenizer's words are
    read with stand-ins in every prompt, unlabelled question and trace, as eval asks them."""
    from constraintc.train.config import validate
    from constraintc.train.recipe import FinetuneRecipe

    model, tok = embedded
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    recs = [rename_record(r, dict(zip(r["nodes"], "abcdefg")))
            for r in generate("transitivity", "train", 40, seed=3, traces=True)]
    assert any("a" in r["nodes"] for r in recs) and all(r["trace"] for r in recs)
    write_jsonl(recs, tmp_path / "lower.jsonl")
    cfg = validate(dict(model=str(tmp_path / "m"), finetune="full", data=str(tmp_path / "lower.jsonl"), steps=1,
                        eval_records=8, final_eval=False, plots=False, batch_groups=2, warmup_steps=0, threads=1,
                        trace="keep", output_dir=str(tmp_path / "run")))
    recipe = FinetuneRecipe(cfg, progress=False)
    recipe.run()
    err = capsys.readouterr().err
    assert "training records of --data name nodes like words" in err and "stand-in names (a_1)" in err
    assert "warning" not in err
    graphs = recipe.train_graphs + recipe.heldout
    texts = [p for g in graphs for p in g.prompts] + [c.text for g in graphs for c in g.completions]
    assert any(re.search(r"\ba_1\b", t) for t in texts)
    for t in texts:  # "a" never stands as a name: not in a statement, a question or a trace step
        assert not re.search(r"\ba causes|causes a\.|Does a cause|cause a\?", t), t
    assert all("a" not in g.nodes for g in graphs) and any("a_1" in g.nodes for g in graphs)
    assert any("a_1" in atom for g in graphs for atom in g.atoms)


def test_records_keep_their_names_where_a_trace_uses_the_name_as_a_word():
    """d-separation traces say "a collider": a node named a cannot be respelled by words there."""
    from constraintc.tasks.rename import records_apart_from_words

    rec = next(r for r in generate("dsep", "train", 60, seed=1, traces=True) if "collider" in (r.get("trace") or ""))
    lower = rename_record(rec, dict(zip(rec["nodes"], "abcdefghij")))
    words = {"a", "d", "Are", "and", "separated", "given", "collider"}
    out, left = records_apart_from_words([lower], words)
    assert out[0] is lower and "a" in left
    # without a trace the same record is respelled
    bare = {k: v for k, v in lower.items() if k != "trace"}
    out, left = records_apart_from_words([bare], words)
    assert left == [] and "a" not in out[0]["nodes"] and "a_1" in out[0]["nodes"]
    assert "given" in out[0]["question"] and "a_1" in out[0]["premise"] + out[0]["question"]


def test_the_question_templates_of_the_users_rules_find_the_names_too():
    record = {"premise": "B causes d. a causes d.", "question": "Do d and a have a common cause?",
              "nodes": ["a", "B", "d"]}
    words = {"a", "d", "Do", "and", "have", "common", "cause"}
    assert names_apart_from_words(record, words) is None  # not a library task's question
    view, back = names_apart_from_words(record, words, ("Do {X} and {Y} have a common cause?",))
    # the template's own "a" stays a word; the node a does not
    assert view["question"] == "Do d_1 and a_1 have a common cause?"
    assert view["premise"] == "B causes d_1. a_1 causes d_1." and back == {"a_1": "a", "d_1": "d"}


def test_eval_cli_respells_by_the_rules_question_template(tmp_path, embedded, capsys):
    from constraintc.cli import main

    model, tok = embedded
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    data = tmp_path / "conf.jsonl"
    write_jsonl([{"id": "q1", "premise": "B causes d. a causes d.", "question": "Do d and a have a common cause?",
                  "label": "Yes", "nodes": ["a", "B", "d"], "edges": [["B", "d"], ["a", "d"]],
                  "atom": "confounded(d,a)"}], data)
    rules = str(Path(__file__).resolve().parents[1] / "examples" / "rules" / "confounding.rules")
    assert main(["eval", "--data", str(data), "--model", str(tmp_path / "m"), "--device", "cpu", "--no-progress"]) == 0
    assert "not in the generated format" in capsys.readouterr().err
    assert main(["eval", "--data", str(data), "--model", str(tmp_path / "m"), "--device", "cpu", "--no-progress",
                 "--rules", rules]) == 0
    err = capsys.readouterr().err
    assert "1 of 1 records name nodes like words" in err and "not in the generated format" not in err


def test_predictions_asked_with_other_stand_ins_are_not_resumed(tmp_path, embedded, capsys):
    from constraintc.cli import main

    model, tok = embedded
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    data = tmp_path / "conf.jsonl"
    record = {"id": "q1", "premise": "B causes d. a causes d.", "question": "Do d and a have a common cause?",
              "label": "Yes", "nodes": ["a", "B", "d"]}
    write_jsonl([record], data)
    rules = str(Path(__file__).resolve().parents[1] / "examples" / "rules" / "confounding.rules")
    base = ["eval", "--data", str(data), "--model", str(tmp_path / "m"), "--device", "cpu", "--no-progress",
            "--no-plots", "--output-dir", str(tmp_path / "out")]
    # the rule checks need each graph: a record without its edges and atom is a clean error, no traceback
    assert main([*base, "--rules", rules]) != 0
    err = capsys.readouterr().err
    assert f"{data}:1:1: error: record lacks edges, atom" in err and "Traceback" not in err
    write_jsonl([dict(record, edges=[["B", "d"], ["a", "d"]], atom="confounded(d,a)")], data)
    assert main([*base, "--rules", rules]) == 0
    capsys.readouterr()
    assert main([*base, "--rules", rules]) == 0
    assert "resuming: 1 predictions" in capsys.readouterr().err
    assert main(base) == 0  # without the rules' template the question is asked as it is: afresh
    assert "resuming" not in capsys.readouterr().err


def test_a_graph_the_renaming_cannot_follow_keeps_its_names_whole():
    """An edge naming a node the record does not declare: no record of that graph is respelled."""
    from constraintc.tasks.rename import records_apart_from_words

    good = {"premise": "a causes b. b causes c.", "question": "Does a cause c?", "nodes": ["a", "b", "c"],
            "edges": [["a", "b"], ["b", "c"]], "atom": "causes(a,c)", "group": "g"}
    bad = dict(good, question="Does c cause a?", atom="causes(c,a)", edges=[["a", "b"], ["b", "x"]])
    other = dict(good, group="h")
    out, left = records_apart_from_words([good, bad, other], {"a", "cause"})
    assert out[0] is good and out[1] is bad and left == ["a"]
    assert out[2]["nodes"] == ["a_1", "b", "c"] and out[2]["premise"] == "a_1 causes b. b causes c."
