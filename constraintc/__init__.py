"""constraintc: a differentiable logic constraint compiler.

``.rules`` files are parsed, grounded over a graph's nodes, encoded to CNF, compiled into
arithmetic circuits and evaluated in log space as batched torch programs that give the exact
semantic loss of a language model's answers.

Submodules are imported lazily so that ``constraintc check`` does not pay for torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "SemanticLoss": "constraintc.semantic",
    "GraphAtoms": "constraintc.semantic",
    "Circuit": "constraintc.circuit",
    "compile_rules": "constraintc.api",
    "compile_file": "constraintc.api",
    "load_rules": "constraintc.logic",
    "ground": "constraintc.logic",
    "compile_cnf": "constraintc.compile",
    "atom_logits": "constraintc.lm.binding",
    "CNF": "constraintc.logic.cnf",
    "CircuitIR": "constraintc.compile.ir",
    "ConstraintcError": "constraintc.errors",
}

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time the names load on first use
    from constraintc.api import compile_file, compile_rules
    from constraintc.circuit.module import Circuit
    from constraintc.compile import compile_cnf
    from constraintc.compile.ir import CircuitIR
    from constraintc.errors import ConstraintcError
    from constraintc.logic import load_rules
    from constraintc.lm.binding import atom_logits
    from constraintc.logic import ground
    from constraintc.logic.cnf import CNF
    from constraintc.semantic import GraphAtoms, SemanticLoss

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'constraintc' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
