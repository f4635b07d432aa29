"""Rules that can never hold: universal rules that ground to false on every graph.

A rules file can be sound as text and still say nothing satisfiable, for example
``forall X, Y: edge(X, Y) & ~edge(X, Y)``. Such a rule is found by grounding it as a schema on a
few small graphs: a rule whose falsity more nodes cannot cure (no positive ``exists``, no
negative ``forall``, no counting that more bindings can satisfy, no derived predicates) and that
folds to false on each of them folds to false on every larger graph too.

>>> from constraintc.language import parse_rules
>>> prog = parse_rules("given e(X: node, Y: node)\\nrule bad: forall X, Y: e(X, Y) & ~e(X, Y)")
>>> [d.message.split(":")[0] for d in false_rules(prog)]
['rule bad can never hold']
"""

from __future__ import annotations

from constraintc.language import ast
from constraintc.language.ast import Program
from constraintc.language.diagnostics import Diagnostic

# Rules are probed on graphs of these sizes; small, so that checking stays fast.
PROBE_SIZES = (2, 3)
# The grounding steps a probe may take before it gives up (the grounder reports a rules file
# that large on real use).
PROBE_STEPS = 200_000


def false_rules(program: Program) -> list[Diagnostic]:
    """A diagnostic for every rule that grounds to false on every graph, whatever the given
    predicates are; empty when there is none or the rules are too large to probe cheaply."""
    from constraintc.logic.grounding import rule_constants
    from constraintc.logic.instantiate import GroundingBudget

    derived = set(program.derived)
    candidates = {name for name, rule in program.rules.items()
                  if universal(rule.formula, True)
                  and not ({a.pred for a in ast.atoms(rule.formula)} & derived)}
    for n in PROBE_SIZES:
        if not candidates:
            return []
        try:
            consts = rule_constants(program, n, budget=PROBE_STEPS)
        except GroundingBudget:
            return []
        candidates &= {name for name, value in consts.items() if value is False}
    smallest = PROBE_SIZES[0]
    return [Diagnostic(program.rules[name].span,
                       f"rule {name} can never hold: on every graph of {smallest} or more nodes it "
                       f"grounds to false, whatever the given predicates are")
            for name in sorted(candidates)]


def universal(f, positive: bool) -> bool:
    """Does ``f``, in this polarity, only ever get falser as the domain grows (no positive
    ``exists``, no negative ``forall``, no counting that more bindings can satisfy)?"""
    return _universal_both(f)[0 if positive else 1]


def _universal_both(f) -> tuple[bool, bool]:
    """``(universal(f, True), universal(f, False))`` in one pass (linear in the formula: an
    ``<->`` needs both polarities of both sides, which asked separately is exponential)."""
    if isinstance(f, (ast.Const, ast.Compare, ast.Atom)):
        return True, True  # derived atoms are excluded by the caller
    if isinstance(f, ast.Not):
        pos, neg = _universal_both(f.arg)
        return neg, pos
    if isinstance(f, (ast.And, ast.Or)):
        both = [_universal_both(a) for a in f.args]
        return all(b[0] for b in both), all(b[1] for b in both)
    if isinstance(f, ast.Implies):
        left, right = _universal_both(f.left), _universal_both(f.right)
        return left[1] and right[0], left[0] and right[1]
    if isinstance(f, ast.Iff):
        ok = all(_universal_both(f.left)) and all(_universal_both(f.right))
        return ok, ok
    if isinstance(f, ast.Quantified):
        pos, neg = _universal_both(f.body)
        return (pos, False) if f.kind == "forall" else (False, neg)
    if isinstance(f, ast.Counting):
        items = all(all(_universal_both(i)) for i in f.items)
        return items and (not f.binders or f.kind == "atmost"), items and not f.binders
    return False, False
