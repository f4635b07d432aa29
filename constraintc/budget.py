"""Budgets that cover the whole pipeline (grounding, CNF encoding, compilation), and progress.

One :class:`Budget` travels with one piece of work: a time limit (``max_seconds``, counted from
when the budget was made), a memory limit (``max_memory``, compared with an *estimate* of what
the work holds: the same input gives the same decision on every machine and in every process)
and a clause limit (``max_clauses``, exact). Each stage checks it before it starts (from lower
bounds of what it must do: an impossible job is refused at once) and while it runs (every few
milliseconds of work), and stops with :class:`~constraintc.errors.BudgetExceeded` saying which
limit ran out, where, and what to change.

>>> b = Budget(max_seconds=60, max_memory=parse_size("2G"))
>>> b.max_memory, format_bytes(b.max_memory)
(2147483648, '2.0 GiB')
>>> b.check_memory(3 * 2**30, "grounding", "10 atoms")
Traceback (most recent call last):
  ...
constraintc.errors.BudgetExceeded: error: budget max_memory=2.0 GiB exceeded while grounding: it would hold an estimated 3.0 GiB (10 atoms); raise --max-memory or make the problem smaller
"""

from __future__ import annotations

import os
import re
import sys
import time

from constraintc.errors import BudgetExceeded, OptionError

_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def physical_memory() -> int | None:
    """Bytes of RAM of this machine, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def default_max_memory() -> int:
    """The memory budget when none is given: 4 GiB, or half of this machine's RAM if less."""
    ram = physical_memory()
    return min(4 * 2**30, ram // 2) if ram else 4 * 2**30


def parse_size(text: str, option: str = "--max-memory") -> int | None:
    """``"512M"`` -> 536870912, ``"2G"``/``"2GiB"``/``"2gb"`` -> 2147483648; ``"none"`` -> None.

    >>> parse_size("1.5k"), parse_size("none")
    (1536, None)
    """
    value = str(text).strip().lower()
    if value in ("none", "unlimited", "inf"):
        return None
    m = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?)(?:i?b)?", value)
    if m is None or len(m.group(1)) > 15:
        raise OptionError(option, text, "a size such as 512M, 4G or 1.5GiB (or 'none')")
    size = int(float(m.group(1)) * _UNITS[m.group(2)])
    if size <= 0:
        raise OptionError(option, text, "a positive size such as 512M or 4G (or 'none')")
    return size


