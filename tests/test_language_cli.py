"""`constraintc ground` and `constraintc check` through constraintc.cli.main."""

from __future__ import annotations

import pytest
from pysat.solvers import Minisat22

from constraintc.cli import build_parser, main
from constraintc.logic.cnf import CNF


def test_ground_dimacs_to_stdout(capsys):
    assert main(["ground", "transitivity", "--nodes", "3"]) == 0
    out, err = capsys.readouterr()
    cnf = CNF.from_dimacs(out)
    assert cnf.num_atoms == 12 and cnf.atom_names[0] == "causes(n0,n1)"
    assert cnf.atom_names[6] == "edge(n0,n1)"
    assert "12 atoms" in err


def test_ground_graph_string_and_file_agree(tmp_path, capsys):
    edges = tmp_path / "edges.txt"
    edges.write_text("# a chain and a collider\na -> b\nb c\nd->c\n")
    out1 = tmp_path / "one.cnf"
    out2 = tmp_path / "two.cnf"
    assert main(["ground", "rules/dsep.rules", "--nodes", "a,b,c,d", "--graph", "a->b, b->c, d->c",
                 "-o", str(out1)]) == 0
    assert main(["ground", "dsep.rules", "--nodes", "a,b,c,d", "--graph", str(edges),
                 "-o", str(out2)]) == 0
    # identical but for the first comment, which names the rules file as given
    assert out1.read_text().split("\n", 1)[1] == out2.read_text().split("\n", 1)[1]
    cnf = CNF.read(out1)
    names = cnf.atom_names
    with Minisat22(bootstrap_with=cnf.clauses) as solver:
        assert solver.solve()
        model = set(solver.get_model())
    truth = {name: (i + 1) in model for i, name in enumerate(names)}
    assert truth["dsep(a,d,{})"] and not truth["dsep(a,d,{c})"] and not truth["dsep(a,c,{})"]
    assert truth["dsep(a,c,{b})"]


def test_ground_nodes_default_to_graph_nodes(capsys):
    assert main(["ground", "transitivity", "--graph", "x->y, y->z"]) == 0
    cnf = CNF.from_dimacs(capsys.readouterr().out)
    assert cnf.atom_names == ["causes(x,y)", "causes(x,z)", "causes(y,x)", "causes(y,z)",
                              "causes(z,x)", "causes(z,y)"]


def test_ground_text_format(capsys):
    assert main(["ground", "transitivity", "--nodes", "a,b,c", "--graph", "a->b", "--format",
                 "text"]) == 0
    out = capsys.readouterr().out
    assert "atoms:\n  1 causes(a,b)" in out
    assert "rule edges_cause:\n  causes(a,b)\n" in out
    assert "~causes(a,b) | ~causes(b,a)" in out


def test_ground_and_compile_default_to_the_same_schema_size(capsys):
    from constraintc.cli.options import DEFAULT_NODES

    assert main(["ground", "transitivity"]) == 0
    cnf = CNF.from_dimacs(capsys.readouterr().out)
    assert cnf.num_atoms == 2 * DEFAULT_NODES * (DEFAULT_NODES - 1)  # causes and edge, ordered pairs
    assert main(["compile", "transitivity", "--json", "--no-cache"]) == 0
    assert f'"atoms": {cnf.num_atoms}' in capsys.readouterr().out


def test_ground_param_option(capsys):
    assert main(["ground", "dsep", "--nodes", "4", "--param", "cond_size=0"]) == 0
    cnf = CNF.from_dimacs(capsys.readouterr().out)
    assert all(name.endswith(",{})") for name in cnf.atom_names if name.startswith("dsep"))


@pytest.mark.parametrize("argv,needle", [
    (["ground", "transitivity", "--nodes", "a,,b"], "--nodes"),
    (["ground", "transitivity", "--nodes", "3", "--graph", "a->b"], "graph"),
    (["ground", "transitivity", "--nodes", "a,b", "--graph", "a->b->c"], "--graph"),
    (["ground", "transitivity", "--nodes", "a,b", "--graph", "a->a"], "edge(a,a)"),
    (["ground", "transitivity", "--nodes", "3", "--param", "k=1"], "param"),
    (["ground", "nosuch", "--nodes", "3"], "no rules file"),
    (["ground", "dsep", "--nodes", "3", "-o", "/nonexistent/dir/x.cnf"], "-o"),
])
def test_ground_errors_are_clean(argv, needle, capsys):
    assert main(argv) != 0
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_help_texts_have_examples():
    for command in ("check", "ground"):
        text = build_parser(command).format_help()
        assert "examples:" in text and "dsep" in text
