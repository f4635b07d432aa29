"""Lowering, grounding and CNF encoding (rules AST -> propositional constraint)."""
