"""User-facing errors.

Anything a user can cause (a bad rules file, a bad option, an unsatisfiable constraint, a budget
exceeded) raises a subclass of :class:`ConstraintcError`. The CLI prints its message and exits
with ``exit_code``, without a traceback; everything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from dataclasses import dataclass


class ConstraintcError(Exception):
    """An error the user can fix; ``str(err)`` is the complete message to show."""

    exit_code = 1


class OptionError(ConstraintcError):
    """A bad command-line option or config value: names the option and the value."""

    exit_code = 2

    def __init__(self, option: str, value: object, expected: str):
        self.option, self.value, self.expected = option, value, expected
        super().__init__(f"error: {option}={value!r}: {expected}")


@dataclass(frozen=True)
class SourcePosition:
    """A 1-based line/column position in a source file."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class BudgetExceeded(ConstraintcError):
    """A compile budget (time, size) ran out before the work finished."""

    exit_code = 3


class Unsatisfiable(ConstraintcError):
    """A constraint has no model: its semantic loss would be infinite."""

    exit_code = 4
