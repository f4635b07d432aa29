"""Grounding and Tseitin CNF against independent oracles.

A direct first-order evaluator (written here, from the language's definition: quantifiers over
the domains, derived predicates as least fixed points, atoms that do not exist are false) decides
each assignment of the atoms; the grounded CNF must agree on every one (a SAT solver under
assumptions), so model counts agree too. Tseitin encodings are checked for count preservation
against brute-force truth tables, and the sympy views against the circuit.
"""

from __future__ import annotations

import itertools
import random
import time

import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st
from pysat.solvers import Minisat22

from constraintc.language import ast, load_rules, parse_rules
from constraintc.logic import ground
from constraintc.logic.boolean import FALSE, TRUE, BoolBuilder, to_sympy, tseitin


# ------------------------------------------------------------------ the oracle
class Oracle:
    """Evaluates a program's rules on one assignment of its atoms, straight from the AST."""

    def __init__(self, program, names):
        self.p = program
        self.names = list(names)
        self.domains = {"node": list(self.names)}
        for dom, size in program.domain_sizes.items():
            self.domains[dom] = [frozenset(c) for k in range(min(size, len(names)) + 1)
                                 for c in itertools.combinations(self.names, k)]

    def exists(self, pred, args):
        if pred.where is None:
            return True
        return self.eval(pred.where, dict(zip(pred.arg_names, args)))

    def term(self, t, env):
        if isinstance(t, ast.Var):
            return env[t.name]
        if isinstance(t, ast.EmptySet):
            return frozenset()
        s = self.term(t.set, env)
        if s is None:
            return None
        return s | {env[t.elem.name]}

    def eval(self, f, env):
        if isinstance(f, ast.Const):
            return f.value
        if isinstance(f, ast.Atom):
            args = tuple(self.term(t, env) for t in f.args)
            if None in args:
                return False
            pred = self.p.preds[f.pred]
            if any(a not in self.domains[t] for a, t in zip(args, pred.arg_types)):
                return False  # a set argument larger than its domain allows
            if not self.exists(pred, args):
                return False
            if pred.kind == "derived":
                return args in self.derived[f.pred]
            return self.truth[atom_str(f.pred, args)]
        if isinstance(f, ast.Compare):
            a, b = self.term(f.left, env), self.term(f.right, env)
            if a is None or b is None:
                return False
            return {"=": a == b, "!=": a != b, "in": a in b if isinstance(b, frozenset) else False,
                    "not in": a not in b if isinstance(b, frozenset) else False}[f.op]
        if isinstance(f, ast.Not):
            return not self.eval(f.arg, env)
        if isinstance(f, ast.And):
            return all(self.eval(a, env) for a in f.args)
        if isinstance(f, ast.Or):
            return any(self.eval(a, env) for a in f.args)
        if isinstance(f, ast.Implies):
            return (not self.eval(f.left, env)) or self.eval(f.right, env)
        if isinstance(f, ast.Iff):
            return self.eval(f.left, env) == self.eval(f.right, env)
        if isinstance(f, ast.Quantified):
            values = []
            for combo in itertools.product(*(self.domains[b.type] for b in f.binders)):
                inner = dict(env)
                for b, v in zip(f.binders, combo):
                    inner[b.name] = v
                    self.types[b.name] = b.type
                values.append(self.eval(f.body, inner))
            return all(values) if f.kind == "forall" else any(values)
        if isinstance(f, ast.Counting):
            k = f.count if isinstance(f.count, int) else self.p.params[f.count]
            if f.binders:
                count = 0
                for combo in itertools.product(*(self.domains[b.type] for b in f.binders)):
                    inner = dict(env)
                    for b, v in zip(f.binders, combo):
                        inner[b.name] = v
                        self.types[b.name] = b.type
                    count += self.eval(f.items[0], inner)
            else:
                count = sum(self.eval(i, env) for i in f.items)
            return {"exactly": count == k, "atmost": count <= k, "atleast": count >= k}[f.kind]
        raise TypeError(f)

    def holds(self, truth: dict[str, bool]) -> bool:
        self.truth = truth
        self.types = {}
        self.derived = {name: set() for name in self.p.derived}
        changed = True
        while changed:  # least fixed point, to convergence (no depth bound)
            changed = False
            for name, pred in self.p.derived.items():
                for args in itertools.product(*(self.domains[t] for t in pred.arg_types)):
                    if args in self.derived[name] or not self.exists(pred, args):
                        continue
                    for a, t in zip(pred.arg_names, pred.arg_types):
                        self.types[a] = t
                    if self.eval(pred.body, dict(zip(pred.arg_names, args))):
                        self.derived[name].add(args)
                        changed = True
        return all(self.eval(r.formula, {}) for r in self.p.rules.values())


