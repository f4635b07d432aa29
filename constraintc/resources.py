"""Files shipped inside the package: grammars, kernels, the rule library, example configs.

They live at the top of the checkout (``grammars/``, ``kernels/``, ``examples/rules/``,
``examples/configs/``) and are installed as ``constraintc.grammars``, ``constraintc.kernels``,
``constraintc.rules`` and ``constraintc.configs``; these helpers find them either way.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path


def _package_dir(package: str) -> Path:
    return Path(str(resources.files(package)))


def grammar_path(name: str = "rules.lark") -> Path:
    return _package_dir("constraintc.grammars") / name


def kernels_dir() -> Path:
    return _package_dir("constraintc.kernels")


def rules_library_dir() -> Path:
    return _package_dir("constraintc.rules")


def configs_dir() -> Path:
    return _package_dir("constraintc.configs")


def library_rules() -> list[Path]:
    """The rule files shipped with constraintc, sorted by name."""
    return sorted(rules_library_dir().glob("*.rules"))


def cache_dir() -> Path:
    """Where compiled circuits and built C++ cores are cached.

    ``$CONSTRAINTC_CACHE`` if set, else ``$XDG_CACHE_HOME/constraintc``, else
    ``~/.cache/constraintc``.
    """
    env = os.environ.get("CONSTRAINTC_CACHE")
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "constraintc"


def prune_builds(built: Path, keep: int = 3) -> list[Path]:
    """Delete older builds beside ``built`` (same ``name-<digest>.so`` family), keeping the
    ``keep`` most recently modified, ``built`` always among them; returns what was deleted.

    Every change of a C++ core's source (or compiler, or flags) builds a new library under a new
    digest; without pruning they accumulate in the cache. A library still loaded by a running
    process is unaffected by the deletion (its mapping keeps the file alive).
    """
    family = built.name.rsplit("-", 1)[0]
    siblings = [p for p in built.parent.glob(f"{family}-*{built.suffix}") if p != built and p.is_file()]
    siblings.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    removed = []
    for old in siblings[max(keep - 1, 0) :]:
        try:
            old.unlink()
            removed.append(old)
        except OSError:
            pass  # another process removed it first, or it is not ours to remove
    return removed
