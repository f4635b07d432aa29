"""Distance-biased attention (``distance_slopes`` in an embedded architecture file).

The bias is over the *logical* distance, read off the attention mask; every way the model runs
(one prompt, shared-prefix packed rows, left-padded batches, cached decoding) must see the
numbers the prompt alone sees. The oracle for the bias itself is an attention function that
computes it from token indices on one unpadded prompt.
"""

from __future__ import annotations


import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from constraintc.errors import ConstraintcError
from constraintc.lm import attention
from constraintc.lm.models import build_embedded_model, load_model
from constraintc.tasks.corpus import task_text

from _attention_cases import (  # noqa: I001  (tests/_attention_cases.py, shared with test_token_shift.py)
    assert_cached_decoding_matches_recomputing, assert_packed_and_padded_match_alone, group, logits, logits_with,
    saved_and_reloaded, write_arch,
)

SLOPES = "distance_slopes = [3.0, 0.5, 0.125, 0.0]\ndistance_focus = [1, 0, 2, 0]"
_arch = write_arch
_logits = logits


@pytest.fixture(scope="module")
def biased(tmp_path_factory):
    return build_embedded_model(task_text, _arch(tmp_path_factory.mktemp("arch"), SLOPES), seed=3)


def _index_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    """The oracle: one unpadded prompt, no cache; distance = query index - key index."""
    q, k = query.shape[2], key.shape[2]
    assert q == k
    d = (torch.arange(q)[:, None] - torch.arange(k)[None, :]).to(query.dtype)
    s = torch.tensor(module.config.distance_slopes, dtype=query.dtype).view(1, -1, 1, 1)
    f = torch.tensor(module.config.distance_focus, dtype=query.dtype).view(1, -1, 1, 1)
    bias = torch.where(d >= 0, -s * (d - f).abs(), torch.tensor(float("-inf"), dtype=query.dtype))
    g = query.shape[1] // key.shape[1]
    key, value = key.repeat_interleave(g, 1), value.repeat_interleave(g, 1)
    weights = torch.softmax(query @ key.transpose(-1, -2) * scaling + bias, dim=-1)
    return (weights @ value).transpose(1, 2).contiguous(), None


def test_the_bias_is_the_index_distance_on_one_prompt(biased):
    model, tok = biased
    text = "a causes b. b causes c. c causes d.\nQuestion: Does a cause d?\nAnswer:"
    ours = _logits(model, text, tok)
    oracle = logits_with(model, tok, text, "test_index_distance", _index_attention)
    assert torch.allclose(ours, oracle, atol=1e-5), (ours - oracle).abs().max()
    # and the bias does something: without it the same weights answer otherwise
    model.config._attn_implementation = "sdpa"
    try:
        plain = _logits(model, text, tok)
    finally:
        model.config._attn_implementation = attention.IMPLEMENTATION
    assert (plain - ours).abs().max() > 1e-2


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_key_distances_count_attended_keys(data):
    """Against counting by hand on random masks (a shared-prefix tree: any attended set)."""
    q, k = data.draw(st.integers(1, 6)), data.draw(st.integers(1, 8))
    rows = [data.draw(st.lists(st.booleans(), min_size=k, max_size=k)) for _ in range(q)]
    allowed = torch.tensor(rows)[None, None]
    got = attention.key_distances(allowed)[0, 0]
    for i in range(q):
        for j in range(k):
            if rows[i][j]:
                assert got[i, j].item() == sum(rows[i][j + 1:]), (rows, i, j)


@settings(max_examples=8, deadline=None)
@given(groups=st.lists(group, min_size=1, max_size=3))
def test_packed_rows_and_padded_batches_match_one_prompt_at_a_time(biased, groups):
    assert_packed_and_padded_match_alone(*biased, groups)


def test_cached_decoding_matches_recomputing(biased):
    assert_cached_decoding_matches_recomputing(*biased)


def test_saved_models_load_with_the_bias(biased, tmp_path):
    model, tok = biased
    again, tok2 = saved_and_reloaded(model, tok, tmp_path / "m")
    assert again.config._attn_implementation == attention.IMPLEMENTATION
    assert list(again.config.distance_focus) == [1.0, 0.0, 2.0, 0.0]
    text = "c causes a. a causes f.\nQuestion: Does c cause f?\nAnswer:"
    assert torch.allclose(_logits(again, text, tok2), _logits(model, text, tok), atol=1e-6)


