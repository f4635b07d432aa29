"""constraintc: a differentiable logic constraint compiler.

``.rules`` files are parsed, grounded over a graph's nodes, encoded to CNF, compiled into
arithmetic circuits and evaluated in log space as batched torch programs that give the exact
semantic loss of a language model's answers.

Submodules are imported lazily so that ``constraintc check`` does not pay for torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "ConstraintcError": "constraintc.errors",
    "CNF": "constraintc.logic.cnf",
    "CircuitIR": "constraintc.compile.ir",
    "load_rules": "constraintc.language",
    "ground": "constraintc.logic",
    "Circuit": "constraintc.circuit",
    "compile_cnf": "constraintc.compile",
    "compile_rules": "constraintc.api",
    "SemanticLoss": "constraintc.semantic",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'constraintc' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
