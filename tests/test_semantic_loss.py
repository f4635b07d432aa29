"""``SemanticLoss`` against brute force: every strategy (schema, subsets, labels, instance),
the projection theorem behind subsets, hard-answer violations at any size, and module state.

The transitivity oracle enumerates strict partial orders with numpy (all 2^20 relations on 5
nodes, filtered by irreflexivity, asymmetry and transitivity: 4,231 of them, the number of
labelled posets), independently of the grounder and the compiler.
"""

from __future__ import annotations

import copy
import functools
import io
import itertools
import math
import random

import networkx as nx
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from constraintc.errors import BudgetExceeded, ConstraintcError
from constraintc.semantic import SemanticLoss
from constraintc.logic.atoms import format_atom, parse_atom

# ------------------------------------------------------------------------------ the oracle
@functools.lru_cache(maxsize=None)
def posets(n: int) -> tuple[list[tuple[int, int]], np.ndarray]:
    """(ordered pairs, [models, pairs] bool): every strict partial order on ``range(n)``."""
    pairs = [(i, j) for i in range(n) for j in range(n) if i != j]
    idx = {p: k for k, p in enumerate(pairs)}
    bits = ((np.arange(1 << len(pairs))[:, None] >> np.arange(len(pairs))) & 1).astype(bool)
    ok = np.ones(len(bits), dtype=bool)
    for x, y in pairs:
        ok &= ~(bits[:, idx[(x, y)]] & bits[:, idx[(y, x)]])
    bits = bits[ok]  # asymmetric relations first: 3^(n(n-1)/2) rows are left
    ok = np.ones(len(bits), dtype=bool)
    for x, y, w in itertools.permutations(range(n), 3):
        ok &= ~(bits[:, idx[(x, y)]] & bits[:, idx[(y, w)]] & ~bits[:, idx[(x, w)]])
    return pairs, bits[ok]


def orders_containing(n: int, edges) -> tuple[list, np.ndarray]:
    pairs, models = posets(n)
    idx = {p: k for k, p in enumerate(pairs)}
    keep = np.ones(len(models), dtype=bool)
    for e in edges:
        keep &= models[:, idx[e]]
    return pairs, models[keep]


def oracle_log_wmc(pairs, models, probs: dict) -> torch.Tensor:
    """log of the sum over ``models`` ([M, pairs] bool, distinct rows) of the product of weights:
    ``p`` / ``1 - p`` for the asked pairs (``probs[pair] = p``), 1/2 each way for the others."""
    terms = torch.ones(len(models), dtype=torch.float64)
    for k, pair in enumerate(pairs):
        col = torch.as_tensor(models[:, k])
        if pair in probs:
            terms = terms * torch.where(col, probs[pair], 1 - probs[pair])
        else:
            terms = terms * 0.5
    return torch.log(terms.sum())


def project(pairs, models, subset) -> tuple[list, np.ndarray]:
    """The distinct restrictions of ``models`` to the pairs inside ``subset`` (indices kept)."""
    inside = [k for k, (u, v) in enumerate(pairs) if u in subset and v in subset]
    return [pairs[k] for k in inside], np.unique(models[:, inside], axis=0)


def random_dag(rng: random.Random, n: int, density: float) -> list[tuple[int, int]]:
    order = list(range(n))
    rng.shuffle(order)
    return [(order[i], order[j]) for i in range(n) for j in range(i + 1, n) if rng.random() < density]


def closure_oracle(nodes, edges, atoms, answers) -> bool:
    """Open-world transitivity is violated iff the transitive closure of the edges and the Yes
    answers has a cycle or reaches a pair answered No (the closure is the least model)."""
    g = nx.DiGraph()
    g.add_nodes_from(nodes)
    g.add_edges_from(edges)
    for a, yes in zip(atoms, answers):
        if yes:
            g.add_edge(*parse_atom(a)[1])
    closure = nx.transitive_closure(g, reflexive=False)
    if any(closure.has_edge(v, u) for u, v in closure.edges):
        return True
    return any(not yes and closure.has_edge(*parse_atom(a)[1]) for a, yes in zip(atoms, answers))