def atom_str(pred, args):
    parts = [a if isinstance(a, str) else "{" + ",".join(sorted(a)) + "}" for a in args]
    return f"{pred}({','.join(parts)})"


PROGRAMS = {
    "counting": """
        query p(X: node)
        query q(X: node, Y: node) where X != Y
        rule one_out: forall X: exactly 1 Y: q(X, Y)
        rule few: atmost 1 X: p(X)
        rule some: forall X: atleast 1 {p(X), q(X, X), exists Y: q(Y, X)}
    """,
    "recursion": """
        given e(X: node, Y: node) where X != Y
        query r(X: node, Y: node) where X != Y
        define anc(X: node, Y: node) := e(X, Y) | exists W: e(X, W) & anc(W, Y)
        rule reach: forall X, Y: X != Y -> (r(X, Y) <-> anc(X, Y))
    """,
    "connectives": """
        query p(X: node)
        query q(X: node, Y: node)
        rule t: true
        rule imp: forall X: p(X) -> exists Y: X != Y & q(X, Y)
        rule iff: forall X, Y: q(X, Y) <-> ~q(Y, X) | X = Y & p(X)
        rule neg: ~(forall X: p(X))
    """,
}


def check_against_oracle(program, names, graph=None, samples=None, seed=0):
    grounding = ground(program, names, graph=graph)
    oracle = Oracle(program, names)
    atoms = grounding.atoms
    fixed = {}
    if graph is not None:
        for pred in program.givens.values():
            for args in itertools.product(*(oracle.domains[t] for t in pred.arg_types)):
                fixed[atom_str(pred.name, args)] = tuple(args) in {tuple(e) for e in graph}
    rng = random.Random(seed)
    if samples is None or 2 ** len(atoms) <= samples:
        assignments = itertools.product((False, True), repeat=len(atoms))
    else:
        assignments = (tuple(rng.random() < 0.5 for _ in atoms) for _ in range(samples))
    models = 0
    with Minisat22(bootstrap_with=grounding.cnf.clauses) as solver:
        for values in assignments:
            truth = dict(fixed)
            truth.update(zip(atoms, values))
            truth = _AllFalse(truth)
            expected = oracle.holds(truth)
            got = solver.solve(assumptions=[i + 1 if v else -(i + 1) for i, v in enumerate(values)])
            assert got == expected, (program.filename, names, {a: v for a, v in zip(atoms, values) if v})
            models += got
    return models


class _AllFalse(dict):
    """Atoms the grounding does not have (nonexistent ones) read as false."""

    def __missing__(self, key):
        return False


@pytest.mark.parametrize("key", ["counting", "recursion", "connectives"])
@pytest.mark.parametrize("n", [2, 3])
def test_grounding_agrees_with_first_order_oracle(key, n):
    program = parse_rules(PROGRAMS[key], filename=key)
    check_against_oracle(program, [f"v{i}" for i in range(n)], samples=1500)


