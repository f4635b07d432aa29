"""Gold reasoning traces: every stated step re-checked against networkx and an independent trail oracle."""

from __future__ import annotations

import json
import random
import re

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from constraintc.cli import main
from constraintc.evaluation.traces import check_steps, parse_output
from constraintc.tasks import SPLITS, TASKS, generate, graphs
from constraintc.tasks.generate import all_questions, atom_text, question_text
from constraintc.tasks.traces import MAX_TRAILS, trace_text

FORBIDDEN = re.compile(r"\b(yes|no|answer)\b", re.IGNORECASE)
CAUSE = re.compile(r"^([A-Za-z]+) causes ([A-Za-z]+)$")
TRAIL = re.compile(
    r"^Trail ([A-Za-z <>-]+?) is (open|blocked at ([A-Za-z]+), (a collider outside|which is in) (\{[A-Za-z, ]*\}))$"
)


def random_graph(seed: int, n: int, extra_p: float, names: str = "short"):
    """A weakly connected random DAG, statements in random order, as the generator draws them."""
    rng = random.Random(seed)
    int_edges, rank = graphs.random_dag(rng, n, extra_p, 0.3)
    ordered = graphs.statement_order(rng, int_edges, rank, "shuffled")
    labels = graphs.draw_names(rng, n, names)
    edges = [(labels[u], labels[v]) for u, v in ordered]
    return graphs.first_mention_order(edges), edges


def random_digraph(seed: int, n: int, extra_p: float):
    """:func:`random_graph` (its draw printed) and its networkx graph, adjacency in statement order."""
    print(f"seed={seed} n={n} extra_p={extra_p}")
    nodes, edges = random_graph(seed, n, extra_p)
    g = nx.DiGraph()
    g.add_nodes_from(nodes)
    g.add_edges_from(edges)
    return nodes, edges, g


def checked_traces(nodes, edges, g, x, search):
    """``(y, trace, sentences)`` of every question from ``x``, each trace clean, its conclusion
    right (networkx reachability) and every step it states true."""
    for y in nodes:
        if y == x:
            continue
        trace = trace_text("transitivity", nodes, edges, x, y, search=search)
        assert_clean(trace)
        parts = sentences(trace)
        assert parts[-1] == (f"So {x} causes {y}" if nx.has_path(g, x, y) else f"So {x} does not cause {y}"), trace
        got = check_steps(trace, record_for("transitivity", nodes, edges, x, y))
        assert got["steps"] == got["true"], (trace, got)
        yield y, trace, parts


def record_for(task, nodes, edges, x, y, z=()):
    return {
        "nodes": list(nodes),
        "edges": [list(e) for e in edges],
        "task": task,
        "question": question_text(task, x, y, z),
        "atom": atom_text(task, x, y, z),
        "meta": {"x": x, "y": y, "z": list(z)},
    }


def sentences(trace: str) -> list[str]:
    assert trace.endswith("."), trace
    return [s for s in trace[:-1].split(". ")]


def assert_clean(trace: str) -> None:
    assert not FORBIDDEN.search(trace), trace
    assert "\n" not in trace
    assert parse_output(trace + "\nAnswer: Yes") == (trace, "Yes", False)
    assert parse_output(trace + "\nAnswer: No") == (trace, "No", False)


# transitivity -----------------------------------------------------------------------------------


def check_transitivity(nodes, edges, x, y):
    g = nx.DiGraph(edges)
    trace = trace_text("transitivity", nodes, edges, x, y)
    assert trace == trace_text("transitivity", nodes, [list(e) for e in edges], x, y)  # lists work too
    assert_clean(trace)
    parts = sentences(trace)
    reach = nx.has_path(g, x, y)
    stated = []
    for s in parts[:-1]:
        if s.endswith(" causes nothing"):
            assert s == f"{x} causes nothing" and not reach and g.out_degree(x) == 0, trace
            continue
        m = CAUSE.match(s)
        assert m, trace
        stated.append(m.groups())
    assert all(g.has_edge(u, v) for u, v in stated), trace
    got = check_steps(trace, record_for("transitivity", nodes, edges, x, y))
    assert got["steps"] == got["true"] and got["steps"] >= 1, (trace, got)
    heads = [v for _, v in stated]
    assert len(heads) == len(set(heads)), trace  # each node is reached once
    reached = {x}
    for u, v in stated:
        assert u in reached, trace  # a parent is reached before its children
        reached.add(v)
    # breadth-first: parents are expanded in the order they were reached
    order = [x] + heads
    parents = [order.index(u) for u, _ in stated]
    assert parents == sorted(parents), trace
    if reach:
        assert parts[-1] == f"So {x} causes {y}" and heads[-1] == y, trace
        assert set(heads) <= nx.descendants(g, x)
    else:
        assert parts[-1] == f"So {x} does not cause {y}"
        # the search exhausted X's descendants: a spanning tree of exactly them
        assert set(heads) == nx.descendants(g, x)


