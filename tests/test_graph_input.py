"""Graph and node input, DIMACS headers and output paths: each test is the accident it prevents.

Cyclic graphs given to rules about DAGs, look-alike Unicode node names, `--nodes 0`, a binary
file given as `--graph`, DIMACS whose `c atoms` exceeds its variables, output paths that are
directories, and rules that no graph with an edge satisfies (warned about at check/compile).
"""

from __future__ import annotations

import itertools

import networkx as nx
import pytest

from constraintc.api import compile_rules, rule_warnings
from constraintc.cli import main
from constraintc.compile import compile_cnf
from constraintc.compile.counting import forced_atoms, model_count
from constraintc.errors import OptionError, Unsatisfiable
from constraintc.language import load_rules, parse_rules
from constraintc.logic import ground
from constraintc.cli.options import parse_graph, parse_nodes
from constraintc.logic.cnf import CNF, DimacsError
from constraintc.logic.evidence import find_cycle, node_names


# ---------------------------------------------------------------- cycles
@pytest.mark.parametrize("rules", ["transitivity", "dsep", "transitivity_closed"])
def test_a_cyclic_graph_is_refused_with_its_cycle_named(rules):
    """Issue: cyclic graphs were accepted silently for dsep and reported only as 'unsatisfiable'
    for transitivity. The library declares 'given acyclic edge': the cycle is named."""
    with pytest.raises(OptionError) as info:
        ground(load_rules(rules), ["a", "b", "c", "d"], graph=[("a", "b"), ("b", "c"), ("c", "a")])
    message = str(info.value)
    assert "cycle a -> b -> c -> a" in message and "given acyclic edge" in message
    assert f"{rules}:" in message  # where the declaration is


def test_cyclic_evidence_for_a_schema_is_refused_too():
    schema = ground(load_rules("dsep"), ["a", "b", "c"])
    with pytest.raises(OptionError, match=r"cycle b -> c -> b"):
        schema.evidence([("a", "b"), ("b", "c"), ("c", "b")])


