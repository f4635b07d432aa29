"""Test configuration: every hypothesis run uses a seed printed in the pytest header.

Re-run a failure exactly with ``pytest --hypothesis-seed=<seed printed above>``.
"""

from __future__ import annotations

import os
import random

from hypothesis import HealthCheck, settings

settings.register_profile(
    "default",
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("ci", parent=settings.get_profile("default"), max_examples=100)
settings.load_profile("ci" if os.environ.get("CI") else "default")

_SEED: int | None = None


def pytest_configure(config):
    global _SEED
    seed = getattr(config.option, "hypothesis_seed", None)
    if seed is None:
        seed = int(os.environ.get("CONSTRAINTC_TEST_SEED", random.randrange(2**32)))
        config.option.hypothesis_seed = seed
    _SEED = int(seed)
    # tests that import this module get a second copy of it: the environment carries the seed over
    os.environ["CONSTRAINTC_TEST_SEED"] = str(_SEED)


def pytest_report_header(config):
    return f"hypothesis seed: {_SEED} (reproduce with --hypothesis-seed={_SEED})"


def run_seed() -> int:
    """The run's seed, for tests that draw their own random instances."""
    return _SEED if _SEED is not None else int(os.environ["CONSTRAINTC_TEST_SEED"])
