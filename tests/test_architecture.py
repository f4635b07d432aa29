"""The package reads like its pipeline: every module imports only from its own stage or the
stages below it (language -> logic -> compile -> circuit -> api -> tasks | lm -> evaluation ->
train -> cli), lazy imports inside functions included.

The check parses every module with ``ast`` (so an import nobody runs in the tests still counts),
and a second check imports each stage in a fresh interpreter, lowest first, and looks at which
of the package's modules got loaded."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import constraintc

PACKAGE = Path(constraintc.__file__).parent
# kernels/ sits at the top of the checkout and ships as constraintc.kernels
KERNELS = PACKAGE.parent / "kernels"

# stage -> rank; stages of equal rank are independent and may not import each other.
STAGES: dict[str, int] = {
    "foundation": 0,
    "language": 1,
    "logic": 2,
    "compile": 3,
    "circuit": 4,
    "api": 5,
    "tasks": 6, "lm": 6,
    "evaluation": 7,
    "train": 8,
    "cli": 9,
}
# top-level modules and folders that belong to a stage named otherwise
SAME_STAGE = {
    # shared by every stage: user-facing errors, budgets, packaged resources, native builds
    "errors": "foundation", "budget": "foundation", "resources": "foundation", "native": "foundation",
    "kernels": "circuit",  # the fused evaluation kernels
    "semantic": "api",  # the Python API over circuits: compile_rules, Circuit, SemanticLoss
    "integrations": "train",  # the Hugging Face Trainer hooks, built on the recipe's loss
    "__main__": "cli",
}


def stage_of(module: str) -> str | None:
    """``constraintc.logic.grounding`` -> ``logic``; the package itself has no stage."""
    parts = module.split(".")
    if parts[0] != "constraintc" or len(parts) == 1:
        return None
    return SAME_STAGE.get(parts[1], parts[1])


def rank_of(stage: str) -> int:
    return STAGES[stage]


def module_files() -> dict[str, Path]:
    files = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(rel.parts).removesuffix(".__init__")
        files[name] = path
    if KERNELS.is_dir():
        for path in sorted(KERNELS.glob("*.py")):
            name = "constraintc.kernels" + ("" if path.stem == "__init__" else f".{path.stem}")
            files[name] = path
    return files


def imported_modules(module: str, path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every import of a ``constraintc`` module in the file, at any depth."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == "constraintc":
                # `from constraintc import x`: x is a submodule or a name the package re-exports
                found += [(node.lineno, f"constraintc.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, target))
    return [(line, name) for line, name in found if name.split(".")[0] == "constraintc"]


def _target_stage(name: str) -> str | None:
    stage = stage_of(name)
    if stage is not None and stage.startswith("__") and stage != "__main__":
        return None  # the package's own metadata (__version__)
    if stage is not None and stage not in STAGES and name.split(".")[1] in constraintc._LAZY:
        return stage_of(constraintc._LAZY[name.split(".")[1]])  # a name the package re-exports
    return stage


def violations() -> list[str]:
    out = []
    for module, path in module_files().items():
        here = stage_of(module)
        if here is None:
            continue  # the package's lazy facade re-exports every stage by design
        assert here in STAGES, f"{module}: no stage assigned to {here!r}; add it to STAGES"
        for line, name in imported_modules(module, path):
            there = _target_stage(name)
            if there is None or there == here:
                continue
            if there not in STAGES:
                out.append(f"{path}:{line}: {module} imports {name}, which belongs to no known stage")
            elif rank_of(there) >= rank_of(here):
                relation = "a stage above" if rank_of(there) > rank_of(here) else "a sibling stage"
                out.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {module} ({here}) imports "
                           f"{name} ({there}), {relation}")
    return out


def test_every_module_imports_only_downward():
    found = violations()
    assert not found, "imports against the pipeline's direction:\n  " + "\n  ".join(found)


def test_the_check_sees_lazy_imports_and_refuses_upward_ones(tmp_path):
    """The checker itself: a lazy import inside a function, from a stage above, is reported."""
    path = tmp_path / "probe.py"
    path.write_text("def f():\n    from constraintc.train.recipe import FinetuneRecipe\n"
                    "    from .grounding import ground\n    from constraintc import SemanticLoss\n")
    found = imported_modules("constraintc.logic.probe", path)
    assert found == [(2, "constraintc.train.recipe"), (3, "constraintc.logic.grounding"),
                     (4, "constraintc.SemanticLoss")]
    assert [rank_of(_target_stage(n)) for _, n in found] == [8, 2, 5]


def test_every_stage_package_has_a_rank():
    stages = {stage_of(m) for m in module_files()} - {None}
    assert stages <= set(STAGES) | set(SAME_STAGE.values())


_IMPORT_IN_ORDER = r"""
import importlib, json, sys
order, modules = json.loads(sys.argv[1]), json.loads(sys.argv[2])
loaded_above = {}
for rank in order:
    for name in modules[str(rank)]:
        importlib.import_module(name)
    seen = [m for m in sys.modules if m.startswith("constraintc.")]
    loaded_above[rank] = sorted(seen)
print(json.dumps(loaded_above))
"""


def test_each_stage_imports_without_the_stages_above_it():
    """Importing every module of the stages up to rank r, lowest first, loads no module of a
    stage above r: each stage runs without the ones that build on it."""
    by_rank: dict[int, list[str]] = {}
    for module in module_files():
        stage = stage_of(module)
        if stage is None or module.startswith("constraintc.kernels.circuit_triton"):
            continue  # the Triton kernel needs the optional triton package
        if module in ("constraintc.__main__",):
            continue  # running it is running the CLI
        by_rank.setdefault(rank_of(stage), []).append(module)
    order = sorted(by_rank)
    if rank_of("train") in by_rank:
        order = [r for r in order if r <= rank_of("train")]  # the CLI is the top: nothing above it
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_IN_ORDER, json.dumps(order),
         json.dumps({str(r): by_rank[r] for r in order})],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    problems = []
    for rank in order:
        for name in loaded[str(rank)]:
            stage = stage_of(name)
            if stage is not None and stage in STAGES and rank_of(stage) > rank:
                problems.append(f"importing the stages up to rank {rank} loaded {name} ({stage})")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("stage", ["language", "logic", "compile"])
def test_lower_stages_do_not_load_torch_or_transformers(stage):
    """The stages before the circuit run without torch: `constraintc check` and `ground` stay fast."""
    names = [m for m in module_files() if stage_of(m) == stage]
    code = ("import importlib, sys, json\n"
            f"for m in {names!r}: importlib.import_module(m)\n"
            "print(json.dumps(sorted(m for m in ('torch', 'transformers') if m in sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
