"""Ground a checked rules :class:`~constraintc.language.Program` over a set of nodes: the driver.

Every quantified template (rule, definition) is instantiated over the domains (the nodes, and
each subset domain: the node subsets up to its size bound, smallest first); given predicates stay
variables (a *schema*, one constraint for every graph on these nodes) or are substituted from a
graph (an *instance*). The result is a hash-consed circuit, its Tseitin CNF (atoms first), and,
on request, sympy formulas. The work is split by responsibility: node names and graph evidence
(:mod:`~constraintc.logic.evidence`), the cost known before grounding
(:mod:`~constraintc.logic.sizes`), instantiation and the unrolling of recursive definitions
(:mod:`~constraintc.logic.instantiate`); this module checks, drives and encodes.

>>> from constraintc.language import load_rules
>>> g = ground(load_rules("transitivity"), 3)
>>> g.atoms[:2], len(g.query_atoms), len(g.given_atoms)
(['causes(n0,n1)', 'causes(n0,n2)'], 6, 6)
>>> g.cnf.num_atoms
12
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property

from constraintc.budget import Budget, format_count
from constraintc.errors import ConstraintcError, OptionError, SourcePosition, Unsatisfiable
from constraintc.language.ast import Program
from constraintc.logic.atoms import Atom, format_atom
from constraintc.logic.boolean import FALSE, TRUE, BoolBuilder, to_sympy, tseitin
from constraintc.logic.cnf import CNF
from constraintc.logic.evidence import (check_acyclic, cycle_text, evidence_from_graph, find_cycle,
                                        graph_predicate, node_names, normalize_graph, shown_nodes)
from constraintc.logic.instantiate import BYTES_PER_CLAUSE, Grounder, check_evidence
from constraintc.logic.sizes import check_grounding_budget


@dataclass


class Grounding:
    """A ground constraint: atoms (query atoms first, then the given atoms of a schema), its
    circuit, its CNF, and sympy views of the whole formula and of each rule."""

    program: Program
    nodes: list[str]
    graph: list[tuple[str, str]] | None
    atoms: list[str]
    atom_info: list[Atom]
    cnf: CNF
    builder: BoolBuilder = field(repr=False)
    atom_lits: list[int] = field(repr=False)
    rule_lits: dict[str, int] = field(repr=False)
    stats: dict = field(default_factory=dict)

    @property
    def query_atoms(self) -> list[str]:
        return [str(a) for a in self.atom_info if a.kind == "query"]

    @property
    def given_atoms(self) -> list[str]:
        return [str(a) for a in self.atom_info if a.kind == "given"]

    @cached_property
    def _index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.atoms)}

    def index(self, name: str) -> int:
        """0-based position of an atom (``cnf`` variable ``index + 1``); spaces are ignored."""
        key = name.replace(" ", "")
        try:
            return self._index[key]
        except KeyError:
            raise KeyError(f"no atom {name!r} in this grounding") from None

    def evidence(self, graph: list[tuple[str, str]]) -> dict[str, bool]:
        """The value of every given atom of this schema for one graph (to clamp them to 0/1).

        >>> from constraintc.language import load_rules
        >>> g = ground(load_rules("transitivity"), ["a", "b"])
        >>> g.evidence([("a", "b")])
        {'edge(a,b)': True, 'edge(b,a)': False}
        """
        pred = graph_predicate(self.program)
        graph = normalize_graph(graph)
        edges = set()
        for edge in graph:
            if not all(x in self.nodes for x in edge):
                raise OptionError("graph", edge, f"edges between the nodes ({shown_nodes(self.nodes)})")
            edges.add(edge)
        out = {}
        for atom in self.atom_info:
            if atom.kind == "given":
                if atom.pred != pred.name:
                    raise ConstraintcError(f"error: given {atom.pred} is not filled by a graph")
                out[str(atom)] = tuple(atom.args) in edges
        missing = {e for e in edges if format_atom(pred.name, e) not in out}
        if missing:
            shown = format_atom(pred.name, sorted(missing)[0])
            raise OptionError("graph", shown, f"atoms of given {pred.name} (its 'where' excludes this one)")
        check_acyclic(self.program, graph, pred)
        return out

    @cached_property
    def _sympy_memo(self):
        return {}, {}

    def _to_sympy(self, lit: int):
        symbols, memo = self._sympy_memo
        return to_sympy(self.builder, lit, symbols, memo)

    @cached_property
    def rule_formulas(self) -> dict:
        """rule name -> sympy formula over the atoms (built on first use: sympy is slow)."""
        return {name: self._to_sympy(lit) for name, lit in self.rule_lits.items()}

    @cached_property
    def formula(self):
        """The whole constraint as one sympy formula (the conjunction of the rules)."""
        from constraintc.logic.boolean import conjunction

        return conjunction(self.rule_formulas.values())


def ground(program: Program, nodes: int | list[str], graph: list[tuple[str, str]] | None = None,
           check_rules: bool = True, budget: Budget | None = None) -> Grounding:
    """Ground ``program`` over ``nodes`` (``4`` means ``n0..n3``).

    With ``graph=None`` the given predicates stay variables (a schema constraint: atoms are the
    query atoms then the given atoms); with a graph (a list of ``(u, v)`` edges) the one given
    predicate over (node, node) is substituted (an instance constraint: only query atoms).
    Raises :class:`~constraintc.errors.Unsatisfiable` when a rule grounds to false, and
    :class:`~constraintc.errors.BudgetExceeded` when ``budget`` (default: :class:`Budget()`,
    the default memory limit and no time limit) runs out or cannot be met: that is checked
    before grounding starts, and every few milliseconds while it runs.

    >>> from constraintc.language import load_rules
    >>> g = ground(load_rules("transitivity"), ["a", "b", "c"], graph=[("a", "b"), ("b", "c")])
    >>> g.atoms[:3], g.cnf.num_atoms
    (['causes(a,b)', 'causes(a,c)', 'causes(b,a)'], 6)
    """
    start = time.perf_counter()
    budget = budget if budget is not None else Budget()
    n = nodes if isinstance(nodes, int) and not isinstance(nodes, bool) else None
    if n is not None and n >= 1:
        check_grounding_budget(program, n, budget, instance=graph is not None)
    names = node_names(nodes)
    if n is None:
        check_grounding_budget(program, len(names), budget, instance=graph is not None)
    budget.check_time("starting to ground")  # what came before (loading, imports) counts too
    g = Grounder(program, names, budget=budget)
    evidence = None
    if graph is not None:
        graph = normalize_graph(graph)
        evidence = evidence_from_graph(program, names, graph)
        check_evidence(g, evidence)
        check_acyclic(program, graph)  # after the atoms: a self-loop its 'where' excludes says so
    atoms, atom_lits = g.make_atoms(evidence)
    g.ground_derived()
    rule_lits = g.ground_rules()
    for name, lit in rule_lits.items():
        if lit == FALSE and check_rules:
            rule = program.rules[name]
            pos = SourcePosition(program.filename, rule.span.line, rule.span.column)
            where = "this graph" if graph is not None else f"{len(names)} nodes"
            cycle = find_cycle(graph) if graph is not None else None
            why = "" if cycle is None else f" (the graph has the cycle {cycle_text(cycle)})"
            raise Unsatisfiable(f"{pos}: error: rule {name} is false on {where}{why}: the "
                                f"constraint has no model")
    grounded = time.perf_counter()
    g.checkpoint()
    g.phase = "encoding the grounding as CNF"
    held = g.memory_estimate()

    def check(num_clauses: int) -> None:
        detail = f"{format_count(num_clauses)} clauses so far"
        budget.check_clauses(num_clauses, g.phase, detail)
        budget.check_time(g.phase, detail)
        budget.check_memory(held + num_clauses * BYTES_PER_CLAUSE, g.phase, detail)
        budget.report(g.phase, detail)

    num_vars, clauses = tseitin(g.b, atom_lits, list(rule_lits.values()), check=check)
    budget.check_clauses(len(clauses), g.phase)
    names_map = {i + 1: str(a) for i, a in enumerate(atoms)}
    comments = [f"constraintc grounding of {program.filename}",
                f"nodes {','.join(names)}",
                "schema (given atoms are variables)" if graph is None else
                "graph " + ", ".join(f"{u}->{v}" for u, v in graph)]
    if program.params:
        comments.append("params " + ", ".join(f"{k}={v}" for k, v in program.params.items()))
    cnf = CNF(num_vars=num_vars, clauses=clauses, num_atoms=len(atoms), names=names_map,
              comments=comments)
    done = time.perf_counter()
    stats = {"atoms": len(atoms), "variables": num_vars, "clauses": len(clauses),
             "circuit_nodes": len(g.b), "ground_seconds": grounded - start,
             "cnf_seconds": done - grounded, "seconds": done - start,
             "memory_estimate": held + len(clauses) * BYTES_PER_CLAUSE}
    return Grounding(program=program, nodes=names, graph=None if graph is None else list(graph),
                     atoms=[str(a) for a in atoms], atom_info=atoms, cnf=cnf, builder=g.b,
                     atom_lits=atom_lits, rule_lits=rule_lits, stats=stats)


def rule_constants(program: Program, nodes: int, budget: int | None = None) -> dict[str, bool | None]:
    """Which rules ground to a constant on a schema over ``nodes`` (None: not constant).
    Raises :class:`GroundingBudget` if grounding takes more than ``budget`` steps."""
    g = Grounder(program, node_names(nodes), max_steps=budget)
    g.make_atoms(None)
    g.ground_derived()
    out = {}
    for name, lit in g.ground_rules().items():
        out[name] = True if lit == TRUE else False if lit == FALSE else None
    return out
