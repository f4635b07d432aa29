"""Lowering, grounding and CNF encoding (rules AST -> propositional constraint).

>>> from constraintc.language import load_rules
>>> from constraintc.logic import ground
>>> g = ground(load_rules("dsep"), ["a", "b", "c"], graph=[("a", "b"), ("c", "b")])
>>> g.atoms[0], g.cnf.num_atoms
('dsep(a,b,{})', 12)
"""

from __future__ import annotations

__all__ = ["ground", "Grounding", "Atom", "atom_name"]


def __getattr__(name: str):
    # lazy: importing constraintc.logic.cnf must not pull in the parser
    if name in __all__:
        from constraintc.logic import grounding

        return getattr(grounding, name)
    raise AttributeError(f"module 'constraintc.logic' has no attribute {name!r}")