@settings(max_examples=60)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 9), extra_p=st.sampled_from([0.0, 0.2, 0.5, 0.9]))
def test_transitivity_traces_on_random_dags(seed, n, extra_p):
    nodes, edges = random_graph(seed, n, extra_p)
    for x, y, _ in all_questions("transitivity", nodes):
        check_transitivity(nodes, edges, x, y)


@settings(max_examples=60)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 9), extra_p=st.sampled_from([0.0, 0.2, 0.5, 0.9]))
def test_exhaustive_traces_write_the_whole_search_tree_whatever_y(seed, n, extra_p):
    print(f"seed={seed} n={n} extra_p={extra_p}")
    nodes, edges = random_graph(seed, n, extra_p)
    g = nx.DiGraph(edges)
    for x in nodes:
        bodies = set()
        for y in nodes:
            if y == x:
                continue
            trace = trace_text("transitivity", nodes, edges, x, y, search="exhaustive")
            assert_clean(trace)
            parts = sentences(trace)
            reach = nx.has_path(g, x, y)
            assert parts[-1] == (f"So {x} causes {y}" if reach else f"So {x} does not cause {y}"), trace
            bodies.add(tuple(parts[:-1]))
            # the search until Y is a prefix of it, and the same search when Y is not reached
            until = sentences(trace_text("transitivity", nodes, edges, x, y))
            assert parts[: len(until) - 1] == until[:-1] and (reach or until == parts), (trace, until)
            got = check_steps(trace, record_for("transitivity", nodes, edges, x, y))
            assert got["steps"] == got["true"], (trace, got)
        assert len(bodies) == 1  # the steps depend on X alone
        (body,) = bodies
        if body == (f"{x} causes nothing",):
            assert g.out_degree(x) == 0
            continue
        heads = {CAUSE.match(t).group(2) for t in body}
        assert heads == nx.descendants(g, x)  # a spanning tree of X's descendants
    with pytest.raises(ValueError, match="search must be one of"):
        trace_text("transitivity", nodes, edges, nodes[0], nodes[1], search="shortest_path")


@settings(max_examples=60)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 9), extra_p=st.sampled_from([0.0, 0.2, 0.5, 0.9]))
def test_expand_traces_expand_every_reached_node_in_turn(seed, n, extra_p):
    """Oracle: networkx's breadth-first order and the premise's statements, read independently."""
    nodes, edges, g = random_digraph(seed, n, extra_p)
    for x in nodes:
        bodies = set()
        for y, trace, parts in checked_traces(nodes, edges, g, x, "expand"):
            stated = sum(not t.endswith(" causes nothing") for t in parts[:-1])
            assert check_steps(trace, record_for("transitivity", nodes, edges, x, y))["in_premise"] >= stated
            bodies.add(tuple(parts[:-1]))
        assert len(bodies) == 1  # the steps depend on X alone
        (body,) = bodies
        # the subjects, in order: X, then each node in the order a statement first reached it
        subjects = []
        for t in body:
            subject = t.split(" ")[0]
            if not subjects or subjects[-1] != subject:
                subjects.append(subject)
        first_reached = [x]
        for t in body:
            match = CAUSE.match(t)
            if match and match.group(2) != "nothing" and match.group(2) not in first_reached:
                first_reached.append(match.group(2))
        assert subjects == first_reached
        assert set(subjects) == nx.descendants(g, x) | {x}
        assert sorted(subjects, key=subjects.index) == subjects and len(set(subjects)) == len(subjects)
        # breadth first: distances from X never decrease
        dist = nx.single_source_shortest_path_length(g, x)
        assert [dist[u] for u in subjects] == sorted(dist[u] for u in subjects)
        # each subject writes its statements in statement order, or "causes nothing" when it has none
        for u in subjects:
            said = [t for t in body if t.split(" ")[0] == u]
            stated = [f"{a} causes {b}" for a, b in edges if a == u]
            assert said == (stated or [f"{u} causes nothing"]), (u, said, stated)


