"""Shared-prefix packing gives the same answer logits as one prompt at a time."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from constraintc.lm import build_tiny_model, score_prompts
from constraintc.lm.binding import pack_groups, packed_answer_logits, score_groups, yes_no_log_probs

NAMES = ["a", "b", "c", "d", "e", "f"]


@pytest.fixture(scope="module")
def tiny():
    return build_tiny_model(seed=1)


@pytest.fixture(scope="module")
def tiny_llama(tiny):
    """A non-Gemma architecture (Llama, as SmolLM2) with the same tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    _, tok = tiny
    cfg = LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
    )
    torch.manual_seed(0)
    return LlamaForCausalLM(cfg).eval(), tok


graph = st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(NAMES)), min_size=1, max_size=5)
group = st.tuples(graph, st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(NAMES)), min_size=1, max_size=6))


def _prompts(edges, questions):
    premise = " ".join(f"{u} causes {v}." for u, v in edges)
    return [f"{premise}\nQuestion: Does {x} cause {y}?\nAnswer:" for x, y in questions]


@settings(max_examples=8)
@given(groups=st.lists(group, min_size=1, max_size=4), which=st.sampled_from(["gemma", "llama"]))
def test_packed_rows_match_separate_prompts(tiny, tiny_llama, groups, which):
    model, tok = tiny if which == "gemma" else tiny_llama
    prompt_groups = [_prompts(e, q) for e, q in groups]
    packed = torch.cat(score_groups(model, tok, prompt_groups, groups_per_batch=3))
    separate = score_prompts(model, tok, [p for g in prompt_groups for p in g], batch_size=4)
    assert torch.allclose(packed, separate, atol=2e-6), (packed - separate).abs().max()


def test_full_vocabulary_logits_and_gradients_match(tiny):
    """CE needs full-vocabulary logits at the answer: compare them (and their gradients) too."""
    model, tok = tiny
    groups = [_prompts([("a", "b"), ("b", "c")], [("a", "c"), ("c", "a"), ("b", "a")]), _prompts([("d", "e")], [("e", "d")])]
    batch = pack_groups(tok, groups)
    assert batch.tokens < batch.unpacked_tokens
    model.zero_grad()
    logits = packed_answer_logits(model, batch)
    logits.logsumexp(-1).sum().backward()
    g_packed = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    rows = []
    for p in [p for g in groups for p in g]:
        ids = torch.tensor([tok(p)["input_ids"]])
        rows.append(model(input_ids=ids).logits[0, -1])
    separate = torch.stack(rows)
    separate.logsumexp(-1).sum().backward()
    assert torch.allclose(logits, separate, atol=1e-5)
    for n, p in model.named_parameters():
        assert torch.allclose(g_packed[n], p.grad, atol=1e-5), n
    model.zero_grad()


@settings(max_examples=6)
@given(groups=st.lists(group, min_size=1, max_size=3), factors=st.lists(st.floats(1.0, 4.0), min_size=3, max_size=3))
def test_stretched_positions_match_separate_prompts_at_stretched_positions(tiny, groups, factors):
    """A stretched row answers each question as the prompt alone does at positions floor(i * f)."""
    from constraintc.lm.binding import stretch_positions

    model, tok = tiny
    prompt_groups = [_prompts(e, q) for e, q in groups]
    f = torch.tensor(factors[: len(groups)], dtype=torch.float64)
    batch = stretch_positions(pack_groups(tok, prompt_groups), f)
    packed = packed_answer_logits(model, batch)
    rows = []
    for g, prompts in enumerate(prompt_groups):
        for p in prompts:
            ids = tok(p)["input_ids"]
            pos = (torch.arange(len(ids), dtype=torch.float64) * f[g]).floor().long()
            rows.append(model(input_ids=torch.tensor([ids]), position_ids=pos[None]).logits[0, -1])
    separate = torch.stack(rows)
    assert torch.allclose(packed, separate, atol=2e-5), (packed - separate).abs().max()
    if bool((f > 1.5).any()):  # a stretch the rotary encoding sees changes the answer
        plain = packed_answer_logits(model, pack_groups(tok, prompt_groups))
        assert not torch.allclose(packed, plain, atol=1e-4)


def test_stretch_by_one_is_the_identity_and_below_one_is_refused(tiny):
    from constraintc.lm.binding import stretch_positions

    _, tok = tiny
    batch = pack_groups(tok, [_prompts([("a", "b"), ("b", "c")], [("a", "c"), ("c", "a")])])
    assert torch.equal(stretch_positions(batch, torch.ones(1)).position_ids, batch.position_ids)
    doubled = stretch_positions(batch, torch.full((1,), 2.0)).position_ids
    assert torch.equal(doubled, batch.position_ids * 2)
    with pytest.raises(ValueError, match=">= 1"):
        stretch_positions(batch, torch.full((1,), 0.5))
    with pytest.raises(ValueError, match="factors for 1 rows"):
        stretch_positions(batch, torch.ones(2))