@pytest.fixture(scope="module")
def trans():
    return SemanticLoss("transitivity", reduction="none").double()


def test_oracle_counts_labelled_posets():
    assert [len(posets(n)[1]) for n in (2, 3, 4, 5)] == [3, 19, 219, 4231]


# ------------------------------------------------------------------------------ schema
@st.composite
def small_graphs(draw, max_nodes=4):
    n = draw(st.integers(2, max_nodes))
    names = draw(st.permutations(["B", "C", "D", "E", "F", "G"]))[:n]
    rng = random.Random(draw(st.integers(0, 10**6)))
    edges = [(names[u], names[v]) for u, v in random_dag(rng, n, 0.4)]
    pairs = [(x, y) for x in names for y in names if x != y]
    asked = [p for p in pairs if draw(st.booleans())]
    probs = [draw(st.sampled_from([0.0, 1.0, 0.03, 0.5, 0.97]) | st.floats(0.01, 0.99)) for _ in asked]
    return names, edges, asked, probs


@settings(max_examples=30, deadline=None)
@given(small_graphs())
def test_schema_loss_and_gradient_equal_enumeration(trans, case):
    names, edges, asked, probs = case
    n = len(names)
    p = torch.tensor(probs, dtype=torch.float64, requires_grad=True)
    atoms = [format_atom("causes", a) for a in asked]
    graph = (names, edges, atoms)
    assert trans.strategy(names, edges) == "schema"
    got = trans([graph], p, inputs="probs")[0]
    q = p.detach().clone().requires_grad_(True)
    index = {v: i for i, v in enumerate(names)}
    pairs, models = orders_containing(n, [(index[u], index[v]) for u, v in edges])
    weights = {(index[x], index[y]): q[k] for k, (x, y) in enumerate(asked)}
    want = -oracle_log_wmc(pairs, models, weights)
    if math.isinf(want.item()):
        assert math.isinf(got.item()) and got.item() > 0
        return
    assert torch.isclose(got.detach(), want.detach(), atol=1e-9), (got, want)
    if asked:
        (g_got,) = torch.autograd.grad(got, p)
        (g_want,) = torch.autograd.grad(want, q)
        assert not torch.isnan(g_got).any()
        assert torch.allclose(g_got, g_want, atol=1e-7), (g_got, g_want)


def test_input_forms_agree(trans):
    nodes, edges = ["a", "b", "c", "d"], [("a", "b")]
    atoms = trans.graph_atoms(nodes, edges).atoms
    g = [(nodes, edges, atoms), (nodes[:3], [], trans.graph_atoms(nodes[:3]).atoms[:4])]
    torch.manual_seed(0)
    yes, no = torch.randn(len(atoms) + 4, dtype=torch.float64), torch.randn(len(atoms) + 4, dtype=torch.float64)
    d = yes - no
    p = torch.sigmoid(d)
    a = trans(g, yes, no)
    assert torch.allclose(a, trans(g, d))
    assert torch.allclose(a, trans(g, [d[:12], d[12:]]))
    assert torch.allclose(a, trans(g, torch.nn.functional.logsigmoid(d), torch.nn.functional.logsigmoid(-d), inputs="log_probs"))
    assert torch.allclose(a, trans(g, p, inputs="probs"))
    assert torch.allclose(a, -trans.log_wmc(g, [torch.log(p[:12]), torch.log(p[12:])], [torch.log1p(-p[:12]), torch.log1p(-p[12:])]))
    assert torch.isclose(SemanticLoss("transitivity").double()(g, d), a.mean())
    assert torch.isclose(SemanticLoss("transitivity", reduction="sum").double()(g, d), a.sum())
    with pytest.raises(ValueError, match="13 values for 12 asked atoms"):
        trans(g, [d[:13], d[13:]])
    with pytest.raises(ConstraintcError, match="inputs"):
        trans(g, d, inputs="odds")


