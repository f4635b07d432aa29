"""The rules language: parse and check ``.rules`` files into a :class:`Program`.

>>> prog = load_rules("transitivity")          # the library file rules/transitivity.rules
>>> prog.queries["causes"].render(("a", "b"))
'Does a cause b?'
>>> parse_rules("rule r: p(X)", filename="bad.rules")
Traceback (most recent call last):
  ...
constraintc.language.diagnostics.RulesError: bad.rules:1:9: error: unknown predicate 'p'
...
"""

from __future__ import annotations

from pathlib import Path

from constraintc.language.ast import PredDecl, Program, QueryDecl, RuleDecl
from constraintc.language.diagnostics import Diagnostic, RulesError
from constraintc.language.library import resolve_rules_path

__all__ = [
    "load_rules", "parse_rules", "resolve_rules_path", "Program", "QueryDecl", "PredDecl",
    "RuleDecl", "RulesError", "Diagnostic",
]

# Rules that ground to false are looked for on graphs of these sizes (a rule false on all of them
# is reported); small, so that checking stays fast.
FALSE_RULE_PROBE_SIZES = (2, 3)


def parse_rules(text: str, filename: str = "<string>", params: dict[str, int] | None = None,
                probe_false_rules: bool = True) -> Program:
    """Parse and check rules text; raises :class:`RulesError` listing every problem.

    >>> prog = parse_rules("query p(X: node)\\nrule r: forall X: p(X)", params=None)
    >>> sorted(prog.rules)
    ['r']
    """
    from constraintc.language.checker import check_statements
    from constraintc.language.parser import SyntaxErrors, parse_statements

    text = text.removeprefix("\ufeff")  # a byte-order mark is not part of the text
    try:
        syntax: list[Diagnostic] = []
        opaque: dict = {}
        try:
            statements = parse_statements(text)
        except SyntaxErrors as err:
            # the statements that parsed are still checked: all errors are reported at once
            statements, syntax, opaque = err.statements, err.diagnostics, err.opaque
        checker = check_statements(statements, params, opaque=opaque)
        if syntax or checker.diags:
            raise RulesError(filename, text, syntax + checker.diags)
        program = Program(filename=filename, source=text, params=dict(checker.params),
                          domains=dict(checker.domains), domain_sizes=dict(checker.domain_sizes),
                          preds=dict(checker.preds), rules=dict(checker.rules),
                          statements=tuple(statements))
        if probe_false_rules:
            diags = _false_rules(program)
            if diags:
                raise RulesError(filename, text, diags)
    except RecursionError:
        from constraintc.language.ast import Span

        raise RulesError(filename, text, [Diagnostic(
            Span(1, 1, 1, 2), "the file nests formulas too deeply to process (over ~300 levels)")]
        ) from None
    return program


def _false_rules(program: Program) -> list[Diagnostic]:
    """Rules that ground to constant false, whatever the given predicates, on every graph.

    Only rules whose falsity cannot be cured by more nodes are probed: no positive ``exists``
    (or negative ``forall``), no ``atleast``/``exactly`` over variables, no derived predicates.
    For those, an instance that folds to false on a few nodes folds to false on more nodes too.
    """
    from constraintc.logic.grounding import GroundingBudget, rule_constants

    derived = set(program.derived)
    candidates = {name for name, rule in program.rules.items()
                  if _universal(rule.formula, True) and not (_predicates(rule.formula) & derived)}
    for n in FALSE_RULE_PROBE_SIZES:
        if not candidates:
            return []
        try:
            consts = rule_constants(program, n, budget=200_000)
        except GroundingBudget:
            return []  # too big to probe cheaply: the grounder reports it on real use
        candidates &= {name for name, value in consts.items() if value is False}
    smallest = FALSE_RULE_PROBE_SIZES[0]
    return [Diagnostic(program.rules[name].span,
                       f"rule {name} can never hold: on every graph of {smallest} or more nodes it "
                       f"grounds to false, whatever the given predicates are")
            for name in sorted(candidates)]


def _predicates(f) -> set[str]:
    from constraintc.logic.grounding import _atoms

    return {a.pred for a in _atoms(f)}


def _universal(f, positive: bool) -> bool:
    """Does ``f``, in this polarity, only ever get falser as the domain grows (no positive
    ``exists``, no negative ``forall``, no counting that more bindings can satisfy)?"""
    return _universal_both(f)[0 if positive else 1]


def _universal_both(f) -> tuple[bool, bool]:
    """``(_universal(f, True), _universal(f, False))`` in one pass (linear in the formula: an
    ``<->`` needs both polarities of both sides, which asked separately is exponential)."""
    from constraintc.language import ast

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


def load_rules(source: str | Path, params: dict[str, int] | None = None) -> Program:
    """Load a rules file: a path, or a library name (``rules/dsep.rules``, ``dsep.rules``, ``dsep``).

    >>> load_rules("dsep").params["cond_size"]
    2
    >>> load_rules("dsep", params={"cond_size": 1}).domain_sizes["nodeset"]
    1
    """
    from constraintc.language.source import read_source

    path = resolve_rules_path(source)
    text = read_source(path, str(source))
    return parse_rules(text, filename=str(source), params=params)
