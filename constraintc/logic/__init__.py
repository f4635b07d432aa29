"""Grounding and CNF encoding (checked rules -> propositional constraint).

:func:`load_rules` is the language's loader plus the checks that need grounding (rules that
can never hold); :func:`ground` instantiates a program over nodes or a graph.

>>> from constraintc.logic import ground, load_rules
>>> g = ground(load_rules("dsep"), ["a", "b", "c"], graph=[("a", "b"), ("c", "b")])
>>> g.atoms[0], g.cnf.num_atoms
('dsep(a,b,{})', 12)
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["load_rules", "parse_rules", "ground", "Grounding", "Atom", "format_atom", "parse_atom"]
_GROUNDING = ("ground", "Grounding", "Atom")


def parse_rules(text: str, filename: str = "<string>", params: dict[str, int] | None = None):
    """:func:`constraintc.language.parse_rules`, then a :class:`RulesError` naming every rule
    that grounds to false on every graph.

    >>> parse_rules("given e(X: node, Y: node)\\nrule r: forall X, Y: e(X, Y) & ~e(X, Y)")
    Traceback (most recent call last):
      ...
    constraintc.language.diagnostics.RulesError: <string>:2:6: error: rule r can never hold: ...
    ...
    """
    from constraintc import language

    return _refuse_false_rules(language.parse_rules(text, filename, params))


def load_rules(source: str | Path, params: dict[str, int] | None = None):
    """:func:`constraintc.language.load_rules` (a path or a library name), then a
    :class:`RulesError` naming every rule that grounds to false on every graph.

    >>> sorted(load_rules("transitivity").rules)
    ['asymmetric', 'edges_cause', 'irreflexive', 'transitive']
    """
    from constraintc import language

    return _refuse_false_rules(language.load_rules(source, params))


def _refuse_false_rules(program):
    from constraintc.language import RulesError, too_deep
    from constraintc.logic.false_rules import false_rules

    try:
        diags = false_rules(program)
    except RecursionError:
        raise too_deep(program.filename, program.source) from None
    if diags:
        raise RulesError(program.filename, program.source, diags)
    return program


def __getattr__(name: str):
    # lazy: importing constraintc.logic.cnf must not pull in the parser
    if name in _GROUNDING:
        from constraintc.logic import grounding

        return getattr(grounding, name)
    if name in ("format_atom", "parse_atom"):
        from constraintc.logic import atoms

        return getattr(atoms, name)
    raise AttributeError(f"module 'constraintc.logic' has no attribute {name!r}")