def test_questions_and_atoms_follow_the_rules_file():
    sl = SemanticLoss("dsep")
    ga = sl.graph_atoms(["B", "C", "D"], [("B", "C")])
    assert "dsep(B,C,{D})" in ga.atoms and len(ga.atoms) == len(set(ga.atoms)) == 12
    assert ga.questions[ga.atoms.index("dsep(B,C,{D})")] == "Are B and C d-separated given {D}?"
    assert (sl.yes, sl.no) == ("Yes", "No") and sl.question("dsep(C,B,{})") == "Are C and B d-separated given {}?"
    with pytest.raises(ConstraintcError, match="edges"):
        sl.graph_atoms(["B", "C"], [("B", "X")])


# ------------------------------------------------------------------------------ projection
@pytest.mark.parametrize("seed", range(3))
def test_projection_theorem_on_five_nodes(seed):
    """Every consistent answer set on a subset S extends to the whole graph: the models of the
    whole constraint, restricted to S, are exactly the strict orders on S that contain the
    graph's reachability restricted to S (and the |S|-node schema circuit has those models)."""
    from constraintc.api import compile_rules
    from constraintc.logic.projection import reachability

    rng = random.Random(seed)
    edges = random_dag(rng, 5, 0.35)
    reach = reachability(5, edges)
    pairs, models = orders_containing(5, edges)
    for size in (3, 4):
        circuit = compile_rules("transitivity", size)
        for subset in itertools.combinations(range(5), size):
            sub_pairs, projected = project(pairs, models, set(subset))
            local = {v: i for i, v in enumerate(subset)}
            evidence = [(local[u], local[v]) for u in subset for v in subset if reach[u, v]]
            l_pairs, l_models = orders_containing(size, evidence)
            assert [(local[u], local[v]) for u, v in sub_pairs] == l_pairs
            assert {tuple(r) for r in projected} == {tuple(r) for r in l_models}
            # the schema circuit with R|S clamped accepts exactly these answer sets
            bits = ((np.arange(1 << len(l_pairs))[:, None] >> np.arange(len(l_pairs))) & 1).astype(bool)
            rows = np.zeros((len(bits), circuit.num_atoms))
            for col, name in enumerate(circuit.atoms):
                pred, (x, y) = parse_atom(name)
                key = (int(x[1:]), int(y[1:]))
                rows[:, col] = bits[:, l_pairs.index(key)] if pred == "causes" else float(key in evidence)
            ok = torch.isfinite(circuit.log_wmc(torch.from_numpy(rows))[:, 0]).numpy()
            assert {tuple(r) for r in bits[ok]} == {tuple(r) for r in l_models}


@settings(max_examples=12, deadline=None)
@given(st.integers(0, 10**6), st.sampled_from([3, 4]))
def test_subset_loss_equals_projected_enumeration(seed, size):
    """Five-node graphs past ``schema_max_nodes``: the loss is the sum, over the chosen subsets,
    of -log WMC of the whole constraint's models projected onto each subset (brute force)."""
    rng = random.Random(seed)
    names = ["p", "q", "r", "s", "t"]
    edges_i = random_dag(rng, 5, 0.3)
    edges = [(names[u], names[v]) for u, v in edges_i]
    all_pairs = [(x, y) for x in range(5) for y in range(5) if x != y]
    asked = [pr for pr in all_pairs if rng.random() < 0.6] or [all_pairs[0]]
    probs = torch.tensor([rng.choice([rng.uniform(0.02, 0.98), 0.0, 1.0]) for _ in asked],
                         dtype=torch.float64, requires_grad=True)
    sl = SemanticLoss("transitivity", schema_max_nodes=size, reduction="none").double()
    atoms = [format_atom("causes", (names[x], names[y])) for x, y in asked]
    graph = (names, edges, atoms)
    assert sl.strategy(names, edges) == "subsets"
    got = sl([graph], probs, inputs="probs")[0]
    subsets = [{names.index(v) for v in s} for s in sl.subsets(*graph)]
    assert all(len(s) == size for s in subsets)
    assert all(any({x, y} <= s for s in subsets) for x, y in asked)  # every asked atom covered
    q = probs.detach().clone().requires_grad_(True)
    pairs, models = orders_containing(5, edges_i)
    weights = {pr: q[k] for k, pr in enumerate(asked)}
    want = sum(-oracle_log_wmc(*project(pairs, models, s), weights) for s in subsets)
    if math.isinf(want.item()):
        assert math.isinf(got.item())
        return
    assert torch.isclose(got.detach(), want.detach(), atol=1e-9), (got, want)
    (g_got,) = torch.autograd.grad(got, probs)
    (g_want,) = torch.autograd.grad(want, q)
    assert torch.allclose(g_got, g_want, atol=1e-7)


