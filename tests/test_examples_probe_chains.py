"""examples/probe_chains.py: the chains it asks about, and what it reports for known answerers."""

from __future__ import annotations

import random
import re
from pathlib import Path

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]


from conftest import load_example  # noqa: E402

PROBE = load_example("probe_chains")
PROMPT = re.compile(r"^(?P<premise>.*)\nQuestion: Does (?P<x>\w+) cause (?P<y>\w+)\?\nAnswer:$", re.S)


def _parse(prompt: str):
    m = PROMPT.match(prompt)
    edges = [tuple(s.split(" causes ")) for s in m["premise"].rstrip(".").split(". ")]
    g = nx.DiGraph(edges)
    return g, m["x"], m["y"]


def oracle(groups):  # follows the links: networkx reachability
    return [[float(nx.has_path(*_parse(p))) for p in g] for g in groups]


def end_ranker(groups):  # Yes iff X is a source or Y a sink of the premise: ranks by the ends
    out = []
    for g in groups:
        row = []
        for p in g:
            graph, x, y = _parse(p)
            row.append(float(graph.in_degree(x) == 0 or graph.out_degree(y) == 0))
        out.append(row)
    return out


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10**6), st.integers(3, 15), st.sampled_from(PROBE.ORDERS), st.booleans())
def test_questions_are_chains_with_the_asked_distance(seed, n, order, cut):
    print(f"seed={seed} n={n} order={order} cut={cut}")
    groups, dists = PROBE.reading_questions(random.Random(seed), n, order, 2, cut)
    assert len(groups) == len(dists) == 2 * 2 * sum(d <= n - 1 for d in PROBE.DISTANCES)
    for (forward, backward), d in zip(groups, dists):
        g, x, y = _parse(forward)
        assert nx.shortest_path_length(g, x, y) == d and not nx.has_path(g, y, x)
        assert _parse(backward)[1:] == (y, x)
        assert max(dict(g.out_degree()).values()) == 1 == max(dict(g.in_degree()).values())  # a chain
        assert g.number_of_edges() == (d if cut else n - 1)
        if cut:  # the path only: X is the root and Y the leaf
            assert g.in_degree(x) == 0 and g.out_degree(y) == 0


def test_a_link_follower_reads_everything_and_a_ranker_only_the_cut_premises():
    rows = PROBE.reading_table(oracle, [5, 9], chains=6, seed=1)
    assert len(rows) == 2 * 2 * 2 and all(a == 1.0 for r in rows for a in r["accuracy"].values())
    rows = PROBE.reading_table(end_ranker, [5, 9], chains=6, seed=1)
    for r in rows:
        if r["premise"] == "path only":
            assert all(a == 1.0 for a in r["accuracy"].values())
    whole9 = [r for r in rows if r["premise"] == "whole chain" and r["nodes"] == 9]
    assert all(r["accuracy"][1] < 0.9 for r in whole9)  # adjacent interior nodes: No both ways


def test_step_positions_pick_the_step_sentences_of_a_trace():
    from constraintc.lm import load_model
    from constraintc.tasks.corpus import task_text

    model, tok = load_model("embedded", corpus=task_text)
    ids = tok("B causes C. C causes D. So B causes D.")["input_ids"]
    special = tok.convert_tokens_to_ids(["causes", ".", "So", "nothing"])
    steps = PROBE.step_positions(ids, *special)
    assert [tok.convert_ids_to_tokens(ids[j - 1 : j + 2]) for j in steps] == [
        tok.convert_ids_to_tokens(tok(s)["input_ids"][1:]) for s in ("B causes C", "C causes D")
    ]
    assert PROBE.step_positions(tok("E causes nothing. So E does not cause B.")["input_ids"], *special) == []
    # the whole probe on an untrained model: steps found in every chain size, one subject per lookup
    rows = PROBE.lookup_table(model.eval(), tok, [4], chains=2, seed=0, questions=3)
    assert [(r["order"], r["nodes"]) for r in rows] == [("forward", 4), ("shuffled", 4)]
    for r in rows:
        acc, n = r["lookup"]
        assert n > 0 and 0.0 <= acc <= 1.0 and r["subject"][1] == n


def test_bad_sizes_are_a_clear_error(capsys):
    assert PROBE.main(["embedded", "--sizes", "5,x"]) == 2
    assert "--sizes '5,x'" in capsys.readouterr().err
    assert PROBE.main(["embedded", "--chains", "0"]) == 2
    assert "--chains 0" in capsys.readouterr().err
    assert PROBE.main([str(ROOT / "no-such-model")]) == 2
    assert "no-such-model" in capsys.readouterr().err