def format_bytes(n: float) -> str:
    if n >= 2**60:
        return f"{n / 2**60:.1e} EiB"
    for unit, scale in (("PiB", 2**50), ("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


def format_count(n: float) -> str:
    """``1234567`` -> ``'1,234,567'``; astronomically large counts in scientific notation."""
    return f"{int(n):,}" if n < 1e15 else f"{n:.1e}"


_DEFAULT = object()


class Budget:
    """Limits for one piece of work: ``max_seconds`` (from creation), ``max_memory`` (bytes,
    estimated; default :func:`default_max_memory`, None for no limit), ``max_clauses``.

    ``held`` is the memory an earlier stage still holds (the CNF while it is compiled): later
    stages get ``max_memory - held``. ``progress`` prints what runs once it has run a while.
    """

    def __init__(self, max_seconds: float | None = None, max_memory=_DEFAULT,
                 max_clauses: int | None = None, progress: "Progress | bool | None" = None):
        if max_seconds is not None and not (isinstance(max_seconds, (int, float))
                                            and not isinstance(max_seconds, bool) and max_seconds > 0):
            raise OptionError("max_seconds", max_seconds, "a positive number of seconds (or None)")
        if max_memory is _DEFAULT:
            max_memory = default_max_memory()
        if max_memory is not None and not (isinstance(max_memory, int) and max_memory > 0):
            raise OptionError("max_memory", max_memory, "a positive number of bytes (or None)")
        if max_clauses is not None and not (isinstance(max_clauses, int) and max_clauses > 0):
            raise OptionError("max_clauses", max_clauses, "a positive number of clauses (or None)")
        self.max_seconds = max_seconds
        self.max_memory = max_memory
        self.max_clauses = max_clauses
        self.started = time.perf_counter()
        self.held = 0
        if progress is True:
            progress = Progress()
        self.progress: Progress | None = progress or None

    def __repr__(self) -> str:
        mem = None if self.max_memory is None else format_bytes(self.max_memory)
        return f"Budget(max_seconds={self.max_seconds}, max_memory={mem}, max_clauses={self.max_clauses})"

    # ---------------------------------------------------------------- time
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def seconds_left(self) -> float | None:
        """Seconds until the time budget runs out (at least a microsecond), None without one."""
        if self.max_seconds is None:
            return None
        return max(1e-6, self.max_seconds - self.elapsed())

    def memory_left(self) -> int | None:
        if self.max_memory is None:
            return None
        return max(1, self.max_memory - self.held)

    def check_time(self, phase: str, detail: str = "") -> None:
        if self.max_seconds is not None and self.elapsed() > self.max_seconds:
            raise BudgetExceeded(
                f"error: budget max_seconds={self.max_seconds:g} exceeded while {phase} "
                f"(after {self.elapsed():.1f} s{'; ' + detail if detail else ''}); raise "
                f"--max-seconds or make the problem smaller")

    def check_memory(self, estimate: float, phase: str, detail: str = "") -> None:
        if self.max_memory is not None and self.held + estimate > self.max_memory:
            raise BudgetExceeded(
                f"error: budget max_memory={format_bytes(self.max_memory)} exceeded while {phase}: "
                f"it would hold an estimated {format_bytes(self.held + estimate)}"
                f"{' (' + detail + ')' if detail else ''}; raise --max-memory or make the problem "
                f"smaller")

    def check_clauses(self, clauses: int, phase: str, detail: str = "") -> None:
        if self.max_clauses is not None and clauses > self.max_clauses:
            raise BudgetExceeded(
                f"error: budget max_clauses={self.max_clauses} exceeded while {phase}: "
                f"{format_count(clauses)} clauses{' (' + detail + ')' if detail else ''}; raise "
                f"--max-clauses or make the problem smaller")

    def refuse_impossible(self, steps: float, phase: str, what: str) -> None:
        """Refuse before starting when ``steps`` units of work cannot fit in the time budget even
        at ``FASTEST_STEPS_PER_SECOND`` (far beyond what this machine class does)."""
        if self.max_seconds is not None and steps / FASTEST_STEPS_PER_SECOND > self.max_seconds:
            raise BudgetExceeded(
                f"error: budget max_seconds={self.max_seconds:g} cannot be met: {phase} must "
                f"{what}: more than any machine does in {self.max_seconds:g} s; make the problem "
                f"smaller or raise --max-seconds")

    def report(self, phase: str, detail: str = "", fraction: float | None = None) -> None:
        if self.progress is not None:
            self.progress.update(phase, detail, fraction)

    def done(self) -> None:
        if self.progress is not None:
            self.progress.close()


# A grounding step (one instantiation or one enumerated tuple) costs about a microsecond in
# Python; a budget is called impossible only beyond 100x that speed.
FASTEST_STEPS_PER_SECOND = 1e8


class Progress:
    """Progress of long work on stderr: nothing for the first ``delay`` seconds, then one line
    (rewritten in place on a terminal, repeated every ``every`` seconds otherwise).

    >>> import io
    >>> out = io.StringIO()
    >>> p = Progress(stream=out, delay=0, every=0)
    >>> p.update("grounding", "12 atoms"); p.close()
    >>> out.getvalue()
    'grounding: 12 atoms (0 s)\\n'
    """

    def __init__(self, stream=None, delay: float = 2.0, every: float | None = None):
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.delay = delay
        self.every = every if every is not None else (0.25 if self.tty else 10.0)
        self.started = time.perf_counter()
        self.last = None  # when the last line was written
        self.width = 0

    def update(self, phase: str, detail: str = "", fraction: float | None = None) -> None:
        now = time.perf_counter()
        if now - self.started < self.delay or (self.last is not None and now - self.last < self.every):
            return
        self.last = now
        pct = "" if fraction is None else f" {100 * min(max(fraction, 0.0), 1.0):.0f}%"
        line = f"{phase}:{pct} {detail} ({now - self.started:.0f} s)".replace("  ", " ")
        try:
            if self.tty:
                self.stream.write("\r" + line.ljust(self.width))
                self.width = len(line)
            else:
                self.stream.write(line + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            self.stream = None
            self.update = lambda *a, **k: None  # a closed stream ends progress, not the work

    def close(self) -> None:
        if self.stream is not None and self.tty and self.width:
            try:
                self.stream.write("\r" + " " * self.width + "\r")
                self.stream.flush()
            except (OSError, ValueError):
                pass
        self.width = 0


def progress_reporter(progress) -> tuple["Progress | None", object]:
    """``(shown, report)`` for a ``progress`` argument: True makes a :class:`Progress` on stderr
    (``shown``, to close when done) whose ``update`` is ``report``; a callable
    ``report(phase, detail, fraction)`` is used as it is; anything false reports nothing."""
    if progress is True:
        shown = Progress()
        return shown, shown.update
    return None, progress or None