@settings(max_examples=60)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 9), extra_p=st.sampled_from([0.0, 0.2, 0.5, 0.9]))
def test_depth_first_traces_follow_networkx_depth_first_search(seed, n, extra_p):
    """Oracle: networkx's labelled depth-first edges (children in statement order)."""
    nodes, edges, g = random_digraph(seed, n, extra_p)
    for x in nodes:
        expected = [f"{x} causes nothing"] if g.out_degree(x) == 0 else []
        for u, v, kind in nx.dfs_labeled_edges(g, source=x):
            if kind == "nontree" or (kind == "forward" and u != v):
                expected.append(f"{u} causes {v}")
            if kind == "forward" and u != v and g.out_degree(v) == 0:
                expected.append(f"{v} causes nothing")
        expanded = sentences(trace_text("transitivity", nodes, edges, x, nodes[0] if x != nodes[0] else nodes[-1],
                                        search="expand"))[:-1]
        for _, trace, parts in checked_traces(nodes, edges, g, x, "depth_first"):
            assert parts[:-1] == expected, (trace, expected)
        # the same sentences as the breadth-first expansion, in another order
        assert sorted(expected) == sorted(expanded)
        # on every step that reaches a new node, that node is the next subject
        reached = {x}
        for here, nxt in zip(expected, expected[1:]):
            obj = here.split(" ")[-1]
            if obj != "nothing" and obj not in reached:
                assert nxt.startswith(f"{obj} causes "), (here, nxt)
            reached.add(obj)


