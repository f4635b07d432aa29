"""Prompt formats: plain text, Gemma turn markers, and a tokenizer's own chat template."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from constraintc.errors import OptionError
from constraintc.tasks import generate
from constraintc.tasks.prompts import format_prompt

RECORD = {"premise": "B causes C. C causes D.", "question": "Does B cause D?"}


def test_plain_prompt_ends_where_the_answer_goes():
    assert format_prompt(RECORD) == "B causes C. C causes D.\nQuestion: Does B cause D?\nAnswer:"


def test_chat_without_template_uses_gemma_turns():
    text = format_prompt(RECORD, "chat")
    assert text == (
        "<start_of_turn>user\nAnswer the question below with Yes or No.\nB causes C. C causes D.\nDoes B cause D?<end_of_turn>\n"
        "<start_of_turn>model\n"
    )


def _tokenizer_with_template(template: str):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<bos>": 1, "<eos>": 2, "<unk>": 3}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )
    fast.chat_template = template
    return fast


def test_chat_uses_the_tokenizers_own_template_and_drops_its_bos():
    template = (
        "{{ bos_token }}{% for m in messages %}[{{ m['role'] }}]{{ m['content'] }}[/{{ m['role'] }}]{% endfor %}"
        "{% if add_generation_prompt %}[assistant]{% endif %}"
    )
    tok = _tokenizer_with_template(template)
    text = format_prompt(RECORD, "chat", tok)
    assert text == "[user]Answer the question below with Yes or No.\nB causes C. C causes D.\nDoes B cause D?[/user][assistant]"


def test_tokenizer_without_template_falls_back_to_gemma():
    tok = _tokenizer_with_template(None)
    tok.chat_template = None
    assert format_prompt(RECORD, "chat", tok).startswith("<start_of_turn>user\n")


def test_unknown_style_is_an_option_error():
    with pytest.raises(OptionError, match="--prompt-style"):
        format_prompt(RECORD, "xml")


def test_every_generated_record_formats(tmp_path):
    for record in generate("dsep", "long_names", 20, seed=2):
        text = format_prompt(record)
        assert text.startswith(record["premise"]) and text.endswith("Answer:")
        assert record["question"] in text


def test_cli_data_writes_the_same_records_as_the_api(tmp_path):
    out = tmp_path / "d.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "constraintc", "data", "dsep", "--split", "adversarial", "--n", "9", "--seed", "4",
         "-o", str(out)],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines == generate("dsep", "adversarial", 9, seed=4)
    bad = subprocess.run(
        [sys.executable, "-m", "constraintc", "data", "dsep", "--n", "-3"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "--n=-3" in bad.stderr and "Traceback" not in bad.stderr


def test_cli_data_help_describes_every_split():
    import re

    from constraintc.cli import data
    from constraintc.tasks import SPLITS

    described = data.__doc__.split("splits:")[1].split("examples:")[0]
    # each split named as a word of the description (not just inside another name: mix in mix_large)
    assert [s for s in SPLITS if not re.search(rf"(?<![\w]){s}(?![\w])", described)] == []
