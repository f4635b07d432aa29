"""Token shift (``token_shift`` in an embedded architecture file): queries, keys and values mixed
with those of the tokens before, "before" read off the attention mask.

Every way the model runs (one prompt, shared-prefix packed rows, left-padded batches, cached
decoding) must see what the prompt alone sees. The oracle is an attention function that shifts
by token index on one unpadded prompt; the previous-token indices are checked against reading
random masks by hand.
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

from _attention_cases import (  # noqa: I001  (tests/_attention_cases.py, shared with test_distance_attention.py)
    ARCH, assert_cached_decoding_matches_recomputing, assert_packed_and_padded_match_alone, group, logits, logits_with,
    saved_and_reloaded, write_arch,
)

# the shift alone, and the shift with distance biases (both in one attention function)
VARIANTS = {
    "shift": "token_shift = 2",
    "shift+bias": "token_shift = 1\ndistance_slopes = [3.0, 0.5, 0.0, 0.0]\ndistance_focus = [1, 0, 0, 0]",
}


_arch = write_arch
_logits = logits


def _randomise_shift(model, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("_shift"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.7)


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def shifted(request, tmp_path_factory):
    model, tok = build_embedded_model(task_text, _arch(tmp_path_factory.mktemp("arch"), VARIANTS[request.param]), seed=3)
    _randomise_shift(model)
    return model, tok


def _index_shift(x, weights):
    out = x.clone()
    for s in range(weights.shape[0]):
        back = s + 1
        out[:, :, back:] += weights[s][None, :, None, :] * x[:, :, :-back]
    return out


def _index_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    """The oracle: one unpadded prompt, no cache, no distance bias; shift by token index."""
    assert query.shape[2] == key.shape[2]
    query = _index_shift(query, module.query_shift)
    key, value = _index_shift(key, module.key_shift), _index_shift(value, module.value_shift)
    g = query.shape[1] // key.shape[1]
    key, value = key.repeat_interleave(g, 1), value.repeat_interleave(g, 1)
    n = query.shape[2]
    causal = torch.ones(n, n, dtype=torch.bool).tril()
    scores = (query @ key.transpose(-1, -2) * scaling).masked_fill(~causal, float("-inf"))
    return (torch.softmax(scores, dim=-1) @ value).transpose(1, 2).contiguous(), None


def test_the_shift_is_by_token_index_on_one_prompt(tmp_path):
    model, tok = build_embedded_model(task_text, _arch(tmp_path, "token_shift = 3"), seed=1)
    text = "a causes b. b causes c. c causes d.\nQuestion: Does a cause d?\nAnswer:"
    before = _logits(model, text, tok)
    _randomise_shift(model, seed=5)
    ours = _logits(model, text, tok)
    oracle = logits_with(model, tok, text, "test_index_shift", _index_attention)
    assert torch.allclose(ours, oracle, atol=1e-5), (ours - oracle).abs().max()
    # and the shift does something: the same model with zero shift weights answers otherwise
    assert (before - ours).abs().max() > 1e-2


def test_zero_shift_weights_are_the_plain_model(tmp_path):
    """A new token-shift model starts as the plain model of the same seed: same weights, zero
    shift weights, the same logits."""
    plain, tok = build_embedded_model(task_text, _arch(tmp_path, ""), seed=2)
    model, _ = build_embedded_model(task_text, _arch(tmp_path, "token_shift = 2"), seed=2)
    shifts = {n: p for n, p in model.named_parameters() if n.endswith("_shift")}
    assert len(shifts) == 3 * plain.config.num_hidden_layers
    assert all(torch.count_nonzero(p) == 0 for p in shifts.values())
    assert shifts["model.layers.0.self_attn.query_shift"].shape == (2, 4, 8)
    assert shifts["model.layers.0.self_attn.key_shift"].shape == (2, 2, 8)
    text = "e causes f. f causes a.\nQuestion: Does e cause a?\nAnswer:"
    assert torch.allclose(_logits(model, text, tok), _logits(plain, text, tok), atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_previous_tokens_read_by_hand(data):
    """Against reading random masks by hand: a square mask (any attended set per row: a
    shared-prefix tree) gives each position the latest position its own row attends before it;
    fewer queries than keys (cached decoding) read the newest query's row."""
    q = data.draw(st.integers(1, 7))
    k = data.draw(st.integers(q, 9))
    square = k == q
    rows = [data.draw(st.lists(st.booleans(), min_size=k, max_size=k)) for _ in range(q)]
    steps = data.draw(st.integers(1, 3))
    got = attention.previous_tokens(torch.tensor(rows)[None, None], steps)[:, 0].tolist()

    def prev(j):
        row = rows[j] if square else rows[-1]
        earlier = [i for i in range(j) if row[i]]
        return earlier[-1] if earlier else -1

    for j in range(k):
        want = prev(j)
        for s in range(steps):
            assert got[s][j] == want, (rows, j, s)
            want = prev(want) if want >= 0 else -1