@pytest.mark.parametrize("task,search,other", [("transitivity", "exhaustive", "dsep"), ("dsep", "bayes_ball", "transitivity")])
def test_cli_and_generator_write_searched_traces(tmp_path, capsys, task, search, other):
    out = tmp_path / "t.jsonl"
    assert main(["data", task, "--n", "8", "--seed", "2", "--traces", "--trace-search", search, "-o", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows == generate(task, "train", 8, seed=2, traces=True, trace_search=search)
    for r in rows:
        meta = r["meta"]
        assert r["trace"] == trace_text(task, r["nodes"], r["edges"], meta["x"], meta["y"], meta.get("z") or (),
                                        search=search)
    assert rows != generate(task, "train", 8, seed=2, traces=True)  # not the default search
    # the other task's traces do not search this way; the search needs --traces
    assert main(["data", other, "--n", "2", "--traces", "--trace-search", search]) == 2
    assert "--trace-search" in capsys.readouterr().err
    assert main(["data", task, "--n", "2", "--trace-search", search]) == 2
    assert "--trace-search" in capsys.readouterr().err


def test_transitivity_trace_examples():
    nodes, edges = ["B", "C", "D", "E"], [("B", "C"), ("C", "D"), ("B", "E")]
    assert trace_text("transitivity", nodes, edges, "B", "C") == "B causes C. So B causes C."
    # breadth first: B's children (C, E) are written before C's child D
    assert trace_text("transitivity", nodes, edges, "B", "D") == "B causes C. B causes E. C causes D. So B causes D."
    assert trace_text("transitivity", nodes, edges, "C", "E") == "C causes D. So C does not cause E."
    assert trace_text("transitivity", nodes, edges, "D", "B") == "D causes nothing. So D does not cause B."
    # children in statement order; a node reached twice is written once
    diamond = [("B", "D"), ("B", "C"), ("C", "E"), ("D", "E")]
    assert trace_text("transitivity", ["B", "C", "D", "E"], diamond, "B", "E") == "B causes D. B causes C. D causes E. So B causes E."


# d-separation -----------------------------------------------------------------------------------


def oracle_blocking(g: nx.DiGraph, trail: list[str], z: set[str], desc: dict) -> list[tuple[str, bool]]:
    """(node, is collider) for each inner node of ``trail`` that blocks it given ``z``, by the
    definition: a non-collider in z blocks; a collider blocks unless it or a descendant is in z
    (``desc``: node -> its descendants)."""
    out = []
    for a, m, b in zip(trail, trail[1:], trail[2:]):
        collider = g.has_edge(a, m) and g.has_edge(b, m)
        if collider and not ({m} | desc[m]) & z:
            out.append((m, True))
        elif not collider and m in z:
            out.append((m, False))
    return out


def parse_trail(g: nx.DiGraph, text: str) -> list[str]:
    tokens = text.split(" ")
    names, arrows = tokens[0::2], tokens[1::2]
    assert len(set(names)) == len(names), text  # simple
    for a, arrow, b in zip(names, arrows, names[1:]):
        assert arrow in ("->", "<-"), text
        assert g.has_edge(a, b) if arrow == "->" else g.has_edge(b, a), text
    return names


def check_dsep(nodes, edges, x, y, z):
    g = nx.DiGraph(edges)
    g.add_nodes_from(nodes)
    zset = set(z)
    desc = {v: nx.descendants(g, v) for v in g}
    zt = "{" + ", ".join(sorted(z)) + "}"
    trace = trace_text("dsep", nodes, edges, x, y, z)
    assert_clean(trace)
    separated = nx.is_d_separator(g, {x}, {y}, zset)
    parts = sentences(trace)
    want = f"So {x} and {y} are {'' if separated else 'not '}d-separated given {zt}"
    assert parts[-1] == want, trace
    skeleton = g.to_undirected()
    all_trails = {tuple(p) for p in nx.all_simple_paths(skeleton, x, y)}
    listed, claims = [], 0
    for s in parts[:-1]:
        m = TRAIL.match(s)
        if m is None:
            assert s in ("Every other trail is blocked too", "Other trails before it are blocked too"), trace
            assert len(all_trails) > MAX_TRAILS
            continue
        claims += 1
        trail = parse_trail(g, m.group(1))
        assert trail[0] == x and trail[-1] == y
        blocking = oracle_blocking(g, trail, zset, desc)
        if m.group(2) == "open":
            assert not blocking, (s, trace)
        else:
            assert blocking and blocking[0] == (m.group(3), m.group(4) == "a collider outside"), (s, trace)
            assert m.group(5) == zt
        listed.append(tuple(trail))
    assert len(set(listed)) == len(listed)
    assert [len(t) for t in listed] == sorted(len(t) for t in listed), trace  # shorter first
    assert len(listed) <= MAX_TRAILS + 1
    if not all_trails:
        assert parts == [f"{x} and {y} are not joined by any trail", want]
    if separated:
        if len(all_trails) <= MAX_TRAILS:
            assert set(listed) == all_trails, trace
        else:
            assert len(listed) == MAX_TRAILS and parts[-2] == "Every other trail is blocked too"
    else:
        # the trace ends on the shortest open trail, every trail listed before it is blocked
        open_lengths = [len(t) for t in all_trails if not oracle_blocking(g, list(t), zset, desc)]
        assert len(listed[-1]) == min(open_lengths)
        assert parts[-2].endswith(" is open")
        assert all(" is blocked at " in p for p in parts[:-2] if p.startswith("Trail "))
    record = record_for("dsep", nodes, edges, x, y, z)
    got = check_steps(trace, record)
    # every trail claim, the conclusion, and "not joined by any trail" when it is there
    steps = claims + 1 + (not all_trails)
    assert got == {"steps": steps, "true": steps, "in_premise": 0}, (trace, got)
    return trace


@settings(max_examples=40)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 6), extra_p=st.sampled_from([0.0, 0.2, 0.5, 0.9]))
def test_dsep_traces_on_random_dags(seed, n, extra_p):
    nodes, edges = random_graph(seed, n, extra_p)
    for x, y, z in all_questions("dsep", nodes):
        check_dsep(nodes, edges, x, y, z)


@settings(max_examples=6)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(7, 8))
def test_dsep_traces_on_dense_graphs_respect_the_cap(seed, n):
    nodes, edges = random_graph(seed, n, 0.7)
    rng = random.Random(seed)
    questions = list(all_questions("dsep", nodes, max_z=3))
    for x, y, z in rng.sample(questions, 30):
        check_dsep(nodes, edges, x, y, z)


