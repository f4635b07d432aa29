"""Attention with a fixed per-head bias over token distance (ALiBi-style), for the embedded model.

Head ``h`` adds ``-slope[h] * |d - focus[h]|`` to its attention logits, where ``d`` is how many
attended tokens lie between a key and the query (0 for the query itself). The distance is read
off the attention mask, not off position ids, so it is the *logical* distance everywhere the
model runs: a shared-prefix packed row (a question's tokens count the premise before them, not
the other questions packed in between), a left-padded batch (padding is not counted) and cached
decoding (one query against every cached key) all see the same numbers as the prompt run alone.

A head with a large slope looks near ``focus`` (``focus = 1``: the previous token); small slopes
tilt a head towards recent tokens without fixing it (ALiBi's geometric slopes). Slope 0 leaves a
head as it was. The biases are constants of the architecture (the model's config carries
``distance_slopes`` and ``distance_focus``), added to the rotary encoding, not replacing it.

**Token shift** (``token_shift = S`` in the config, S in 1..3): every attention layer's queries,
keys and values become ``x_t + w_1 * x_{t-1} + ... + w_S * x_{t-S}`` with learned per-channel
weights ``w`` (``[S, heads, head_dim]`` per projection, zero at initialisation, so a new model
starts as the plain one), a short causal depthwise convolution after the projections as in
Primer (So et al., 2021). A key then carries the tokens before it, and one attention step can
match "the token after U" (an induction-style copy) without first growing previous-token heads.
"The token before" is read off the attention mask as the distance is: the previous *attended*
token, so packed rows, left padding and cached decoding agree with the prompt run alone. Cached
decoding keeps each layer's queries and shifted keys and values of the positions decoded so far
(:func:`_shifted`).

A model whose config has either runs this attention once :func:`enable` has been called on it;
:func:`constraintc.lm.models.load_model` does that for every model it loads. Plain
``transformers`` loads the same weights with unbiased attention and without the token-shift
weights (it reports them unused): a different model.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

IMPLEMENTATION = "constraintc_distance"


def attended(attention_mask: torch.Tensor | None, q_len: int, k_len: int, device) -> torch.Tensor:
    """Boolean ``[B or 1, 1, q_len, k_len]``: which keys each query attends to. ``None`` is the
    plain causal pattern with the queries last (prefill or cached decoding); a float mask is
    additive (0 where attended, the dtype's minimum elsewhere)."""
    if attention_mask is None:
        i = torch.arange(q_len, device=device)[:, None] + (k_len - q_len)
        j = torch.arange(k_len, device=device)[None, :]
        return (j <= i)[None, None]
    mask = attention_mask[..., :k_len]
    if mask.dtype == torch.bool:
        return mask
    return mask > torch.finfo(mask.dtype).min / 2


def key_distances(allowed: torch.Tensor) -> torch.Tensor:
    """For every attended key, how many attended keys follow it up to the query (0: the query
    itself, or the newest key), as ``allowed``'s shape in int64; what is not attended is left
    as counted and must stay masked."""
    return allowed.flip(-1).cumsum(-1).flip(-1) - 1


def distance_bias(allowed: torch.Tensor, slopes, focus, dtype: torch.dtype) -> torch.Tensor:
    """The additive ``[B, H, Q, K]`` mask: ``-slope * |d - focus|`` where attended, the dtype's
    minimum elsewhere (finite, so a query with nothing to attend to stays finite)."""
    s = torch.as_tensor(slopes, dtype=dtype, device=allowed.device).view(1, -1, 1, 1)
    f = torch.as_tensor(focus, dtype=dtype, device=allowed.device).view(1, -1, 1, 1)
    d = key_distances(allowed).to(dtype)
    bias = -s * (d - f).abs()
    return torch.where(allowed, bias, torch.full((), torch.finfo(dtype).min, dtype=dtype, device=allowed.device))


def previous_tokens(allowed: torch.Tensor, steps: int) -> torch.Tensor:
    """``[steps, B, K]`` int64: for every key position, the index of the attended token 1, 2, ..
    ``steps`` places before it (-1: none). With a full square mask each position's own row says
    what it attends to (so a packed row's question continues from the premise, not from the
    question packed before it); with fewer queries than keys (cached decoding) the newest query's
    row does, which is the same for one unpacked sequence with left padding."""
    b, _, q_len, k_len = allowed.shape
    idx = torch.arange(k_len, device=allowed.device)
    if q_len == k_len:
        before = allowed[:, 0] & (idx[None, :] < idx[:, None])[None]       # [B, K, K]: i attended by j, i < j
        prev = torch.where(before, idx, -1).amax(-1)
    else:
        seen = torch.where(allowed[:, 0, -1], idx, -1).cummax(-1).values     # last attended index <= j
        prev = torch.cat([torch.full_like(seen[:, :1], -1), seen[:, :-1]], -1)
    out = [prev]
    for _ in range(steps - 1):
        last = out[-1]
        out.append(torch.where(last >= 0, prev.gather(1, last.clamp(min=0)), -1))
    return torch.stack(out)


def shift(x: torch.Tensor, prev: torch.Tensor, weights: torch.Tensor, start: int = 0) -> torch.Tensor:
    """Positions ``start:`` of ``x`` ``[B, H, L, D]``, each plus ``weights[s] * x`` at ``prev[s]``
    (``[S, B, L]`` indices into x's positions, -1: nothing) for each shift ``s``; ``weights``
    ``[S, H, D]``. Returns ``[B, H, L - start, D]``."""
    b, h, n, d = x.shape
    out = x[:, :, start:]
    for s in range(weights.shape[0]):
        p = prev[s][:, start:]
        took = x.gather(2, p.clamp(min=0)[:, None, :, None].expand(b, h, n - start, d))
        out = out + weights[s].to(x.dtype)[None, :, None, :] * torch.where((p >= 0)[:, None, :, None], took, 0.0)
    return out


def _shifted(module, query, key, value, prev):
    """The token-shifted queries (the new positions'), keys and values (all positions').

    With as many queries as keys (training, a prompt's first pass) everything is shifted here.
    In cached decoding the earlier positions' shifted keys and values and their raw queries are
    the ones kept from this decoding's earlier passes (they do not change: a token's previous
    tokens are fixed), so a step shifts its new positions only. They are kept outside autograd
    only (generation runs without it); a cached step with nothing kept that fits is an error."""
    q_len, k_len = query.shape[2], key.shape[2]
    start = k_len - q_len
    if start == 0:
        queries = query
        keys, values = shift(key, prev, module.key_shift), shift(value, prev, module.value_shift)
    else:
        kept = getattr(module, "_constraintc_decoding", None)
        if kept is None or kept[0].shape[0] != query.shape[0] or kept[0].shape[2] != start:
            raise RuntimeError(
                "token shift: cached decoding needs this layer's queries of the earlier positions; "
                "run the prompt through the model first (model.generate does), without autograd"
            )
        queries = torch.cat([kept[0], query], dim=2)
        keys = torch.cat([kept[1], shift(key, prev, module.key_shift, start)], dim=2)
        values = torch.cat([kept[2], shift(value, prev, module.value_shift, start)], dim=2)
    module._constraintc_decoding = None if torch.is_grad_enabled() else (queries, keys, values)
    return shift(queries, prev, module.query_shift, start), keys, values


def distance_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, **kwargs):
    """An attention function for ``transformers``' ``AttentionInterface``: scaled dot-product
    attention with :func:`distance_bias` added and the token shift applied, where the config asks
    for them (query ``[B, H, Q, D]``, key/value ``[B, KV, K, D]``); returns ``([B, Q, H, D], None)``
    as the library's own functions do."""
    if kwargs.get("softcap") is not None:
        raise ValueError("constraintc's attention does not support attention logit soft-capping")
    config = module.config
    k_len = key.shape[2]
    steps = getattr(config, "token_shift", 0) or 0
    if steps:
        allowed = attended(attention_mask, query.shape[2], k_len, query.device)
        prev, additive = _previous(attention_mask, allowed.expand(key.shape[0], *allowed.shape[1:]), steps, query.dtype)
        query, key, value = _shifted(module, query, key, value, prev)
    # additive masks with a finite minimum: a row with nothing to attend to (padding) stays finite
    mask = _layer_bias(config, attention_mask, query, k_len) if uses_distance_bias(config) else additive
    groups = query.shape[1] // key.shape[1]
    if groups > 1:
        key = key.repeat_interleave(groups, dim=1)
        value = value.repeat_interleave(groups, dim=1)
    out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, dropout_p=dropout, scale=scaling)
    return out.transpose(1, 2).contiguous(), None


