"""Find a rules file: a local path first, then the library shipped with constraintc.

>>> resolve_rules_path("dsep").name
'dsep.rules'
"""

from __future__ import annotations

from pathlib import Path

from constraintc.errors import ConstraintcError
from constraintc.resources import library_rules, rules_library_dir


class RulesFileNotFound(ConstraintcError):
    exit_code = 2


def resolve_rules_path(source: str | Path) -> Path:
    """A local file if one exists; else ``rules/NAME.rules``, ``NAME.rules`` or ``NAME`` from the
    library; else :class:`RulesFileNotFound` listing the library."""
    path = Path(source)
    if path.is_file():
        return path
    name = path.name
    if path.parent.name not in ("", "rules") or path.parent.parent != Path("."):
        name = None  # a real directory was named: do not silently fall back to the library
    if name is not None:
        if not name.endswith(".rules"):
            name += ".rules"
        candidate = rules_library_dir() / name
        if candidate.is_file():
            return candidate
    library = ", ".join(p.stem for p in library_rules())
    raise RulesFileNotFound(f"error: no rules file '{source}': it is neither a file nor in the "
                            f"rule library ({library})")