def test_dsep_trace_examples_and_cap():
    nodes = ["B", "C", "D", "E", "F"]
    edges = [("B", "C"), ("D", "C"), ("C", "E"), ("F", "B"), ("F", "D")]
    assert trace_text("dsep", nodes, edges, "B", "D", ("F",)) == (
        "Trail B -> C <- D is blocked at C, a collider outside {F}. "
        "Trail B <- F -> D is blocked at F, which is in {F}. "
        "So B and D are d-separated given {F}."
    )
    assert trace_text("dsep", nodes, edges, "B", "D", ("E", "F")) == (
        "Trail B -> C <- D is open. "
        "So B and D are not d-separated given {E, F}."
    )
    assert trace_text("dsep", ["B", "C"], [], "B", "C") == (
        "B and C are not joined by any trail. So B and C are d-separated given {}."
    )
    # complete DAG on 8 nodes: 1957 trails between two nodes, capped
    names = [chr(ord("B") + i) for i in range(8)]
    complete = [(names[i], names[j]) for i in range(8) for j in range(i + 1, 8)]
    dense = [e for e in complete if e != ("B", "I")]
    trace = check_dsep(names, dense, "B", "I", tuple(names[1:7]))  # every path blocked by Z
    assert "Every other trail is blocked too." in trace and trace.count("Trail ") == MAX_TRAILS
    trace = check_dsep(names, dense, "B", "I", ("C", "D", "E"))
    assert trace.endswith("Trail B -> F -> I is open. So B and I are not d-separated given {C, D, E}.")
    # 17 blocked colliders B -> M <- C come before the only open trail B -> P -> Q -> C
    colliders = [n for n in graphs.SHORT_NAMES if n not in "BCPQ"][:17]
    fan = [("B", "P"), ("P", "Q"), ("Q", "C")] + [e for m in colliders for e in (("B", m), ("C", m))]
    fan_nodes = graphs.first_mention_order(fan)
    trace = check_dsep(fan_nodes, fan, "B", "C", ())
    assert trace.count("Trail ") == MAX_TRAILS + 1
    assert trace.endswith(
        "Other trails before it are blocked too. Trail B -> P -> Q -> C is open. So B and C are not d-separated given {}."
    )
    fan = [e for e in fan if e[0] != "B" or e[1] not in colliders[16:]]
    trace = check_dsep(graphs.first_mention_order(fan), fan, "B", "C", ())
    assert "Other trails" not in trace and trace.count("Trail ") == MAX_TRAILS + 1
    with pytest.raises(ValueError):
        trace_text("dsep", nodes, edges, "B", "D", ("B",))
    with pytest.raises(ValueError):
        trace_text("nope", nodes, edges, "B", "D")


def test_check_steps_catches_corrupted_trail_claims():
    flipped = caught = 0
    for r in generate("dsep", "branching", 60, seed=3, traces=True):
        trace = r["trace"]
        conclusions = trace.count("d-separated given") + trace.count("joined by any trail")
        assert check_steps(trace, r)["true"] == check_steps(trace, r)["steps"] == trace.count("Trail ") + conclusions
        for s in trace.split(". "):
            if not s.startswith("Trail "):
                continue
            if s.endswith(" is open"):
                bad = s.replace(" is open", " is blocked")
            else:
                bad = s[: s.index(" is blocked")] + " is open"
            got = check_steps(trace.replace(s, bad, 1), r)
            flipped += 1
            caught += got["true"] == got["steps"] - 1
        # and a flipped conclusion
        conclusion = trace[trace.rindex("So ") :]
        if " are not d-separated" in conclusion:
            bad = conclusion.replace(" are not d-separated", " are d-separated")
        else:
            bad = conclusion.replace(" are d-separated", " are not d-separated")
        got = check_steps(trace.replace(conclusion, bad), r)
        flipped += 1
        caught += got["true"] == got["steps"] - 1
    assert flipped > 120 and caught == flipped


def test_check_steps_judges_arrows_and_reasons():
    rec = record_for("dsep", ["B", "C", "D", "E"], [("B", "C"), ("D", "C"), ("C", "E")], "B", "D", ("E",))
    assert check_steps("Trail B -> C <- D is open.", rec)["true"] == 1  # opened by a descendant
    assert check_steps("Trail B -> C -> D is open.", rec)["true"] == 0  # wrong arrow
    assert check_steps("Trail B -> C <- D is blocked at C, a collider outside {E}.", rec)["true"] == 0
    rec = dict(rec, meta={"x": "B", "y": "E", "z": ["C"]})
    assert check_steps("Trail B -> C -> E is blocked at C, which is in {C}.", rec)["true"] == 1
    assert check_steps("Trail B -> C -> E is blocked at C, a collider outside {C}.", rec)["true"] == 0
    assert check_steps("Trail B -> Q -> E is open.", rec) == {"steps": 1, "true": 0, "in_premise": 0}
    # without meta.z the set is read from the atom, then from the question
    rec = {k: v for k, v in rec.items() if k != "meta"}
    assert check_steps("Trail B -> C <- D is open.", dict(rec, atom="dsep(B,D,{E})"))["true"] == 1
    assert check_steps("Trail B -> C <- D is open.", dict(rec, atom="dsep(B,D,{})"))["true"] == 0
    rec = {k: v for k, v in rec.items() if k != "atom"}
    question = "Are B and D d-separated given {E}?"
    assert check_steps("Trail B -> C <- D is open.", dict(rec, question=question))["true"] == 1


