"""Shared-prefix batching: every question about one graph in one packed row.

All prompts about one graph start with the same premise. Instead of encoding the premise once per
question, a group's prompts are tokenized in full, their longest common token prefix is kept once,
and each question's remaining tokens (its *suffix*) follow it in the same row. A 4-D attention
mask lets each suffix attend to the prefix and to itself only, and position ids restart after the
prefix for every suffix, so each answer position sees exactly the tokens (and positions) it would
see as a separate prompt: the logits are the same up to float rounding.

Splitting on tokens of the full prompts (not on text) keeps this exact for BPE tokenizers whose
merges could cross the premise/question boundary.

A group may also carry :class:`Completion` sequences: a prompt followed by text the model is
trained to write (a reasoning trace and ``Answer:``), then the answer and the end-of-text token.
They are packed as further suffixes of the same row, and the batch records which positions predict
which target tokens (``target_rows``/``target_cols``/``target_ids``), so that a token-level
cross-entropy over them needs the output head at those positions only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from constraintc.lm.scoring import answer_separator, answer_token_ids


@dataclass
class PackedBatch:
    """Packed rows of several groups of prompts.

    ``input_ids``/``position_ids``: ``[G, L]``; ``attention_mask``: ``[G, 1, L, L]`` additive
    (0 where attention is allowed, the dtype's minimum elsewhere); ``rows``/``cols``: ``[Q]`` the
    answer position of each question (questions in group order, then prompt order);
    ``yes_ids``/``no_ids``: ``[Q]`` verbalizer token ids; ``group_sizes``: questions per group;
    ``tokens``: real (non-padding) tokens, ``unpacked_tokens``: tokens the prompts would take
    one by one (the saving is their ratio).

    Completions (in group order, then list order): ``target_rows``/``target_cols`` ``[T]`` the
    positions whose logits predict ``target_ids`` ``[T]``; ``target_seq`` ``[T]`` the index of the
    completion each target belongs to; ``completion_answer`` ``[C]`` the index (into the targets)
    of each completion's answer token.
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
    target_rows: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    target_cols: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    target_ids: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    target_seq: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    completion_answer: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))

    def to(self, device) -> "PackedBatch":
        """The same batch with its tensors on ``device``."""
        from dataclasses import fields, replace

        return replace(self, **{f.name: getattr(self, f.name).to(device) for f in fields(self)
                                if isinstance(getattr(self, f.name), torch.Tensor)})

    @property
    def num_completions(self) -> int:
        return int(self.completion_answer.numel())

    @property
    def num_questions(self) -> int:
        return int(self.rows.numel())


@dataclass(frozen=True)
class Completion:
    """A sequence trained token by token: ``prompt``, then ``text``, then ``answer`` (+ EOS).

    ``text`` is what the model writes before its answer (a reasoning trace and ``"\\nAnswer:"``);
    ``answer`` is a verbalizer (``"Yes"``/``"No"``). ``loss="all"``: every token of ``text``, the
    answer's first token and the end-of-text token are targets; ``loss="answer"``: only the
    answer token is (the text is context, masked out of the loss).
    """

    prompt: str
    text: str
    answer: str
    loss: str = "all"


