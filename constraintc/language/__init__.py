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

    try:
        try:
            statements = parse_statements(text)
        except SyntaxErrors as err:
            raise RulesError(filename, text, err.diagnostics) from None
        checker = check_statements(statements, params)
        if checker.diags:
            raise RulesError(filename, text, checker.diags)
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
    """Rules that ground to constant false on every probe size, whatever the given predicates."""
    from constraintc.logic.grounding import GroundingBudget, rule_constants

    false_everywhere: dict[str, int] | None = None
    for n in FALSE_RULE_PROBE_SIZES:
        try:
            consts = rule_constants(program, n, budget=200_000)
        except GroundingBudget:
            return []  # too big to probe cheaply: the grounder reports it on real use
        false_now = {name for name, value in consts.items() if value is False}
        false_everywhere = false_now if false_everywhere is None else false_everywhere & false_now
        if not false_everywhere:
            return []
    sizes = " and ".join(map(str, FALSE_RULE_PROBE_SIZES))
    return [Diagnostic(program.rules[name].span,
                       f"rule {name} can never hold: grounded over {sizes} nodes it is false whatever "
                       f"the given predicates are")
            for name in sorted(false_everywhere or ())]


def load_rules(source: str | Path, params: dict[str, int] | None = None) -> Program:
    """Load a rules file: a path, or a library name (``rules/dsep.rules``, ``dsep.rules``, ``dsep``).

    >>> load_rules("dsep").params["cond_size"]
    2
    >>> load_rules("dsep", params={"cond_size": 1}).domain_sizes["nodeset"]
    1
    """
    path = resolve_rules_path(source)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        from constraintc.errors import ConstraintcError

        raise ConstraintcError(f"error: cannot read rules file {path}: {exc}") from None
    return parse_rules(text, filename=str(source), params=params)
