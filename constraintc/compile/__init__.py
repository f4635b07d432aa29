"""Knowledge compilation: CNF -> decomposable, deterministic circuit IR."""

from constraintc.compile.ir import CircuitIR, IRBuilder

__all__ = ["CircuitIR", "IRBuilder"]