@pytest.mark.parametrize("seed", range(3))
def test_fifteen_node_graphs_against_per_subset_enumeration(seed):
    """Graphs of 7-15 nodes with every atom asked: each subset's loss against brute-force
    enumeration of the strict orders on it containing the graph's reachability (networkx)."""
    rng = random.Random(seed)
    sl = SemanticLoss("transitivity", schema_max_nodes=4, reduction="none").double()
    for n in (7, 11, 15):
        names = [f"x{i}" for i in range(n)]
        edges = [(names[u], names[v]) for u, v in random_dag(rng, n, 2.0 / n)]
        atoms = sl.graph_atoms(names, edges).atoms
        assert len(atoms) == n * (n - 1)
        logits = torch.randn(len(atoms), dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
        got = sl([(names, edges, atoms)], logits)[0]
        reach = nx.transitive_closure(nx.DiGraph(edges), reflexive=False) if edges else nx.DiGraph()
        p = dict(zip((parse_atom(a)[1] for a in atoms), torch.sigmoid(logits)))
        want = torch.zeros((), dtype=torch.float64)
        for subset in sl.subsets(names, edges, atoms):
            local = {v: i for i, v in enumerate(subset)}
            ev = [(local[u], local[v]) for u in subset for v in subset if reach.has_edge(u, v)]
            pairs, models = orders_containing(len(subset), ev)
            weights = {(local[x], local[y]): p[(x, y)] for x in subset for y in subset if x != y}
            want = want - oracle_log_wmc(pairs, models, weights)
        assert torch.isclose(got, want, atol=1e-8), (n, got, want)


def test_chain_of_fifteen_is_cross_entropy_on_reachability():
    """On a chain every subset's evidence is a total order: one model, so the loss is the CE of
    every atom in every subset against reachability (the default subset size, float32)."""
    sl = SemanticLoss("transitivity", reduction="sum")
    names = [f"c{i}" for i in range(15)]
    edges = list(zip(names, names[1:]))
    atoms = sl.graph_atoms(names, edges).atoms
    logits = torch.randn(len(atoms), generator=torch.Generator().manual_seed(1))
    got = sl([(names, edges, atoms)], logits)
    count = {a: 0 for a in atoms}
    for subset in sl.subsets(names, edges, atoms):
        for a in atoms:
            x, y = parse_atom(a)[1]
            count[a] += x in subset and y in subset
    labels = torch.tensor([names.index(parse_atom(a)[1][0]) < names.index(parse_atom(a)[1][1]) for a in atoms])
    ce = torch.nn.functional.binary_cross_entropy_with_logits(logits.double(), labels.double(), reduction="none")
    want = (ce * torch.tensor([count[a] for a in atoms], dtype=torch.float64)).sum()
    assert got.dtype == torch.float32 and min(count.values()) >= 1
    assert torch.isclose(got.double(), want, rtol=1e-5)


def test_hard_answers_violate_exactly_on_graphs_of_every_size(trans):
    rng = random.Random(7)
    seen = set()
    for n in (3, 5, 6, 8, 12, 15):
        names = [f"v{i}" for i in range(n)]
        graphs, answers, expected = [], [], []
        for _ in range(12):
            edges = [(names[u], names[v]) for u, v in random_dag(rng, n, 1.5 / n)]
            atoms = trans.graph_atoms(names, edges).atoms
            asked = rng.sample(atoms, rng.randint(1, len(atoms)))
            reach = nx.transitive_closure(nx.DiGraph(edges), reflexive=False) if edges else nx.DiGraph()
            truth = [reach.has_edge(*parse_atom(a)[1]) for a in asked]
            ans = [t if rng.random() < 0.93 else not t for t in truth]
            graphs.append((names, edges, asked))
            answers.append(torch.tensor(ans))
            expected.append(closure_oracle(names, edges, asked, ans))
        got = trans.violated(graphs, answers).tolist()
        assert got == expected, n
        seen.update(expected)
        seen.add(trans.strategy(names, []))
    assert seen >= {True, False, "schema", "subsets"}


def test_cyclic_evidence_is_infeasible_at_any_size(trans):
    for n in (3, 9):
        names = [f"v{i}" for i in range(n)]
        edges = list(zip(names, names[1:])) + [(names[-1], names[0])]
        assert trans.strategy(names, edges) in ("infeasible", "schema")
        assert math.isinf(trans.log_wmc([(names, edges, [])], [torch.zeros(0)], [torch.zeros(0)])[0].item())


# ------------------------------------------------------------------------------ labels
def test_dsep_graphs_decide_every_atom_so_the_loss_is_cross_entropy():
    from constraintc.tasks import generate

    sl = SemanticLoss("dsep", reduction="none").double()
    records = generate("dsep", "train", 120, seed=11)
    groups: dict = {}
    for r in records:
        if len(r["meta"]["z"]) <= 2:  # the library's cond_size
            groups.setdefault(r["group"], []).append(r)
    gen = torch.Generator().manual_seed(3)
    graphs, logits, want = [], [], []
    for members in groups.values():
        nodes, edges = members[0]["nodes"], [tuple(e) for e in members[0]["edges"]]
        atoms = [r["atom"] for r in members]
        z = torch.randn(len(atoms), dtype=torch.float64, generator=gen)
        labels = torch.tensor([r["label"] == "Yes" for r in members], dtype=torch.float64)
        graphs.append((nodes, edges, atoms))
        logits.append(z)
        want.append(torch.nn.functional.binary_cross_entropy_with_logits(z, labels, reduction="sum"))
        assert sl.strategy(nodes, edges) == "labels"
    got = sl(graphs, logits)
    assert torch.allclose(got, torch.stack(want), atol=1e-10)
    assert {len(g[0]) for g in graphs} >= {3, 4, 5, 6}


def test_dsep_labels_match_networkx_on_larger_graphs():
    sl = SemanticLoss("dsep", params={"cond_size": 1})
    rng = random.Random(5)
    for n in (8, 10):
        names = [f"u{i}" for i in range(n)]
        edges = [(names[u], names[v]) for u, v in random_dag(rng, n, 0.3)]
        atoms = rng.sample(sl.graph_atoms(names, edges).atoms, 60)
        g = nx.DiGraph(edges)
        g.add_nodes_from(names)
        truth = torch.tensor([nx.is_d_separator(g, {x}, {y}, set(z)) for x, y, z in (parse_atom(a)[1] for a in atoms)])
        assert sl.strategy(names, edges) == "labels"
        assert not sl.violated([(names, edges, atoms)], [truth])[0]
        flipped = truth.clone()
        flipped[0] = ~flipped[0]
        assert sl.violated([(names, edges, atoms)], [flipped])[0]


# ------------------------------------------------------------------------------ instance
OPEN_WORLD = """
given edge(X: node, Y: node) where X != Y
query causes(X: node, Y: node) where X != Y
    question "Does {X} cause {Y}?"
define link(X: node, Y: node) := edge(X, Y)
rule edges_cause: forall X, Y: link(X, Y) -> causes(X, Y)
rule transitive:  forall X, Y, W: causes(X, Y) & causes(Y, W) -> causes(X, W)
rule asymmetric:  forall X, Y: causes(X, Y) -> ~causes(Y, X)
"""


def test_instance_circuits_are_exact_and_shared_between_isomorphic_graphs(tmp_path):
    path = tmp_path / "open.rules"
    path.write_text(OPEN_WORLD)
    sl = SemanticLoss(str(path), schema_max_nodes=3, reduction="none").double()
    assert not sl.strict_order  # a derived predicate: the projection is not claimed
    rng = random.Random(2)
    edges_i = [(0, 1), (1, 2), (0, 3)]
    for names in (["a", "b", "c", "d"], ["w", "z", "y", "x"]):
        perm = list(range(4))
        rng.shuffle(perm)
        nodes = [names[i] for i in perm]  # the same graph, other names and node order
        edges = [(names[u], names[v]) for u, v in edges_i]
        atoms = sl.graph_atoms(nodes, edges).atoms
        asked = rng.sample(atoms, 8)
        p = torch.tensor([rng.uniform(0.05, 0.95) for _ in asked], dtype=torch.float64)
        assert sl.strategy(nodes, edges) == "instance"
        got = sl([(nodes, edges, asked)], p, inputs="probs")[0]
        pairs, models = orders_containing(4, edges_i)
        weights = {}
        for k, a in enumerate(asked):
            x, y = parse_atom(a)[1]
            weights[(names.index(x), names.index(y))] = p[k]
        assert torch.isclose(got, -oracle_log_wmc(pairs, models, weights), atol=1e-9)
    assert len(sl._instances) == 1


def test_past_the_budget_is_a_clear_error(tmp_path):
    path = tmp_path / "open.rules"
    path.write_text(OPEN_WORLD)
    sl = SemanticLoss(str(path), schema_max_nodes=2, instance_seconds=1e-6, cache=False)
    names = [f"v{i}" for i in range(7)]
    with pytest.raises(BudgetExceeded, match=r"7 nodes is past the budget.*instance_seconds=1e-06"):
        sl([(names, [], ["causes(v0,v1)"])], torch.zeros(1))


def test_bad_options_and_rules_are_clear_errors():
    with pytest.raises(ConstraintcError, match="reduction"):
        SemanticLoss("transitivity", reduction="avg")
    with pytest.raises(ConstraintcError, match="subset_size"):
        SemanticLoss("transitivity", subset_size=2)
    assert SemanticLoss("transitivity", schema_max_nodes=4, subset_size=5).strategy(list("abcde")) == "schema"
    with pytest.raises(ConstraintcError, match="no given edge relation"):
        SemanticLoss("semigraphoid")([(["a", "b"], [("a", "b")], [])], torch.zeros(0))


# ------------------------------------------------------------------------------ module state
def test_dtype_device_state_dict_and_copies():
    sl = SemanticLoss("transitivity", reduction="none")
    graphs = [(["a", "b", "c"], [("a", "b")], ["causes(b,a)", "causes(a,c)"]),
              (["a", "b", "c", "d", "e", "f", "g"], [("a", "b")], ["causes(g,a)"])]
    z = [torch.tensor([0.3, -1.0]), torch.tensor([2.0])]
    v32 = sl(graphs, z)
    assert v32.dtype == torch.float32 and sorted(sl.schemas) == ["schema_3", "schema_6"]
    sl.to(torch.float64)
    v64 = sl(graphs, z)
    assert v64.dtype == torch.float64 and torch.allclose(v32.double(), v64, rtol=1e-5)

    state = sl.state_dict()
    assert {k.split(".")[1] for k in state if k.startswith("schemas.")} == {"schema_3", "schema_6"}
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    fresh = SemanticLoss("transitivity", reduction="none").double()
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    assert sorted(fresh.schemas) == ["schema_3", "schema_6"]
    assert torch.equal(fresh(graphs, z), v64)
    twin = copy.deepcopy(sl)
    assert torch.equal(twin(graphs, z), v64)
    with pytest.raises(ConstraintcError, match="rules"):
        SemanticLoss("transitivity_closed").load_state_dict(state)

    moved = copy.deepcopy(sl).to("meta")  # a device without data: only where tensors live
    assert moved.device.type == "meta"
    assert all(c.device.type == "meta" and c.plan_child_rows.device.type == "meta" for c in moved.schemas.values())
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), sl)
    assert model[1] is sl and any(k.startswith("1.schemas.schema_3.ir_") for k in model.state_dict())
