"""The embedded model's name-slot tokenizer: every node name is one token, by identity.

Properties checked against an independent reading of the text (a regex over words), on
hypothesis-drawn names (seed printed in the pytest header) and on the generated records of
every task and split.
"""

from __future__ import annotations

import json
import re

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from constraintc.errors import ConstraintcError
from constraintc.lm.models import build_embedded_model, load_model
from constraintc.lm.tokenizer import (
    NAME_SLOTS_FILE,
    NameSlotTokenizer,
    build_slot_tokenizer,
    name_slots,
    salted_names,
)
from constraintc.tasks import SPLITS, generate
from constraintc.tasks.corpus import task_text
from constraintc.tasks.prompts import reasoning_prompt

WORDS = {"causes", "Does", "cause", "So", "does", "not", "Reasoning", "Answer", "Yes", "No"}
names = st.text(alphabet=st.characters(categories=("Lu", "Ll", "Nd")), min_size=1, max_size=4).filter(
    lambda w: w not in WORDS
)


@pytest.fixture(scope="module")
def embedded():
    return build_embedded_model(task_text)


@given(st.lists(names, min_size=1, max_size=40), st.integers(1, 30), st.integers(0, 2**32))
def test_slots_are_distinct_stable_under_prefixes_and_cover_the_first_names(seq, slots, salt):
    text = " causes ".join(seq) + "."
    mapping = name_slots(text, WORDS, slots, salt)
    distinct = list(dict.fromkeys(w for w in re.findall(r"\w+", text) if w not in WORDS))
    # the first `slots` distinct names, each its own slot in range
    assert list(mapping) == distinct[:slots]
    assert len(set(mapping.values())) == len(mapping) and all(0 <= s < slots for s in mapping.values())
    # every prefix (cut at a word boundary) assigns its names as the whole text does
    for k in range(1, len(seq) + 1):
        prefix = " causes ".join(seq[:k])
        assert name_slots(prefix, WORDS, slots, salt) == {n: mapping[n] for n in dict.fromkeys(seq[:k]) if n in mapping}


@given(names, names, st.integers(0, 2**32))
def test_a_name_keeps_its_slot_across_texts_unless_an_earlier_name_took_it(a, b, salt):
    alone = name_slots(f"{a} causes X.", WORDS, 64, salt)[a]
    together = name_slots(f"{b} causes {a}.", WORDS, 64, salt)
    if a != b and together[b] != alone:
        assert together[a] == alone


def test_the_salt_changes_the_assignment_and_only_within_its_block():
    tok = build_slot_tokenizer([*sorted(WORDS), ".", "?", "[", "]"], "BCDE", slots=24)
    text = "B causes C. C causes D. Does B cause D?"
    plain = tok(text)["input_ids"]
    seen = set()
    for salt in range(20):
        with salted_names(tok, salt):
            seen.add(tuple(tok(text)["input_ids"]))
        assert tok.name_salt == 0
    assert len(seen) > 10 and tuple(plain) in seen  # salt 0 is the default
    with pytest.raises(RuntimeError), salted_names(tok, 7):
        raise RuntimeError("interrupted")
    assert tok.name_salt == 0 and tok(text)["input_ids"] == plain


def test_more_names_than_slots_are_spelled_out():
    tok = build_slot_tokenizer([*sorted(WORDS), ".", "?", "[", "]"], "BCDEFxyz", slots=2)
    pieces = tok.convert_ids_to_tokens(tok("B causes C. C causes Dxy.", add_special_tokens=False)["input_ids"])
    assert [p.startswith("[N") for p in pieces] == [True, False, True, False, True, False, False, False, False, False]
    assert pieces[-4:] == ["D", "##x", "##y", "."]


def test_literal_slot_tokens_in_the_text_are_read_as_names_not_as_slots():
    tok = build_slot_tokenizer([*sorted(WORDS), ".", "?", "[", "]"], "BCN0", slots=24)
    pieces = tok.convert_ids_to_tokens(tok("[N0] causes B.", add_special_tokens=False)["input_ids"])
    slot_of = {n: f"[N{s}]" for n, s in name_slots("[N0] causes B.", WORDS, 24).items()}
    assert pieces == ["[", slot_of["N0"], "]", "causes", slot_of["B"], "."]


def test_no_task_word_the_tokenizer_knows_can_be_drawn_as_a_node_name(embedded):
    # a node named like a task word would read as that word, not as a name token (found: "d" of
    # "d-separated" in a 12-node mix_wide graph)
    from constraintc.tasks.graphs import OPEN_ALPHABET, RESERVED_NAMES

    _, tok = embedded
    drawable = [w for w in tok.name_words if 1 <= len(w) <= 3 and set(w) <= set(OPEN_ALPHABET)]
    assert "d" in drawable and "causes" not in drawable
    assert [w for w in drawable if w not in RESERVED_NAMES and w.lower() not in ("yes", "no")] == []


