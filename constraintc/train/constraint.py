"""The rules side of training: which atoms a graph has, their questions, and the semantic loss.

One *schema* circuit per node count serves every graph of that size: graph ``g``'s nodes are
renamed ``n0..n{k-1}`` in the order of ``record["nodes"]``, its evidence atoms (the given
predicate, e.g. ``edge``) are clamped to true/false from its edges, its asked query atoms get the
model's ``(log p, log(1 - p))``, and query atoms nobody asked are fair coins (log 1/2 both ways),
so the weighted model count stays the probability that the model's answers, completed at random,
satisfy the rules. All graphs of one size go through the circuit in one batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from constraintc.errors import ConstraintcError
from constraintc.tasks.atoms import format_atom, parse_atom
from constraintc.tasks.atoms import rename_args

LOG_HALF = math.log(0.5)


@dataclass
class Schema:
    """A compiled schema circuit over ``n0..n{k-1}`` and where its atoms sit."""

    circuit: object
    query_index: dict[tuple, int]  # (pred, args) -> atom index
    given_atoms: list[tuple[int, str, tuple]]  # (index, pred, args)
    query_keys: list[tuple] = field(default_factory=list)  # in atom order


@dataclass
class GraphAtoms:
    """The query atoms of one graph: canonical atom strings (graph names) and their questions."""

    atoms: list[str]
    questions: list[str]


class RulesConstraint:
    """The semantic loss of a rules file, bound to graphs by name.

    >>> rc = RulesConstraint("transitivity")                       # doctest: +SKIP
    >>> rc.graph_atoms(["B", "C"], [["B", "C"]]).questions         # doctest: +SKIP
    ['Does B cause C?', 'Does C cause B?']
    """

    def __init__(self, rules: str, params: dict | None = None, backend: str = "auto"):
        from constraintc.language import load_rules

        self.rules = rules
        self.params = dict(params or {})
        self.backend = backend
        self.program = load_rules(rules, self.params or None)
        self.queries = dict(self.program.queries)
        if not self.queries:
            raise ConstraintcError(f"error: --rules={rules!r}: the rules declare no query predicate to train")
        for q in self.queries.values():
            if q.template is None:
                raise ConstraintcError(
                    f"error: --rules={rules!r}: query {q.name} has no question template; the model "
                    "needs one to be asked about its atoms"
                )
        verbalizers = {(q.yes, q.no) for q in self.queries.values()}
        if len(verbalizers) != 1:
            raise ConstraintcError(f"error: --rules={rules!r}: all query predicates must share one yes/no verbalizer pair")
        self.yes, self.no = verbalizers.pop()
        givens = dict(self.program.givens)
        bad = [g for g, d in givens.items() if len(d.args) != 2]
        if bad:
            raise ConstraintcError(
                f"error: --rules={rules!r}: given predicate(s) {', '.join(bad)} are not binary; training "
                "clamps evidence from a graph's edges, so each given predicate must be an edge relation"
            )
        self._schemas: dict[int, Schema] = {}
        self._row_cache: dict[tuple, tuple] = {}

    # -- circuits -------------------------------------------------------------------------
    def schema(self, k: int) -> Schema:
        """The schema circuit for graphs of ``k`` nodes (compiled once, then cached)."""
        if k not in self._schemas:
            circuit = self._compile(k)
            query_index, given_atoms, query_keys = {}, [], []
            for i, name in enumerate(circuit.atoms):
                pred, args = parse_atom(name)
                if pred in self.queries:
                    query_index[(pred, args)] = i
                    query_keys.append((pred, args))
                else:
                    given_atoms.append((i, pred, args))
            self._schemas[k] = Schema(circuit, query_index, given_atoms, query_keys)
        return self._schemas[k]

    def _compile(self, k: int):
        try:
            from constraintc.api import compile_rules
        except ImportError:  # the cached front door is missing: ground and compile directly
            from constraintc.circuit import Circuit
            from constraintc.compile import compile_cnf
            from constraintc.logic import ground

            return Circuit.from_ir(compile_cnf(ground(self.program, k).cnf, backend=self.backend).ir)
        return compile_rules(self.rules, k, params=self.params or None, backend=self.backend)

    # -- atoms and questions ---------------------------------------------------------------
    def graph_atoms(self, nodes: list[str], edges: list) -> GraphAtoms:
        """Every query atom of a graph with its question (schema order, graph names)."""
        schema = self.schema(len(nodes))
        back = {f"n{i}": name for i, name in enumerate(nodes)}
        atoms, questions = [], []
        for pred, args in schema.query_keys:
            real = rename_args(args, back)
            atoms.append(format_atom(pred, real))
            questions.append(self.queries[pred].render(real))
        return GraphAtoms(atoms, questions)

    def question(self, atom: str) -> str:
        pred, args = parse_atom(atom)
        return self.queries[pred].render(args)

    def _rows(self, nodes: list[str], edges: list, atoms: list[str]):
        """(schema, fixed log-weight rows, indices of ``atoms``) for one graph (cached: training
        revisits the same graphs every epoch, and building rows is Python work per atom)."""
        key = (tuple(nodes), tuple(map(tuple, edges)), tuple(atoms))
        hit = self._row_cache.get(key)
        if hit is None:
            hit = self._row_cache[key] = self._build_rows(nodes, edges, atoms)
        return hit

    def _build_rows(self, nodes: list[str], edges: list, atoms: list[str]):
        k = len(nodes)
        schema = self.schema(k)
        canon = {name: f"n{i}" for i, name in enumerate(nodes)}
        n_atoms = schema.circuit.num_atoms
        log_p = torch.full((n_atoms,), LOG_HALF, dtype=torch.float64)
        log_q = torch.full((n_atoms,), LOG_HALF, dtype=torch.float64)
        edge_set = {(canon[u], canon[v]) for u, v in edges}
        for i, _pred, args in schema.given_atoms:
            # every given predicate is the graph's edge relation (checked in __init__)
            true = tuple(args) in edge_set
            log_p[i] = 0.0 if true else -math.inf
            log_q[i] = -math.inf if true else 0.0
        idx = []
        for a in atoms:
            pred, args = parse_atom(a)
            try:
                key = (pred, rename_args(args, canon))
            except KeyError:
                key = None
            if key not in schema.query_index:
                raise ConstraintcError(f"error: atom {a!r} is not a query atom of the rules over nodes {nodes}")
            idx.append(schema.query_index[key])
        return schema, log_p, log_q, torch.tensor(idx, dtype=torch.long)

    def log_wmc(self, graphs: list[tuple[list[str], list, list[str]]], log_p: list[torch.Tensor], log_q: list[torch.Tensor]) -> torch.Tensor:
        """log P(rules hold) per graph, ``[G]`` (differentiable in ``log_p``/``log_q``).

        ``graphs[g] = (nodes, edges, asked atoms)``; ``log_p[g]``/``log_q[g]`` are the asked atoms'
        ``log p`` and ``log(1 - p)``. Graphs with the same node count share one circuit call.
        """
        out: list[torch.Tensor | None] = [None] * len(graphs)
        buckets: dict[int, list[int]] = {}
        for g, (nodes, _, _) in enumerate(graphs):
            buckets.setdefault(len(nodes), []).append(g)
        for k, members in buckets.items():
            rows_p, rows_q = [], []
            for g in members:
                nodes, edges, atoms = graphs[g]
                schema, base_p, base_q, idx = self._rows(nodes, edges, atoms)
                rows_p.append(base_p.index_put((idx,), log_p[g].to(torch.float64)))
                rows_q.append(base_q.index_put((idx,), log_q[g].to(torch.float64)))
            values = schema.circuit.log_wmc_log(torch.stack(rows_p), torch.stack(rows_q))[:, 0]
            for j, g in enumerate(members):
                out[g] = values[j]
        return torch.stack(out) if out else torch.zeros(0, dtype=torch.float64)

    def violated(self, graphs, answers: list[torch.Tensor]) -> torch.Tensor:
        """Per graph: do the hard answers (bool per asked atom) contradict the rules and the graph?"""
        with torch.no_grad():
            lp = [torch.where(a, 0.0, -math.inf).double() for a in answers]
            lq = [torch.where(a, -math.inf, 0.0).double() for a in answers]
            return torch.isneginf(self.log_wmc(graphs, lp, lq))
