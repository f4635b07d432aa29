"""The examples in every module's docstrings run and say what they show."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import constraintc

MODULES = sorted(
    m.name for m in pkgutil.walk_packages(constraintc.__path__, "constraintc.")
    if not m.name.endswith("__main__")
)


def test_every_package_module_is_collected():
    # the language, grounding, compiler, circuit, tasks, evaluation, lm and train packages
    for package in ("language", "logic", "compile", "circuit", "tasks", "evaluation", "lm", "train"):
        assert any(m.startswith(f"constraintc.{package}.") for m in MODULES), package


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
