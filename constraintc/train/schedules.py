"""Schedules for lambda(t), the weight of the semantic loss next to the cross-entropy.

``constant``, ``linear`` (the published ramp 0.05 -> 0.30 over training), ``cosine`` (the same
endpoints along a half cosine) and ``adaptive``: lambda starts at ``start``, is multiplied by
``up`` whenever the collapse monitors fire (up to ``maximum``) and by ``down`` when they are
quiet (not below ``start``). A collapse *toward the answer the semantic loss itself favours*
(under transitivity, No: most atoms of a graph are false in most of its models) is the semantic
loss outweighing the labels, not the labels outweighing it: then lambda goes down, not up.
``none`` is lambda = 0 (cross-entropy only).

Every schedule is a small object with ``value(step)``, ``observe(collapsed)`` and a
``state_dict()`` that checkpoints capture, so a resumed run continues the same curve.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SCHEDULES = ("none", "constant", "linear", "cosine", "adaptive")


@dataclass
class LambdaSchedule:
    """lambda(t) over ``total_steps`` steps.

    >>> s = LambdaSchedule("linear", total_steps=101, start=0.05, end=0.30)
    >>> round(s.value(0), 3), round(s.value(50), 3), round(s.value(100), 3)
    (0.05, 0.175, 0.3)
    >>> a = LambdaSchedule("adaptive", total_steps=10, start=0.1, up=2.0, down=0.5, maximum=0.3)
    >>> a.observe(True); a.observe(True); a.value(5)
    0.3
    >>> a.observe(False); a.value(5)
    0.15
    >>> a.observe(True, toward_favoured=True); a.value(5)   # collapsed the way the loss pulls
    0.1
    """

    kind: str
    total_steps: int
    start: float = 0.05
    end: float = 0.30
    up: float = 1.5
    down: float = 0.8
    maximum: float = 1.0
    current: float | None = None  # adaptive state

    def __post_init__(self):
        if self.kind not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.kind!r}")
        if self.current is None:
            self.current = self.start

    def _fraction(self, step: int) -> float:
        if self.total_steps <= 1:
            return 1.0
        return min(max(step / (self.total_steps - 1), 0.0), 1.0)

    def value(self, step: int) -> float:
        """lambda at optimizer step ``step`` (0-based)."""
        if self.kind == "none":
            return 0.0
        if self.kind == "constant":
            return self.start
        if self.kind == "linear":
            return self.start + (self.end - self.start) * self._fraction(step)
        if self.kind == "cosine":
            return self.start + (self.end - self.start) * (1 - math.cos(math.pi * self._fraction(step))) / 2
        return float(self.current)

    def observe(self, collapsed: bool, toward_favoured: bool = False) -> None:
        """Feed one reading of the collapse monitors (only ``adaptive`` reacts).

        ``toward_favoured``: the collapse is onto the answer the semantic loss favours."""
        if self.kind != "adaptive":
            return
        if collapsed and not toward_favoured:
            self.current = min(self.maximum, self.current * self.up)
        else:
            self.current = max(self.start, self.current * self.down)

    def state_dict(self) -> dict:
        return {"current": self.current}

    def load_state_dict(self, state: dict) -> None:
        self.current = state["current"]
