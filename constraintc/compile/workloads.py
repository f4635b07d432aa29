"""Reference workloads shared by the benchmarks and the tests.

The all-pairs transitivity + asymmetry constraint over ``n`` nodes (variables ``r(i,j)`` for
``i != j``; clauses ``r(i,j) & r(j,k) -> r(i,k)`` and ``~(r(i,j) & r(j,i))``) has exactly as many
models as there are labelled strict partial orders on ``n`` elements: a ready oracle.

>>> cnf = transitivity_cnf(3)
>>> cnf.num_vars, len(cnf.clauses), cnf.atom_names[0]
(6, 9, 'r(0,1)')
"""

from __future__ import annotations

import itertools

from constraintc.logic.cnf import CNF

# labelled strict partial orders on n elements (OEIS A001035)
PARTIAL_ORDERS = {1: 1, 2: 3, 3: 19, 4: 219, 5: 4231, 6: 130023, 7: 6129859, 8: 431723379}


def transitivity_cnf(n: int) -> CNF:
    """The all-pairs transitivity + asymmetry CNF on ``n`` nodes, atoms ``r(i,j)`` row-major."""
    idx = {pair: v for v, pair in enumerate(itertools.permutations(range(n), 2), 1)}
    clauses = [(-idx[i, j], -idx[j, k], idx[i, k]) for i, j, k in itertools.permutations(range(n), 3)]
    clauses += [(-idx[i, j], -idx[j, i]) for i, j in itertools.combinations(range(n), 2)]
    return CNF(num_vars=len(idx), clauses=clauses,
               names={v: f"r({i},{j})" for (i, j), v in idx.items()})
