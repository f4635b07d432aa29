"""JSONL reading and writing with errors that name the file and line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Iterator

from constraintc.errors import ConstraintcError, OptionError


class DataError(ConstraintcError):
    """A malformed data or predictions file; the message names FILE:LINE."""


def read_jsonl(path: str | Path, option: str = "--data", with_lines: bool = False,
               require: tuple[str, ...] = ()) -> list[dict]:
    """Every JSON object of a JSONL file (blank lines skipped); ``with_lines`` adds each object's
    line number as ``"_line"`` (for error messages; :func:`write_jsonl` drops it again); an
    object without one of the ``require``d fields is a :class:`DataError` naming FILE:LINE.

    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "x.jsonl"); _ = write_jsonl([{"a": 1}], p)
    >>> read_jsonl(p)
    [{'a': 1}]
    """
    return list(iter_jsonl(path, option, with_lines, require))


def iter_jsonl(path: str | Path, option: str = "--data", with_lines: bool = False,
               require: tuple[str, ...] = ()) -> Iterator[dict]:
    path = Path(path)
    if not path.is_file():
        raise OptionError(option, str(path), "an existing JSONL file")
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{path}:{number}:{err.colno}: error: invalid JSON: {err.msg}") from None
            if not isinstance(obj, dict):
                raise DataError(f"{path}:{number}:1: error: expected a JSON object, got {type(obj).__name__}")
            missing = [k for k in require if k not in obj]
            if missing:
                raise DataError(f"{path}:{number}:1: error: record lacks {', '.join(missing)}")
            if with_lines:
                obj.setdefault("_line", number)
            yield obj


def write_jsonl(records: Iterable[dict], path: str | Path | None) -> int:
    """Write records as JSONL to ``path`` (``None`` or ``-``: stdout); returns the count."""
    import sys

    count = 0
    handle = sys.stdout if path in (None, "-") else open(path, "w", encoding="utf-8")
    try:
        for record in records:
            clean = {k: v for k, v in record.items() if k != "_line"}
            handle.write(json.dumps(clean, ensure_ascii=False) + "\n")
            count += 1
    finally:
        if handle is not sys.stdout:
            handle.close()
    return count