def test_log_probabilities_are_exact_at_extremes(tiny):
    _, tok = tiny
    batch = pack_groups(tok, [_prompts([("a", "b")], [("a", "b"), ("b", "a")])])
    logits = torch.zeros(2, len(tok), dtype=torch.float64)
    logits[0, batch.yes_ids[0]] = 800.0  # p = 1 - 1e-348: log(1 - p) is -800, not -inf or NaN
    logits[1, batch.no_ids[1]] = 800.0
    log_p, log_q = yes_no_log_probs(logits, batch)
    assert log_p[0] == 0.0 and log_q[0] == -800.0
    assert log_p[1] == -800.0 and log_q[1] == 0.0


completion = st.tuples(
    st.sampled_from(NAMES), st.sampled_from(NAMES), st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(NAMES)), max_size=3),
    st.sampled_from(["Yes", "No"]), st.sampled_from(["all", "answer"]),
)


def _completion(edges, spec):
    from constraintc.lm.binding import Completion

    x, y, steps, answer, loss = spec
    premise = " ".join(f"{u} causes {v}." for u, v in edges)
    trace = " ".join(f"{u} causes {v}." for u, v in steps)
    return Completion(f"{premise}\nQuestion: Does {x} cause {y}?\nReasoning:", f" {trace}\nAnswer:" if trace else "\nAnswer:", answer, loss)


@settings(max_examples=8)
@given(
    groups=st.lists(st.tuples(graph, st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(NAMES)), min_size=1, max_size=3),
                              st.lists(completion, max_size=3)), min_size=1, max_size=3),
    which=st.sampled_from(["gemma", "llama"]),
)
def test_completion_targets_match_separate_sequences(tiny, tiny_llama, groups, which):
    """Each packed completion target's logits equal those of the completion run alone; the
    targets are the text tokens, the answer and EOS ('all') or the answer alone ('answer')."""
    from constraintc.lm.binding import packed_logits

    model, tok = tiny if which == "gemma" else tiny_llama
    prompt_groups = [_prompts(e, q) for e, q, _ in groups]
    comps = [[_completion(e, c) for c in cs] for e, _, cs in groups]
    batch = pack_groups(tok, prompt_groups, completions=comps)
    with torch.no_grad():
        answers, targets = packed_logits(model, batch)
        flat = [c for cs in comps for c in cs]
        assert batch.num_completions == len(flat)
        for i, c in enumerate(flat):
            full = tok(c.prompt + c.text)["input_ids"] + [tok.convert_tokens_to_ids(c.answer)]
            if c.loss == "all":
                full.append(tok.eos_token_id)
            logits = model(input_ids=torch.tensor([full])).logits[0]
            mine = (batch.target_seq == i).nonzero().flatten()
            n_prompt = len(tok(c.prompt)["input_ids"])
            expected = full[n_prompt:] if c.loss == "all" else [full[-1]]
            assert batch.target_ids[mine].tolist() == expected
            first = len(full) - len(expected)
            assert torch.allclose(targets[mine], logits[first - 1 : len(full) - 1], atol=2e-5)
            answer_at = int(batch.completion_answer[i])
            assert int(batch.target_ids[answer_at]) == tok.convert_tokens_to_ids(c.answer)
        # the questions' answer logits are unchanged by the completions packed beside them
        plain = packed_logits(model, pack_groups(tok, prompt_groups))[0]
        assert torch.allclose(answers, plain, atol=2e-5)


def test_completion_losses_average_each_completions_tokens(tiny):
    from constraintc.lm.binding import completion_losses, packed_logits

    model, tok = tiny
    comps = [_completion([("a", "b")], ("a", "c", [("a", "b")], "No", "all")),
             _completion([("a", "b")], ("a", "b", [], "Yes", "answer"))]
    batch = pack_groups(tok, [_prompts([("a", "b")], [("a", "b")])], completions=[comps])
    _, targets = packed_logits(model, batch)
    losses = completion_losses(targets, batch)
    ce = torch.nn.functional.cross_entropy(targets.double(), batch.target_ids, reduction="none")
    first = batch.target_seq == 0
    assert torch.allclose(losses, torch.stack([ce[first].mean(), ce[~first].mean()]))
    assert int((~first).sum()) == 1  # 'answer': the answer token alone