def test_set_terms_agree_with_oracle():
    text = """
        param k = 1
        domain small = subsets of node up to k
        query m(X: node, Z: small) where X not in Z
        rule shrink: forall X, Y, Z: X != Y & Y not in Z -> (m(X, Z + Y) -> m(X, Z))
        rule big: forall X, Y, W, Z: m(X, Z + Y + W) -> m(X, Z)
        rule empty: forall X, Y: X != Y -> (m(X, {}) | m(X, {} + Y) | {} = {} + Y | Y in {})
    """
    for k in (0, 1, 2):
        program = parse_rules(text, filename="sets", params={"k": k})
        check_against_oracle(program, ["a", "b", "c"], samples=1500)


@pytest.mark.parametrize("name", ["transitivity", "transitivity_closed", "semigraphoid"])
def test_library_schema_agrees_with_oracle(name):
    program = load_rules(name, params={"cond_size": 1} if name == "semigraphoid" else None)
    check_against_oracle(program, ["a", "b", "c"], samples=2000)


def test_recursion_instance_on_cyclic_graphs_agrees_with_oracle():
    program = parse_rules(PROGRAMS["recursion"], filename="recursion")
    rng = random.Random(3)
    names = ["a", "b", "c", "d"]
    for _ in range(6):
        graph = [(u, v) for u in names for v in names if u != v and rng.random() < 0.3]
        check_against_oracle(program, names, graph=graph, samples=200, seed=rng.random())


@pytest.mark.parametrize("hops", [0, 1, 2, 3, 5])
def test_unroll_bounds_path_length(hops):
    """`unroll hops` derives exactly the pairs joined by a path of at most `hops` edges."""
    import networkx as nx

    text = """param hops = 1
        given e(X: node, Y: node) where X != Y
        query r(X: node, Y: node) where X != Y
        define near(X: node, Y: node) unroll hops := e(X, Y) | exists W: e(X, W) & near(W, Y)
        rule reach: forall X, Y: X != Y -> (r(X, Y) <-> near(X, Y))
    """
    program = parse_rules(text, params={"hops": hops})
    names = ["a", "b", "c", "d", "e"]
    rng = random.Random(hops)
    edges = [(u, v) for u in names for v in names if u != v and rng.random() < 0.25]
    graph = nx.DiGraph(edges)
    graph.add_nodes_from(names)
    g = ground(program, names, graph=edges)
    with Minisat22(bootstrap_with=g.cnf.clauses) as solver:
        assert solver.solve()
        model = set(solver.get_model())
    lengths = dict(nx.all_pairs_shortest_path_length(graph))
    for i, atom in enumerate(g.atom_info):
        x, y = atom.args
        assert ((i + 1) in model) == (0 < lengths[x].get(y, 99) <= hops), str(atom)


def test_semigraphoid_models_are_closed_under_the_axioms():
    """n=3: the models are exactly the sets of statements closed under symmetry and exchange,
    checked against an enumeration that knows nothing of the rules file."""
    names = ["a", "b", "c"]
    grounding = ground(load_rules("semigraphoid", params={"cond_size": 1}), names)
    atoms = grounding.atom_info
    closed = 0
    for values in itertools.product((False, True), repeat=len(atoms)):
        true = {(a.args[0], a.args[1], a.args[2]) for a, v in zip(atoms, values) if v}
        ok = all((y, x, z) in true for x, y, z in true)
        for a, b, c in itertools.permutations(names):
            k = frozenset()
            left = (a, b, frozenset({c})) in true and (a, c, k) in true
            right = (a, c, frozenset({b})) in true and (a, b, k) in true
            ok &= left == right
        closed += ok
    with Minisat22(bootstrap_with=grounding.cnf.clauses) as solver:
        count = 0
        while solver.solve():
            count += 1
            model = solver.get_model()[: grounding.cnf.num_atoms]
            solver.add_clause([-lit for lit in model])
    assert count == closed and 1 < count < 2 ** len(atoms)


