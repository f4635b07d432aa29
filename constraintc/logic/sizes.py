"""What a grounding will cost, known before it starts: lower bounds on its atoms and its memory
from the domains alone, so that a grounding that cannot fit a budget is refused at once.
"""

from __future__ import annotations

import math

from constraintc.budget import Budget, format_count
from constraintc.language import ast
from constraintc.language.ast import Program
from constraintc.logic.boolean import TRUE
from constraintc.logic.evidence import NODE
from constraintc.logic.instantiate import BYTES_PER_ATOM, BYTES_PER_NAME, Grounder


def _domain_size(program: Program, type_: str, n: int) -> int:
    if type_ == NODE:
        return n
    k = min(program.domain_sizes.get(type_, 0), n)
    if k > 64:  # beyond anything that could be grounded: a lower bound is enough
        return math.comb(n, 64)
    return sum(math.comb(n, i) for i in range(k + 1))


def _set_partitions(k: int):
    """Every way to make ``k`` positions equal or distinct: block labels, first use in order."""
    def extend(prefix, blocks):
        if len(prefix) == k:
            yield tuple(prefix)
            return
        for b in range(blocks + 1):
            yield from extend(prefix + [b], max(blocks, b + 1))
    yield from extend([], 0)


def _atoms_at_least(program: Program, pred: ast.PredDecl, n: int) -> int:
    """How many atoms ``pred`` has over ``n`` nodes: exact for node arguments (its ``where``
    only compares them, so it depends only on which arguments are equal), 0 (a lower bound)
    for set arguments or more than 6 arguments."""
    if any(a.type != NODE for a in pred.args) or len(pred.args) > 6:
        return 0
    if pred.where is None:
        return n ** len(pred.args)
    probe = Grounder(program, [f"n{i}" for i in range(len(pred.args))], budget=None)
    scope = {a.name: (i, a.type) for i, a in enumerate(pred.args)}
    test, width = probe.compile_top(pred.where, scope)
    total = 0
    for labels in _set_partitions(len(pred.args)):
        blocks = max(labels, default=-1) + 1
        if blocks <= n and test(list(labels) + [None] * (width - len(labels))) == TRUE:
            total += math.perm(n, blocks)
    return total


def check_grounding_budget(program: Program, n: int, budget: Budget, instance: bool = False) -> None:
    """Refuse at once a grounding over ``n`` nodes that cannot fit ``budget``: from exact counts
    of the atoms and of the argument tuples grounding must enumerate (lower bounds of its work
    and of its memory), before any of it is done."""
    preds = [p for p in program.preds.values() if p.kind == "query" or (p.kind == "given" and not instance)]
    enumerated = sum(_domain_size(program, d, n) for d in program.domain_sizes)
    atoms: dict[str, int] = {}
    for pred in program.preds.values():
        if pred.kind in ("query", "given"):
            size = 1
            for a in pred.args:
                size *= _domain_size(program, a.type, n)
            enumerated += size
    for pred in preds:
        atoms[pred.name] = _atoms_at_least(program, pred, n)
    where = f"grounding {program.filename} over {format_count(n)} nodes"
    budget.refuse_impossible(enumerated, where, f"enumerate at least {format_count(enumerated)} "
                                                f"argument tuples")
    total = sum(atoms.values())
    memory = n * BYTES_PER_NAME + total * BYTES_PER_ATOM
    shown = ", ".join(f"{name} {format_count(c)}" for name, c in atoms.items() if c)
    budget.check_memory(memory, where, f"at least {format_count(total)} atoms: {shown}" if total
                        else f"{format_count(n)} node names")
