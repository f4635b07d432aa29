"""Training with reasoning traces: which tokens the trace CE covers, renamed traces stay true, and
a short run learns to write the gold traces (its trace CE falls)."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from constraintc.errors import ConstraintcError
from constraintc.evaluation.traces import check_steps
from constraintc.tasks import generate
from constraintc.tasks.prompts import format_prompt, reasoning_prompt
from constraintc.train.config import validate
from constraintc.semantic import SemanticLoss
from constraintc.tasks.rename import rename_records
from constraintc.train.data import build_graphs, skew_labels, trace_completion
from constraintc.train.recipe import FinetuneRecipe


@pytest.fixture(scope="module")
def constraint():
    return SemanticLoss("transitivity").double()


def test_renamed_traces_stay_true_in_the_renamed_graph():
    records = rename_records(generate("transitivity", "train", 200, seed=3, traces=True), pool=6, seed=0)
    renamed = 0
    for r in records:
        checked = check_steps(r["trace"], r)
        assert checked["steps"] > 0 and checked["true"] == checked["steps"], r
        assert set(r["nodes"]) <= set("BCDEFG") or len(r["nodes"]) > 6
        renamed += set(r["nodes"]) <= set("BCDEFG")
    assert renamed > 100


def test_renamed_dsep_records_keep_question_meta_and_trace_consistent():
    """The conditioning set lives in the question, the atom, ``meta.z`` and the trace: all renamed."""
    from constraintc.logic.atoms import parse_atom

    records = rename_records(generate("dsep", "train", 120, seed=4, traces=True), pool=6, seed=0)
    for r in records:
        pred, (x, y, z) = parse_atom(r["atom"])
        assert (r["meta"]["x"], r["meta"]["y"], r["meta"]["z"]) == (x, y, sorted(z))
        assert r["question"] == f"Are {x} and {y} d-separated given {{{', '.join(sorted(z))}}}?"
        checked = check_steps(r["trace"], r)  # trail claims are judged given meta.z
        assert checked["true"] == checked["steps"], r


def test_atom_parser_rejects_malformed_atoms():
    from constraintc.logic.atoms import format_atom, parse_atom

    for bad in ("causes(B,C", "dsep(B,C,{D)", "dsep(B,C,D})", "causes(B,C)x"):
        with pytest.raises(ConstraintcError, match="atom"):
            parse_atom(bad)
    for good in ("causes(B,C)", "dsep(B,C,{})", "dsep(B,C,{D,E})"):
        assert format_atom(*parse_atom(good)) == good


@pytest.mark.parametrize("mode", ["keep", "mask"])
def test_every_labelled_question_gets_one_completion(constraint, mode):
    records = skew_labels(generate("transitivity", "train", 60, seed=1, traces=True), 0.75, 0)
    by_id = {r["id"]: r for r in records}
    graphs = build_graphs(
        records, constraint, format_prompt, all_atoms=True, trace=mode, reasoning_fn=reasoning_prompt
    )
    for g in graphs:
        labelled = [(rid, lab) for rid, lab in zip(g.record_ids, g.labels) if lab is not None]
        assert len(g.completions) == len(labelled)
        for c, (rid, label) in zip(g.completions, labelled):
            rec = by_id[rid]
            assert c.prompt == reasoning_prompt(rec) and c.answer == label
            assert c.text == f" {rec['trace']}\nAnswer:"
            assert c.loss == ("all" if mode == "keep" else "answer")
    # no trace mode: no completions at all
    plain = build_graphs(records, constraint, format_prompt, all_atoms=True)
    assert all(not g.completions for g in plain)


def test_a_record_without_a_trace_gets_an_empty_reasoning_section():
    c = trace_completion("B causes C.\nQuestion: Does B cause C?\nReasoning:", None, "Yes", "keep")
    assert c.text == "\nAnswer:"
    chat = trace_completion("<start_of_turn>model\n", "  ", "No", "mask")
    assert chat.text == "Answer:" and chat.loss == "answer"
    with pytest.raises(ValueError):
        trace_completion("x", "y", "Yes", "none")


def test_trace_option_is_validated():
    with pytest.raises(ConstraintcError, match=r"trace='always': expected one of none, keep, mask"):
        validate({"trace": "always"})


SMALL = dict(
    train_records=96, eval_records=0, final_eval=False, plots=False, batch_groups=4,
    warmup_steps=0, lr=3e-3, eval_every=1000, threads=1, checkpoint_every=1000,
)


@pytest.mark.slow
def test_keep_learns_the_traces_and_mask_trains_the_answer_only(tmp_path):
    recipe = FinetuneRecipe(validate({**SMALL, "output_dir": str(tmp_path / "keep"), "steps": 15, "trace": "keep"}), progress=False)
    recipe.run()
    rows = [json.loads(line) for line in (tmp_path / "keep" / "metrics.jsonl").read_text().splitlines()]
    first = sum(r["trace_ce"] for r in rows[:3]) / 3
    last = sum(r["trace_ce"] for r in rows[-3:]) / 3
    assert last < first - 1.0, (first, last)  # from ~log|V| per token towards the gold text
    # the packed batch of a step: keep targets every trace token, mask only each answer
    graphs = recipe.train_graphs[:4]
    batch, _, _, _, trace_ce = recipe._forward(graphs)
    n_completions = sum(len(g.completions) for g in graphs)
    assert batch.num_completions == n_completions and trace_ce.shape == (n_completions,)
    assert len(batch.target_ids) > 5 * n_completions
    for g in graphs:
        g.completions = [dataclasses.replace(c, loss="answer") for c in g.completions]
    masked, _, _, _, _ = recipe._forward(graphs)
    assert len(masked.target_ids) == n_completions
    yes_id, no_id = int(masked.yes_ids[0]), int(masked.no_ids[0])
    answers = [c.answer for g in graphs for c in g.completions]
    assert masked.target_ids.tolist() == [yes_id if a == "Yes" else no_id for a in answers]


@pytest.mark.slow
def test_final_evaluation_grades_the_models_own_reasoning(tmp_path):
    cfg = validate({
        **SMALL, "output_dir": str(tmp_path / "ev"), "steps": 2, "trace": "mask", "final_eval": True,
        "eval_records": 8, "eval_splits": ["train"], "trace_tokens": 12,
    })
    recipe = FinetuneRecipe(cfg, progress=False)
    recipe.run()
    after = json.loads((tmp_path / "ev" / "eval_after.json").read_text())
    traces = after["reasoning"]["overall"]["traces"]
    assert traces["n"] == 8 and sum(traces["status_counts"].values()) == 8
    from constraintc.evaluation.report import reasoning_table

    table = reasoning_table(recipe.before, recipe.after)
    assert "valid traces" in table and "overall" in table and "violations" in table
    # the embedded model is built from scratch: before training it writes noise, so its written
    # reasoning is graded after training only (the direct answers both times)
    assert recipe.from_scratch and "reasoning" not in recipe.before and recipe.before["overall"]["n"] == 8
    # the written answers' rule violations, against a networkx oracle on the same (greedy) answers:
    # a graph's answers violate the strict-order rules iff the premise plus the Yes answers has a
    # cycle or reaches a pair answered No
    import networkx as nx

    from constraintc.evaluation.generation import generate_traces
    from constraintc.train.records import evaluation_records

    records = evaluation_records(cfg)
    assert len(records) == traces["n"]
    rows = generate_traces(recipe.model, recipe.tokenizer, [recipe.reasoning_fn(r) for r in records], 12, batch_size=32,
                           yes="Yes", no="No")
    # consistent answers where any written answer carries its probability (and only then)
    answered = sum(row["p_yes"] is not None for row in rows)
    assert ("consistent" in after["reasoning"]) == (answered > 0)
    if answered:
        assert after["reasoning"]["consistent"]["mpe"]["answered"] == answered
        assert after["reasoning"]["consistent"]["mpe"]["overall"]["rule_violation_rate"] == 0.0
    by_group: dict = {}
    for r, row in zip(records, rows):
        by_group.setdefault(r["group"], []).append((r, row.get("prediction")))
    violated = 0
    for members in by_group.values():
        g = nx.DiGraph([tuple(e) for e in members[0][0]["edges"]])
        g.add_edges_from((r["meta"]["x"], r["meta"]["y"]) for r, a in members if a == "Yes")
        cyclic = not nx.is_directed_acyclic_graph(g)
        violated += cyclic or any(a == "No" and nx.has_path(g, r["meta"]["x"], r["meta"]["y"]) for r, a in members)
    got = after["reasoning"]["overall"]["rule_violations"]
    assert got["checked"] == len(by_group) and got["violated"] == violated, (got, violated)


def test_training_data_errors_name_the_file_and_line(tmp_path):
    from constraintc.tasks.io import read_jsonl as read_any
    from constraintc.train.data import TRAINING_FIELDS

    def read_jsonl(path):
        return read_any(path, "--data", require=TRAINING_FIELDS)

    good = generate("transitivity", "train", 2, seed=0, traces=True)
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps(good[0]) + "\n\n" + json.dumps(good[1]) + "\n")
    assert read_jsonl(path) == good  # blank lines skipped, records unchanged (no _line left)
    path.write_text(json.dumps(good[0]) + "\n{not json\n")
    with pytest.raises(ConstraintcError, match=r"train\.jsonl:2:2: error: invalid JSON"):
        read_jsonl(path)
    path.write_text(json.dumps({k: v for k, v in good[0].items() if k != "atom"}) + "\n")
    with pytest.raises(ConstraintcError, match=r"train\.jsonl:1:1: error: record lacks atom"):
        read_jsonl(path)
    with pytest.raises(ConstraintcError, match="--data"):
        read_jsonl(tmp_path / "missing.jsonl")


def test_word_tokenizer_learns_the_reasoning_vocabulary_only_with_traces():
    from constraintc.lm.models import build_embedded_tokenizer
    from constraintc.tasks.corpus import task_text

    # without traces the corpus (so the word vocabulary) has no reasoning text
    assert not any("Reasoning:" in t or "->" in t for t in task_text().texts)
    plain = build_embedded_tokenizer({"kind": "words"}, task_text)
    traced = build_embedded_tokenizer({"kind": "words"}, task_text, traces=True)
    assert "Reasoning" not in plain.get_vocab() and "->" not in plain.convert_ids_to_tokens(plain("B -> C")["input_ids"])
    for text in [r["trace"] for r in generate("dsep", "train", 40, seed=5, traces=True)] + [reasoning_prompt({"premise": "B causes C.", "question": "Does B cause C?"})]:
        ids = traced(text)["input_ids"]
        assert traced.unk_token_id not in ids, text
    decoded = traced.decode(traced("Trail B -> C <- D is open.")["input_ids"], skip_special_tokens=True)
    assert check_steps(decoded, {"nodes": ["B", "C", "D"], "edges": [["B", "C"], ["D", "C"]], "atom": "dsep(B,D,{C})"}) == {"steps": 1, "true": 1, "in_premise": 0}


def test_embedded_tokenizer_reads_every_name_and_every_trace():
    from constraintc.lm.models import build_embedded_model
    from constraintc.tasks import SPLITS
    from constraintc.tasks.corpus import task_text

    _, tok = build_embedded_model(task_text)
    _, traced = build_embedded_model(task_text, traces=True)
    assert tok.get_vocab() == traced.get_vocab()  # one vocabulary, with or without traces
    for task in ("transitivity", "dsep"):
        for split in SPLITS:
            for r in generate(task, split, 12, seed=5, traces=True):
                text = f"{reasoning_prompt(r)} {r['trace']}\nAnswer: {r['label']}"
                ids = tok(text)["input_ids"]
                assert tok.unk_token_id not in ids, text
                for name in r["nodes"]:
                    # a name is one name-slot token (the default tokenizer), never unknown
                    pieces = tok.convert_ids_to_tokens(tok(name, add_special_tokens=False)["input_ids"])
                    assert len(pieces) == 1 and pieces[0].startswith("[N"), (name, pieces)
    trace = "Trail R0R -> 1da <- Ye is open."
    decoded = tok.restore_names(trace, tok.decode(tok(trace)["input_ids"], skip_special_tokens=True))
    assert check_steps(decoded, {"nodes": ["R0R", "1da", "Ye"], "edges": [["R0R", "1da"], ["Ye", "1da"]], "atom": "dsep(R0R,Ye,{1da})"}) == {"steps": 1, "true": 1, "in_premise": 0}


def test_interior_focus_fills_the_atom_budget_with_interior_atoms_first(constraint):
    import networkx as nx

    from constraintc.logic.atoms import parse_atom

    records = skew_labels(generate("transitivity", "mix", 400, seed=4), 0.75, 0)
    uniform = build_graphs(records, constraint, format_prompt, all_atoms=True, atoms_per_graph=12)
    focused = build_graphs(records, constraint, format_prompt, all_atoms=True, atoms_per_graph=12,
                           atom_focus="interior")
    assert [g.group for g in uniform] == [g.group for g in focused]
    more = 0
    for u, f in zip(uniform, focused):
        g = nx.DiGraph([tuple(e) for e in f.edges])
        g.add_nodes_from(f.nodes)
        inner = {v for v in g if g.in_degree(v) and g.out_degree(v)}  # neither a source nor a sink
        every = [f"causes({a},{b})" for a in f.nodes for b in f.nodes if a != b]
        # the records' questions (labelled or not) are the same and come first; the budget is the same
        from_records = [a for a, rid in zip(f.atoms, f.record_ids) if rid is not None]
        assert from_records == [a for a, rid in zip(u.atoms, u.record_ids) if rid is not None]
        assert len(f.atoms) == len(u.atoms) == max(min(12, len(every)), len(from_records))
        is_inner = lambda a: set(parse_atom(a)[1]) <= inner
        filled = [a for a, rid in zip(f.atoms, f.record_ids) if rid is None]
        free_inner = [a for a in every if is_inner(a) and a not in from_records]
        # interior atoms first: every one of them is asked, or the budget holds nothing else
        assert set(free_inner) <= set(filled) or all(map(is_inner, filled))
        more += sum(map(is_inner, filled)) - sum(is_inner(a) for a, rid in zip(u.atoms, u.record_ids) if rid is None)
    assert more > 0  # and the uniform sample asks fewer of them


def test_balanced_focus_asks_as_many_true_as_false_atoms_networkx_checked():
    import networkx as nx

    from constraintc.logic.atoms import parse_atom

    dsep = SemanticLoss("dsep", {"cond_size": 2})
    records = generate("dsep", "mix", 120, seed=3)

    def truth(g, atom):  # the oracle: networkx's d-separation on the record's graph
        dag = nx.DiGraph([tuple(e) for e in g.edges])
        dag.add_nodes_from(g.nodes)
        x, y, z = parse_atom(atom)[1]
        return nx.is_d_separator(dag, {x}, {y}, set(z))

    uniform = build_graphs(records, dsep, format_prompt, all_atoms=True, atoms_per_graph=16, seed=1)
    balanced = build_graphs(records, dsep, format_prompt, all_atoms=True, atoms_per_graph=16, seed=1,
                            atom_focus="balanced")
    again = build_graphs(records, dsep, format_prompt, all_atoms=True, atoms_per_graph=16, seed=1,
                         atom_focus="balanced")
    assert [g.atoms for g in balanced] == [g.atoms for g in again]  # seeded
    assert [g.group for g in uniform] == [g.group for g in balanced]
    shares = {}
    for name, graphs in (("uniform", uniform), ("balanced", balanced)):
        yes = total = 0
        for g in graphs:
            filled = [a for a, rid in zip(g.atoms, g.record_ids) if rid is None]
            values = [truth(g, a) for a in filled]
            assert dsep.decided(g.nodes, g.edges, filled) == values  # the rules agree with networkx
            yes, total = yes + sum(values), total + len(values)
            if name == "balanced":
                every = [a for a in dsep.graph_atoms(g.nodes, g.edges).atoms if a not in g.atoms]
                left = {v: sum(truth(g, a) == v for a in every) for v in (True, False)}
                n_yes = sum(values)
                # as even as the graph allows: a lopsided fill only when the other side ran out
                assert abs(2 * n_yes - len(values)) <= 1 or left[n_yes * 2 < len(values)] == 0, (g.group, n_yes, left)
                assert len(g.atoms) == len(next(u for u in uniform if u.group == g.group).atoms)
        shares[name] = yes / total
    assert shares["uniform"] < 0.3 < 0.4 < shares["balanced"] <= 0.5, shares
    # transitivity: an open-world graph decides no atom, so the balanced fill is the uniform one
    trans = SemanticLoss("transitivity")
    t_records = generate("transitivity", "branching", 40, seed=2)
    t_uniform = build_graphs(t_records, trans, format_prompt, all_atoms=True, atoms_per_graph=12)
    t_balanced = build_graphs(t_records, trans, format_prompt, all_atoms=True, atoms_per_graph=12,
                              atom_focus="balanced")
    undecided = [i for i, g in enumerate(t_uniform) if trans.decided(g.nodes, g.edges, g.atoms[:1]) is None]
    assert undecided and all(t_uniform[i].atoms == t_balanced[i].atoms for i in undecided)


def test_trace_search_reaches_the_training_records_and_is_checked():
    from constraintc.tasks.traces import trace_text
    from constraintc.train.records import training_records

    cfg = validate({"trace_search": "exhaustive", "train_records": 40, "label_yes_rate": 0})
    records = training_records(cfg)
    assert len(records) == 40
    for r in records:
        assert r["trace"] == trace_text("transitivity", r["nodes"], r["edges"], r["meta"]["x"], r["meta"]["y"],
                                        search="exhaustive")
    assert any(r["trace"] != trace_text("transitivity", r["nodes"], r["edges"], r["meta"]["x"], r["meta"]["y"])
               for r in records)
    with pytest.raises(ConstraintcError, match=r"trace_search=.exhaustive.: a dsep trace searches as one of until_found, bayes_ball"):
        validate({"trace_search": "exhaustive", "task": "dsep"})
    with pytest.raises(ConstraintcError, match=r"trace_search='bayes_ball': a transitivity trace searches as one of"):
        validate({"trace_search": "bayes_ball"})
    cfg = validate({"trace_search": "bayes_ball", "task": "dsep", "rules": "dsep", "train_records": 24})
    records = training_records(cfg)
    assert len(records) == 24
    for r in records:
        assert r["trace"] == trace_text("dsep", r["nodes"], r["edges"], r["meta"]["x"], r["meta"]["y"],
                                        r["meta"]["z"], search="bayes_ball")
