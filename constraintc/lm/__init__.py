"""Binding a causal language model to constraint atoms.

``load_model`` loads a Hugging Face causal LM (hub id, local directory, ``.gguf`` file) or builds
the embedded default; ``score_prompts`` turns prompts into P(yes) / (P(yes) + P(no));
``constraintc.lm.binding`` packs all questions about one graph into one row that encodes the
shared premise once. Attributes are imported lazily so that ``import constraintc.lm`` is cheap.

>>> from constraintc.lm import build_tiny_model, score_prompts   # doctest: +SKIP
>>> model, tok = build_tiny_model()                              # doctest: +SKIP
>>> score_prompts(model, tok, ["a causes b. Does a cause b?"])   # doctest: +SKIP
tensor([0.4973], dtype=torch.float64)
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "load_model": "constraintc.lm.models",
    "build_tiny_model": "constraintc.lm.models",
    "build_embedded_model": "constraintc.lm.models",
    "smollm2_gguf_path": "constraintc.lm.models",
    "build_word_tokenizer": "constraintc.lm.tokenizer",
    "score_prompts": "constraintc.lm.scoring",
    "answer_logits": "constraintc.lm.scoring",
    "answer_token_ids": "constraintc.lm.scoring",
    "pack_groups": "constraintc.lm.binding",
    "packed_answer_logits": "constraintc.lm.binding",
    "score_groups": "constraintc.lm.binding",
    "atom_logits": "constraintc.lm.binding",
    "packed_atom_logits": "constraintc.lm.binding",
    "AtomLogits": "constraintc.lm.binding",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'constraintc.lm' has no attribute {name!r}")
