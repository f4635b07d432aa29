"""examples/lookup_learning.py: its lookup count against known answerers, its name salts, a short run."""

from __future__ import annotations

import json
import math
import re
from types import SimpleNamespace

import pytest
import torch

from conftest import load_example

LEARN = load_example("lookup_learning")


class NextToken(torch.nn.Module):
    """A stand-in model whose prediction at every position is the row's token ``shift`` places
    ahead: ``shift=1`` reads the gold continuation (every teacher-forced prediction right),
    ``shift=0`` repeats the current token (after "U causes" it says "causes", never a name)."""

    def __init__(self, vocab: int, shift: int):
        super().__init__()
        self.vocab, self.shift = vocab, shift
        self.config = SimpleNamespace(final_logit_softcapping=None)
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def get_decoder(self):
        def decode(input_ids, **_):
            ahead = torch.roll(input_ids, -self.shift, dims=1)
            return SimpleNamespace(last_hidden_state=torch.nn.functional.one_hot(ahead, self.vocab).float())
        return decode

    def get_output_embeddings(self):
        return torch.nn.Identity()


@pytest.fixture(scope="module")
def tokenizer():
    from constraintc.lm import load_model
    from constraintc.tasks.corpus import task_text

    return load_model("embedded", corpus=task_text)[1]


def test_the_lookup_count_is_right_for_a_reader_and_zero_for_a_repeater(tokenizer):
    from constraintc.tasks import generate

    groups = LEARN.trace_groups(generate("transitivity", "mix", 40, 3, traces=True, trace_search="exhaustive"))
    chains = [c for _, _, c in LEARN.probe_chains.chain_trace_groups([6, 11], 2, seed=4, search="exhaustive")]
    for gs in (groups, chains):
        assert LEARN.step_accuracy(NextToken(len(tokenizer), 1), tokenizer, gs) == {"lookup": 1.0, "subject": 1.0}
        assert LEARN.step_accuracy(NextToken(len(tokenizer), 0), tokenizer, gs) == {"lookup": 0.0, "subject": 0.0}
        assert LEARN.lookup_accuracy(NextToken(len(tokenizer), 0), tokenizer, gs) == 0.0
    # the steps counted are the trace's step sentences, one per edge of each written search tree
    steps = sum(LEARN.probe_chains.lookup_counts(NextToken(len(tokenizer), 1), tokenizer, c)["lookup"][1] for c in chains)
    step = re.compile(r"\w+ causes (?!nothing\.)\w+\.")
    written = sum(bool(step.fullmatch(sentence)) for comps in chains for c in comps
                  for sentence in re.split(r"(?<=\.)\s+", c.text.strip()))
    assert steps == written > 0
    assert LEARN.lookup_accuracy(NextToken(len(tokenizer), 1), tokenizer, []) is None


def test_written_answers_are_counted_per_label(monkeypatch):
    import constraintc.evaluation.generation as generation

    groups = [c for _, _, c in LEARN.probe_chains.chain_trace_groups([5, 9], 3, seed=2, search="expand")]
    comps = [c for g in groups for c in g]
    gold = {c.prompt: c.answer for c in comps}
    seen = []

    def always_no_but_the_first_yes(model, tokenizer, prompts, max_new_tokens, batch_size=8, progress=False):
        seen.append(max_new_tokens)
        first_yes = next(p for p in prompts if gold[p] == "Yes")
        return [{"output": "", "prediction": "Yes" if p == first_yes else ("No" if i % 2 else None)}
                for i, p in enumerate(prompts)]

    monkeypatch.setattr(generation, "generate_traces", always_no_but_the_first_yes)
    got = LEARN.answer_accuracy(None, None, groups, 60)
    yes = [c for c in comps if c.answer == "Yes"]
    no = [i for i, c in enumerate(comps) if c.answer == "No"]
    assert seen == [60]
    assert got["Yes"] == pytest.approx(1 / len(yes))
    assert got["No"] == pytest.approx(sum(i % 2 for i in no) / len(no))  # unanswered counts as wrong


def test_trace_groups_keep_each_graph_together():
    from constraintc.tasks import generate

    records = generate("transitivity", "mix", 24, 0, traces=True)
    groups = LEARN.trace_groups(records)
    assert sum(len(g) for g in groups) == len(records)
    assert len(groups) == len({r["group"] for r in records})
    for g in groups:
        premises = {c.prompt.split("\nQuestion:")[0] for c in g}
        assert len(premises) == 1
        assert all(c.text.endswith("\nAnswer:") and c.answer in ("Yes", "No") for c in g)


def test_name_salts_change_at_every_visit_or_never():
    visit = [LEARN.name_salt("visit", 0, 7, step) for step in range(1, 6)]
    assert len(set(visit)) == 5 and LEARN.name_salt("visit", 0, 7, 3) == visit[2]
    assert LEARN.name_salt("visit", 0, 8, 3) != visit[2]
    assert len({LEARN.name_salt("graph", 0, 7, step) for step in range(1, 6)}) == 1
    assert LEARN.name_salt("graph", 0, 7, 1) != LEARN.name_salt("graph", 1, 7, 1)
    with pytest.raises(ValueError, match="name salt 'step'"):
        LEARN.name_salt("step", 0, 7, 1)