@settings(max_examples=8, deadline=None)
@given(groups=st.lists(group, min_size=1, max_size=3))
def test_packed_rows_and_padded_batches_match_one_prompt_at_a_time(shifted, groups):
    assert_packed_and_padded_match_alone(*shifted, groups)


def test_packed_completions_match_each_completion_alone(shifted):
    """Reasoning traces packed after one premise (each sees the premise and itself, not the
    completion packed before it) score as each does alone."""
    from constraintc.lm.binding import pack_groups, packed_logits
    from constraintc.lm.binding import Completion

    model, tok = shifted
    prompt = "a causes b. b causes c.\nQuestion: Does a cause c?\nReasoning:"
    comps = [Completion(prompt, " a causes b. b causes c. So a causes c.\nAnswer:", "Yes"),
             Completion(prompt, " c causes nothing. So c does not cause a.\nAnswer:", "No")]
    with torch.no_grad():
        _, together = packed_logits(model, pack_groups(tok, [[prompt]], completions=[comps]))
        alone = torch.cat([packed_logits(model, pack_groups(tok, [[prompt]], completions=[[c]]))[1] for c in comps])
    assert together.shape == alone.shape
    assert torch.allclose(together, alone, atol=2e-6), (together - alone).abs().max()


def test_cached_decoding_matches_recomputing(shifted):
    model, tok = shifted
    assert_cached_decoding_matches_recomputing(model, tok, new_tokens=8)
    # and the kept state gives what decoding without the cache gives, token for token
    batch = tok(["a causes b. b causes c.\nQuestion: Does a cause c?\nReasoning:", "d causes e.\nReasoning:"],
                return_tensors="pt", padding=True, padding_side="left")
    with torch.no_grad():
        cached = model.generate(**batch, max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id)
        again = model.generate(**batch, max_new_tokens=8, do_sample=False, use_cache=False, pad_token_id=tok.pad_token_id)
    assert torch.equal(cached, again)


def test_a_cached_step_without_its_prompt_pass_is_a_clear_error(shifted):
    from transformers import DynamicCache

    model, tok = shifted
    ids = torch.tensor([tok("a causes b.")["input_ids"]])
    cache = DynamicCache(config=model.config)
    with torch.no_grad():
        model(input_ids=ids, past_key_values=cache, use_cache=True)
        model(input_ids=ids[:, :2], use_cache=False)  # another pass in between: the kept queries are its own
        with pytest.raises(RuntimeError, match="token shift: cached decoding needs"):
            model(input_ids=ids[:, -1:], past_key_values=cache, use_cache=True)


def test_the_shift_weights_learn(tmp_path):
    model, tok = build_embedded_model(task_text, _arch(tmp_path, "token_shift = 2"), seed=0)
    ids = torch.tensor([tok("a causes b. b causes c. c causes d.")["input_ids"]])
    model.train()
    loss = F.cross_entropy(model(input_ids=ids).logits[0, :-1], ids[0, 1:])
    loss.backward()
    grads = [p.grad for n, p in model.named_parameters() if n.endswith("_shift")]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)


