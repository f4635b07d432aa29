"""Prompt formats: the text a model reads before it answers Yes or No.

``plain`` is a bare completion prompt; ``chat`` wraps the same content in the model's own chat
template (``tokenizer.apply_chat_template``) when the tokenizer has one, and otherwise in Gemma's
turn markers. Every prompt ends exactly where the answer token comes next.
"""

from __future__ import annotations

STYLES = ("plain", "chat")

GEMMA_TEMPLATE = "<start_of_turn>user\n{content}<end_of_turn>\n<start_of_turn>model\n"
INSTRUCTION = "Answer the question below with Yes or No."


def plain_prompt(premise: str, question: str) -> str:
    return f"{premise}\nQuestion: {question}\nAnswer:"


def chat_content(premise: str, question: str) -> str:
    # the instruction comes first: every question about a graph then shares all of its turn up to
    # the question itself, which is what shared-prefix packing encodes once
    return f"{INSTRUCTION}\n{premise}\n{question}"


def format_prompt(record: dict, style: str = "plain", tokenizer=None) -> str:
    """The prompt for one record, up to where the answer token comes next.

    ``plain``: ``"<premise>\\nQuestion: <question>\\nAnswer:"`` (the answer follows as " Yes"/" No").
    ``chat``: the user turn ``"Answer the question below with Yes or No.\\n<premise>\\n<question>"`` through the
    tokenizer's chat template with the generation prompt added; a leading BOS token the template
    writes is removed, because tokenizing the prompt adds it again. Without a tokenizer or template,
    Gemma's ``<start_of_turn>`` markers are used.

    >>> r = {"premise": "B causes C.", "question": "Does B cause C?"}
    >>> format_prompt(r)
    'B causes C.\\nQuestion: Does B cause C?\\nAnswer:'
    >>> format_prompt(r, "chat").splitlines()[0]
    '<start_of_turn>user'
    """
    premise, question = record["premise"], record["question"]
    if style == "plain":
        return plain_prompt(premise, question)
    if style != "chat":
        from constraintc.errors import OptionError

        raise OptionError("--prompt-style", style, f"one of {', '.join(STYLES)}")
    return apply_chat(chat_content(premise, question), tokenizer)


def apply_chat(content: str, tokenizer=None) -> str:
    """One user turn through the tokenizer's chat template (leading BOS removed), ending where
    the model's reply starts; Gemma's turn markers when there is no template."""
    if tokenizer is not None and getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
        )
        bos = getattr(tokenizer, "bos_token", None)
        if bos and text.startswith(bos):
            text = text[len(bos) :]
        return text
    return GEMMA_TEMPLATE.format(content=content)


REASONING_INSTRUCTION = "Think step by step, then answer with Yes or No."


def reasoning_prompt(record: dict, style: str = "plain", tokenizer=None) -> str:
    """A prompt that asks for reasoning before the answer (for trace evaluation).

    ``plain``: ``"<premise>\\nQuestion: <question>\\nThink step by step, then answer with Yes or
    No.\\nReasoning:"``; ``chat``: the user turn ``"Think step by step, then answer with Yes or
    No.\\n<premise>\\n<question>"`` through the chat template.

    >>> reasoning_prompt({"premise": "B causes C.", "question": "Does B cause C?"}).endswith("Reasoning:")
    True
    """
    premise, question = record["premise"], record["question"]
    if style == "plain":
        return f"{premise}\nQuestion: {question}\n{REASONING_INSTRUCTION}\nReasoning:"
    if style != "chat":
        from constraintc.errors import OptionError

        raise OptionError("--prompt-style", style, f"one of {', '.join(STYLES)}")
    return apply_chat(f"{REASONING_INSTRUCTION}\n{premise}\n{question}", tokenizer)


def format_prompts(records: list[dict], style: str = "plain", tokenizer=None) -> list[str]:
    return [format_prompt(r, style, tokenizer) for r in records]


def answered_text(record: dict, traces: bool = False) -> str:
    """A record as a worked example: the prompt and its label; with ``traces`` the reasoning
    prompt, the record's gold trace, then ``Answer: <label>``.

    >>> answered_text({"premise": "B causes C.", "question": "Does B cause C?", "label": "Yes"})
    'B causes C.\\nQuestion: Does B cause C?\\nAnswer: Yes'
    """
    if traces:
        return f"{reasoning_prompt(record)} {record['trace']}\nAnswer: {record['label']}"
    return f"{format_prompt(record)} {record['label']}"