# The bias of the last mask seen: every layer of one forward pass gets the same mask tensor (or
# None and the same lengths), so the bias is built once per pass, not once per layer. The entry
# holds the mask itself, so an identity match cannot be a new tensor at a recycled address (a mask
# edited in place between passes would be served stale: transformers and constraintc build a new one).
_last: list = [None, None]


def _layer_bias(config, attention_mask, query, k_len: int) -> torch.Tensor:
    key = (attention_mask, query.shape[2], k_len, query.dtype, query.device,
           tuple(config.distance_slopes), tuple(config.distance_focus))
    cached_key, bias = _last
    if cached_key is not None and cached_key[0] is key[0] and cached_key[1:] == key[1:]:
        return bias
    allowed = attended(attention_mask, query.shape[2], k_len, query.device)
    bias = distance_bias(allowed, config.distance_slopes, config.distance_focus, query.dtype)
    _last[:] = [key, bias]
    return bias


_last_prev: list = [None, None]


def _previous(attention_mask, allowed: torch.Tensor, steps: int, dtype: torch.dtype):
    """:func:`previous_tokens` and the additive form of ``allowed`` (0 where attended, the
    dtype's minimum elsewhere), built once per forward pass (every layer sees the same mask)."""
    key = (attention_mask, tuple(allowed.shape), steps, allowed.device, dtype)
    cached_key, built = _last_prev
    if cached_key is not None and cached_key[0] is key[0] and cached_key[1:] == key[1:]:
        return built
    built = (previous_tokens(allowed, steps),
             torch.where(allowed, torch.zeros((), dtype=dtype), torch.finfo(dtype).min).to(dtype))
    _last_prev[:] = [key, built]
    return built