@pytest.mark.parametrize("extra, words", [
    ("distance_slopes = [1.0, 0.5]", "distance_slopes=[1.0, 0.5]: expected a list of 4 numbers >= 0"),
    ("distance_slopes = [1.0, 0.5, -1, 0]", "expected a list of 4 numbers >= 0"),
    ('distance_slopes = "steep"', "distance_slopes='steep'"),
    ("distance_slopes = [1, 0, 0, 0]\ndistance_focus = [1, 0, 0]", "distance_focus=[1, 0, 0]"),
    ("distance_focus = [1, 0, 0, 0]", "distance_focus needs distance_slopes"),
])
def test_bad_slopes_name_the_file_and_the_key(tmp_path, extra, words):
    path = _arch(tmp_path, extra)
    with pytest.raises(ConstraintcError) as err:
        build_embedded_model(task_text, path)
    assert words in str(err.value) and str(path) in str(err.value)


def test_without_slopes_the_model_is_plain_sdpa(tmp_path):
    model, _ = build_embedded_model(task_text, _arch(tmp_path, ""))
    assert model.config._attn_implementation == "sdpa"
    assert not attention.uses_distance_bias(model.config)


@pytest.mark.parametrize("name, base_name, slopes, focus", [
    ("embedded_alibi.toml", "embedded", [1.0, 0.25, 0.0625, 0.0], [0.0, 0.0, 0.0, 0.0]),
    ("embedded_copy_heads.toml", "embedded_nope.toml", [4.0, 4.0, 0.0, 0.0], [1.0, 2.0, 0.0, 0.0]),
])
def test_shipped_bias_configs_are_their_base_plus_the_bias(name, base_name, slopes, focus):
    from constraintc.resources import configs_dir

    model, _ = load_model(str(configs_dir() / name), corpus=task_text)
    base, _ = load_model(base_name if base_name == "embedded" else str(configs_dir() / base_name), corpus=task_text)
    assert model.config._attn_implementation == attention.IMPLEMENTATION
    assert list(model.config.distance_slopes) == slopes and list(model.config.distance_focus) == focus
    assert model.config.rope_scaling == base.config.rope_scaling  # the base's position encoding
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in base.parameters())
    # the same initial weights: only the attention differs
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), base.parameters()))


def test_copy_heads_look_one_and_two_tokens_back():
    """The shipped copy-heads file: heads 0 and 1 put nearly all their weight on the token one and
    two places back whatever the content, heads 2 and 3 have no bias."""
    from constraintc.resources import configs_dir

    model, _ = load_model(str(configs_dir() / "embedded_copy_heads.toml"), corpus=task_text)
    n = 12
    mask = torch.ones(1, 1, n, n, dtype=torch.bool).tril()
    bias = attention.distance_bias(mask, model.config.distance_slopes, model.config.distance_focus, torch.float32)
    weights = torch.softmax(bias, dim=-1)[0]
    for head, back in ((0, 1), (1, 2)):
        for q in range(back + 2, n):  # far enough from the start that every distance around `back` exists
            assert weights[head, q, q - back] > 0.95
    assert torch.all(bias[0, 2:][mask[0].expand(2, n, n)] == 0)


def test_the_per_pass_bias_cache_never_serves_another_mask():
    """Two masks of one shape in a row (and the first again, as a new tensor): each call's output
    is the one its own mask gives, built from scratch."""
    from types import SimpleNamespace

    module = SimpleNamespace(config=SimpleNamespace(distance_slopes=[2.0, 0.5], distance_focus=[1.0, 0.0]))
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, 5, 4, generator=g) for _ in range(3))
    causal = torch.ones(5, 5).tril().bool()
    other = causal.clone()
    other[:, 0] = False  # a padded first position
    other[0, 0] = True

    def fresh(mask):
        bias = attention.distance_bias(mask[None, None], [2.0, 0.5], [1.0, 0.0], torch.float32)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=0.5).transpose(1, 2)

    for mask in (causal, other, causal.clone(), None):
        out, _ = attention.distance_attention(module, q, k, v, None if mask is None else mask[None, None], scaling=0.5)
        assert torch.allclose(out, fresh(causal if mask is None else mask), atol=1e-6)
