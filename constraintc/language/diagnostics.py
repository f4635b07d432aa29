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
    # tabs would misplace the caret (shown as single spaces); other control characters are
    # shown as their visible symbols (U+2400..), one column each
    line = lines[diag.span.line - 1].rstrip("\r").replace("\t", " ").translate(_VISIBLE)
    start = max(diag.span.column - 1, 0)
    if diag.span.end_line == diag.span.line and diag.span.end_column > diag.span.column:
        width = diag.span.end_column - diag.span.column
    else:
        width = 1
    width = max(1, min(width, max(len(line) - start, 1)))
    return f"{head}\n    {line}\n    {' ' * start}^{'~' * (width - 1)}"


_VISIBLE = {c: 0x2400 + c for c in range(0x20)} | {0x7F: 0x2421}


def format_diagnostics(filename: str, source: str, diags: list[Diagnostic]) -> str:
    # lines as the parser counts them: only "\n" ends a line
    lines = source.split("\n")
    return "\n".join(format_diagnostic(filename, lines, d) for d in diags)


# ``str(RulesError)`` shows this many errors (a file of thousands of broken lines is more likely
# the wrong file than thousands of mistakes); ``err.diagnostics`` and ``err.format(None)`` have all.
MAX_SHOWN = 100


class RulesError(ConstraintcError):
    """A rules file has errors; ``str(err)`` lists them (the first ``MAX_SHOWN``),
    ``err.diagnostics`` holds every one."""

    def __init__(self, filename: str, source: str, diagnostics: list[Diagnostic]):
        unique = sorted(set(diagnostics), key=Diagnostic.sort_key)
        self.filename = filename
        self.source = source
        self.diagnostics = unique
        super().__init__(self.format(MAX_SHOWN))

    def format(self, max_shown: int | None = MAX_SHOWN) -> str:
        """Every error with its caret, or the first ``max_shown`` (``None``: all)."""
        shown = self.diagnostics if max_shown is None else self.diagnostics[:max_shown]
        text = format_diagnostics(self.filename, self.source, shown)
        n = len(self.diagnostics)
        if len(shown) < n:
            text += f"\n... {n - len(shown)} more errors not shown"
        if n > 1:
            text += f"\n{n} errors in {self.filename}"
        return text
