"""Knowledge compilation: CNF -> decomposable, deterministic circuit IR.

>>> from constraintc.logic.cnf import CNF
>>> from constraintc.compile import compile_cnf, model_count
>>> out = compile_cnf(CNF(num_vars=2, clauses=[(1, 2)]))
>>> out.stats["model_count"], model_count(out.ir)
(3, 3)

Heavier pieces (the PySDD bridge, the C++ core of the built-in compiler) load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from constraintc.compile.ir import CircuitIR, IRBuilder

_LAZY = {
    "compile_cnf": "constraintc.compile.compiler",
    "Compiled": "constraintc.compile.compiler",
    "model_count": "constraintc.compile.counting",
    "node_vars": "constraintc.compile.counting",
    "from_pysdd": "constraintc.compile.sdd",
    "read_nnf": "constraintc.compile.nnf",
    "write_nnf": "constraintc.compile.nnf",
}

__all__ = ["CircuitIR", "IRBuilder", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'constraintc.compile' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
