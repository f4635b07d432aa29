"""Which derived predicates use which: the order they are computed in, and their recursion.

A derived predicate depends on the derived predicates its body mentions. Its strongly connected
components (networkx) are the units of computation: a component of one predicate that does not
use itself is an ordinary definition; any other component is recursive and is unrolled together.

>>> from constraintc.language import parse_rules
>>> prog = parse_rules("given e(X: node, Y: node)\\n"
...                    "define reach(X: node, Y: node) := e(X, Y) | exists W: reach(X, W) & e(W, Y)\\n"
...                    "define far(X: node, Y: node) := reach(X, Y) & ~e(X, Y)\\n"
...                    "query q(X: node, Y: node)\\nrule r: forall X, Y: q(X, Y) <-> far(X, Y)")
>>> [(c.names, c.recursive) for c in prog.derived_components()]
[(('reach',), True), (('far',), False)]
"""

from __future__ import annotations

from dataclasses import dataclass

from constraintc.language import ast


@dataclass(frozen=True)
class Component:
    """Derived predicates computed together: ``names`` in declaration order; ``recursive`` when
    one of them uses itself, directly or through the others."""

    names: tuple[str, ...]
    recursive: bool


def dependencies(derived: dict[str, ast.PredDecl]) -> dict[str, set[str]]:
    """``name -> the derived predicates its body mentions``."""
    return {name: {a.pred for a in ast.atoms(pred.body) if a.pred in derived} if pred.body else set()
            for name, pred in derived.items()}


def derived_components(derived: dict[str, ast.PredDecl]) -> list[Component]:
    """The components of the dependency graph, every component after those it uses; among
    components free to go next, the one declared first."""
    import networkx as nx

    deps = dependencies(derived)
    position = {name: i for i, name in enumerate(derived)}
    graph = nx.DiGraph()
    graph.add_nodes_from(derived)
    graph.add_edges_from((used, name) for name, uses in deps.items() for used in uses)
    dag = nx.condensation(graph)
    first = {c: min(position[n] for n in dag.nodes[c]["members"]) for c in dag}
    out = []
    for c in nx.lexicographical_topological_sort(dag, key=first.__getitem__):
        names = tuple(sorted(dag.nodes[c]["members"], key=position.__getitem__))
        out.append(Component(names, len(names) > 1 or names[0] in deps[names[0]]))
    return out
