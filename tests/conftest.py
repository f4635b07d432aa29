"""Test configuration: every hypothesis run uses a seed printed in the pytest header.

Re-run a failure exactly with ``pytest --hypothesis-seed=<seed printed above>``.
"""

from __future__ import annotations

import os
import random
import signal

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
    # a shell starts a background job (`pytest ... &` in a script) with SIGINT ignored, and an
    # ignored signal stays ignored in every child: the Ctrl-C tests would test nothing. Catch it
    # again here, so that this process and the runs it starts get Python's KeyboardInterrupt.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_report_header(config):
    return f"hypothesis seed: {_SEED} (reproduce with --hypothesis-seed={_SEED})"


def run_seed() -> int:
    """The run's seed, for tests that draw their own random instances."""
    return _SEED if _SEED is not None else int(os.environ["CONSTRAINTC_TEST_SEED"])



def _session_kernels_dir():
    from constraintc.native import kernels_dir

    return kernels_dir()


# the native-library cache of the session, before any test points CONSTRAINTC_CACHE elsewhere
_SESSION_KERNELS = _session_kernels_dir()
_SEEDED: list = []


def seed_native_cache(root) -> None:
    """Copy this session's built native libraries (with their digest records) into the cache
    ``root``, so that a test's private cache does not rebuild them (seconds each)."""
    import shutil
    from pathlib import Path

    if not _SEEDED:
        from constraintc.circuit import cpu_kernel
        from constraintc.compile import dnnf
        from constraintc.native import NativeBuildError, load_library

        for lib in (cpu_kernel.native_library(), dnnf.native_library()):
            try:
                load_library(lib, _SESSION_KERNELS)
            except NativeBuildError:
                pass  # no compiler: nothing to copy, the tests that need one say so
        _SEEDED.append(True)
    from constraintc.native import make_private_dir

    dest = make_private_dir(Path(root) / "kernels")
    for lib in _SESSION_KERNELS.glob("*.so"):
        record = lib.with_name(lib.name + ".json")
        if record.is_file():
            shutil.copy(lib, dest / lib.name)
            shutil.copy(record, dest / record.name)


def load_example(name: str):
    """The module ``examples/<name>.py`` (examples are scripts, not a package)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
