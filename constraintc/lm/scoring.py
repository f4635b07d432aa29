"""Scoring yes/no questions: P(yes) / (P(yes) + P(no)) at the answer position.

The normalised probability only depends on the difference of the two logits,
``p = sigmoid(l_yes - l_no)``, so ``log p = logsigmoid(d)`` and ``log(1 - p) = logsigmoid(-d)``
are exact in log space, also where p rounds to 0 or 1 (what ``Circuit.log_wmc_log`` wants).
"""

from __future__ import annotations

import torch

from constraintc.errors import ConstraintcError


def answer_separator(prompt: str) -> str:
    # after "Answer:" a BPE model writes " Yes"; after a newline (chat turn) it writes "Yes"
    return "" if (not prompt or prompt[-1].isspace()) else " "


def answer_token_ids(tokenizer, prompt: str, yes: str = "Yes", no: str = "No") -> tuple[int, int]:
    """The token ids of the first token of ``yes`` and of ``no`` as continuations of ``prompt``.

    Found by tokenizing ``prompt`` with and without the answer appended, so leading-space BPE
    tokens (``" Yes"``) and word-level tokens (``"Yes"``) are both handled.

    >>> from constraintc.lm import build_tiny_model
    >>> _, tok = build_tiny_model()
    >>> ids = answer_token_ids(tok, "Does a cause b? Answer:")
    >>> tok.convert_ids_to_tokens(list(ids))
    ['Yes', 'No']
    """
    base = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    out = []
    for word in (yes, no):
        full = tokenizer(prompt + answer_separator(prompt) + word, add_special_tokens=True)["input_ids"]
        k = 0
        while k < min(len(base), len(full)) and base[k] == full[k]:
            k += 1
        if k >= len(full):
            raise ConstraintcError(f"error: the answer {word!r} adds no token after the prompt")
        out.append(full[k])
    if out[0] == out[1]:
        raise ConstraintcError(f"error: verbalizers {yes!r} and {no!r} start with the same token")
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is not None and unk in out:
        raise ConstraintcError(f"error: verbalizer {yes if out[0] == unk else no!r} is not in the model's vocabulary")
    return out[0], out[1]


def left_padded_batch(tokenizer, prompts: list[str]):
    """Token ids, attention mask and position ids of left-padded prompts (positions start at 0)."""
    enc = tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=True)
    mask = enc["attention_mask"]
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return enc["input_ids"], mask, positions


def last_logits(model, input_ids, attention_mask, position_ids) -> torch.Tensor:
    """Full-vocabulary logits at the last position of each (left-padded) row, ``[B, V]`` (on the
    model's device, where the inputs are moved)."""
    device = next(model.parameters()).device
    out = model(
        input_ids=input_ids.to(device),
        attention_mask=attention_mask.to(device),
        position_ids=position_ids.to(device),
        logits_to_keep=1,
        use_cache=False,
    )
    return out.logits[:, -1, :]


def answer_logits(model, input_ids, attention_mask, position_ids, yes_id: int, no_id: int) -> torch.Tensor:
    """``l_yes - l_no`` at the last position of each (left-padded) row, shape ``[B]``."""
    last = last_logits(model, input_ids, attention_mask, position_ids)
    return last[:, yes_id] - last[:, no_id]


@torch.no_grad()
def score_prompts(
    model,
    tokenizer,
    prompts: list[str],
    yes: str = "Yes",
    no: str = "No",
    batch_size: int = 16,
    progress: bool = False,
) -> torch.Tensor:
    """P(yes) / (P(yes) + P(no)) at the answer position of each prompt, as a float64 ``[N]`` tensor.

    Prompts are sorted by length and batched with left padding (explicit position ids, so a
    padded prompt scores exactly as it does alone); the result is in the input order.

    >>> from constraintc.lm import build_tiny_model
    >>> model, tok = build_tiny_model()
    >>> p = score_prompts(model, tok, ["a causes b. Does a cause b? Answer:", "Does b cause a?"])
    >>> p.shape, bool(((p > 0) & (p < 1)).all())
    (torch.Size([2]), True)
    """
    from tqdm.auto import tqdm

    if batch_size < 1:
        raise ConstraintcError(f"error: batch_size={batch_size!r}: expected a positive integer")
    n = len(prompts)
    result = torch.empty(n, dtype=torch.float64)
    if n == 0:
        return result
    ids_cache: dict[str, tuple[int, int]] = {}
    lengths = [len(p) for p in prompts]
    order = sorted(range(n), key=lambda i: lengths[i])
    was_training = model.training
    model.eval()
    bar = tqdm(total=n, desc="scoring", unit="prompt", disable=not progress, leave=False)
    try:
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            batch = [prompts[i] for i in idx]
            # prompts ending in whitespace and prompts ending in text may continue differently
            kinds = {answer_separator(p) for p in batch}
            for kind in kinds:
                if kind not in ids_cache:
                    example = next(p for p in batch if answer_separator(p) == kind)
                    ids_cache[kind] = answer_token_ids(tokenizer, example, yes, no)
            input_ids, mask, positions = left_padded_batch(tokenizer, batch)
            last = last_logits(model, input_ids, mask, positions).double().cpu()
            yes_ids = torch.tensor([ids_cache[answer_separator(p)][0] for p in batch])
            no_ids = torch.tensor([ids_cache[answer_separator(p)][1] for p in batch])
            rows = torch.arange(len(batch))
            diff = last[rows, yes_ids] - last[rows, no_ids]
            result[torch.tensor(idx)] = torch.sigmoid(diff)
            bar.update(len(batch))
    finally:
        bar.close()
        model.train(was_training)
    return result
