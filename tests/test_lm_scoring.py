"""Model loading and yes/no scoring against an independent oracle (full softmax, one prompt at a time)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from constraintc.errors import ConstraintcError
from constraintc.lm import answer_token_ids, build_tiny_model, load_model, score_prompts

NAMES = ["a", "b", "c", "d", "e", "f"]


@pytest.fixture(scope="module")
def tiny():
    return build_tiny_model(seed=3)


def _oracle(model, tok, prompt, yes="Yes", no="No"):
    """P(yes)/(P(yes)+P(no)) from the full softmax of an unpadded, unbatched forward pass."""
    ids = torch.tensor([tok(prompt)["input_ids"]])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, -1].double()
    probs = torch.softmax(logits, -1)
    y, n = answer_token_ids(tok, prompt, yes, no)
    return (probs[y] / (probs[y] + probs[n])).item()


prompt_strategy = st.lists(
    st.tuples(st.sampled_from(NAMES), st.sampled_from(NAMES)), min_size=0, max_size=6
).map(lambda edges: " ".join(f"{u} causes {v}." for u, v in edges))


@settings(max_examples=8)
@given(
    premises=st.lists(prompt_strategy, min_size=1, max_size=7),
    batch_size=st.integers(1, 4),
    ending=st.sampled_from([" Answer:", "\nAnswer: ", "?"]),
)
def test_batched_scores_match_unpadded_softmax(tiny, premises, batch_size, ending):
    model, tok = tiny
    prompts = [f"{p} Does a cause b{ending}" for p in premises]
    got = score_prompts(model, tok, prompts, batch_size=batch_size)
    want = torch.tensor([_oracle(model, tok, p) for p in prompts], dtype=torch.float64)
    assert got.dtype == torch.float64 and got.shape == (len(prompts),)
    assert torch.allclose(got, want, atol=1e-5), (got, want)


def test_answer_tokens_are_the_verbalizers(tiny):
    _, tok = tiny
    y, n = answer_token_ids(tok, "Does a cause b? Answer:")
    assert tok.convert_ids_to_tokens([y, n]) == ["Yes", "No"]
    with pytest.raises(ConstraintcError, match="same token"):
        answer_token_ids(tok, "Does a cause b?", "Yes", "Yes")
    with pytest.raises(ConstraintcError, match="not in the model's vocabulary"):
        answer_token_ids(tok, "Does a cause b?", "Maybe", "No")


def test_empty_and_bad_batch(tiny):
    model, tok = tiny
    assert score_prompts(model, tok, []).shape == (0,)
    with pytest.raises(ConstraintcError, match="batch_size"):
        score_prompts(model, tok, ["Does a cause b?"], batch_size=0)


def test_offline_hub_id_fails_fast_and_clearly(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConstraintcError, match="cannot be reached"):
        load_model("no-such-org/no-such-model-xyz")
    with pytest.raises(ConstraintcError, match="no such GGUF"):
        load_model("/nonexistent/model.gguf")


def test_saved_tiny_model_roundtrips_through_load_model(tiny, tmp_path):
    model, tok = tiny
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    model2, tok2 = load_model(str(tmp_path))
    prompts = ["a causes b. Does a cause b?", "Does c cause d?"]
    assert torch.allclose(score_prompts(model, tok, prompts), score_prompts(model2, tok2, prompts), atol=1e-6)