def test_dsep_of_any_dag_is_a_semigraphoid():
    import networkx as nx

    names = ["a", "b", "c", "d"]
    grounding = ground(load_rules("semigraphoid"), names)
    rng = random.Random(11)
    with Minisat22(bootstrap_with=grounding.cnf.clauses) as solver:
        for _ in range(30):
            order = rng.sample(names, 4)
            g = nx.DiGraph([(order[i], order[j]) for i, j in itertools.combinations(range(4), 2)
                            if rng.random() < 0.5])
            g.add_nodes_from(names)
            assumptions = [(i + 1) if nx.is_d_separator(g, {x}, {y}, set(z)) else -(i + 1)
                           for i, (x, y, z) in enumerate(a.args for a in grounding.atom_info)]
            assert solver.solve(assumptions=assumptions)


# ------------------------------------------------------------------ Tseitin and sympy
def random_circuit(data, k):
    b = BoolBuilder()
    lits = [b.var(f"x{i}") for i in range(k)]
    atoms = list(lits)
    pool = list(lits) + [TRUE, FALSE]
    for _ in range(data.draw(st.integers(1, 12))):
        op = data.draw(st.sampled_from(["and", "or", "iff", "not", "count"]))
        args = data.draw(st.lists(st.sampled_from(pool), min_size=1, max_size=4))
        if op == "and":
            new = b.and_(args)
        elif op == "or":
            new = b.or_(args)
        elif op == "iff":
            new = b.iff(args[0], args[-1])
        elif op == "not":
            new = -args[0]
        else:
            j = data.draw(st.integers(0, 3))
            new = b.counts(args, j)[j]
        pool.append(new)
    roots = data.draw(st.lists(st.sampled_from(pool), min_size=1, max_size=3))
    return b, atoms, roots


def evaluate(b, lit, assignment):
    node = abs(lit)
    if node == TRUE:
        value = True
    elif b.kind[node] == 1:
        value = assignment[node]
    elif b.kind[node] == 2:
        value = all(evaluate(b, c, assignment) for c in b.children[node])
    else:
        x, y = b.children[node]
        value = evaluate(b, x, assignment) == evaluate(b, y, assignment)
    return value if lit > 0 else not value


@settings(max_examples=150)
@given(st.data())
def test_tseitin_preserves_models_and_counts(data):
    k = data.draw(st.integers(1, 5))
    b, atoms, roots = random_circuit(data, k)
    num_vars, clauses = tseitin(b, atoms, roots)
    brute = 0
    with Minisat22(bootstrap_with=clauses) as solver:
        for values in itertools.product((False, True), repeat=k):
            assignment = dict(zip(atoms, values))
            truth = all(evaluate(b, r, assignment) for r in roots)
            brute += truth
            assumptions = [i + 1 if v else -(i + 1) for i, v in enumerate(values)]
            assert solver.solve(assumptions=assumptions) == truth
    # full models of the CNF (auxiliaries included) = models of the atoms: count preserved
    count = 0
    with Minisat22(bootstrap_with=clauses + [(num_vars, -num_vars)]) as solver:
        while solver.solve():
            count += 1
            solver.add_clause([-lit for lit in solver.get_model()])
    assert count == brute


@settings(max_examples=60)
@given(st.data())
def test_sympy_view_matches_circuit(data):
    k = data.draw(st.integers(1, 4))
    b, atoms, roots = random_circuit(data, k)
    root = b.and_(roots)
    expr = to_sympy(b, root)
    symbols = [sympy.Symbol(f"x{i}") for i in range(k)]
    for values in itertools.product((False, True), repeat=k):
        expected = evaluate(b, root, dict(zip(atoms, values)))
        got = expr.subs(dict(zip(symbols, values)))
        assert bool(got) == expected


