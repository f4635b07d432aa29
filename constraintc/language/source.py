"""Rules text from bytes: UTF-8 (a byte-order mark is accepted), universal newlines, and every
undecodable byte reported at its line and column like any other error of the file.

>>> decode_source(b"\\xef\\xbb\\xbfrule r: p(X)\\r\\n", "a.rules")
'rule r: p(X)\\n'
>>> decode_source(b"rule r:\\n  p(\\xff)", "b.rules")
Traceback (most recent call last):
  ...
constraintc.language.diagnostics.RulesError: b.rules:2:5: error: this byte (0xff) is not UTF-8 text: rules files are UTF-8
    p(\ufffd)
      ^
"""

from __future__ import annotations

import codecs
import threading
from pathlib import Path

from constraintc.errors import ConstraintcError
from constraintc.language.ast import Span
from constraintc.language.diagnostics import Diagnostic, RulesError

BOM = b"\xef\xbb\xbf"

# A rules file larger than this is not a rules file (a data file or a binary named by mistake):
# it is refused before it is read, so that a wrong path cannot exhaust memory.
MAX_RULES_BYTES = 64 * 1024 * 1024


def decode_source(data: bytes, filename: str) -> str:
    """UTF-8 text of ``data`` with ``\\r\\n`` and ``\\r`` read as newlines; raises
    :class:`RulesError` naming the line and column of every byte that is not UTF-8."""
    if data.startswith(BOM):
        data = data[len(BOM):]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _decode_errors(data, filename) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


# At most this many undecodable places are located and listed (a binary file has millions).
MAX_DECODE_ERRORS = 20


_LOCATED = threading.local()


def _locate(exc: UnicodeDecodeError):
    """A codec error handler: replaces like "replace" and records where (one decode, linear)."""
    _LOCATED.total += 1
    if len(_LOCATED.bad) < MAX_DECODE_ERRORS:
        _LOCATED.bad.append((exc.start, exc.end))
    return "\ufffd", exc.end


codecs.register_error("constraintc-locate", _locate)


def _decode_errors(data: bytes, filename: str) -> RulesError:
    _LOCATED.bad, _LOCATED.total = [], 0
    shown_text = data.decode("utf-8", "constraintc-locate")
    bad, total = _LOCATED.bad, _LOCATED.total
    diags = []
    line, line_start, scanned = 1, 0, 0
    for start, end in bad:
        line += data.count(b"\n", scanned, start)
        scanned = start
        line_start = data.rfind(b"\n", 0, start) + 1
        column = len(data[line_start:start].decode("utf-8", "replace")) + 1
        shown = " ".join(f"0x{b:02x}" for b in data[start:end])
        what = "this byte" if end - start == 1 else "these bytes"
        diags.append(Diagnostic(Span(line, column, line, column + 1),
                                f"{what} ({shown}) is not UTF-8 text: rules files are UTF-8"))
    if total > len(bad):
        last = diags[-1].span
        diags.append(Diagnostic(Span(last.line, last.column + 1, last.line, last.column + 2),
                                f"and {total - len(bad)} more places are not UTF-8 text (not "
                                f"listed): is this a rules file?"))
    shown_text = shown_text.replace("\r\n", "\n").replace("\r", "\n")
    return RulesError(filename, shown_text, diags)


def read_source(path: Path, filename: str) -> str:
    """The decoded text of a rules file; a clean error for unreadable, huge or non-UTF-8 files."""
    try:
        size = path.stat().st_size
        if size > MAX_RULES_BYTES:
            raise ConstraintcError(f"error: {filename}: {size} bytes is too large for a rules file "
                                   f"(at most {MAX_RULES_BYTES // 2**20} MiB): is it the right file?")
        data = path.read_bytes()
    except OSError as exc:
        raise ConstraintcError(f"error: cannot read rules file {path}: "
                               f"{exc.strerror or exc}") from None
    return decode_source(data, filename)