# generated records ------------------------------------------------------------------------------


@pytest.mark.parametrize("task", TASKS)
def test_generated_records_unchanged_and_traces_match_labels(task):
    for split in SPLITS:
        plain = generate(task, split, 40, seed=4, questions_per_graph=4)
        traced = generate(task, split, 40, seed=4, questions_per_graph=4, traces=True)
        assert [{k: v for k, v in r.items() if k != "trace"} for r in traced] == plain
        for r in traced:
            assert list(r)[-1] == "trace" and "trace" not in plain[0]
            x, y, z = r["meta"]["x"], r["meta"]["y"], tuple(r["meta"]["z"])
            assert r["trace"] == trace_text(task, r["nodes"], r["edges"], x, y, z)
            negative = "does not cause" in r["trace"] if task == "transitivity" else "not d-separated" in r["trace"]
            assert negative == (r["label"] == "No"), r
            assert not FORBIDDEN.search(r["trace"])
            got = check_steps(r["trace"], r)
            # adversarial minimal pairs can remove a bridge: X and Y may then share no trail
            assert got["steps"] == got["true"] >= (0 if "not joined by any trail" in r["trace"] else 1)


def test_cli_writes_traces(tmp_path, capsys):
    out = tmp_path / "d.jsonl"
    assert main(["data", "dsep", "--n", "6", "--seed", "2", "--traces", "-o", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows == generate("dsep", "train", 6, seed=2, traces=True)
    plain = tmp_path / "p.jsonl"
    assert main(["data", "dsep", "--n", "6", "--seed", "2", "-o", str(plain)]) == 0
    assert all("trace" not in json.loads(line) for line in plain.read_text().splitlines())
    capsys.readouterr()
    assert main(["data", "transitivity", "--n", "2", "--traces", "--format", "prompt"]) == 0
    text = capsys.readouterr().out
    assert "Reasoning: " in text and "\nAnswer: " in text


# ---------------------------------------------------------------- one format, written and read
NAMES = st.text("BCDEFGHJKLMNPQRSTUVWXZabc0123456789", min_size=1, max_size=4).filter(
    lambda s: s[0].isalpha())


@given(NAMES, NAMES, st.lists(NAMES, max_size=3, unique=True), st.booleans(), st.booleans(),
       st.lists(st.sampled_from(["->", "<-"]), min_size=1, max_size=4))
def test_every_written_sentence_reads_back(x, y, z, flag, collider, arrows):
    """What the writer writes the checker's patterns read back field for field, also spaced out
    the way a word-level tokenizer decodes it."""
    from constraintc.tasks import trace_format as tf

    def spaced(text):
        return re.sub(r"\s*([{},.]|->|<-)\s*", r" \1 ", text).replace("d-separated", "d - separated")

    for variant in (lambda s: s, spaced):
        step = variant(tf.cause_step(x, y) + " " + tf.cause_conclusion(x, y, flag))
        assert [(a, v == tf.CAUSES, b) for a, v, b in tf.CAUSAL_STEP.findall(step)] == \
            [(x, True, y), (x, flag, y)]
        names = [x, *[f"{x}{i}" for i in range(len(arrows) - 1)], y]
        trail = " ".join([names[0]] + [f"{a} {n}" for a, n in zip(arrows, names[1:])])
        for block in (None, (names[0], collider)):
            claim = tf.TRAIL_CLAIM.findall(variant(tf.trail_sentence(trail, block, z)))
            assert len(claim) == 1
            text, is_open, at, reason = claim[0]
            assert tf.TRAIL_TOKEN.findall(text) == tf.TRAIL_TOKEN.findall(trail)
            assert bool(is_open) == (block is None) and at == (block[0] if block else "")
            assert reason == ("" if block is None else tf.COLLIDER if collider else tf.IN_SET)
        sep = tf.SEPARATION.findall(variant(tf.separation_conclusion(x, y, z, flag)))
        assert [(a, b, bool(n), sorted(v.strip() for v in s.split(",") if v.strip()))
                for a, b, n, s in sep] == [(x, y, not flag, sorted(z))]
        assert tf.NOT_JOINED_CLAIM.findall(variant(tf.not_joined(x, y))) == [(x, y)]


def test_every_sentence_form_is_one_the_checker_reads():
    from constraintc.tasks.trace_format import (CAUSAL_STEP, EARLIER_BLOCKED, EVERY_OTHER_BLOCKED,
                                                NOT_JOINED_CLAIM, SENTENCE_FORMS, SEPARATION,
                                                TRAIL_CLAIM)

    for sentence in SENTENCE_FORMS:
        if sentence in (EVERY_OTHER_BLOCKED, EARLIER_BLOCKED):
            continue  # says nothing checkable
        assert any(p.search(sentence) for p in (CAUSAL_STEP, TRAIL_CLAIM, SEPARATION, NOT_JOINED_CLAIM)), sentence


# d-separation as a reachability search (bayes_ball) ----------------------------------------------

MOVE_SENTENCE = re.compile(r"^([A-Za-z]+) (->|<-) ([A-Za-z]+)$")


def check_bayes_ball(nodes, edges, g, x, y, z):
    """One search trace: clean, its conclusion networkx's, every stated step true, and the search
    itself replayed: each move leaves the state being expanded along a premise statement the
    state allows, first entries are expanded at once (depth first) and nothing is expanded twice."""
    trace = trace_text("dsep", nodes, edges, x, y, z, search="bayes_ball")
    assert_clean(trace)
    separated = nx.is_d_separator(g, {x}, {y}, set(z))
    zs = "{" + ", ".join(sorted(z)) + "}"
    parts = sentences(trace)
    assert parts[-1] == f"So {x} and {y} are {'' if separated else 'not '}d-separated given {zs}", trace
    got = check_steps(trace, record_for("dsep", nodes, edges, x, y, z))
    assert got["steps"] == got["true"] >= 1, (trace, got)

    def allowed(v, down):  # the moves a state allows, in statement order
        if v in z:
            return [(p, False) for p in g.predecessors(v)] if down else []
        if down:
            return [(c, True) for c in g.successors(v)]
        return [(b if a == v else a, a == v) for a, b in dict.fromkeys(edges) if v in (a, b)]

    body = parts[:-1]
    if body and body[0] == f"{x} and {y} are not joined by any trail":
        assert g.degree(x) == 0 and separated
        body = body[1:]
    stack = [[x, False, allowed(x, False), 0]]
    seen = {(x, False)}
    i = 0
    while i < len(body):
        while stack and stack[-1][3] == len(stack[-1][2]):
            stack.pop()
        assert stack, trace  # a sentence after the search was exhausted
        top = stack[-1]
        m = MOVE_SENTENCE.match(body[i])
        assert m and m.group(1) == top[0], (trace, body[i])
        other, down = m.group(3), m.group(2) == "->"
        assert (other, down) == top[2][top[3]], (trace, body[i])
        top[3] += 1
        i += 1
        if other == y:
            assert i == len(body) and not separated, trace
            return trace
        if (other, down) in seen:
            continue
        seen.add((other, down))
        if other in z:
            assert body[i] == f"{other} is given", trace
            i += 1
        elif down and g.out_degree(other) == 0:
            assert body[i] == f"{other} causes nothing", trace
            i += 1
        stack.append([other, down, allowed(other, down), 0])
    assert all(t[3] == len(t[2]) for t in stack) and separated, trace  # exhausted
    return trace


@settings(max_examples=60)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 9), extra_p=st.sampled_from([0.0, 0.2, 0.5, 0.9]))
def test_bayes_ball_traces_decide_d_separation_as_networkx_does(seed, n, extra_p):
    nodes, edges, g = random_digraph(seed, n, extra_p)
    rng = random.Random(seed)
    questions = list(all_questions("dsep", nodes, max_z=3))
    for x, y, z in rng.sample(questions, min(40, len(questions))):
        check_bayes_ball(nodes, edges, g, x, y, z)


