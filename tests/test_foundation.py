"""The shared foundation: DIMACS round trips, the circuit IR builder, the CLI shell."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, strategies as st

from constraintc.cli import main
from constraintc.compile.ir import AND, LIT, OR, IRBuilder
from constraintc.logic.cnf import CNF, DimacsError


def clauses_strategy(max_vars=6):
    lit = st.integers(1, max_vars).flatmap(lambda v: st.sampled_from([v, -v]))
    return st.lists(st.lists(lit, min_size=1, max_size=4).map(tuple), max_size=12)


@given(clauses_strategy())
def test_dimacs_round_trip(clauses):
    names = {1: "causes(a,b)", 3: "dsep(a,b,{c})"}
    cnf = CNF(num_vars=6, clauses=clauses, num_atoms=4, names=names)
    back = CNF.from_dimacs(cnf.to_dimacs())
    assert back.clauses == cnf.clauses
    assert back.num_vars == 6 and back.num_atoms == 4
    assert back.names == names
    assert back.atom_names == ["causes(a,b)", "x2", "dsep(a,b,{c})", "x4"]


@pytest.mark.parametrize(
    "text, where, what",
    [
        ("1 2 0\n", "<dimacs>:1:1", "before the 'p cnf"),
        ("p cnf 2 1\n1 x 0\n", "<dimacs>:2:3", "expected an integer literal, found 'x'"),
        ("p cnf 2 1\n1 3 0\n", "<dimacs>:2:3", "literal 3 exceeds the 2 variables"),
        ("p cnf two 1\n", "<dimacs>:1:1", "expected a header"),
    ],
)
def test_dimacs_errors_name_position(text, where, what):
    with pytest.raises(DimacsError) as info:
        CNF.from_dimacs(text)
    assert str(info.value).startswith(where) and what in str(info.value)


def test_dimacs_clause_count_mismatch():
    with pytest.raises(DimacsError, match="declares 2 clauses, file has 1"):
        CNF.from_dimacs("p cnf 2 2\n1 -2 0\n")


def _eval(ir, assignment):
    val = []
    for i in range(ir.num_nodes):
        k = ir.kinds[i]
        if k == LIT:
            lit = int(ir.lits[i])
            val.append(assignment[abs(lit)] == (lit > 0))
        elif k == AND:
            val.append(all(val[c] for c in ir.node_children(i)))
        elif k == OR:
            val.append(any(val[c] for c in ir.node_children(i)))
        else:
            val.append(bool(k))
    return [val[r] for r in ir.roots]


def test_ir_builder_hash_conses_and_folds():
    b = IRBuilder(num_vars=3)
    x, y = b.lit(1), b.lit(-2)
    assert b.lit(1) == x
    assert b.conj([x, y]) == b.conj([y, x, b.true()])
    assert b.conj([x, b.false()]) == b.false()
    assert b.disj([x, b.true()]) == b.true()
    assert b.disj([]) == b.false() and b.conj([]) == b.true()
    root = b.disj([b.conj([x, y]), b.conj([b.lit(-1), b.lit(3)])])
    ir = b.build([root, x], root_names=["r", "x"])
    ir.validate()
    assert ir.root_names == ["r", "x"]
    for bits in itertools.product([False, True], repeat=3):
        a = dict(zip([1, 2, 3], bits))
        assert _eval(ir, a) == [(a[1] and not a[2]) or (not a[1] and a[3]), a[1]]
    # unreachable nodes are dropped
    assert ir.num_nodes == 7 and int(np.sum(ir.kinds == OR)) == 1


def test_cli_help_and_unknown_command(capsys):
    assert main([]) == 0
    assert "constraintc check" in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        main(["frobnicate"])
    assert info.value.code == 2


def test_cache_dir_precedence(monkeypatch, tmp_path):
    from pathlib import Path

    from constraintc.circuit.artifact import cache_dir as artifact_cache_dir
    from constraintc.resources import cache_dir

    monkeypatch.delenv("CONSTRAINTC_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert cache_dir() == Path.home() / ".cache" / "constraintc"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "constraintc"
    monkeypatch.setenv("CONSTRAINTC_CACHE", str(tmp_path / "cc"))
    assert cache_dir() == artifact_cache_dir() == tmp_path / "cc"


def test_prune_builds_keeps_the_newest_of_one_family(tmp_path):
    import os

    from constraintc.native import prune_builds

    libs = []
    for i in range(5):
        lib = tmp_path / f"libdnnf_core-{i:016x}.so"
        lib.write_bytes(b"x")
        os.utime(lib, (1000 + i, 1000 + i))
        libs.append(lib)
    other = tmp_path / "circuit_cpu-0000000000000000.so"
    other.write_bytes(b"x")
    os.utime(other, (1, 1))
    built = libs[1]  # just built (an old source version can be rebuilt): always kept
    removed = prune_builds(built, keep=3)
    assert sorted(removed) == sorted([libs[0], libs[2]])
    assert {p.name for p in tmp_path.iterdir()} == {libs[1].name, libs[3].name, libs[4].name, other.name}


def test_subcommands_share_option_names():
    """One spelling per meaning: -o/--output for a file, --output-dir for a directory, --param
    wherever rules are read; old spellings still parse but are not shown."""
    import argparse

    from constraintc.cli import SUBCOMMANDS, build_parser

    reads_rules = {"check", "ground", "compile", "eval", "finetune"}
    for name in SUBCOMMANDS:
        parser = build_parser(name)
        visible = [a for a in parser._actions if a.help is not argparse.SUPPRESS]
        by_dest = {a.dest: a.option_strings for a in visible if a.option_strings}
        if "output" in by_dest:
            assert by_dest["output"] == ["-o", "--output"], name
        if "output_dir" in by_dest:
            assert by_dest["output_dir"] == ["--output-dir"], name
        shown = {s for a in visible for s in a.option_strings}
        assert ("--param" in shown) == (name in reads_rules), name
        assert not shown & {"--out", "--rules-param"}, name
    args = build_parser("eval").parse_args(["--data", "d", "--predictions", "p", "--out", "x",
                                            "--rules-param", "k=1", "--param", "j=2"])
    assert args.output_dir == "x" and args.param == ["k=1", "j=2"]


def test_ground_and_compile_document_the_same_nodes_default():
    from constraintc.cli import build_parser
    from constraintc.cli.options import DEFAULT_NODES

    for name in ("ground", "compile"):
        (nodes,) = [a for a in build_parser(name)._actions if a.dest == "nodes"]
        assert nodes.help.endswith(f"else {DEFAULT_NODES}")
