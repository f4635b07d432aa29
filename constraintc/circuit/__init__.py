"""circuit stage: layerized log-space evaluation of compiled circuits, artifacts and the cache.

``Circuit`` is imported lazily so that ``constraintc compile --help`` does not pay for torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Circuit": "constraintc.circuit.module",
    "layerize": "constraintc.circuit.layers",
    "LayerPlan": "constraintc.circuit.layers",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'constraintc.circuit' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