@settings(max_examples=40)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(3, 9), extra_p=st.sampled_from([0.0, 0.3, 0.9]))
def test_bayes_ball_steps_depend_on_x_and_z_until_y_is_reached(seed, n, extra_p):
    """Two questions with the same X and Z write the same search until one of them reaches its Y:
    the trace of the one reached later (or never) starts with the other's moves."""
    nodes, edges, g = random_digraph(seed, n, extra_p)
    rng = random.Random(seed)
    x = rng.choice(nodes)
    rest = [v for v in nodes if v != x]
    z = tuple(rng.sample(rest, rng.randint(0, min(2, len(rest) - 1))))
    bodies = {y: sentences(trace_text("dsep", nodes, edges, x, y, z, search="bayes_ball"))[:-1]
              for y in rest if y not in z}
    for a, b in [(a, b) for a in bodies for b in bodies if a != b]:
        short, long_ = sorted((bodies[a], bodies[b]), key=len)
        assert long_[:len(short)] == short, (x, z, a, b)


def test_bayes_ball_trace_examples():
    nodes = ["A", "B", "C", "D", "E"]
    edges = [("A", "C"), ("B", "C"), ("C", "D"), ("D", "E")]
    t = lambda x, y, z=(): trace_text("dsep", nodes, edges, x, y, z, search="bayes_ball")  # noqa: E731
    # a collider outside Z stops the search going down: A reaches only C, D and E
    assert t("A", "B") == "A -> C. C -> D. D -> E. E causes nothing. So A and B are d-separated given {}."
    # a descendant of the collider in Z turns the search up, through C to B
    assert t("A", "B", ("D",)) == ("A -> C. C -> D. D is given. D <- C. C <- A. C <- B. "
                                   "So A and B are not d-separated given {D}.")
    # a chain node in Z blocks: the search turns up at C and its moves up stop at the start
    assert t("A", "E", ("C",)) == "A -> C. C is given. C <- A. C <- B. B -> C. So A and E are d-separated given {C}."
    assert t("E", "A", ("D",)) == "E <- D. D is given. So E and A are d-separated given {D}."
    assert trace_text("dsep", ["A", "B", "C"], [("B", "C")], "A", "B", search="bayes_ball") == (
        "A and B are not joined by any trail. So A and B are d-separated given {}.")
    with pytest.raises(ValueError, match="a dsep trace's search must be one of until_found, bayes_ball"):
        trace_text("dsep", nodes, edges, "A", "B", search="depth_first")
    with pytest.raises(ValueError, match="a transitivity trace's search must be one of"):
        trace_text("transitivity", nodes, edges, "A", "B", search="bayes_ball")