def test_saved_models_load_with_the_shift(shifted, tmp_path):
    model, tok = shifted
    again, tok2 = saved_and_reloaded(model, tok, tmp_path / "m")
    assert again.config._attn_implementation == attention.IMPLEMENTATION
    assert again.config.token_shift == model.config.token_shift
    mine = dict(model.named_parameters())
    for name, p in again.named_parameters():
        assert torch.equal(p, mine[name]), name
    text = "c causes a. a causes f.\nQuestion: Does c cause f?\nAnswer:"
    assert torch.allclose(_logits(again, text, tok2), _logits(model, text, tok), atol=1e-6)


def test_a_saved_model_missing_its_shift_weights_is_a_clear_error(tmp_path):
    from safetensors.torch import load_file, save_file

    model, tok = build_embedded_model(task_text, _arch(tmp_path, "token_shift = 1"), seed=0)
    out = tmp_path / "m"
    model.save_pretrained(out)
    tok.save_pretrained(out)
    state = {k: v for k, v in load_file(str(out / "model.safetensors")).items() if not k.endswith("key_shift")}
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ConstraintcError, match="does not fit the model"):
        load_model(str(out))


@pytest.mark.parametrize("value", ["4", "-1", "true", "1.5", '"two"'])
def test_bad_token_shift_names_the_file_and_the_key(tmp_path, value):
    path = _arch(tmp_path, f"token_shift = {value}")
    with pytest.raises(ConstraintcError) as err:
        build_embedded_model(task_text, path)
    assert "token_shift=" in str(err.value) and "from 0 (off) to 3" in str(err.value) and str(path) in str(err.value)


def test_the_shipped_shift_config_is_the_default_plus_the_shift():
    from constraintc.resources import configs_dir

    model, _ = load_model(str(configs_dir() / "embedded_shift.toml"), corpus=task_text)
    base, _ = load_model("embedded", corpus=task_text)
    assert model.config.token_shift == 2 and not getattr(base.config, "token_shift", 0)
    assert model.config._attn_implementation == attention.IMPLEMENTATION
    mine = dict(model.named_parameters())
    assert all(torch.equal(p, mine[n]) for n, p in base.named_parameters())  # the same initial weights
    extra = {n: p for n, p in mine.items() if n.endswith("_shift")}
    assert len(mine) == len(dict(base.named_parameters())) + len(extra) and extra


def test_a_bare_shipped_architecture_name_loads_from_any_directory(tmp_path, monkeypatch):
    """``--model embedded_shift.toml`` (finetune_shift.toml's setting) works outside the source
    tree; a local file of that name comes first."""
    monkeypatch.chdir(tmp_path)
    model, _ = load_model("embedded_shift.toml", corpus=task_text)
    assert model.config.token_shift == 2
    (tmp_path / "embedded_shift.toml").write_text(ARCH.format(extra="token_shift = 1"))
    local, _ = load_model("embedded_shift.toml", corpus=task_text)
    assert local.config.token_shift == 1 and local.config.hidden_size == 32
    with pytest.raises(ConstraintcError, match="no_such_arch.toml: cannot read"):
        load_model("no_such_arch.toml", corpus=task_text)


def test_a_saved_model_with_unreadable_weights_is_a_clear_error(tmp_path):
    model, tok = build_embedded_model(task_text, _arch(tmp_path, "token_shift = 1"), seed=0)
    out = tmp_path / "m"
    model.save_pretrained(out)
    tok.save_pretrained(out)
    (out / "model.safetensors").write_bytes(b"\x00\x01 not safetensors")
    with pytest.raises(ConstraintcError, match="cannot read the model in"):
        load_model(str(out))