def test_grounding_sympy_formula_is_equivalent_to_cnf():
    g = ground(load_rules("transitivity_closed"), 3, graph=[("n0", "n1"), ("n1", "n2")])
    symbols = {s.name: s for s in g.formula.free_symbols}
    assert set(symbols) <= set(g.atoms)
    with Minisat22(bootstrap_with=g.cnf.clauses) as solver:
        for values in itertools.product((False, True), repeat=len(g.atoms)):
            sub = {symbols[a]: v for a, v in zip(g.atoms, values) if a in symbols}
            expected = bool(g.formula.subs(sub))
            got = solver.solve(assumptions=[i + 1 if v else -(i + 1) for i, v in enumerate(values)])
            assert got == expected
    assert set(g.rule_formulas) == set(g.program.rules)


# ------------------------------------------------------------------ API, order, speed
def test_atom_order_names_and_index():
    g = ground(load_rules("dsep"), ["b", "a", "c"])
    assert g.atoms == g.query_atoms + g.given_atoms
    assert g.atoms[:3] == ["dsep(b,a,{})", "dsep(b,a,{c})", "dsep(b,c,{})"]
    assert g.given_atoms[0] == "edge(b,a)"
    assert [str(a) for a in g.atom_info] == g.atoms
    info = g.atom_info[g.index("dsep(b, a, {c})")]
    assert (info.pred, info.args, info.kind) == ("dsep", ("b", "a", frozenset({"c"})), "query")
    assert g.cnf.num_atoms == len(g.atoms)
    assert g.cnf.atom_names == g.atoms
    dimacs = g.cnf.to_dimacs()
    assert all(f"c atom {i + 1} {name}" in dimacs for i, name in enumerate(g.atoms))
    g4 = ground(load_rules("transitivity"), 4)
    assert g4.nodes == ["n0", "n1", "n2", "n3"] and g4.atoms[0] == "causes(n0,n1)"
    sets = ground(load_rules("dsep"), ["n10", "n2", "n1", "n3"])
    assert "dsep(n3,n2,{n1,n10})" in sets.atoms


def test_grounding_is_deterministic():
    a = ground(load_rules("dsep"), 4).cnf.to_dimacs()
    b = ground(load_rules("dsep"), 4).cnf.to_dimacs()
    assert a == b


def test_bad_graphs_and_nodes_are_clean_errors():
    from constraintc.errors import ConstraintcError

    program = load_rules("transitivity")
    for nodes, graph in [(3, [("a", "b")]), (["a", "b"], [("a", "a")]), (["a", "a"], None),
                         (["a b"], None), (-1, None)]:
        with pytest.raises(ConstraintcError):
            ground(program, nodes, graph=graph)


def test_instance_rule_false_raises_unsatisfiable():
    from constraintc.errors import Unsatisfiable

    program = parse_rules("given e(X: node, Y: node) where X != Y\nquery p(X: node)\n"
                          "rule acyclic_pairs: forall X, Y: e(X, Y) -> ~e(Y, X)")
    ground(program, ["a", "b"], graph=[("a", "b")])
    with pytest.raises(Unsatisfiable, match="rule acyclic_pairs is false on this graph"):
        ground(program, ["a", "b"], graph=[("a", "b"), ("b", "a")])


def test_schema_grounding_speed():
    """The issue's bar: transitivity schema for 8 nodes and dsep schema for 5 nodes in seconds."""
    t = time.perf_counter()
    g8 = ground(load_rules("transitivity"), 8)
    t8 = time.perf_counter() - t
    t = time.perf_counter()
    d5 = ground(load_rules("dsep"), 5)
    t5 = time.perf_counter() - t
    print(f"\ntransitivity n=8: {t8:.3f} s, {g8.cnf.num_vars} vars, {len(g8.cnf.clauses)} clauses; "
          f"dsep n=5: {t5:.3f} s, {d5.cnf.num_vars} vars, {len(d5.cnf.clauses)} clauses")
    assert g8.cnf.num_atoms == 112 and d5.cnf.num_atoms == 160
    assert t8 < 5 and t5 < 10
    t = time.perf_counter()
    formula = d5.formula  # the sympy view must not blow up on a shared (DAG-shaped) grounding
    assert time.perf_counter() - t < 10 and len(formula.args) == 140
