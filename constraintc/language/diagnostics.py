"""Error reporting for rules files: every problem as ``FILE:LINE:COL: error: message``, the source
line and a caret under the offending text, all problems of a file in one :class:`RulesError`.

>>> d = Diagnostic(Span(1, 9, 1, 10), "unknown predicate 'q'")
>>> print(format_diagnostics("r.rules", "rule r: q(X)", [d]))
r.rules:1:9: error: unknown predicate 'q'
    rule r: q(X)
            ^
"""

from __future__ import annotations

from dataclasses import dataclass

from constraintc.errors import ConstraintcError, SourcePosition
from constraintc.language.ast import Span


@dataclass(frozen=True)
class Diagnostic:
    span: Span
    message: str

    def sort_key(self):
        return (self.span.line, self.span.column, self.message)


def format_diagnostic(filename: str, lines: list[str], diag: Diagnostic) -> str:
    pos = SourcePosition(filename, diag.span.line, diag.span.column)
    head = f"{pos}: error: {diag.message}"
    if not 1 <= diag.span.line <= len(lines):
        return head
    # tabs would misplace the caret; show them as single spaces
    line = lines[diag.span.line - 1].replace("\t", " ")
    start = max(diag.span.column - 1, 0)
    if diag.span.end_line == diag.span.line and diag.span.end_column > diag.span.column:
        width = diag.span.end_column - diag.span.column
    else:
        width = 1
    width = max(1, min(width, max(len(line) - start, 1)))
    return f"{head}\n    {line}\n    {' ' * start}^{'~' * (width - 1)}"


def format_diagnostics(filename: str, source: str, diags: list[Diagnostic]) -> str:
    lines = source.splitlines()
    return "\n".join(format_diagnostic(filename, lines, d) for d in diags)


class RulesError(ConstraintcError):
    """A rules file has errors; ``str(err)`` lists every one, ``err.diagnostics`` holds them."""

    def __init__(self, filename: str, source: str, diagnostics: list[Diagnostic]):
        unique = sorted(set(diagnostics), key=Diagnostic.sort_key)
        self.filename = filename
        self.diagnostics = unique
        text = format_diagnostics(filename, source, unique)
        n = len(unique)
        if n > 1:
            text += f"\n{n} errors in {filename}"
        super().__init__(text)
