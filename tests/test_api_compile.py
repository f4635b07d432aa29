"""Artifacts, the cache, ``constraintc compile`` and ``constraintc.api``, checked against brute force."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch

from constraintc.api import compile_file, compile_rules
from constraintc.circuit import Circuit
from constraintc.circuit.artifact import ArtifactError
from constraintc.cli import main
from constraintc.compile import compile_cnf, model_count
from constraintc.logic.cnf import CNF


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CONSTRAINTC_CACHE", str(tmp_path / "cache"))


def brute(cnf: CNF, probs: np.ndarray | None = None):
    """(model count over the atoms, WMC per probs row) by enumerating every variable."""
    models = set()
    for bits in itertools.product([False, True], repeat=cnf.num_vars):
        if all(any(bits[abs(l) - 1] == (l > 0) for l in c) for c in cnf.clauses):
            models.add(bits[: cnf.num_atoms])
    if probs is None:
        return len(models), None
    w = np.zeros(len(probs))
    for m in models:
        w += np.prod(np.where(np.array(m), probs, 1 - probs), axis=1)
    return len(models), w


def test_save_load_round_trip(tmp_path):
    cnfs = [CNF(5, [(1, -2, 3), (-1, 4), (2, 5)], names={1: "causes(a,b)", 2: "dsep(a,b,{c})"}),
            CNF(5, [(-3, -4), (1, 2, 5)])]
    comp = compile_cnf(cnfs)
    circuit = Circuit.from_ir(comp.ir, meta={"source": "test"})
    path = circuit.save(tmp_path / "sub" / "c.cc")
    back = Circuit.load(path)
    assert back.atoms == ["causes(a,b)", "dsep(a,b,{c})", "x3", "x4", "x5"]
    assert back.root_names == circuit.root_names == ["root0", "root1"]
    assert back.meta["source"] == "test" and back.meta["format"] == "constraintc-circuit"
    assert back.meta["versions"]["constraintc"]
    for k in range(2):
        assert back.model_count(k) == circuit.model_count(k) == brute(cnfs[k])[0]
    for name in ("kinds", "lits", "child_ptr", "children", "roots"):
        assert np.array_equal(getattr(back.ir, name), getattr(comp.ir, name))
    p = torch.rand(7, 5, dtype=torch.float64)
    assert torch.equal(back.log_wmc(p), circuit.log_wmc(p))


def test_load_rejects_other_files(tmp_path):
    junk = tmp_path / "junk.cc"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(ArtifactError, match="junk.cc"):
        Circuit.load(junk)
    with pytest.raises(ArtifactError, match="no such circuit artifact"):
        Circuit.load(tmp_path / "missing.cc")
    from safetensors.numpy import save_file

    other = tmp_path / "other.safetensors"
    save_file({"x": np.zeros(2)}, str(other))
    with pytest.raises(ArtifactError, match="without constraintc metadata"):
        Circuit.load(other)


def test_compile_file_cnf_is_cached(tmp_path):
    cnf = CNF(6, [(1, 2, -3), (-1, 4), (3, -5, 6), (-2, -6)], num_atoms=6)
    path = tmp_path / "p.cnf"
    cnf.write(path)
    first = compile_file(path)
    assert first.meta["cache"]["hit"] is False
    second = compile_file(path)
    assert second.meta["cache"]["hit"] is True
    probs = np.random.default_rng(0).uniform(size=(4, 6))
    count, w = brute(cnf, probs)
    assert second.model_count() == first.model_count() == count
    torch.testing.assert_close(second.log_wmc(torch.tensor(probs))[:, 0], torch.tensor(np.log(w)))
    assert compile_file(path, cache=False).meta.get("cache") is None


def test_cli_json_for_cnf(tmp_path, capsys):
    cnf = CNF(7, [(1, -2), (2, 3, -4), (-1, 5), (6, 7, -3), (-6, -7)])
    path = tmp_path / "x.cnf"
    cnf.write(path)
    out_path = tmp_path / "x.cc"
    assert main(["compile", str(path), "--json", "-o", str(out_path)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["variables"] == 7 and summary["clauses"] == 5
    assert summary["model_count"] == brute(cnf)[0]
    assert summary["nodes"] > 0 and summary["edges"] > 0 and summary["compile_seconds"] >= 0
    assert summary["cached"] is False and summary["artifact"] == str(out_path)
    loaded = Circuit.load(out_path)
    assert loaded.model_count() == summary["model_count"] and loaded.num_atoms == 7
    assert main(["compile", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["cached"] is True


def test_cli_rules_schema_and_instance(tmp_path, capsys):
    assert main(["compile", "transitivity", "--nodes", "3", "--json", "--no-cache"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["atoms"] == 12
    from constraintc.language import load_rules
    from constraintc.logic import ground

    g = ground(load_rules("transitivity"), 3)
    assert schema["model_count"] == brute(g.cnf)[0]
    out = tmp_path / "inst.cc"
    assert main(["compile", "rules/transitivity.rules", "--graph", "a->b, b->c", "-o", str(out)]) == 0
    capsys.readouterr()
    inst = Circuit.load(out)
    assert inst.atoms[0] == "causes(a,b)" and inst.num_atoms == 6
    gi = ground(load_rules("transitivity"), ["a", "b", "c"], graph=[("a", "b"), ("b", "c")])
    probs = np.random.default_rng(1).uniform(size=(3, 6))
    count, w = brute(gi.cnf, probs)
    assert inst.model_count() == count == model_count(inst.ir)
    torch.testing.assert_close(inst.log_wmc(torch.tensor(probs))[:, 0], torch.tensor(np.log(w)))


def test_cli_rules_without_nodes_default_to_a_four_node_schema(capsys):
    assert main(["compile", "rules/transitivity.rules", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["atoms"] == 4 * 3 + 4 * 3  # causes and edge atoms over n0..n3
    assert summary["model_count"] == compile_rules("transitivity", nodes=4).model_count()


def test_compile_rules_api_matches_cli_and_cache():
    a = compile_rules("transitivity", nodes=["a", "b", "c"])
    b = compile_rules("transitivity", nodes=["a", "b", "c"])
    assert a.meta["cache"]["hit"] is False and b.meta["cache"]["hit"] is True
    assert a.atoms == b.atoms and a.model_count() == b.model_count()
    assert a.meta["query_atoms"] == [x for x in a.atoms if x.startswith("causes")]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["compile", "missing.cnf"], "INPUT='missing.cnf': an existing .cnf file"),
        (["compile", "transitivity", "--nodes", "3", "--max-seconds", "0"], "--max-seconds=0.0"),
        (["compile", "transitivity", "--nodes", "3", "--max-edges", "-5"], "--max-edges=-5"),
    ],
)
def test_cli_errors_name_the_option(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_cli_nodes_with_cnf_is_an_error(tmp_path, capsys):
    path = tmp_path / "y.cnf"
    CNF(2, [(1, 2)]).write(path)
    assert main(["compile", str(path), "--nodes", "3"]) == 2
    assert "--nodes='3'" in capsys.readouterr().err


def test_circuit_pickles_and_deep_copies_after_use():
    import copy
    import pickle

    circuit = Circuit.from_ir(compile_cnf(CNF(3, [(1, 2), (-2, 3)])).ir)
    p = torch.rand(5, 3, dtype=torch.float64)
    before = circuit.log_wmc(p)  # builds the kernel and the buffer pool first
    for clone in (copy.deepcopy(circuit), pickle.loads(pickle.dumps(circuit))):
        assert torch.equal(clone.log_wmc(p), before)
        assert clone.model_count() == 4


def test_cache_misses_when_the_compiler_changes(monkeypatch):
    import constraintc.api as api

    first = compile_rules("transitivity", nodes=3)
    assert compile_rules("transitivity", nodes=3).meta["cache"]["hit"] is True
    monkeypatch.setattr(api, "toolchain_hash", lambda: "another compiler")
    again = compile_rules("transitivity", nodes=3)
    assert again.meta["cache"]["hit"] is False and again.model_count() == first.model_count()