def test_every_generated_record_reads_with_one_token_a_name_and_prompt_ids_prefix_the_answer(embedded):
    _, tok = embedded
    assert isinstance(tok, NameSlotTokenizer) and tok.name_slots == 24
    for task in ("transitivity", "dsep"):
        for split in SPLITS:
            for r in generate(task, split, 8, seed=11, traces=True):
                prompt = reasoning_prompt(r)
                full = f"{prompt} {r['trace']}\nAnswer: {r['label']}"
                ids, head = tok(full)["input_ids"], tok(prompt)["input_ids"]
                assert tok.unk_token_id not in ids
                assert ids[: len(head)] == head
                tokens = tok.convert_ids_to_tokens(ids)
                slots = {t for t in tokens if t.startswith("[N")}
                assert len(slots) == len({n for n in re.findall(r"\w+", full) if n in r["nodes"]})
                assert not any(t.startswith("##") for t in tokens)  # nothing spelled out
                # decoding and putting the prompt's names back gives the text (up to spacing)
                back = tok.restore_names(full, tok.decode(ids, skip_special_tokens=True))
                assert "".join(back.split()) == "".join(full.split())


def test_a_saved_model_loads_with_its_slot_tokenizer(tmp_path, embedded):
    model, tok = embedded
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    again_model, again = load_model(str(tmp_path / "m"))
    assert isinstance(again, NameSlotTokenizer) and again.name_slots == tok.name_slots
    text = "R0R causes 1da. Does 1da cause R0R?"
    assert again(text)["input_ids"] == tok(text)["input_ids"]
    ids = torch.tensor([tok(text)["input_ids"]])
    with torch.no_grad():
        assert torch.equal(again_model(input_ids=ids).logits, model(input_ids=ids).logits)
    # other loaders read the same files as a plain tokenizer (slot tokens, no name reading)
    from transformers import AutoTokenizer

    plain = AutoTokenizer.from_pretrained(tmp_path / "m")
    assert not isinstance(plain, NameSlotTokenizer)
    assert plain(tok.slot_text(text))["input_ids"] == tok(text)["input_ids"]
    (tmp_path / "m" / NAME_SLOTS_FILE).write_text(json.dumps({"name_slots": "many", "name_words": []}))
    with pytest.raises(ConstraintcError, match="cannot read its tokenizer.*name_slots"):
        load_model(str(tmp_path / "m"))


def test_generated_text_gets_the_prompts_names_back(embedded):
    from constraintc.evaluation.generation import generate_traces

    model, tok = embedded
    prompt = "R0R causes 1da. Does 1da cause R0R?\nReasoning:"
    slot = tok.convert_tokens_to_ids(f"[N{name_slots(prompt, tok.name_words, tok.name_slots)['1da']}]")

    class Writes1da(torch.nn.Module):  # a model that writes the name 1da, then stops
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def generate(self, input_ids, **kwargs):
            tail = torch.tensor([[slot, tok.eos_token_id]]).expand(input_ids.shape[0], 2)
            return torch.cat([input_ids, tail], dim=1)

    rows = generate_traces(Writes1da(), tok, [prompt])
    assert rows[0]["output"] == "1da" and rows[0]["finish_reason"] == "stop"


