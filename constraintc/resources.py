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