def test_a_short_run_reports_every_probe_and_never_overwrites(tmp_path, capsys):
    out, saved = tmp_path / "rows.jsonl", tmp_path / "model"
    args = ["--steps", "2", "--every", "1", "--records", "40", "--heldout", "20", "--chains", "1",
            "--sizes", "4,6", "--threads", "1", "--no-progress", "--answers",
            "--output", str(out), "--save", str(saved)]
    assert LEARN.main(args) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        assert math.isfinite(r["trace_loss"]) and r["trace_loss"] > 0
        assert set(r["lookup"]) == {"mix (held out)", "forward 4", "forward 6", "shuffled 4", "shuffled 6"}
        assert all(0.0 <= v <= 1.0 for v in r["lookup"].values())
        assert set(r["subject"]) == set(r["lookup"]) and all(0.0 <= v <= 1.0 for v in r["subject"].values())
    assert set(rows[-1]["answers"]) == {"forward 4", "forward 6"} and "answers" not in rows[0]
    assert all(0.0 <= v <= 1.0 for a in rows[-1]["answers"].values() for v in a.values() if v is not None)
    printed = capsys.readouterr().out
    assert "forward 6" in printed and "loss" in printed and "written answers" in printed
    # the saved model is the one the last row measured: its lookups, probed again, agree
    from constraintc.lm import load_model

    model, tok = load_model(str(saved))
    chains = [c for order, n, c in LEARN.probe_chains.chain_trace_groups([4], 1, seed=5, search="exhaustive")
              if order == "forward"]
    assert LEARN.lookup_accuracy(model.eval(), tok, chains) == rows[-1]["lookup"]["forward 4"]
    before = out.read_text()
    assert LEARN.main(args) == 2
    assert "exists" in capsys.readouterr().err and out.read_text() == before
    assert LEARN.main(args[:-4] + ["--save", str(saved)]) == 2
    assert "--save" in capsys.readouterr().err


@pytest.mark.parametrize("argv, said", [
    (["--steps", "0"], "--steps 0"),
    (["--lr", "0"], "--lr 0.0"),
    (["--sizes", "1,5"], "--sizes '1,5'"),
    (["--sizes", "a"], "--sizes 'a'"),
    (["--architecture", "absent.toml"], "--architecture 'absent.toml': no such file"),
    (["--curriculum", "-1"], "--curriculum -1"),
])
def test_bad_options_are_a_clear_error(argv, said, capsys):
    assert LEARN.main(argv) == 2
    assert said in capsys.readouterr().err


def test_an_architecture_file_is_the_model_trained(tmp_path):
    from constraintc.lm import attention, load_model
    from constraintc.resources import configs_dir

    saved = tmp_path / "model"
    args = ["--steps", "1", "--every", "1", "--records", "40", "--heldout", "20", "--chains", "1", "--sizes", "4",
            "--threads", "1", "--no-progress", "--save", str(saved),
            "--architecture", str(configs_dir() / "embedded_alibi.toml")]
    assert LEARN.main(args) == 0
    model, _ = load_model(str(saved))
    assert model.config._attn_implementation == attention.IMPLEMENTATION


def test_the_curriculum_draws_the_smallest_graphs_first(monkeypatch, tmp_path):
    import constraintc.train.data as data
    from constraintc.tasks import generate

    records = generate("transitivity", "mix", 60, 1, traces=True)
    sizes = LEARN.group_sizes(records)
    nodes_of = {r["id"]: len(r["nodes"]) for r in records}
    prompt_of = {}
    for r in records:  # each group's premise, to pair the sizes with trace_groups' groups
        prompt_of.setdefault(r["premise"], nodes_of[r["id"]])
    groups = LEARN.trace_groups(records)
    assert len(sizes) == len(groups)
    for n, g in zip(sizes, groups):
        premise = g[0].prompt.split("Premise: ", 1)[-1].split("\nQuestion:")[0].strip()
        assert prompt_of[premise] == n
    assert min(sizes) == 3 < max(sizes)
    drawn = []
    real = data.curriculum_indices

    def recording(sizes, batch, step, seed, steps):
        chosen = real(sizes, batch, step, seed, steps)
        drawn.append((step, [sizes[i] for i in chosen]))
        return chosen

    monkeypatch.setattr(data, "curriculum_indices", recording)
    args = ["--steps", "3", "--every", "3", "--records", "80", "--heldout", "20", "--chains", "1", "--sizes", "4",
            "--threads", "1", "--no-progress", "--curriculum", "2", "--batch", "8"]
    assert LEARN.main(args) == 0
    # steps 1 and 2 under the curriculum (its steps 0 and 1), step 3 drawn from every graph
    assert [step for step, _ in drawn] == [0, 1]
    assert set(drawn[0][1]) == {3}
