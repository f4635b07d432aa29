"""``SemanticLoss``: the exact semantic loss of a rules file, bound to graphs by name.

A graph is ``(nodes, edges, atoms)``: node names, directed edges between them (the rules' given
edge relation) and the query atoms asked about it (``"causes(B,C)"``). Given the model's answers
for those atoms, the loss of a graph is

    SL(graph) = -log P(the rules hold | the graph's edges, the model's answers)

computed exactly by a compiled circuit, and chosen per graph (docs/semantic_loss.md):

``schema``   graphs of at most ``schema_max_nodes`` nodes: one circuit per node count over
             ``n0..n{k-1}`` (compiled once, cached on disk), the graph's edge atoms clamped to
             0/1; asked atoms weigh ``p`` / ``1 - p``, query atoms nobody asked are fair coins
             (1/2 each way). Every graph of one size goes through its circuit in one batch.
``subsets``  strict-order rules (``transitivity``) on larger graphs: node subsets of
             ``subset_size`` nodes that together contain every asked atom; each subset's loss is
             exact for the whole graph's constraint projected onto its atoms (the graph's
             reachability restricted to the subset is the evidence), and the graph's loss is
             their sum. Atoms outside every subset are projected away, not weighed.
``labels``   rules that the graph decides completely (``dsep``: one model per DAG, found by
             unit propagation on the ground instance): the loss is the cross-entropy of each
             asked atom against its rule-derived label.
``instance`` otherwise: one circuit per graph with the edges substituted, cached by a canonical
             (isomorphism-invariant) graph key, compiled within ``instance_seconds``; past that
             budget a :class:`~constraintc.errors.BudgetExceeded` error says so.

>>> import torch
>>> sl = SemanticLoss("transitivity").double()
>>> ga = sl.graph_atoms(["a", "b", "c"], [("a", "b"), ("b", "c")])
>>> ga.questions[:2]
['Does a cause b?', 'Does a cause c?']
>>> yes = torch.full((6,), 2.0, requires_grad=True)          # Yes/No logits per atom
>>> loss = sl([(["a", "b", "c"], [("a", "b"), ("b", "c")], ga.atoms)], yes, torch.zeros(6))
>>> loss.backward()                     # one model: a<b<c; -3 log p(Yes) - 3 log p(No)
>>> round(loss.item(), 4), sl.strategy(["a", "b", "c"], [])
(6.7616, 'schema')
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from constraintc.errors import BudgetExceeded, ConstraintcError, OptionError, Unsatisfiable
from constraintc.logic.atoms import format_atom, parse_atom, rename_args

LOG_HALF = math.log(0.5)
REDUCTIONS = ("mean", "sum", "none")
INPUTS = ("logits", "log_probs", "probs")


@dataclass
class GraphAtoms:
    """The query atoms of one graph (canonical atom strings in its node names) and their
    questions, rendered from the rules' templates."""

    atoms: list[str]
    questions: list[str]


@dataclass
class _Schema:
    """A schema circuit over ``n0..n{k-1}`` and where its atoms sit."""

    key: str
    query_index: dict[tuple, int]  # (pred, args) -> atom index
    given_atoms: list[tuple[int, tuple]]  # (atom index, args) of the edge relation


@dataclass
class _Part:
    """One circuit evaluation of a graph: fixed log-weight rows (evidence, fair coins), the
    circuit columns of the asked atoms it covers, and their positions among the asked atoms."""

    key: str
    base_p: torch.Tensor
    base_q: torch.Tensor
    cols: torch.Tensor
    sel: torch.Tensor
    names: tuple = ()  # the graph's nodes playing n0, n1, ...


@dataclass
class _Plan:
    kind: str  # schema | subsets | labels | instance | infeasible
    num_atoms: int
    parts: list[_Part] = field(default_factory=list)
    label_sel: torch.Tensor | None = None  # asked atoms with a rule-derived label
    label_val: torch.Tensor | None = None  # their labels (bool)
    order: tuple | None = None  # subsets: (reachability, asked pairs) for exact hard checks


