"""The text of the tasks as a model reads it, for building a tokenizer that covers it.

The embedded model's tokenizer (``constraintc.lm.models``) is trained on this text; the caller
that builds the model passes :func:`task_text` in, so the model stage never generates tasks.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TaskText:
    """Sentences of every task: ``texts``; the node names they use: ``names``; the characters
    any node name of any split is spelled from: ``alphabet``."""

    texts: list[str]
    names: tuple[str, ...]
    alphabet: str


def task_text(seed: int = 0, per_task: int = 200, traces: bool = False) -> TaskText:
    """Generated training records of every task, as prompt, question and answer.

    The short node names are added in full; the long-name split's invented words are not (no
    finite vocabulary covers them). ``traces``: also the reasoning prompts, the gold traces and
    every sentence form a trace can take.

    >>> text = task_text(per_task=2)
    >>> text.texts[0].split()[:3], "B" in text.names
    (['B', 'C', 'D'], True)
    """
    from constraintc import tasks
    from constraintc.tasks.graphs import OPEN_ALPHABET, SHORT_NAMES
    from constraintc.tasks.prompts import answered_text
    from constraintc.tasks.traces import SENTENCE_FORMS

    texts = [" ".join(SHORT_NAMES)]
    for task in tasks.TASKS:
        for r in tasks.generate(task, "train", per_task, seed, traces=traces):
            texts.append(f"{r['premise']} {r['question']} {r['label']}")
            if traces:
                texts.append(answered_text(r, traces=True))
    if traces:
        texts.extend(SENTENCE_FORMS)
    return TaskText(texts, tuple(SHORT_NAMES), OPEN_ALPHABET)


def with_records(corpus, records: list[dict]):
    """``corpus`` (a function like :func:`task_text`) plus the text of ``records``: their
    premises, questions, labels and traces, with their node names added to ``names``. A model
    built from it reads the wording of the user's own data as words, not as names.

    >>> text = with_records(task_text, [{"premise": "x feeds y.", "question": "Does x starve y?",
    ...                                  "nodes": ["x", "y"], "label": "No"}])(per_task=2)
    >>> "x feeds y. Does x starve y? No" in text.texts, "x" in text.names
    (True, True)
    """

    def extended(seed: int = 0, per_task: int = 200, traces: bool = False) -> TaskText:
        base = corpus(seed, per_task, traces)
        texts = [" ".join(str(r.get(k) or "") for k in ("premise", "question", "label")) for r in records]
        if traces:
            texts += [str(r["trace"]) for r in records if r.get("trace")]
        names = dict.fromkeys([*base.names, *(str(n) for r in records for n in r.get("nodes", []))])
        return TaskText(base.texts + texts, tuple(names), base.alphabet)

    return extended