def test_generation_writes_only_the_prompts_names(embedded):
    # a model that prefers a slot its prompt does not use writes, with the ban, the best slot the
    # prompt has; every prompt of a batch gets its own ban
    from constraintc.evaluation.generation import generate_traces

    model, tok = embedded
    prompts = ["R0R causes 1da. Does 1da cause R0R?\nReasoning:", "Q causes x. Does x cause Q?\nReasoning:"]
    slot_ids = [tok.convert_tokens_to_ids(f"[N{k}]") for k in range(tok.name_slots)]

    class PrefersUnused(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def generate(self, input_ids, logits_processor=(), **kwargs):
            scores = torch.zeros(input_ids.shape[0], len(tok))
            scores[:, slot_ids] = torch.arange(1.0, len(slot_ids) + 1)  # the last slot first
            for process in logits_processor:
                scores = process(input_ids, scores)
            tail = torch.stack([scores.argmax(-1), torch.full((input_ids.shape[0],), tok.eos_token_id)], dim=1)
            return torch.cat([input_ids, tail], dim=1)

    rows = generate_traces(PrefersUnused(), tok, prompts, batch_size=2)
    for prompt, row in zip(prompts, rows):
        used = name_slots(prompt, tok.name_words, tok.name_slots)
        assert row["output"] == max(used, key=used.get), (prompt, row)
        assert len(tok.unused_slot_ids(prompt)) == tok.name_slots - 2


def test_training_graphs_each_keep_their_own_salt_and_checks_use_none(tmp_path):
    from constraintc.tasks.generate import stable_seed
    from constraintc.train.config import validate
    from constraintc.train.data import batch_indices
    from constraintc.train.recipe import FinetuneRecipe

    cfg = validate({"steps": 3, "batch_groups": 4, "train_records": 40, "eval_records": 8, "eval_every": 3,
                    "eval_splits": ["mix"], "final_eval": False, "output_dir": str(tmp_path / "run"),
                    "plots": False, "threads": 1, "curriculum_steps": 0})
    recipe = FinetuneRecipe(cfg, progress=False)
    recipe.setup()
    tok = recipe.tokenizer
    assert isinstance(tok, NameSlotTokenizer)
    salts = []
    encode = NameSlotTokenizer.slot_text

    def spy(self, text):
        salts.append(self.name_salt)
        return encode(self, text)

    NameSlotTokenizer.slot_text = spy
    try:
        recipe.train_step(0)
        first = list(salts)
        salts.clear()
        recipe.train_step(0)  # the same graphs again: their token ids come from the recipe's cache
        assert salts == []
        recipe._pack_cache.clear()
        recipe.train_step(0)  # and tokenized again: the same names on the same tokens
        again = list(salts)
        salts.clear()
        recipe.heldout_metrics()
    finally:
        NameSlotTokenizer.slot_text = encode
    graphs = [recipe.train_graphs[i] for i in batch_indices(len(recipe.train_graphs), 4, 0, cfg.seed)]
    assert set(first) == {stable_seed("names", cfg.seed, g.group) for g in graphs} and len(set(first)) == 4
    assert again == first and 0 not in first
    assert salts and set(salts) == {0}  # checks read names as evaluation does
    assert tok.name_salt == 0


def test_pack_groups_cache_gives_the_same_batch_and_skips_the_tokenizer(embedded, monkeypatch):
    """A group packed again with the cache is not tokenized again and packs to the same tensors;
    another salt (or other completions) is another entry."""
    import dataclasses

    from constraintc.lm.binding import Completion, pack_groups

    _, tok = embedded
    groups = [["R0R causes x. x causes Q. Does R0R cause Q?", "R0R causes x. x causes Q. Does Q cause x?"],
              ["b causes c. Does c cause b?"]]
    comps = [[Completion("R0R causes x. x causes Q. Does R0R cause Q?\nReasoning:", " R0R causes x. x causes Q.\nAnswer:", "Yes")],
             []]
    calls = []
    real = NameSlotTokenizer.slot_text
    monkeypatch.setattr(NameSlotTokenizer, "slot_text", lambda self, text: (calls.append(text), real(self, text))[1])
    cache: dict = {}

    def same(a, b):
        for f in dataclasses.fields(a):
            x, y = getattr(a, f.name), getattr(b, f.name)
            assert (torch.equal(x, y) if isinstance(x, torch.Tensor) else x == y), f.name

    plain = pack_groups(tok, groups, completions=comps, name_salts=[3, 9])
    n = len(calls)
    first = pack_groups(tok, groups, completions=comps, name_salts=[3, 9], cache=cache)
    assert len(calls) == 2 * n and len([k for k in cache if k[0] != "answer"]) == 2
    again = pack_groups(tok, groups, completions=comps, name_salts=[3, 9], cache=cache)
    assert len(calls) == 2 * n  # no tokenizer call
    same(plain, first)
    same(plain, again)
    other = pack_groups(tok, groups, completions=comps, name_salts=[4, 9], cache=cache)
    assert len([k for k in cache if k[0] != "answer"]) == 3
    same(pack_groups(tok, groups, completions=comps, name_salts=[4, 9]), other)
    assert not torch.equal(other.input_ids, plain.input_ids)
    pack_groups(tok, groups, completions=[[], []], name_salts=[3, 9], cache=cache)
    assert len([k for k in cache if k[0] != "answer"]) == 4


def test_pack_groups_tokenizes_each_group_with_its_salt(embedded):
    from constraintc.lm.binding import pack_groups

    _, tok = embedded
    groups = [["R0R causes x. Does x cause R0R?"], ["R0R causes x. Does R0R cause x?"]]
    packed = pack_groups(tok, groups, name_salts=[3, 9])
    for g, salt in enumerate((3, 9)):
        with salted_names(tok, salt):
            ids = tok(groups[g][0])["input_ids"]
        row = packed.input_ids[g].tolist()
        assert row[: len(ids)] == ids
    with pytest.raises(ValueError, match="1 name salts for 2 groups"):
        pack_groups(tok, groups, name_salts=[3])