def _completion_tokens(tokenizer, c: Completion, answer_id) -> tuple[list[int], int]:
    """The completion's token ids and the index of its first target token.

    ``answer_id(text, answer)`` gives the token id of ``answer`` as the continuation of ``text``.
    """
    if c.loss not in ("all", "answer"):
        raise ValueError(f"Completion.loss={c.loss!r}: expected 'all' or 'answer'")
    prompt_ids = tokenizer(c.prompt, add_special_tokens=True)["input_ids"]
    full_text = c.prompt + c.text
    ids = tokenizer(full_text, add_special_tokens=True)["input_ids"]
    if c.loss == "answer":
        return ids + [answer_id(full_text, c.answer)], len(ids)
    start = 0  # BPE merges may cross the prompt/text boundary: targets start where they differ
    while start < min(len(prompt_ids), len(ids)) and prompt_ids[start] == ids[start]:
        start += 1
    ids = ids + [answer_id(full_text, c.answer)]
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    return ids, max(start, 1)


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
    completions: list[list[Completion]] | None = None,
    name_salts: list[int] | None = None,
    cache: dict | None = None,
) -> PackedBatch:
    """Pack each group of prompts into one row (shared prefix once, then every suffix).

    ``completions`` (one list per group, possibly empty) adds sequences trained token by token;
    their suffixes follow the group's question suffixes in the same row. ``name_salts`` (one per
    group) assigns the names of each group to name tokens with its own salt, for a tokenizer
    that reads names by slot (:func:`constraintc.lm.tokenizer.salted_names`; others ignore it).
    ``cache`` (a dict kept by the caller for one tokenizer) keeps each group's token ids by its
    salt, prompts and completions, and the answer tokens, so a group packed again is not
    tokenized again (a training run that revisits the same graphs with the same salts; it grows
    by one entry per distinct group).

    >>> from constraintc.lm import build_tiny_model
    >>> _, tok = build_tiny_model()
    >>> b = pack_groups(tok, [["a causes b. Does a cause b?", "a causes b. Does b cause a?"]])
    >>> b.input_ids.shape, b.num_questions, b.tokens < b.unpacked_tokens
    (torch.Size([1, 14]), 2, True)
    """
    if not groups or any(len(g) == 0 for g in groups):
        raise ValueError("pack_groups needs at least one prompt in every group")
    if completions is not None and len(completions) != len(groups):
        raise ValueError(f"pack_groups: {len(completions)} completion lists for {len(groups)} groups")
    if name_salts is not None and len(name_salts) != len(groups):
        raise ValueError(f"pack_groups: {len(name_salts)} name salts for {len(groups)} groups")
    from constraintc.lm.tokenizer import salted_names
    ids_cache: dict = cache if cache is not None else {}

    def answer_ids(text: str) -> tuple[int, int]:
        # prompts ending in whitespace and in text continue differently
        key = ("answer", answer_separator(text), yes, no)
        if key not in ids_cache:
            ids_cache[key] = answer_token_ids(tokenizer, text, yes, no)
        return ids_cache[key]

    def completion_answer_id(text: str, answer: str) -> int:
        if answer not in (yes, no):
            raise ValueError(f"Completion.answer={answer!r}: expected {yes!r} or {no!r}")
        return answer_ids(text)[0 if answer == yes else 1]

    rows_tokens, rows_pos, rows_seg = [], [], []
    ans_rows, ans_cols, yes_ids, no_ids = [], [], [], []
    t_rows, t_cols, t_ids, t_seq, c_answer = [], [], [], [], []
    unpacked = 0
    for g, prompts in enumerate(groups):
        salt = name_salts[g] if name_salts else 0
        mine = completions[g] if completions else []
        key = (salt, tuple(prompts), tuple((c.prompt, c.text, c.answer, c.loss) for c in mine), yes, no)
        hit = cache.get(key) if cache is not None else None
        if hit is None:
            with salted_names(tokenizer, salt):
                seqs = [tokenizer(p, add_special_tokens=True)["input_ids"] for p in prompts]
                comps = [_completion_tokens(tokenizer, c, completion_answer_id) for c in mine]
            hit = (seqs, comps)
            if cache is not None:
                cache[key] = hit
        seqs, comps = hit
        unpacked += sum(len(s) for s in seqs) + sum(len(ids) for ids, _ in comps)
        k = _common_prefix_length(seqs + [ids for ids, _ in comps])
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
            y, n = answer_ids(p)
            yes_ids.append(y)
            no_ids.append(n)
        for c, (ids, first) in enumerate(comps):
            offset = len(tokens) - k  # row column of the completion's own token j >= k: j + offset
            tokens.extend(ids[k:])
            positions.extend(range(k, len(ids)))
            segments.extend([len(prompts) + c + 1] * (len(ids) - k))
            for j in range(first, len(ids)):  # token j is predicted at the completion's token j - 1
                t_rows.append(g)
                t_cols.append(j - 1 if j - 1 < k else j - 1 + offset)
                t_ids.append(ids[j])
                t_seq.append(len(c_answer))
            eos = tokenizer.eos_token_id
            ends_with_eos = completions[g][c].loss == "all" and eos is not None
            c_answer.append(len(t_ids) - (2 if ends_with_eos else 1))
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
    long = lambda xs: torch.tensor(xs, dtype=torch.long)  # noqa: E731
    return PackedBatch(
        input_ids=input_ids,
        position_ids=position_ids,
        attention_mask=mask,
        rows=long(ans_rows),
        cols=long(ans_cols),
        yes_ids=long(yes_ids),
        no_ids=long(no_ids),
        group_sizes=[len(g) for g in groups],
        tokens=int((segment >= 0).sum()),
        unpacked_tokens=unpacked,
        target_rows=long(t_rows),
        target_cols=long(t_cols),
        target_ids=long(t_ids),
        target_seq=long(t_seq),
        completion_answer=long(c_answer),
    )


