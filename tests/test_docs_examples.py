"""The documentation's examples run as written: docs/api.md as a doctest, the README's "Use it
in your own loop" section and its Python snippet as scripts."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def _section_code(text: str, heading: str) -> str:
    section = text.split(heading, 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


def test_api_doc_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = doctest.testfile(str(ROOT / "docs" / "api.md"), module_relative=False,
                              optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 40 and result.failed == 0


def test_readme_own_loop_section_runs_as_written():
    text = (ROOT / "README.md").read_text()
    code = _section_code(text, "## Use it in your own loop")
    assert len(code.strip().splitlines()) <= 15
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert torch.isfinite(scope["loss"]) and scope["step"] == 9


def test_readme_python_snippet_runs_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = _section_code((ROOT / "README.md").read_text(), "From Python:")
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert (tmp_path / "trans3.cc").is_file()
    assert scope["Circuit"].load("trans3.cc").atoms == scope["circuit"].atoms


def test_semantic_loss_doc_example_runs():
    code = _section_code((ROOT / "docs" / "semantic_loss.md").read_text(), "# The semantic loss of a graph")
    scope: dict = {}
    exec(compile(code, "semantic_loss.md", "exec"), scope)
    assert scope["yes"].grad is not None
