"""Shared-prefix batching: every question about one graph in one packed row.

All prompts about one graph start with the same premise. Instead of encoding the premise once per
question, a group's prompts are tokenized in full, their longest common token prefix is kept once,
and each question's remaining tokens (its *suffix*) follow it in the same row. A 4-D attention
mask lets each suffix attend to the prefix and to itself only, and position ids restart after the
prefix for every suffix, so each answer position sees exactly the tokens (and positions) it would
see as a separate prompt: the logits are the same up to float rounding.

Splitting on tokens of the full prompts (not on text) keeps this exact for BPE tokenizers whose
merges could cross the premise/question boundary.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from constraintc.lm.scoring import answer_token_ids


@dataclass
class PackedBatch:
    """Packed rows of several groups of prompts.

    ``input_ids``/``position_ids``: ``[G, L]``; ``attention_mask``: ``[G, 1, L, L]`` additive
    (0 where attention is allowed, the dtype's minimum elsewhere); ``rows``/``cols``: ``[Q]`` the
    answer position of each question (questions in group order, then prompt order);
    ``yes_ids``/``no_ids``: ``[Q]`` verbalizer token ids; ``group_sizes``: questions per group;
    ``tokens``: real (non-padding) tokens, ``unpacked_tokens``: tokens the prompts would take
    one by one (the saving is their ratio).
    """

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    attention_mask: torch.Tensor
    rows: torch.Tensor
    cols: torch.Tensor
    yes_ids: torch.Tensor
    no_ids: torch.Tensor
    group_sizes: list[int]
    tokens: int
    unpacked_tokens: int

    @property
    def num_questions(self) -> int:
        return int(self.rows.numel())


def _common_prefix_length(seqs: list[list[int]]) -> int:
    k = min(len(s) for s in seqs) - 1  # every suffix keeps at least its last (answer-position) token
    first = seqs[0]
    for s in seqs[1:]:
        j = 0
        while j < k and s[j] == first[j]:
            j += 1
        k = j
    return max(k, 0)


def pack_groups(
    tokenizer,
    groups: list[list[str]],
    yes: str = "Yes",
    no: str = "No",
    dtype: torch.dtype = torch.float32,
) -> PackedBatch:
    """Pack each group of prompts into one row (shared prefix once, then every suffix).

    >>> from constraintc.lm import build_tiny_model
    >>> _, tok = build_tiny_model()
    >>> b = pack_groups(tok, [["a causes b. Does a cause b?", "a causes b. Does b cause a?"]])
    >>> b.input_ids.shape, b.num_questions, b.tokens < b.unpacked_tokens
    (torch.Size([1, 10]), 2, True)
    """
    if not groups or any(len(g) == 0 for g in groups):
        raise ValueError("pack_groups needs at least one prompt in every group")
    ids_cache: dict[bool, tuple[int, int]] = {}
    rows_tokens, rows_pos, rows_seg = [], [], []
    ans_rows, ans_cols, yes_ids, no_ids = [], [], [], []
    unpacked = 0
    for g, prompts in enumerate(groups):
        seqs = [tokenizer(p, add_special_tokens=True)["input_ids"] for p in prompts]
        unpacked += sum(len(s) for s in seqs)
        k = _common_prefix_length(seqs)
        tokens = list(seqs[0][:k])
        positions = list(range(k))
        segments = [0] * k
        for q, (p, s) in enumerate(zip(prompts, seqs)):
            suffix = s[k:]
            tokens.extend(suffix)
            positions.extend(range(k, k + len(suffix)))
            segments.extend([q + 1] * len(suffix))
            ans_rows.append(g)
            ans_cols.append(len(tokens) - 1)
            key = bool(p) and p[-1].isspace()
            if key not in ids_cache:
                ids_cache[key] = answer_token_ids(tokenizer, p, yes, no)
            yes_ids.append(ids_cache[key][0])
            no_ids.append(ids_cache[key][1])
        rows_tokens.append(tokens)
        rows_pos.append(positions)
        rows_seg.append(segments)
    length = max(len(t) for t in rows_tokens)
    n = len(groups)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    input_ids = torch.full((n, length), pad_id, dtype=torch.long)
    position_ids = torch.zeros((n, length), dtype=torch.long)
    # segment -1 marks padding; a padding token attends to itself only (no fully masked rows)
    segment = torch.full((n, length), -1, dtype=torch.long)
    for g in range(n):
        m = len(rows_tokens[g])
        input_ids[g, :m] = torch.tensor(rows_tokens[g])
        position_ids[g, :m] = torch.tensor(rows_pos[g])
        segment[g, :m] = torch.tensor(rows_seg[g])
    q_seg = segment[:, :, None]
    k_seg = segment[:, None, :]
    causal = torch.ones(length, length, dtype=torch.bool).tril()
    allowed = causal & (k_seg >= 0) & ((k_seg == 0) | (k_seg == q_seg))
    allowed |= torch.eye(length, dtype=torch.bool)
    mask = torch.zeros((n, 1, length, length), dtype=dtype)
    mask.masked_fill_(~allowed[:, None], torch.finfo(dtype).min)
    return PackedBatch(
        input_ids=input_ids,
        position_ids=position_ids,
        attention_mask=mask,
        rows=torch.tensor(ans_rows, dtype=torch.long),
        cols=torch.tensor(ans_cols, dtype=torch.long),
        yes_ids=torch.tensor(yes_ids, dtype=torch.long),
        no_ids=torch.tensor(no_ids, dtype=torch.long),
        group_sizes=[len(g) for g in groups],
        tokens=int((segment >= 0).sum()),
        unpacked_tokens=unpacked,
    )


def _output_logits(model, hidden: torch.Tensor) -> torch.Tensor:
    logits = model.get_output_embeddings()(hidden)
    cap = getattr(model.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits


def packed_answer_logits(model, batch: PackedBatch) -> torch.Tensor:
    """Full-vocabulary logits at every answer position, ``[Q, V]`` (differentiable).

    Only the backbone runs over the packed rows; the output head is applied to the ``Q`` answer
    positions alone, so a 50k-token vocabulary costs ``Q`` rows of logits, not ``G * L``.
    """
    mask = batch.attention_mask.to(next(model.parameters()).dtype)
    decoder = model.get_decoder()
    hidden = decoder(
        input_ids=batch.input_ids,
        attention_mask=mask,
        position_ids=batch.position_ids,
        use_cache=False,
    ).last_hidden_state
    return _output_logits(model, hidden[batch.rows, batch.cols])


def yes_no_log_probs(logits: torch.Tensor, batch: PackedBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log p, log(1 - p))`` with ``p = P(yes) / (P(yes) + P(no))``, exact in log space."""
    q = torch.arange(logits.shape[0])
    diff = logits[q, batch.yes_ids] - logits[q, batch.no_ids]
    return F.logsigmoid(diff), F.logsigmoid(-diff)


@torch.no_grad()
def score_groups(
    model,
    tokenizer,
    groups: list[list[str]],
    yes: str = "Yes",
    no: str = "No",
    groups_per_batch: int = 8,
    progress: bool = False,
) -> list[torch.Tensor]:
    """P(yes)/(P(yes)+P(no)) of every prompt, grouped: one packed row per group (float64).

    The same numbers as ``score_prompts`` on the flattened prompts, with each group's shared
    premise encoded once.

    >>> from constraintc.lm import build_tiny_model
    >>> model, tok = build_tiny_model()
    >>> [p.shape for p in score_groups(model, tok, [["a causes b. Does a cause b?"] * 3])]
    [torch.Size([3])]
    """
    from tqdm.auto import tqdm

    was_training = model.training
    model.eval()
    out: list[torch.Tensor] = []
    try:
        for start in tqdm(range(0, len(groups), groups_per_batch), desc="scoring", disable=not progress, leave=False):
            chunk = groups[start : start + groups_per_batch]
            batch = pack_groups(tokenizer, chunk, yes, no, dtype=next(model.parameters()).dtype)
            logits = packed_answer_logits(model, batch).double()
            log_p, _ = yes_no_log_probs(logits, batch)
            out.extend(torch.split(log_p.exp(), batch.group_sizes))
    finally:
        model.train(was_training)
    return out
