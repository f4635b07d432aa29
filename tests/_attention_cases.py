"""Checks shared by the tests of the embedded model's attention variants (distance biases,
token shift): a small architecture file, and the ways of running a model that must agree with
running each prompt alone (packed rows, left-padded batches, cached decoding)."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from hypothesis import strategies as st

from constraintc.lm import score_prompts
from constraintc.lm.binding import score_groups

ARCH = """
[architecture]
hidden_size = 32
intermediate_size = 64
num_hidden_layers = 2
num_attention_heads = 4
num_key_value_heads = 2
head_dim = 8
{extra}

[tokenizer]
kind = "names"
corpus_records_per_task = 20
"""

NAMES = ["a", "b", "c", "d", "e", "f"]

graph = st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(NAMES)), min_size=1, max_size=5)
group = st.tuples(graph, st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(NAMES)), min_size=1, max_size=5))


def write_arch(tmp_path: Path, extra: str) -> Path:
    """A small architecture file with ``extra`` lines in its ``[architecture]`` table."""
    path = tmp_path / "arch.toml"
    path.write_text(ARCH.format(extra=extra))
    return path


def logits(model, text, tok):
    """The model's logits over one unpadded prompt, ``[1, L, V]``."""
    ids = torch.tensor([tok(text)["input_ids"]])
    with torch.no_grad():
        return model(input_ids=ids).logits


def prompts(edges, questions):
    premise = " ".join(f"{u} causes {v}." for u, v in edges)
    return [f"{premise}\nQuestion: Does {x} cause {y}?\nAnswer:" for x, y in questions]


def assert_packed_and_padded_match_alone(model, tok, groups) -> None:
    """Questions packed per premise and left-padded batches score as each question alone."""
    prompt_groups = [prompts(e, q) for e, q in groups]
    flat = [p for g in prompt_groups for p in g]
    packed = torch.cat(score_groups(model, tok, prompt_groups, groups_per_batch=2))
    padded = score_prompts(model, tok, flat, batch_size=4)
    alone = score_prompts(model, tok, flat, batch_size=1)
    assert torch.allclose(packed, alone, atol=2e-6), (packed - alone).abs().max()
    assert torch.allclose(padded, alone, atol=2e-6), (padded - alone).abs().max()


def assert_cached_decoding_matches_recomputing(model, tok, new_tokens: int = 6) -> None:
    """Greedy decoding with the KV cache over a left-padded batch: each step's scores are the
    ones a full pass over the prompt and the tokens so far gives."""
    texts = ["a causes b. b causes c.\nQuestion: Does a cause c?\nReasoning:", "d causes e.\nQuestion: Does e cause d?\nReasoning:"]
    batch = tok(texts, return_tensors="pt", padding=True, padding_side="left")
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=new_tokens, do_sample=False, output_scores=True,
                             return_dict_in_generate=True, pad_token_id=tok.pad_token_id)
    width = batch["input_ids"].shape[1]
    for row, text in enumerate(texts):
        ids = tok(text)["input_ids"]
        new = out.sequences[row, width:].tolist()
        with torch.no_grad():
            full = model(input_ids=torch.tensor([ids + new])).logits[0, len(ids) - 1:-1]
        cached = torch.stack([s[row] for s in out.scores])
        assert torch.allclose(F.log_softmax(full, -1), F.log_softmax(cached, -1), atol=1e-4)


def logits_with(model, tok, text, name: str, attention_fn):
    """The logits of one prompt with ``attention_fn`` (an oracle) as the model's attention,
    registered as ``name``; the model's own attention afterwards, whatever happens."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    from constraintc.lm import attention

    AttentionInterface.register(name, attention_fn)
    AttentionMaskInterface.register(name, sdpa_mask)
    model.config._attn_implementation = name
    try:
        return logits(model, text, tok)
    finally:
        model.config._attn_implementation = attention.IMPLEMENTATION


def saved_and_reloaded(model, tok, directory: Path):
    """``(model, tokenizer)`` saved to ``directory`` and read back as every command reads a
    ``--model DIR`` (``constraintc.lm.load_model``)."""
    from constraintc.lm.models import load_model

    model.save_pretrained(directory)
    tok.save_pretrained(directory)
    return load_model(str(directory))
