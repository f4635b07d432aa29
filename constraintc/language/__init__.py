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


def parse_rules(text: str, filename: str = "<string>", params: dict[str, int] | None = None) -> Program:
    """Parse and check rules text; raises :class:`RulesError` listing every problem.

    The checks are those of the text alone; :func:`constraintc.logic.parse_rules` adds those
    that need grounding (rules that can never hold).

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
    except RecursionError:
        raise too_deep(filename, text) from None
    return program


def too_deep(filename: str, text: str) -> RulesError:
    """The error of a file whose formulas nest deeper than the recursive passes can follow."""
    from constraintc.language.ast import Span

    return RulesError(filename, text, [Diagnostic(
        Span(1, 1, 1, 2), "the file nests formulas too deeply to process (over ~300 levels)")])


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
