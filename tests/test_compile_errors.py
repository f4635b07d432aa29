"""Unsatisfiable constraints, budgets and bad options: clear errors, never a hang or an inf."""

from __future__ import annotations

import time

import pytest

from constraintc.compile import compile_cnf
from constraintc.errors import BudgetExceeded, ConstraintcError, OptionError, Unsatisfiable
from constraintc.logic.cnf import CNF
from constraintc.compile.workloads import transitivity_cnf as transitivity

UNSAT = [
    CNF(1, [()]),  # empty clause
    CNF(2, [(1,), (-1,)]),  # contradictory units
    CNF(2, [(1, 2), (1, -2), (-1, 2), (-1, -2)]),  # needs search
    # pigeonhole 3 -> 2: variable p(i, h) = 2 * i + h + 1
    CNF(6, [(1, 2), (3, 4), (5, 6), (-1, -3), (-1, -5), (-3, -5), (-2, -4), (-2, -6), (-4, -6)]),
]


@pytest.mark.parametrize("backend", ["builtin", "pysdd"])
@pytest.mark.parametrize("cnf", UNSAT, ids=["empty", "units", "search", "pigeonhole"])
def test_unsatisfiable_is_a_clear_error(cnf, backend):
    with pytest.raises(Unsatisfiable) as info:
        compile_cnf(cnf, backend=backend)
    msg = str(info.value)
    assert "unsatisfiable" in msg and f"{cnf.num_vars} variables" in msg
    assert isinstance(info.value, ConstraintcError) and info.value.exit_code == 4


def test_unsatisfiable_root_among_several_is_named():
    with pytest.raises(Unsatisfiable, match=r"constraint 1 \(root1\)"):
        compile_cnf([CNF(2, [(1, 2)]), CNF(2, [(1,), (-1,)])])


def test_time_budget_stops_builtin_with_progress():
    start = time.perf_counter()
    with pytest.raises(BudgetExceeded) as info:
        compile_cnf(transitivity(9), backend="builtin", max_seconds=0.3)
    assert time.perf_counter() - start < 5
    msg = str(info.value)
    assert "max_seconds=0.3" in msg and "% of the search space" in msg and "edges" in msg


def test_edge_budget_stops_builtin():
    with pytest.raises(BudgetExceeded, match=r"max_edges=1000 exceeded: .* edges"):
        compile_cnf(transitivity(7), backend="builtin", max_edges=1000)


def test_edge_budget_is_a_limit_not_a_target():
    out = compile_cnf(transitivity(5), backend="builtin", max_edges=1_000_000)
    assert out.stats["edges"] <= 1_000_000 and out.stats["model_count"] == 4231


def test_time_budget_kills_pysdd_child():
    start = time.perf_counter()
    with pytest.raises(BudgetExceeded, match=r"max_seconds=0.5 exceeded: the PySDD back end"):
        compile_cnf(transitivity(8), backend="pysdd", max_seconds=0.5)
    assert time.perf_counter() - start < 5


def test_edge_budget_pysdd():
    with pytest.raises(BudgetExceeded, match="max_edges=10 exceeded"):
        compile_cnf(transitivity(4), backend="pysdd", max_edges=10)


@pytest.mark.parametrize("kwargs, option", [
    ({"backend": "c2d"}, "backend"),
    ({"max_seconds": 0}, "max_seconds"),
    ({"max_seconds": "1"}, "max_seconds"),
    ({"max_edges": -5}, "max_edges"),
    ({"max_edges": 2.5}, "max_edges"),
])
def test_bad_options_name_option_and_value(kwargs, option):
    with pytest.raises(OptionError) as info:
        compile_cnf(CNF(1, [(1,)]), **kwargs)
    assert str(info.value).startswith(f"error: {option}=")


def test_mismatched_atoms_rejected():
    with pytest.raises(ValueError, match="num_atoms differ"):
        compile_cnf([CNF(2, [(1,)]), CNF(3, [(1,)], num_atoms=2), CNF(2, [(1,)], num_atoms=1)])


@pytest.mark.parametrize("backend", ["builtin", "pysdd"])
def test_degenerate_cnfs(backend):
    assert compile_cnf(CNF(4, [(2, 3)]), backend=backend).stats["model_count"] == 3 * 4  # 1, 4 free
    assert compile_cnf(CNF(3, []), backend=backend).stats["model_count"] == 8
    assert compile_cnf(CNF(0, []), backend=backend).stats["model_count"] == 1
    assert compile_cnf(CNF(2, [(1, -1), (2,)]), backend=backend).stats["model_count"] == 2