class SemanticLoss(torch.nn.Module):
    """The semantic loss of ``rules`` (a ``.rules`` path or a library name) with ``params``.

    Call it as ``loss(graphs, yes, no=None, inputs="logits")``:

    - ``graphs``: a list of ``(nodes, edges, atoms)`` (or objects/dicts with those fields);
    - ``yes``/``no``: the model's answers for each graph's asked atoms, either a list of 1-D
      tensors (one per graph) or one flat tensor (graphs concatenated). ``inputs="logits"``:
      the Yes and No logits (``no=None``: ``yes`` is the difference ``yes - no``);
      ``"log_probs"``: ``log p`` and ``log(1 - p)``; ``"probs"``: ``p`` (``no`` unused).

    It returns the loss per graph (``reduction="none"``, ``[G]``) or its mean or sum,
    differentiable in the answers, in the module's dtype (float32 until ``.double()`` /
    ``.to(torch.float64)``) and on its device. Values are exact at probabilities 0 and 1:
    ``+inf`` where the answers contradict the rules, with a zero gradient there.

    Budgets: ``schema_max_nodes`` (graphs up to this size use one schema circuit per size),
    ``subset_size`` (strict-order rules beyond that: subsets of this many nodes),
    ``schema_seconds`` / ``instance_seconds`` (compile time allowed per circuit). ``backend``
    picks the circuits' evaluator (``auto``: the C kernel on CPU, Triton on CUDA); ``cache``
    keeps compiled circuits on disk (``$CONSTRAINTC_CACHE``).
    """

    def __init__(self, rules: str = "transitivity", params: dict | None = None, *,
                 reduction: str = "mean", schema_max_nodes: int = 6, subset_size: int | None = None,
                 schema_seconds: float = 60.0, instance_seconds: float = 60.0,
                 backend: str = "auto", cache: bool = True):
        super().__init__()
        from constraintc.logic import load_rules
        from constraintc.logic.projection import is_strict_order_rules

        if reduction not in REDUCTIONS:
            raise OptionError("reduction", reduction, f"one of {', '.join(REDUCTIONS)}")
        if not (isinstance(schema_max_nodes, int) and schema_max_nodes >= 1):
            raise OptionError("schema_max_nodes", schema_max_nodes, "a positive number of nodes")
        subset_size = max(3, schema_max_nodes) if subset_size is None else subset_size
        if not (isinstance(subset_size, int) and 3 <= subset_size):
            raise OptionError("subset_size", subset_size, "a number of nodes >= 3")
        self.rules = str(rules)
        self.params = dict(params or {})
        self.program = load_rules(rules, self.params or None)
        self.reduction = reduction
        self.schema_max_nodes = schema_max_nodes
        self.subset_size = subset_size
        self.schema_seconds = schema_seconds
        self.instance_seconds = instance_seconds
        self.backend = backend
        self.cache = cache
        self.queries = dict(self.program.queries)
        if not self.queries:
            raise ConstraintcError(f"error: rules={self.rules!r}: the rules declare no query predicate to ask about")
        for q in self.queries.values():
            if q.template is None:
                raise ConstraintcError(
                    f"error: rules={self.rules!r}: query {q.name} has no question template; a model "
                    "needs one to be asked about its atoms"
                )
        verbalizers = {(q.yes, q.no) for q in self.queries.values()}
        if len(verbalizers) != 1:
            raise ConstraintcError(f"error: rules={self.rules!r}: all query predicates must share one yes/no verbalizer pair")
        self.yes, self.no = verbalizers.pop()
        givens = dict(self.program.givens)
        bad = [g for g, d in givens.items() if d.arg_types != ("node", "node")]
        if bad or len(givens) > 1:
            raise ConstraintcError(
                f"error: rules={self.rules!r}: given predicate(s) {', '.join(bad or givens)} cannot be "
                "filled from a graph; SemanticLoss clamps one given edge relation over (node, node) "
                "from each graph's edges"
            )
        self.edge_pred = next(iter(givens), None)
        self.strict_order = is_strict_order_rules(self.program)
        self.schemas = torch.nn.ModuleDict()  # "schema_k" -> Circuit (state: see state_dict)
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)  # dtype and device
        self._schema_info: dict[int, _Schema] = {}
        self._schema_failed: int | None = None  # smallest size whose schema ran out of budget
        self._instances: dict[str, torch.nn.Module] = {}  # canonical key -> instance circuit
        self._decided: dict[str, object] = {}  # canonical key -> evaluator | labels | "infeasible" | "undecided"
        from constraintc.logic.decide import definitions

        self._definitions = definitions(self.program) if self.edge_pred is not None else None
        self._canon = _CanonicalGraphs()
        self._plans: dict[tuple, _Plan] = {}
        self._atom_names: dict[int, list[tuple[str, tuple]]] = {}
        self._valid: dict[int, set] = {}
        self.register_load_state_dict_post_hook(_after_load)

    # -- names and questions ------------------------------------------------------------------
    @property
    def dtype(self) -> torch.dtype:
        return self._anchor.dtype

    @property
    def device(self) -> torch.device:
        return self._anchor.device

    def question(self, atom: str) -> str:
        """The question of one atom, from its query's template.

        >>> SemanticLoss("transitivity").question("causes(B,C)")
        'Does B cause C?'
        """
        pred, args = parse_atom(atom)
        if pred not in self.queries:
            raise ConstraintcError(f"error: atom {atom!r}: {self._no_query(pred)}")
        return self.queries[pred].render(args)

    def _query_keys(self, k: int) -> list[tuple[str, tuple]]:
        """Every query atom over ``n0..n{k-1}`` as (pred, args), in grounding order."""
        keys = self._atom_names.get(k)
        if keys is None:
            from constraintc.logic.evidence import node_names
            from constraintc.logic.instantiate import Grounder

            g = Grounder(self.program, node_names(k))
            keys = []
            for pred in self.program.preds.values():
                if pred.kind == "query":
                    for t in g.existing_tuples(pred):
                        keys.append((pred.name, tuple(g.value_name(a.type, v) for a, v in zip(pred.args, t))))
            self._atom_names[k] = keys
        return keys

    def graph_atoms(self, nodes, edges=()) -> GraphAtoms:
        """Every query atom of a graph (in the rules' grounding order, the graph's node names)
        with its question; ``edges`` are checked but do not change the atoms."""
        nodes, _ = self._check_graph(nodes, edges)
        back = {f"n{i}": name for i, name in enumerate(nodes)}
        atoms, questions = [], []
        for pred, args in self._query_keys(len(nodes)):
            real = rename_args(args, back)
            atoms.append(format_atom(pred, real))
            questions.append(self.queries[pred].render(real))
        return GraphAtoms(atoms, questions)

    def _no_query(self, pred: str) -> str:
        shown = ", ".join(f"{q.name}/{q.arity}" for q in self.queries.values())
        return (f"{self.rules} has no query predicate {pred!r} (it asks {shown}); are these the rules "
                "the data was made for?")

    # -- graphs --------------------------------------------------------------------------------
    @staticmethod
    def _unpack(graph) -> tuple:
        if isinstance(graph, dict):
            return graph["nodes"], graph.get("edges", ()), graph.get("atoms", ())
        if hasattr(graph, "nodes") and hasattr(graph, "atoms"):
            return graph.nodes, graph.edges, graph.atoms
        nodes, edges, atoms = graph
        return nodes, edges, atoms

    def _check_graph(self, nodes, edges) -> tuple[list[str], list[tuple[str, str]]]:
        from constraintc.logic.evidence import node_names

        if isinstance(nodes, int):
            raise OptionError("nodes", nodes, "a list of node names")
        nodes = node_names(list(nodes))
        known = set(nodes)
        out = []
        for e in edges:
            if len(e) != 2 or e[0] not in known or e[1] not in known or e[0] == e[1]:
                raise OptionError("edges", tuple(e), f"edges (u, v) between distinct nodes of {nodes}")
            out.append((str(e[0]), str(e[1])))
        if out and self.edge_pred is None:
            raise ConstraintcError(f"error: rules={self.rules!r} declare no given edge relation, but the graph "
                                   f"has edges {out[:3]}: they cannot be evidence")
        return nodes, out

    def _asked(self, nodes: list[str], atoms) -> list[tuple[str, tuple]]:
        out, seen = [], set()
        canon = {name: f"n{i}" for i, name in enumerate(nodes)}
        valid = self._valid.get(len(nodes))
        if valid is None:
            valid = self._valid[len(nodes)] = set(self._query_keys(len(nodes)))
        for a in atoms:
            pred, args = parse_atom(a)
            if pred not in self.queries:
                raise ConstraintcError(f"error: atom {a!r}: {self._no_query(pred)}")
            try:
                key = (pred, rename_args(args, canon))
            except KeyError:
                raise ConstraintcError(f"error: atom {a!r} names a node outside the graph's nodes {nodes}") from None
            if key not in valid:
                params = ", ".join(f"{k}={v!r}" for k, v in sorted(self.program.params.items()))
                hint = (f" (these rules' parameters: {params}; a larger value is given as params={{...}}, "
                        "--param NAME=VALUE on the command line)" if params else "")
                raise ConstraintcError(f"error: atom {a!r} is not a query atom of {self.rules} over nodes {nodes}: "
                                       f"its arity, its query's 'where' or a rules parameter too small excludes it{hint}")
            if (pred, args) in seen:
                raise ConstraintcError(f"error: atom {a!r} is asked twice about one graph")
            seen.add((pred, args))
            out.append((pred, args))
        return out

    def prepare(self, graphs) -> None:
        """Check graphs and build (and cache) what computing their loss needs: circuits, evidence
        rows, labels. Raises :class:`~constraintc.errors.ConstraintcError` for a bad graph or
        atom, or a budget that runs out; the loss calls it implicitly."""
        for g in graphs:
            self._plan(*self._unpack(g))

    def subsets(self, nodes, edges, atoms) -> list[list[str]]:
        """The node subsets whose exact losses make up this graph's loss (``subsets`` strategy);
        ``[]`` for every other strategy.

        >>> sl = SemanticLoss("transitivity", schema_max_nodes=3)
        >>> sl.subsets(["a", "b", "c", "d"], [], ["causes(a,b)", "causes(c,d)"])
        [['a', 'b', 'c'], ['a', 'c', 'd']]
        """
        plan = self._plan(nodes, edges, atoms)
        if plan.kind != "subsets":
            return []
        return [list(part.names) for part in plan.parts]

    def decided(self, nodes, edges, atoms) -> list[bool | None] | None:
        """What the rules say of each of ``atoms`` once the graph is evidence: True or False
        where they force the atom's value, None where they leave it free; None in place of the
        list when the graph does not decide the rules' atoms (their loss then needs a circuit).
        Rules without a given edge relation decide nothing from a graph (None).

        >>> chain = (["a", "b", "c"], [("a", "b"), ("b", "c")])
        >>> SemanticLoss("dsep").decided(*chain, ["dsep(a,c,{})", "dsep(a,c,{b})"])
        [False, True]
        >>> SemanticLoss("transitivity").decided(["a", "b", "c"], [("a", "b")], ["causes(a,c)"]) is None
        True
        """
        nodes, edges = self._check_graph(nodes, edges)
        asked = self._asked(nodes, atoms)
        if self.edge_pred is None:
            return None
        values = self._decide(nodes, edges, asked)
        if values == "infeasible":
            raise ConstraintcError(f"error: the graph's edges {edges} contradict the rules {self.rules!r}")
        return None if values is None else [None if v is None else bool(v) for v in values]

    def strategy(self, nodes, edges=()) -> str:
        """How graphs like this one are computed: ``schema``, ``subsets``, ``labels``,
        ``instance``, or ``infeasible`` (the edges alone contradict the rules)."""
        return self._plan(nodes, edges, ()).kind

    def _plan(self, nodes, edges, atoms) -> _Plan:
        key = (tuple(nodes), tuple(tuple(e) for e in edges), tuple(atoms))
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = self._build_plan(nodes, edges, atoms)
        return plan

    def _build_plan(self, nodes, edges, atoms) -> _Plan:
        nodes, edges = self._check_graph(nodes, edges)
        asked = self._asked(nodes, atoms)
        n = len(nodes)
        if self.strict_order:
            if n <= max(self.schema_max_nodes, self.subset_size):
                return self._schema_plan(nodes, edges, asked)
            return self._subset_plan(nodes, edges, asked)
        if self.edge_pred is not None:
            decided = self._decide(nodes, edges, asked)
            if decided == "infeasible":
                return _Plan("infeasible", len(asked))
            if decided is not None:
                return self._label_plan(decided, asked)
        if n <= self.schema_max_nodes and self._schema(n) is not None:
            return self._schema_plan(nodes, edges, asked)
        return self._instance_plan(nodes, edges, asked)

    # -- schema circuits ---------------------------------------------------------------------
    def _schema(self, k: int) -> _Schema | None:
        """The schema circuit for ``k`` nodes, or None when it does not compile within
        ``schema_seconds`` (then no larger schema is tried either)."""
        if k in self._schema_info:
            return self._schema_info[k]
        if f"schema_{k}" in self.schemas:  # loaded by load_state_dict
            self._add_schema(k, self.schemas[f"schema_{k}"])
            return self._schema_info[k]
        if self._schema_failed is not None and k >= self._schema_failed:
            return None
        from constraintc.api import compile_rules

        try:
            circuit = compile_rules(self.rules, k, params=self.params or None, backend="auto",
                                    cache=self.cache, max_seconds=self.schema_seconds)
        except BudgetExceeded:
            self._schema_failed = k
            return None
        circuit.backend = self.backend
        self._add_schema(k, circuit)
        return self._schema_info[k]

    def _add_schema(self, k: int, circuit) -> None:
        key = f"schema_{k}"
        self.schemas[key] = circuit.to(self.device)
        query_index, given = {}, []
        for i, name in enumerate(circuit.atoms):
            pred, args = parse_atom(name)
            if pred in self.queries:
                query_index[(pred, args)] = i
            else:
                given.append((i, args))
        self._schema_info[k] = _Schema(key, query_index, given)

    def _schema_part(self, k: int, names: list[str], true_edges: set, asked, sel) -> _Part:
        """The ``k``-node schema with ``names[i]`` as ``n{i}``: edges in ``true_edges`` clamped
        true, other edges false, ``asked[j]`` (at ``sel[j]`` among the graph's atoms) free."""
        schema = self._schema(k)
        if schema is None:
            raise BudgetExceeded(
                f"error: rules={self.rules!r}: the {k}-node schema circuit did not compile within "
                f"schema_seconds={self.schema_seconds}"
            )
        circuit = self.schemas[schema.key]
        canon = {name: f"n{i}" for i, name in enumerate(names)}
        size = circuit.num_atoms
        base_p = torch.full((size,), LOG_HALF, dtype=torch.float64)
        base_q = torch.full((size,), LOG_HALF, dtype=torch.float64)
        for i, (u, v) in schema.given_atoms:
            true = (names[int(u[1:])], names[int(v[1:])]) in true_edges
            base_p[i] = 0.0 if true else -math.inf
            base_q[i] = -math.inf if true else 0.0
        cols = [schema.query_index[(pred, rename_args(args, canon))] for pred, args in asked]
        return _Part(schema.key, base_p, base_q, torch.tensor(cols, dtype=torch.long),
                     torch.tensor(sel, dtype=torch.long), tuple(names))

    def _schema_plan(self, nodes, edges, asked) -> _Plan:
        part = self._schema_part(len(nodes), nodes, set(edges), asked, list(range(len(asked))))
        return _Plan("schema", len(asked), [part])

    def _subset_plan(self, nodes, edges, asked) -> _Plan:
        from constraintc.logic.projection import pair_cover, reachability

        index = {name: i for i, name in enumerate(nodes)}
        reach = reachability(len(nodes), [(index[u], index[v]) for u, v in edges])
        pairs = [(index[args[0]], index[args[1]]) for _, args in asked]
        if reach.diagonal().any():  # a cycle: no strict order contains the graph
            return _Plan("infeasible", len(asked))
        parts = []
        m = self.subset_size
        for block in pair_cover(len(nodes), pairs, m):
            inside = set(block)
            sel = [j for j, (u, v) in enumerate(pairs) if u in inside and v in inside]
            names = [nodes[i] for i in block]
            true = {(nodes[u], nodes[v]) for u in block for v in block if reach[u, v]}
            parts.append(self._schema_part(m, names, true, [asked[j] for j in sel], sel))
        return _Plan("subsets", len(asked), parts, order=(reach, pairs))

    # -- graphs that decide the rules, instance circuits --------------------------------------
    def _decide(self, nodes, edges, asked):
        """The rule-derived value of each asked atom (None: the rules leave it free) when the
        graph decides every query atom, ``"infeasible"`` when the graph contradicts the rules,
        else None. Cached per canonical graph.

        Definitional rules (``constraintc.logic.decide``) are evaluated for the asked atoms only;
        other rules are grounded on the graph and decided by unit propagation when it fixes every
        atom."""
        key, mapping, canon_nodes, canon_edges = self._canon.key(nodes, edges)
        state = self._decided.get(key)
        if state is None:
            state = self._decided[key] = self._decide_graph(canon_nodes, canon_edges)
        if state == "infeasible" or state == "undecided":
            return None if state == "undecided" else state
        canon_args = [(pred, rename_args(args, mapping)) for pred, args in asked]
        if isinstance(state, dict):  # every atom of the ground instance
            return [state[a] for a in canon_args]
        index = {name: i for i, name in enumerate(canon_nodes)}
        out = []
        for pred, args in canon_args:
            ikey = tuple(sum(1 << index[v] for v in a) if isinstance(a, frozenset) else index[a] for a in args)
            out.append(state.label(self._definitions, pred, ikey))
        return out

    def _decide_graph(self, canon_nodes, canon_edges):
        if self._definitions is not None:
            from constraintc.logic.decide import InstanceEvaluator

            index = {name: i for i, name in enumerate(canon_nodes)}
            ev = InstanceEvaluator(self.program, len(canon_nodes), {(index[u], index[v]) for u, v in canon_edges})
            return ev if ev.graph_consistent(self._definitions) else "infeasible"
        from constraintc.logic.grounding import ground
        from constraintc.logic.projection import satisfies, unit_propagate

        try:
            grounding = ground(self.program, canon_nodes, graph=canon_edges)
        except Unsatisfiable:
            return "infeasible"
        cnf = grounding.cnf
        value = unit_propagate(cnf.num_vars, cnf.clauses)
        if value is None:
            return "infeasible"
        if all(v in value for v in range(1, len(grounding.atoms) + 1)) and satisfies(cnf.clauses, value):
            return {(a.pred, tuple(a.args)): value[i + 1] for i, a in enumerate(grounding.atom_info)}
        return "undecided"

    def _label_plan(self, labels, asked) -> _Plan:
        sel = [j for j, v in enumerate(labels) if v is not None]  # free atoms weigh p + (1 - p)
        return _Plan("labels", len(asked), label_sel=torch.tensor(sel, dtype=torch.long),
                     label_val=torch.tensor([labels[j] for j in sel], dtype=torch.bool))

    def _instance_plan(self, nodes, edges, asked) -> _Plan:
        key, mapping, canon_nodes, canon_edges = self._canon.key(nodes, edges)
        circuit = self._instances.get(key)
        if circuit is None:
            from constraintc.api import compile_rules

            try:
                circuit = compile_rules(self.rules, canon_nodes, graph=canon_edges if self.edge_pred else None,
                                        params=self.params or None, cache=self.cache,
                                        max_seconds=self.instance_seconds)
            except Unsatisfiable:
                return _Plan("infeasible", len(asked))
            except BudgetExceeded:
                raise BudgetExceeded(
                    f"error: rules={self.rules!r}: a graph of {len(nodes)} nodes is past the budget: no "
                    f"schema circuit of {len(nodes)} nodes (schema_max_nodes={self.schema_max_nodes}, "
                    f"schema_seconds={self.schema_seconds}) and its instance circuit did not compile "
                    f"within instance_seconds={self.instance_seconds}; raise a budget or use smaller graphs"
                ) from None
            if circuit.model_count() == 1:  # the graph decides every atom: keep the labels only
                with torch.no_grad():
                    model = circuit.marginals(torch.full((1, circuit.num_atoms), 0.5, dtype=torch.float64))[0]
                self._decided[key] = {parse_atom(a): bool(model[i] > 0.5) for i, a in enumerate(circuit.atoms)}
                return self._label_plan([self._decided[key][(p, rename_args(a, mapping))] for p, a in asked], asked)
            circuit.backend = self.backend
            self._instances[key] = circuit = circuit.to(self.device)
        index = {parse_atom(a): i for i, a in enumerate(circuit.atoms)}
        cols = [index[(pred, rename_args(args, mapping))] for pred, args in asked]
        size = circuit.num_atoms
        part = _Part(f"instance:{key}", torch.full((size,), LOG_HALF, dtype=torch.float64),
                     torch.full((size,), LOG_HALF, dtype=torch.float64),
                     torch.tensor(cols, dtype=torch.long), torch.arange(len(asked)))
        return _Plan("instance", len(asked), [part])

    def _circuit(self, key: str):
        if key.startswith("instance:"):
            return self._instances[key[len("instance:"):]]
        return self.schemas[key]

    # -- evaluation ----------------------------------------------------------------------------
    def _inputs(self, graphs, yes, no, inputs: str):
        if inputs not in INPUTS:
            raise OptionError("inputs", inputs, f"one of {', '.join(INPUTS)}")
        plans = [self._plan(*self._unpack(g)) for g in graphs]
        sizes = [p.num_atoms for p in plans]

        def flat(x, what):
            if x is None:
                return None
            if isinstance(x, (list, tuple)):
                if len(x) != len(graphs):
                    raise ValueError(f"{what}: {len(x)} tensors for {len(graphs)} graphs")
                for g, (t, s) in enumerate(zip(x, sizes)):
                    if t.numel() != s:
                        raise ValueError(f"{what}[{g}] has {t.numel()} values for {s} asked atoms")
                x = torch.cat([t.reshape(-1) for t in x]) if x else torch.zeros(0)
            elif x.numel() != sum(sizes):
                raise ValueError(f"{what} has {x.numel()} values for {sum(sizes)} asked atoms in all")
            return x.reshape(-1).to(device=self.device, dtype=self.dtype)

        a, b = flat(yes, "yes"), flat(no, "no")
        F = torch.nn.functional
        if inputs == "logits":
            d = a if b is None else a - b
            return plans, F.logsigmoid(d), F.logsigmoid(-d), "log"
        if inputs == "log_probs":
            if b is None:
                raise ValueError("inputs='log_probs' needs both log p (yes) and log(1 - p) (no)")
            return plans, a, b, "log"
        # probabilities go to the circuits as they are: their gradient (A - B) / W is exact at
        # p in {0, 1}, where the chain rule through log p would give inf * 0
        return plans, a, None, "probs"

    def forward(self, graphs, yes, no=None, *, inputs: str = "logits", reduction: str | None = None):
        """The semantic loss of each graph (see the class docstring), reduced."""
        loss = -self._log_wmc(*self._inputs(graphs, yes, no, inputs))
        reduction = reduction or self.reduction
        if reduction not in REDUCTIONS:
            raise OptionError("reduction", reduction, f"one of {', '.join(REDUCTIONS)}")
        if reduction == "none":
            return loss
        return loss.sum() if reduction == "sum" else loss.mean()

    def log_wmc(self, graphs, log_p, log_q) -> torch.Tensor:
        """``log P(rules hold)`` per graph, ``[G]``: ``-`` the unreduced loss, from ``log p`` and
        ``log(1 - p)`` of each graph's asked atoms (lists of tensors, one per graph)."""
        return self._log_wmc(*self._inputs(graphs, log_p, log_q, "log_probs"))

    def _log_wmc(self, plans: list[_Plan], a: torch.Tensor, b: torch.Tensor | None, mode: str) -> torch.Tensor:
        """``mode="log"``: ``a, b`` are log p and log(1 - p); ``"probs"``: ``a`` is p."""
        G = len(plans)
        dtype, device = self.dtype, self.device
        out = torch.zeros(G, dtype=dtype, device=device)
        offsets, total = [], 0
        for p in plans:
            offsets.append(total)
            total += p.num_atoms
        by_circuit: dict[str, list[tuple[int, _Part]]] = {}
        label_src, label_val, label_graph, infeasible = [], [], [], []
        for g, plan in enumerate(plans):
            if plan.kind == "infeasible":
                infeasible.append(g)
            for part in plan.parts:
                by_circuit.setdefault(part.key, []).append((g, part))
            if plan.label_sel is not None and len(plan.label_sel):
                label_src.append(plan.label_sel + offsets[g])
                label_val.append(plan.label_val)
                label_graph.append(torch.full((len(plan.label_sel),), g, dtype=torch.long))
        for key, items in by_circuit.items():
            circuit = self._circuit(key)
            base_p = torch.stack([part.base_p for _, part in items]).to(device=device, dtype=dtype)
            base_q = torch.stack([part.base_q for _, part in items]).to(device=device, dtype=dtype)
            rows = torch.cat([torch.full((len(part.cols),), j, dtype=torch.long) for j, (_, part) in enumerate(items)])
            cols = torch.cat([part.cols for _, part in items])
            src = torch.cat([part.sel + offsets[g] for g, part in items]).to(device)
            rows, cols = rows.to(device), cols.to(device)
            if mode == "probs":
                base = torch.exp(base_p)
                if len(src):
                    base = base.index_put((rows, cols), a[src])
                values = circuit.log_wmc(base)[:, 0]
            else:
                if len(src):
                    base_p = base_p.index_put((rows, cols), a[src])
                    base_q = base_q.index_put((rows, cols), b[src])
                values = circuit.log_wmc_log(base_p, base_q)[:, 0]
            graph_of = torch.tensor([g for g, _ in items], dtype=torch.long, device=device)
            out = out.index_add(0, graph_of, values)
        if label_src:
            src = torch.cat(label_src).to(device)
            label = torch.cat(label_val).to(device)
            if mode == "probs":
                p = a[src]
                w = torch.where(label, p, 1 - p)
                val = torch.log(torch.where(w > 0, w, torch.ones_like(w)))  # no inf * 0 below
                val = torch.where(w > 0, val, torch.full_like(val, -math.inf))
            else:
                val = torch.where(label, a[src], b[src])
            out = out.index_add(0, torch.cat(label_graph).to(device), val)
        if infeasible:
            mask = torch.zeros(G, dtype=torch.bool, device=device)
            mask[infeasible] = True
            out = out.masked_fill(mask, -math.inf)
        # a graph whose answers contradict the rules has log WMC -inf and, by the convention of
        # Circuit, a zero gradient (its other parts would otherwise still pass theirs)
        return torch.where(torch.isneginf(out.detach()), out.detach(), out)

    @torch.no_grad()
    def violated(self, graphs, answers) -> torch.Tensor:
        """Per graph: do the hard answers (a bool tensor per graph, one per asked atom) contradict
        the rules and the graph? Exact on the whole graph whatever the strategy: strict-order
        rules on subsets are decided by a transitive closure (``order_consistent``)."""
        from constraintc.logic.projection import order_consistent

        plans = [self._plan(*self._unpack(g)) for g in graphs]
        if len(answers) != len(plans):
            raise ValueError(f"answers: {len(answers)} tensors for {len(plans)} graphs")
        out = torch.zeros(len(plans), dtype=torch.bool)
        rest = []
        for g, (plan, ans) in enumerate(zip(plans, answers)):
            ans = torch.as_tensor(ans, dtype=torch.bool).reshape(-1).cpu()
            if ans.numel() != plan.num_atoms:
                raise ValueError(f"answers[{g}] has {ans.numel()} values for {plan.num_atoms} asked atoms")
            if plan.order is not None:
                reach, pairs = plan.order
                yes = [p for p, a in zip(pairs, ans.tolist()) if a]
                no = [p for p, a in zip(pairs, ans.tolist()) if not a]
                out[g] = not order_consistent(reach, yes, no)
            else:
                rest.append((g, plan, ans))
        if rest:
            idx = [g for g, _, _ in rest]
            a = torch.cat([ans for _, _, ans in rest]) if rest else torch.zeros(0, dtype=torch.bool)
            lp = torch.where(a, 0.0, -math.inf).to(device=self.device, dtype=self.dtype)
            lq = torch.where(a, -math.inf, 0.0).to(device=self.device, dtype=self.dtype)
            values = self._log_wmc([plan for _, plan, _ in rest], lp, lq, "log")
            out[idx] = torch.isneginf(values).cpu()
        return out

    # -- module state ----------------------------------------------------------------------------
    def _apply(self, fn, recurse=True):
        out = super()._apply(fn, recurse)
        for circuit in self._instances.values():
            circuit._apply(fn, recurse)
        return out

    def get_extra_state(self) -> dict:
        from constraintc.circuit.artifact import content_key
        from constraintc.language.library import resolve_rules_path

        text = resolve_rules_path(self.rules).read_bytes()
        return {"rules": self.rules, "rules_hash": content_key(text, self.params)}

    def set_extra_state(self, state) -> None:
        mine = self.get_extra_state()
        if state.get("rules_hash") != mine["rules_hash"]:
            raise ConstraintcError(
                f"error: load_state_dict: the state holds circuits of rules {state.get('rules')!r} "
                f"(another text or params) and this SemanticLoss has rules {self.rules!r}"
            )

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        # schema circuits are created on first use: make room for those in the state
        from constraintc.circuit import Circuit
        from constraintc.compile.ir import IRBuilder

        head = f"{prefix}schemas."
        for name in sorted({k[len(head):].split(".")[0] for k in state_dict if k.startswith(head)}):
            if name not in self.schemas:
                if not (name.startswith("schema_") and name[7:].isdigit()):
                    error_msgs.append(f"{prefix}schemas.{name}: not a schema circuit of SemanticLoss")
                    continue
                b = IRBuilder(num_vars=1)
                self.schemas[name] = Circuit.from_ir(b.build([b.lit(1)]), backend=self.backend)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    def extra_repr(self) -> str:
        mode = "strict order: schema, then subsets" if self.strict_order else "labels, schema, instance"
        return (f"rules={self.rules!r}, reduction={self.reduction!r}, schema_max_nodes={self.schema_max_nodes}, "
                f"subset_size={self.subset_size}, {mode}")