def test_cli_names_the_cycle(capsys):
    assert main(["ground", "dsep", "--graph", "x->y, y->z, z->x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --graph='x -> y -> z -> x': a graph without cycles")


def test_without_acyclic_a_cycle_is_named_in_the_unsatisfiable_message(tmp_path):
    path = tmp_path / "open.rules"
    path.write_text(load_rules("transitivity").source.replace("given acyclic edge", "given edge"))
    with pytest.raises(Unsatisfiable, match=r"unsatisfiable[\s\S]*note: the graph has the cycle "
                                            r"a -> b -> c -> a"):
        compile_rules(str(path), nodes=["a", "b", "c"], graph=[("a", "b"), ("b", "c"), ("c", "a")],
                      cache=False)
    # when a rule grounds to false outright, the grounder names the cycle itself
    program = parse_rules(load_rules("transitivity").source.replace("given acyclic edge", "given edge")
                          + "\nrule no_cycle2: forall X, Y: ~(edge(X, Y) & edge(Y, X))\n", "open.rules")
    with pytest.raises(Unsatisfiable, match=r"rule no_cycle2 is false on this graph \(the graph has "
                                            r"the cycle a -> b -> a\)"):
        ground(program, ["a", "b"], graph=[("a", "b"), ("b", "a")])


def test_acyclic_applies_only_to_a_graph_predicate():
    with pytest.raises(Exception, match="'acyclic' describes a graph"):
        parse_rules("given acyclic p(X: node)\nrule r: forall X: p(X)")


def test_find_cycle_agrees_with_networkx():
    nodes = "abcd"
    pairs = [(u, v) for u in nodes for v in nodes if u != v]
    for mask in range(0, 2 ** len(pairs), 37):  # 114 graphs of every density
        edges = [p for i, p in enumerate(pairs) if mask >> i & 1]
        cycle = find_cycle(edges)
        assert (cycle is None) == nx.is_directed_acyclic_graph(nx.DiGraph(edges))
        if cycle is not None:
            assert cycle[0] == cycle[-1] and all(e in edges for e in zip(cycle, cycle[1:]))


def test_dags_still_ground_exactly():
    """Declaring acyclic changes nothing for DAGs: every DAG on 3 nodes gives the same circuit
    as the file without the declaration."""
    plain = parse_rules(load_rules("transitivity").source.replace("given acyclic", "given"))
    program = load_rules("transitivity")
    nodes = ["a", "b", "c"]
    pairs = [(u, v) for u in nodes for v in nodes if u != v]
    for bits in itertools.product((0, 1), repeat=len(pairs)):
        edges = [p for p, b in zip(pairs, bits) if b]
        if not nx.is_directed_acyclic_graph(nx.DiGraph(edges)):
            continue
        assert ground(program, nodes, graph=edges).cnf.clauses == ground(plain, nodes, graph=edges).cnf.clauses


# ---------------------------------------------------------------- node names
def test_node_names_are_nfc_normalised():
    decomposed = "caf" + "e\u0301"
    assert node_names([decomposed, "b"]) == ["caf\u00e9", "b"]
    g = ground(load_rules("transitivity"), ["caf\u00e9", "b"], graph=[(decomposed, "b")])
    assert "causes(caf\u00e9,b)" in g.atoms
    with pytest.raises(OptionError, match="appears twice"):
        node_names(["caf\u00e9", decomposed])


@pytest.mark.parametrize("bad,why", [
    ("a\u200b", "ZERO WIDTH SPACE"),
    ("a\u202e", "RIGHT-TO-LEFT OVERRIDE"),
    ("a\x00", "a control character"),
    ("a b", "SPACE"),
    ("a->b", "'->'"),
])
def test_invisible_or_ambiguous_node_names_are_refused(bad, why):
    """Issue: `a` and `a` + zero-width space were two distinct nodes nobody can tell apart."""
    with pytest.raises(OptionError, match=why):
        node_names(["a", bad])


def test_look_alike_node_names_are_refused():
    with pytest.raises(OptionError, match=r"looks like 'a'"):
        node_names(["a", "\uff41"])  # FULLWIDTH LATIN SMALL LETTER A
    with pytest.raises(OptionError, match=r"looks like"):
        node_names(["fi", "\ufb01"])  # the ligature


def test_an_edge_naming_a_look_alike_says_so():
    with pytest.raises(OptionError, match=r"'\uff41' looks like the node 'a'"):
        ground(load_rules("transitivity"), ["a", "b"], graph=[("\uff41", "b")])


@pytest.mark.parametrize("value", ["0", "-3", "00", "+0", "9" * 40])
def test_nodes_below_one_are_refused(value, capsys):
    """Issue: `--nodes 0` and `--nodes -3` were accepted (-3 as a node named '-3')."""
    assert main(["ground", "transitivity", "--nodes", value]) == 2
    assert capsys.readouterr().err.startswith("error: --nodes=")
    with pytest.raises(OptionError):
        parse_nodes(value)


def test_nodes_below_one_are_refused_by_the_api():
    for nodes in (0, -3, [], "abc"):
        with pytest.raises(OptionError, match="nodes"):
            ground(load_rules("transitivity"), nodes)
    with pytest.raises(OptionError, match="nodes"):
        compile_rules("transitivity", nodes=0, cache=False)


def test_parse_nodes_normalises_and_checks_names():
    assert parse_nodes("e\u0301,b") == ["\u00e9", "b"]
    with pytest.raises(OptionError, match="--nodes"):
        parse_nodes("a,a\u200b")


# ---------------------------------------------------------------- --graph files
def test_a_binary_graph_file_is_a_clean_error(tmp_path, capsys):
    """Issue: `--graph` given a binary file gave a traceback."""
    path = tmp_path / "graph.bin"
    path.write_bytes(b"a -> b\nb -> c\n" + bytes(range(256)))
    assert main(["ground", "transitivity", "--graph", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --graph='{path}': a UTF-8 text file of edges")
    assert "line 3, column 1" in err and "Traceback" not in err


def test_a_graph_file_with_a_bad_line_names_the_line(tmp_path):
    path = tmp_path / "edges.txt"
    path.write_text("\ufeffa -> b  # first\n\nb c\nc -> d -> e\n", encoding="utf-8")
    with pytest.raises(OptionError, match=r"edges\.txt:4: c -> d -> e"):
        parse_graph(str(path))
    path.write_text("a -> b\nb c\n")
    assert parse_graph(str(path)) == [("a", "b"), ("b", "c")]


def test_a_missing_graph_file_is_named_as_missing(tmp_path):
    with pytest.raises(OptionError, match="no such file"):
        parse_graph(str(tmp_path / "edges.txt"))
    with pytest.raises(OptionError, match="not a regular file"):
        parse_graph(str(tmp_path))


# ---------------------------------------------------------------- DIMACS
@pytest.mark.parametrize("text,where,message", [
    ("c atoms 5\np cnf 2 1\n1 2 0\n", "f.cnf:1:9", "'c atoms 5' declares more atoms than the 2"),
    ("c atom 7 x7\np cnf 2 1\n1 2 0\n", "f.cnf:1:8", "names variable 7, but the 'p cnf' header declares 2"),
    ("c atom 0 x0\np cnf 2 1\n1 2 0\n", "f.cnf:1:8", "variables are 1 to"),
    ("c atoms " + "9" * 5000 + "\np cnf 2 1\n1 2 0\n", "f.cnf:1:9", "number too large (5000 digits)"),
    ("p cnf " + "9" * 5000 + " 1\n1 0\n", "f.cnf:1:7", "number too large"),
    ("p cnf 2 1\n" + "1" * 5000 + " 0\n", "f.cnf:2:1", "exceeds the 2 variables declared"),
    ("p cnf 3000000000 0\n", "f.cnf:1:7", "at most 2147483647"),
    ("p cnf 2 1\n1 \u0661 0\n", "f.cnf:2:3", "expected an integer literal"),
])
def test_malformed_dimacs_is_a_clean_error_with_a_position(text, where, message):
    """Issue: DIMACS whose `c atoms` exceeds the variable count gave a traceback."""
    with pytest.raises(DimacsError) as info:
        CNF.from_dimacs(text, filename="f.cnf")
    assert str(info.value).startswith(f"{where}: error:") and message in str(info.value)


def test_dimacs_cli_errors_exit_cleanly(tmp_path, capsys):
    path = tmp_path / "bad.cnf"
    path.write_text("c atoms 5\np cnf 2 1\n1 2 0\n")
    assert main(["compile", str(path), "--no-cache"]) == 1
    assert capsys.readouterr().err.startswith(f"{path}:1:9: error: 'c atoms 5'")
    path.write_bytes(b"p cnf 2 1\n1 \xff 0\n")
    assert main(["compile", str(path), "--no-cache"]) == 1
    assert f"{path}:2:3: error: byte 0xff is not text" in capsys.readouterr().err


def test_valid_dimacs_with_atoms_and_names_still_reads():
    # x <-> (a & b), and a | b: x is a function of the atoms, as 'c atoms' requires
    cnf = CNF.from_dimacs("c atom 1 a\nc atom 2 b\nc atoms 2\np cnf 3 4\n-3 1 0\n-3 2 0\n3 -1 -2 0\n1 2 0\n")
    assert cnf.num_atoms == 2 and cnf.atom_names == ["a", "b"]
    assert model_count(compile_cnf(cnf).ir) == 3


# ---------------------------------------------------------------- output paths
@pytest.mark.parametrize("command", ["ground", "compile"])
def test_output_to_a_directory_or_under_a_file_is_refused_before_the_work(command, tmp_path, capsys):
    """Issue: read-only or file output directories gave tracebacks."""
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    for target, expected in ((tmp_path, "not a directory" if command == "ground" else "directory"),
                             (afile / "out.cnf", "is a file" if command == "compile" else "not a directory")):
        code = main([command, "transitivity", "--nodes", "3", "--no-cache", "-o", str(target)]
                    if command == "compile" else [command, "transitivity", "--nodes", "3", "-o", str(target)])
        assert code == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: -o='{target}'") and expected in err and "Traceback" not in err
    assert afile.read_text() == "keep me"


def test_output_to_a_missing_directory_is_refused(tmp_path, capsys):
    target = tmp_path / "no" / "such" / "out.cnf"
    assert main(["ground", "transitivity", "--nodes", "3", "-o", str(target)]) == 2
    assert "does not exist" in capsys.readouterr().err


# ---------------------------------------------------------------- rules that force the graph
NO_EDGES = "\nrule no_edges: forall X, Y: ~edge(X, Y)\n"


def test_rules_that_allow_no_edge_are_warned_about_at_check(tmp_path, capsys):
    """Issue: a rule that no non-empty graph satisfies passed check and compile with no warning
    (model count 1 over 2^12 edge settings)."""
    path = tmp_path / "strict.rules"
    path.write_text(load_rules("transitivity").source + NO_EDGES)
    assert main(["check", str(path)]) == 0
    captured = capsys.readouterr()
    assert "ok" in captured.out
    assert f"{path}:9:15: warning: no graph with an edge satisfies the rules" in captured.err
    assert main(["check", "--no-probe", str(path)]) == 0
    assert capsys.readouterr().err == ""


def test_rules_that_allow_no_edge_are_warned_about_at_compile(tmp_path, capsys):
    import json

    path = tmp_path / "strict.rules"
    path.write_text(load_rules("transitivity").source + NO_EDGES)
    assert main(["compile", str(path), "--nodes", "4", "--json", "--no-cache"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    # only the empty graph: its models are the strict partial orders on 4 nodes (219)
    assert summary["model_count"] == 219
    assert len(summary["warnings"]) == 1 and "no graph with an edge" in captured.err


def satisfying_assignments(grounding) -> list[tuple[bool, ...]]:
    """Every atom assignment under which all rules hold, by evaluating the grounded circuit."""
    from constraintc.logic.boolean import AND, CONST, IFF, VAR

    b = grounding.builder
    out = []
    for bits in itertools.product((False, True), repeat=len(grounding.atoms)):
        value = {abs(lit): bit for lit, bit in zip(grounding.atom_lits, bits)}

        def val(lit):
            node = abs(lit)
            if node not in value:
                kind = b.kind[node]
                if kind == CONST:
                    value[node] = True
                elif kind == AND:
                    value[node] = all(val(c) for c in b.children[node])
                elif kind == IFF:
                    x, y = b.children[node]
                    value[node] = val(x) == val(y)
                else:  # pragma: no cover
                    raise AssertionError(kind == VAR)
            return value[node] if lit > 0 else not value[node]

        if all(val(lit) for lit in grounding.rule_lits.values()):
            out.append(bits)
    return out


@pytest.mark.parametrize("extra", [
    "",
    "rule no_edges: forall X, Y: ~edge(X, Y)",
    "rule some_edge: exists X, Y: edge(X, Y)",
    "rule reverse: forall X, Y: edge(X, Y) -> causes(Y, X)",
])
def test_forced_atoms_agree_with_brute_force(extra):
    """forced_atoms (conditioned exact counts on the circuit) against enumeration of every
    assignment of the 12 atoms of transitivity on 3 nodes."""
    program = parse_rules(load_rules("transitivity").source + "\n" + extra + "\n")
    grounding = ground(program, 3)
    compiled = compile_cnf(grounding.cnf)
    atoms = list(range(1, grounding.cnf.num_atoms + 1))
    found = forced_atoms(compiled.ir, atoms)
    models = satisfying_assignments(grounding)
    assert len(models) == compiled.stats["model_count"]
    for v in atoms:
        values = {m[v - 1] for m in models}
        assert found[v] == (None if len(values) == 2 else values.pop()), grounding.atoms[v - 1]


def test_library_rules_force_no_given_atom():
    for name in ("transitivity", "dsep", "transitivity_closed", "semigraphoid"):
        assert rule_warnings(load_rules(name)) == []


def test_rules_without_any_model_are_warned_about_at_check(tmp_path, capsys):
    """A contradiction that no single rule shows (each is satisfiable, together they are not)
    passes the checker; the probe says the rules have no model whatever the graph."""
    path = tmp_path / "never.rules"
    path.write_text("query p(X: node)\nrule a: exists X: p(X)\nrule b: forall X: ~p(X)\n")
    assert main(["check", str(path)]) == 0
    err = capsys.readouterr().err
    assert f"{path}: warning: the rules have no model on 3 nodes, whatever the graph" in err