def register() -> None:
    """Make :data:`IMPLEMENTATION` known to ``transformers`` (idempotent)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(IMPLEMENTATION, distance_attention)
    AttentionMaskInterface.register(IMPLEMENTATION, sdpa_mask)


def check(slopes, focus, heads: int) -> str | None:
    """What is wrong with ``distance_slopes`` / ``distance_focus`` for a model of ``heads``
    attention heads, or None."""
    for name, values in (("distance_slopes", slopes), ("distance_focus", focus)):
        if not isinstance(values, (list, tuple)) or len(values) != heads or any(
            isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0 for v in values
        ):
            return f"{name}={values!r}: expected a list of {heads} numbers >= 0 (one per attention head)"
    return None


def uses_distance_bias(config) -> bool:
    """Whether a model config asks for the distance bias (non-zero ``distance_slopes``)."""
    return any(getattr(config, "distance_slopes", None) or ())


MAX_TOKEN_SHIFT = 3


def check_token_shift(value) -> str | None:
    """What is wrong with a ``token_shift`` value, or None."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TOKEN_SHIFT:
        return f"token_shift={value!r}: expected a whole number of earlier tokens from 0 (off) to {MAX_TOKEN_SHIFT}"
    return None


def add_token_shift(model) -> None:
    """Give every attention layer of ``model`` its token-shift weights (zeros, as a new model
    starts; the parameters ``query_shift``, ``key_shift``, ``value_shift``), where the config asks
    for a token shift and the layer has none yet."""
    config = model.config
    steps = getattr(config, "token_shift", 0) or 0
    if not steps:
        return
    param = next(model.parameters())
    for layer in model.model.layers:
        attn = layer.self_attn
        if hasattr(attn, "query_shift"):
            continue
        for name, heads in (("query_shift", config.num_attention_heads), ("key_shift", config.num_key_value_heads),
                            ("value_shift", config.num_key_value_heads)):
            attn.register_parameter(name, torch.nn.Parameter(
                torch.zeros(steps, heads, config.head_dim, dtype=param.dtype, device=param.device)))


def enable(model):
    """Switch a model whose config carries ``distance_slopes`` or a ``token_shift`` to
    :func:`distance_attention` (in place, adding the token-shift weights if missing; returns the
    model). Other models are returned untouched."""
    config = model.config
    steps = getattr(config, "token_shift", 0) or 0
    if not uses_distance_bias(config) and not steps:
        return model
    problem = check_token_shift(steps)
    if problem:
        raise ValueError(f"model config: {problem}")
    heads = config.num_attention_heads
    if uses_distance_bias(config):
        if getattr(config, "distance_focus", None) is None:
            config.distance_focus = [0.0] * heads
        problem = check(config.distance_slopes, config.distance_focus, heads)
        if problem:
            raise ValueError(f"model config: {problem}")
    add_token_shift(model)
    register()
    config._attn_implementation = IMPLEMENTATION
    return model