def _after_load(module: SemanticLoss, incompatible) -> None:
    # loaded circuits replace compiled ones: rebuild where atoms sit, and the plans using them
    module._schema_info.clear()
    module._plans.clear()
    for circuit in module.schemas.values():
        circuit.backend = module.backend


class _CanonicalGraphs:
    """Isomorphism-invariant keys for graphs: isomorphic graphs share one representative (and
    so one instance circuit or set of labels), found by their degree sequence and a VF2
    match. Rules cannot tell nodes apart (no constants name a node), so an isomorphism maps
    one graph's atoms onto the other's."""

    def __init__(self):
        self._reps: dict[str, list] = {}  # degree invariant -> [(DiGraph, canonical names)]
        self._seen: dict[tuple, tuple] = {}

    def key(self, nodes, edges) -> tuple[str, dict, list[str], list[tuple[str, str]]]:
        """(key, graph node -> canonical name, canonical nodes, canonical edges)."""
        memo = (tuple(nodes), tuple(edges))
        hit = self._seen.get(memo)
        if hit is not None:
            return hit
        import networkx as nx
        from networkx.algorithms.isomorphism import DiGraphMatcher

        g = nx.DiGraph()
        g.add_nodes_from(nodes)
        g.add_edges_from(edges)
        # an isomorphism invariant picks the bucket; VF2 decides inside it
        degrees = sorted((g.in_degree(v), g.out_degree(v)) for v in nodes)
        bucket = f"{len(nodes)}:{len(edges)}:" + ",".join(f"{i}.{o}" for i, o in degrees)
        reps = self._reps.setdefault(bucket, [])
        for i, (rep, canon) in enumerate(reps):
            m = DiGraphMatcher(g, rep)
            if m.is_isomorphic():
                mapping = {v: canon[m.mapping[v]] for v in nodes}
                break
        else:
            i = len(reps)
            canon = {v: f"n{j}" for j, v in enumerate(nodes)}
            reps.append((g, canon))
            mapping = dict(canon)
        rep, canon = reps[i]
        canon_nodes = [canon[v] for v in rep.nodes]
        canon_edges = sorted((canon[u], canon[v]) for u, v in rep.edges)
        out = (f"{bucket}:{i}", mapping, canon_nodes, canon_edges)
        self._seen[memo] = out
        return out

    def mapping(self, nodes, edges) -> dict:
        return self.key(nodes, edges)[1]
