"""``.nnf`` (c2d and d4 formats) round trips and error messages."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings

from constraintc.compile import compile_cnf, model_count, read_nnf, write_nnf
from constraintc.compile.nnf import NnfError
from constraintc.errors import Unsatisfiable
from constraintc.compile.workloads import transitivity_cnf as transitivity
from test_compile_differential import brute_models, check_structure, cnfs, eval_ir


@settings(max_examples=200)
@given(cnfs(max_vars=8, max_clauses=16))
def test_round_trip_both_formats(tmp_path_factory, cnf):
    try:
        ir = compile_cnf(cnf).ir
    except Unsatisfiable:
        return
    models = brute_models(cnf)
    p = [Fraction(k + 1, cnf.num_vars + 3) for k in range(cnf.num_vars)]
    for fmt in ("c2d", "d4"):
        path = tmp_path_factory.mktemp("nnf") / f"c.{fmt}.nnf"
        write_nnf(ir, path, format=fmt)
        back = read_nnf(path, num_vars=cnf.num_vars)
        assert model_count(back) == len(models)
        assert eval_ir(back, p) == eval_ir(ir, p) == sum(
            __import__("math").prod(p[i] if b else 1 - p[i] for i, b in enumerate(row)) for row in models)
        if cnf.num_vars <= 6:
            check_structure(back)


def test_c2d_text_shape(tmp_path):
    ir = compile_cnf(transitivity(4)).ir
    path = tmp_path / "t4.nnf"
    write_nnf(ir, path)
    lines = path.read_text().splitlines()
    nodes, edges, variables = map(int, lines[0].split()[1:])
    assert lines[0].startswith("nnf ") and nodes == len(lines) - 1 and variables == 12
    assert edges == ir.num_edges
    assert any(ln.startswith("O ") and ln.split()[1] != "0" for ln in lines)  # decision vars kept
    assert model_count(read_nnf(path)) == 219


def test_reads_hand_written_c2d_and_d4(tmp_path):
    # (x1 & x2) | (~x1 & x3), constants included
    (tmp_path / "a.nnf").write_text(
        "nnf 7 6 3\nL 1\nL 2\nA 2 0 1\nL -1\nL 3\nA 2 3 4\nO 1 2 2 5\n")
    assert model_count(read_nnf(tmp_path / "a.nnf")) == 4
    (tmp_path / "t.nnf").write_text("nnf 1 0 2\nA 0\n")
    assert model_count(read_nnf(tmp_path / "t.nnf")) == 4
    (tmp_path / "f.nnf").write_text("nnf 1 0 2\nO 0 0\n")
    assert model_count(read_nnf(tmp_path / "f.nnf")) == 0
    # the d4 README example: o 1 0 / o 2 0 / o 3 0 / t 4 0 and arcs with unit literals
    (tmp_path / "d4.nnf").write_text(
        "o 1 0\no 2 0\no 3 0\nt 4 0\n3 4 -2 3 0\n3 4 2 0\n2 3 -1 0\n2 4 1 0\n1 2 0\n")
    ir = read_nnf(tmp_path / "d4.nnf")
    # x1 | (~x1 & ((~x2 & x3) | x2)) over 3 variables: 4 + 3 = 7 models
    assert ir.num_vars == 3 and model_count(ir) == 7


@pytest.mark.parametrize("text, message", [
    ("nnf 2 1 2\nL 1\nA 2 0\n", "child count does not match"),
    ("nnf 1 0 2\nL 5\n", "literal in 1..2"),
    ("nnf 2 1 2\nL 1\nA 1 7\n", "child 7 is not an earlier node"),
    ("nnf 3 0 2\nL 1\n", "header declares 3 nodes, file has 1"),
    ("nnf 1 0 2\nX 1\n", "expected a node 'L', 'A' or 'O'"),
    ("nnf 1 0 2\nL one\n", "expected an integer, found 'one'"),
    ("o 1 0\n1 2 0\n", "node 2 is used but never declared"),
    ("o 1 0\na 2 0\n1 2 0\n2 1 0\n", "cycle"),
    ("", "empty .nnf file"),
])
def test_errors_name_file_line_column(tmp_path, text, message):
    path = tmp_path / "bad.nnf"
    path.write_text(text)
    with pytest.raises(NnfError, match=message.replace("(", r"\(").replace(".", r"\.")) as info:
        read_nnf(path)
    if text.count("\n") > 1 and "header declares" not in message and "cycle" not in message:
        assert f"{path}:" in str(info.value) and "^" in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(NnfError, match="cannot read"):
        read_nnf(tmp_path / "nope.nnf")
