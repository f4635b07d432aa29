"""Let a model write its reasoning, for trace evaluation (``constraintc eval --model M --traces N``).

Greedy decoding of at most ``max_new_tokens`` after :func:`constraintc.tasks.prompts.reasoning_prompt`;
a model whose tokenizer reads names by slot
(:class:`constraintc.lm.tokenizer.NameSlotTokenizer`) can write only the slots of names its prompt
has. Each prediction carries the raw ``output``, ``finish_reason`` (``"stop"`` when the model ended the
text, ``"length"`` when the token budget cut it) and the final answer parsed from the output
(``None`` when there is none, which :mod:`constraintc.evaluation.traces` counts as truncated).

Given the verbalizers (``yes``, ``no``), a written answer also carries ``p_yes``: at the step where
the model wrote its final answer token, ``P(yes) / (P(yes) + P(no))`` of the distribution it was
chosen from (so greedy ``Yes`` means ``p_yes >= 0.5``). ``constraintc eval --traces N --consistent``
conditions these on the rules, as it does the direct answers' probabilities.
"""

from __future__ import annotations

import torch

from constraintc.evaluation.traces import parse_output


class _BanTokens:
    """A logits processor: row ``i`` of the batch never emits the ids in ``banned[i]``."""

    def __init__(self, banned: list[list[int]]):
        self.banned = banned
        self.mask: torch.Tensor | None = None

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.mask is None or self.mask.shape != scores.shape:
            mask = torch.zeros(scores.shape, dtype=torch.bool)
            for i, ids in enumerate(self.banned):
                mask[i, [t for t in ids if t < scores.shape[1]]] = True
            self.mask = mask.to(scores.device)
        return scores.masked_fill(self.mask, float("-inf"))


class _AnswerLogits:
    """A logits processor that changes nothing and keeps, at every step, each row's logits of the
    two answer tokens (after the processors before it): ``steps[t]`` is a ``(batch, 2)`` float64
    tensor on the CPU."""

    def __init__(self, ids: tuple[int, int]):
        self.ids = list(ids)
        self.steps: list[torch.Tensor] = []

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        self.steps.append(scores[:, self.ids].double().cpu())
        return scores


def _answer_p_yes(row: list[int], answer: str | None, ids: tuple[int, int], steps: list[torch.Tensor],
                  b: int, yes: str, no: str) -> float | None:
    """``p_yes`` of row ``b``'s final answer: at the last generated token that is one of the two
    answer tokens, when it is the answer the text was parsed to; None otherwise."""
    if answer not in (yes, no):
        return None
    at = [t for t, tok in enumerate(row) if tok in ids]
    if not at or row[at[-1]] != ids[0 if answer == yes else 1]:
        return None
    logit_yes, logit_no = steps[at[-1]][b].tolist()
    return float(torch.sigmoid(torch.tensor(logit_yes - logit_no, dtype=torch.float64)))


@torch.no_grad()
def generate_traces(
    model,
    tokenizer,
    prompts: list[str],
    max_new_tokens: int = 128,
    batch_size: int = 8,
    progress: bool = False,
    yes: str | None = None,
    no: str | None = None,
) -> list[dict]:
    """``[{"output", "finish_reason", "prediction"}]`` per prompt, in order (greedy, left-padded
    batches); with the verbalizers ``yes`` and ``no`` also ``p_yes`` (None without a final answer
    token: see the module docstring).

    >>> from constraintc.lm import build_tiny_model
    >>> model, tok = build_tiny_model()
    >>> rows = generate_traces(model, tok, ["a causes b. Does a cause b? Answer:"], max_new_tokens=3)
    >>> rows[0]["finish_reason"] in ("stop", "length")
    True
    """
    from tqdm.auto import tqdm

    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    was_training = model.training
    model.eval()
    rows: list[dict] = [{} for _ in prompts]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    bar = tqdm(total=len(prompts), desc="generating", unit="prompt", disable=not progress, leave=False)
    try:
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            enc = tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True, padding_side="left")
            device = next(model.parameters()).device
            from transformers import LogitsProcessorList

            processors = LogitsProcessorList()
            if hasattr(tokenizer, "unused_slot_ids"):  # a name the prompt does not have names nothing
                processors.append(_BanTokens([tokenizer.unused_slot_ids(prompts[i]) for i in idx]))
            recorder = None
            if yes is not None and no is not None:
                from constraintc.lm.scoring import answer_token_ids

                # the answer follows "Answer:" in every trace format this package trains and parses
                recorder = _AnswerLogits(answer_token_ids(tokenizer, "Answer:", yes, no))
                processors.append(recorder)
            extra = {"logits_processor": processors} if processors else {}
            out = model.generate(
                input_ids=enc["input_ids"].to(device),
                attention_mask=enc["attention_mask"].to(device),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=pad,
                eos_token_id=eos,
                **extra,
            )
            new = out[:, enc["input_ids"].shape[1] :]
            for b, (row, i) in enumerate(zip(new.tolist(), idx)):
                stopped = eos is not None and eos in row
                if stopped:
                    row = row[: row.index(eos)]
                text = tokenizer.decode(row, skip_special_tokens=True)
                if hasattr(tokenizer, "restore_names"):  # names read as slot tokens: write them back
                    text = tokenizer.restore_names(prompts[i], text)
                _, answer, _ = parse_output(text)
                rows[i] = {"output": text, "finish_reason": "stop" if stopped else "length", "prediction": answer}
                if recorder is not None:
                    rows[i]["p_yes"] = _answer_p_yes(row, answer, recorder.ids, recorder.steps, b, yes, no)
            bar.update(len(idx))
    finally:
        bar.close()
        model.train(was_training)
    return rows