def stretch_positions(batch: PackedBatch, factors: torch.Tensor) -> PackedBatch:
    """The batch with row ``g``'s position ids ``p`` replaced by ``floor(p * factors[g])``.

    A training-time augmentation for length generalisation: with factors >= 1 a short prompt's
    tokens stand as far apart as a longer prompt's, so relative distances that only long test
    premises have are seen in training (a deterministic relative of randomized positional
    encodings, Ruoss et al. 2023); a factor of 1 leaves a row as it is, so plain positions, which
    evaluation uses, stay in the training distribution. The map is strictly increasing, so the
    shared prefix and each suffix keep their order and every suffix still restarts where the
    prefix ends. Padding positions stay 0.
    """
    from dataclasses import replace

    if factors.shape != (batch.position_ids.shape[0],):
        raise ValueError(f"stretch_positions: {tuple(factors.shape)} factors for {batch.position_ids.shape[0]} rows")
    if bool((factors < 1).any()):
        raise ValueError("stretch_positions: factors must be >= 1 (positions must stay distinct)")
    pos = batch.position_ids.to(torch.float64) * factors.to(torch.float64)[:, None]
    return replace(batch, position_ids=pos.floor().to(batch.position_ids.dtype))


def _output_logits(model, hidden: torch.Tensor) -> torch.Tensor:
    logits = model.get_output_embeddings()(hidden)
    cap = getattr(model.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits


def packed_logits(model, batch: PackedBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Full-vocabulary logits at every answer position ``[Q, V]`` and at every completion target
    position ``[T, V]`` (differentiable).

    Only the backbone runs over the packed rows; the output head is applied to those ``Q + T``
    positions alone, so a 50k-token vocabulary costs ``Q + T`` rows of logits, not ``G * L``.
    """
    param = next(model.parameters())
    batch = batch.to(param.device)
    mask = batch.attention_mask.to(param.dtype)
    decoder = model.get_decoder()
    hidden = decoder(
        input_ids=batch.input_ids,
        attention_mask=mask,
        position_ids=batch.position_ids,
        use_cache=False,
    ).last_hidden_state
    rows = torch.cat([batch.rows, batch.target_rows])
    cols = torch.cat([batch.cols, batch.target_cols])
    logits = _output_logits(model, hidden[rows, cols])
    return logits[: batch.num_questions], logits[batch.num_questions :]


def packed_answer_logits(model, batch: PackedBatch) -> torch.Tensor:
    """Full-vocabulary logits at every answer position, ``[Q, V]`` (see :func:`packed_logits`)."""
    return packed_logits(model, batch)[0]


def completion_losses(target_logits: torch.Tensor, batch: PackedBatch) -> torch.Tensor:
    """Mean token cross-entropy of each completion over its targets, ``[C]`` (float64)."""
    batch = batch.to(target_logits.device)
    ce = F.cross_entropy(target_logits.double(), batch.target_ids, reduction="none")
    sums = torch.zeros(batch.num_completions, dtype=ce.dtype, device=ce.device).index_add(0, batch.target_seq, ce)
    counts = torch.bincount(batch.target_seq, minlength=batch.num_completions).clamp(min=1)
    return sums / counts


def yes_no_log_probs(logits: torch.Tensor, batch: PackedBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log p, log(1 - p))`` with ``p = P(yes) / (P(yes) + P(no))``, exact in log space."""
    q = torch.arange(logits.shape[0], device=logits.device)
    diff = logits[q, batch.yes_ids.to(logits.device)] - logits[q, batch.no_ids.to(logits.device)]
    return F.logsigmoid(diff), F.logsigmoid(-diff)


@dataclass
class AtomLogits:
    """The Yes and No logits at the answer position of every question, ``[Q]`` each (questions
    in group order, then prompt order), and the number of questions per group."""

    yes: torch.Tensor
    no: torch.Tensor
    group_sizes: list[int]

    def per_group(self) -> list[torch.Tensor]:
        """``l_yes - l_no`` split by group (what ``SemanticLoss`` takes as ``yes`` with ``no=None``)."""
        return list(torch.split(self.yes - self.no, self.group_sizes))


def atom_logits(model, tokenizer, groups: list[list[str]], yes: str = "Yes", no: str = "No") -> AtomLogits:
    """Run a causal LM on groups of prompts (one group per graph, shared-prefix packed) **with
    gradients**, and return the Yes/No logits at every answer position.

    The training-time counterpart of :func:`score_groups` (which runs under ``no_grad`` for
    evaluation): only the two verbalizer rows of the output head are applied, so a large
    vocabulary costs nothing extra. The model is used in whatever mode it is in.

    >>> import torch
    >>> from constraintc.lm import build_tiny_model
    >>> model, tok = build_tiny_model()
    >>> out = atom_logits(model, tok, [["a causes b. Does a cause b?", "a causes b. Does b cause a?"]])
    >>> out.yes.shape, out.yes.requires_grad, out.group_sizes
    (torch.Size([2]), True, [2])
    """
    return packed_atom_logits(model, pack_groups(tokenizer, groups, yes, no, dtype=next(model.parameters()).dtype))


def packed_atom_logits(model, batch: PackedBatch) -> AtomLogits:
    """:func:`atom_logits` of an already packed batch (on any device: moved to the model's)."""
    param = next(model.parameters())
    batch = batch.to(param.device)
    mask = batch.attention_mask.to(param.dtype)
    hidden = model.get_decoder()(
        input_ids=batch.input_ids, attention_mask=mask, position_ids=batch.position_ids, use_cache=False,
    ).last_hidden_state[batch.rows, batch.cols]
    weight = model.get_output_embeddings().weight
    bias = getattr(model.get_output_embeddings(), "bias", None)
    pick = torch.stack([batch.yes_ids, batch.no_ids], 1)  # [Q, 2]
    logits = torch.einsum("qh,qkh->qk", hidden, weight[pick])
    if bias is not None:
        logits = logits + bias[pick]
    cap = getattr(model.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return AtomLogits(logits[:, 0], logits[:, 1], batch.group_sizes)


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
            param = next(model.parameters())
            batch = pack_groups(tokenizer, chunk, yes, no, dtype=param.dtype).to(param.device)
            logits = packed_answer_logits(model, batch).double()
            log_p, _ = yes_no_log_probs(logits, batch)
            out.extend(torch.split(log_p.exp(), batch.group_sizes))
    finally:
        model.train(was_training)
    return out