def test_bayes_ball_sentences_need_no_new_words():
    """The search writes only words the embedded tokenizer's corpus already has: a new word would
    renumber its vocabulary (words by frequency) and change every trained run."""
    from constraintc.tasks.corpus import task_text
    from constraintc.tasks.trace_format import SEARCH_FORMS

    corpus = task_text(per_task=40, traces=True)
    known = {w for text in corpus.texts for w in re.findall(r"->|<-|\w+|[^\w\s]", text)}
    assert not any(form in corpus.texts for form in SEARCH_FORMS)  # not added, so nothing renumbers
    written = list(SEARCH_FORMS) + [r["trace"] for r in generate("dsep", "mix", 60, seed=5, traces=True,
                                                                 trace_search="bayes_ball")]
    names = {n for r in generate("dsep", "mix", 60, seed=5) for n in r["nodes"]} | {"B", "C", "D"}
    words = {w for text in written for w in re.findall(r"->|<-|\w+|[^\w\s]", text)} - names
    assert words <= known, words - known
    assert {"->", "<-", "is", "given"} <= words


def test_check_steps_judges_search_moves_and_given_claims():
    rec = record_for("dsep", ["B", "C", "D"], [("B", "C"), ("D", "C")], "B", "D", ("C",))
    assert check_steps("B -> C. C is given. C <- D.", rec) == {"steps": 3, "true": 3, "in_premise": 2}
    # a move against the statement's direction, along no statement, and a node not given
    assert check_steps("C -> B. B <- D. D is given.", rec) == {"steps": 3, "true": 0, "in_premise": 0}
    # spaced out as a word-level tokenizer decodes it; a trail's arrows are not moves
    assert check_steps("B -> C . C is given . C <- D .", rec)["true"] == 3
    assert check_steps("Trail B -> C <- D is open.", rec) == {"steps": 1, "true": 1, "in_premise": 0}
