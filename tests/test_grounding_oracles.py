"""Grounded library rules against independent oracles: networkx d-separation and reachability,
checked with a SAT solver (find a model, block it, find none), and known model counts."""

from __future__ import annotations

import itertools
import random

import networkx as nx
import pytest
from pysat.solvers import Minisat22

from constraintc.language import load_rules
from constraintc.logic import ground


@pytest.fixture
def seed(request) -> int:
    """The run's seed (printed in the pytest header by conftest)."""
    return int(request.config.option.hypothesis_seed)


def all_dags(nodes):
    pairs = list(itertools.combinations(nodes, 2))
    for choice in itertools.product((0, 1, 2), repeat=len(pairs)):
        edges = [(u, v) if c == 1 else (v, u) for (u, v), c in zip(pairs, choice) if c]
        g = nx.DiGraph(edges)
        g.add_nodes_from(nodes)
        if nx.is_directed_acyclic_graph(g):
            yield g


def random_dag(nodes, rng):
    order = list(nodes)
    rng.shuffle(order)
    p = rng.choice([0.2, 0.4, 0.6])
    g = nx.DiGraph()
    g.add_nodes_from(nodes)
    g.add_edges_from((order[i], order[j]) for i, j in itertools.combinations(range(len(order)), 2)
                     if rng.random() < p)
    return g


def unique_model(cnf, assumptions=()):
    """The one model of the CNF's atoms (asserting there is exactly one) as a set of true atoms."""
    with Minisat22(bootstrap_with=cnf.clauses) as solver:
        assert solver.solve(assumptions=list(assumptions)), "no model"
        model = set(lit for lit in solver.get_model() if lit > 0)
        atoms = range(1, cnf.num_atoms + 1)
        solver.add_clause([-v if v in model else v for v in atoms])
        assert not solver.solve(assumptions=list(assumptions)), "a second model exists"
    return {v for v in atoms if v in model}


def check_dsep(grounding, graph, model):
    for i, atom in enumerate(grounding.atom_info):
        if atom.kind != "query":
            continue
        x, y, z = atom.args
        expected = nx.is_d_separator(graph, {x}, {y}, set(z))
        assert ((i + 1) in model) == expected, (sorted(graph.edges), str(atom), expected)


def test_dsep_instance_all_4_node_dags():
    program = load_rules("dsep")
    nodes = ["a", "b", "c", "d"]
    dags = list(all_dags(nodes))
    assert len(dags) == 543
    for graph in dags:
        grounding = ground(program, nodes, graph=list(graph.edges))
        # 12 ordered pairs x the conditioning sets of up to 2 of the other 2 nodes
        assert len(grounding.atoms) == 12 * 4
        check_dsep(grounding, graph, unique_model(grounding.cnf))


def test_dsep_instance_200_random_5_node_dags(seed):
    program = load_rules("dsep")
    rng = random.Random(seed)
    nodes = ["v1", "v2", "v3", "v4", "v5"]
    for _ in range(200):
        graph = random_dag(nodes, rng)
        grounding = ground(program, nodes, graph=list(graph.edges))
        check_dsep(grounding, graph, unique_model(grounding.cnf))


def test_dsep_schema_clamped_equals_networkx(seed):
    """The schema (edges as variables) with the edge atoms clamped gives d-separation too."""
    program = load_rules("dsep")
    nodes = ["a", "b", "c", "d", "e"]
    schema = ground(program, nodes)
    assert schema.given_atoms and schema.atoms[: len(schema.query_atoms)] == schema.query_atoms
    rng = random.Random(seed + 1)
    for _ in range(15):
        graph = random_dag(nodes, rng)
        values = schema.evidence(list(graph.edges))
        assert set(values) == set(schema.given_atoms)
        clamp = [(schema.index(name) + 1) * (1 if value else -1) for name, value in values.items()]
        model = unique_model(schema.cnf, clamp)
        check_dsep(schema, graph, model)


@pytest.mark.parametrize("cond_size", [0, 1, 3])
def test_dsep_param_changes_conditioning_sets(cond_size, seed):
    program = load_rules("dsep", params={"cond_size": cond_size})
    nodes = ["a", "b", "c", "d"]
    rng = random.Random(seed + cond_size)
    graph = random_dag(nodes, rng)
    grounding = ground(program, nodes, graph=list(graph.edges))
    sizes = {len(a.args[2]) for a in grounding.atom_info}
    assert sizes == set(range(min(cond_size, 2) + 1))
    check_dsep(grounding, graph, unique_model(grounding.cnf))


def test_closed_world_transitivity_is_reachability():
    program = load_rules("transitivity_closed")
    nodes = ["a", "b", "c", "d"]
    for graph in all_dags(nodes):
        grounding = ground(program, nodes, graph=list(graph.edges))
        model = unique_model(grounding.cnf)
        for i, atom in enumerate(grounding.atom_info):
            x, y = atom.args
            assert ((i + 1) in model) == nx.has_path(graph, x, y), (sorted(graph.edges), str(atom))


def test_closed_world_transitivity_random_5_and_6_node_dags(seed):
    program = load_rules("transitivity_closed")
    rng = random.Random(seed + 7)
    for n in (5, 6):
        nodes = [f"x{i}" for i in range(n)]
        for _ in range(40):
            graph = random_dag(nodes, rng)
            grounding = ground(program, nodes, graph=list(graph.edges))
            model = unique_model(grounding.cnf)
            for i, atom in enumerate(grounding.atom_info):
                assert ((i + 1) in model) == nx.has_path(graph, *atom.args)


def count_models(cnf, limit=10**6):
    n = 0
    with Minisat22(bootstrap_with=cnf.clauses) as solver:
        while solver.solve():
            model = solver.get_model()
            n += 1
            assert n <= limit
            solver.add_clause([-lit for lit in model[: cnf.num_atoms]])
    return n


@pytest.mark.parametrize("n,count", [(3, 19), (4, 219), (5, 4231)])
def test_open_transitivity_counts_strict_partial_orders(n, count):
    """With no edges, causes must be a strict partial order: 19, 219, 4231 labelled ones."""
    grounding = ground(load_rules("transitivity"), n, graph=[])
    assert grounding.cnf.num_atoms == n * (n - 1)
    assert count_models(grounding.cnf) == count


def test_open_transitivity_pins_paths_and_reverse_paths():
    """Open world: every path is a cause, the reverse of a path is not; other pairs are free."""
    nodes = ["a", "b", "c", "d"]
    program = load_rules("transitivity")
    for graph in itertools.islice(all_dags(nodes), 0, None, 7):
        grounding = ground(program, nodes, graph=list(graph.edges))
        with Minisat22(bootstrap_with=grounding.cnf.clauses) as solver:
            for i, atom in enumerate(grounding.atom_info):
                x, y = atom.args
                can_true = solver.solve(assumptions=[i + 1])
                can_false = solver.solve(assumptions=[-(i + 1)])
                if nx.has_path(graph, x, y):
                    assert can_true and not can_false
                elif nx.has_path(graph, y, x):
                    assert can_false and not can_true
                else:
                    assert can_true and can_false


@pytest.mark.parametrize("n", [3, 4])
def test_dsep_schema_is_a_function_of_the_edges(n):
    """Over every edge assignment (cyclic ones too) the schema has exactly one model of the
    query atoms: 2^(n(n-1)) models in all, so a schema circuit's evidence clamping is exact."""
    grounding = ground(load_rules("dsep"), n)
    assert count_models(grounding.cnf) == 2 ** (n * (n - 1))
