"""The examples in the language and grounding modules' docstrings run and say what they show."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "constraintc.language", "constraintc.language.ast", "constraintc.language.diagnostics",
    "constraintc.language.library", "constraintc.language.parser", "constraintc.logic",
    "constraintc.logic.boolean", "constraintc.logic.grounding", "constraintc.logic.cli_ground",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
