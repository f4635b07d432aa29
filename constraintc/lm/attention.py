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

A model whose config has them runs this attention once :func:`enable` has been called on it;
:func:`constraintc.lm.models.load_model` does that for every model it loads. Plain
``transformers`` loads the same weights with unbiased attention: a different model.
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


def distance_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, **kwargs):
    """An attention function for ``transformers``' ``AttentionInterface``: scaled dot-product
    attention with :func:`distance_bias` added (query ``[B, H, Q, D]``, key/value ``[B, KV, K, D]``);
    returns ``([B, Q, H, D], None)`` as the library's own functions do."""
    if kwargs.get("softcap") is not None:
        raise ValueError("distance-biased attention does not support attention logit soft-capping")
    mask = _layer_bias(module.config, attention_mask, query, key.shape[2])
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


def enable(model):
    """Switch a model whose config carries ``distance_slopes`` to :func:`distance_attention`
    (in place; returns the model). Other models are returned untouched."""
    config = model.config
    if not uses_distance_bias(config):
        return model
    heads = config.num_attention_heads
    if getattr(config, "distance_focus", None) is None:
        config.distance_focus = [0.0] * heads
    problem = check(config.distance_slopes, config.distance_focus, heads)
    if problem:
        raise ValueError(f"model config: {problem}")
    register()
    config._attn_implementation = IMPLEMENTATION
    return model
