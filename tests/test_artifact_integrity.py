"""Circuit files and cache entries as damage or an attacker leaves them: every bit flip, random
corruption, a valid circuit of another constraint under a cache key, forged metadata, files
that only ``assert`` would have caught (gone under ``python -O``), foreign cache entries."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from constraintc.api import compile_file, compile_rules
from constraintc.circuit import Circuit
from constraintc.circuit.artifact import (
    ArtifactError,
    cached_path,
    load_artifact,
    parse_artifact,
    write_artifact_file,
)
from constraintc.compile import compile_cnf
from constraintc.logic.cnf import CNF


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    from conftest import seed_native_cache

    seed_native_cache(tmp_path / "cache")
    monkeypatch.setenv("CONSTRAINTC_CACHE", str(tmp_path / "cache"))


def _artifact(tmp_path) -> tuple[Circuit, bytes]:
    circuit = compile_rules("transitivity", nodes=3, cache=False)
    path = circuit.save(tmp_path / "t3.cc")
    return circuit, path.read_bytes()


def _brute_count(cnf: CNF, atoms: int) -> int:
    import itertools

    sat = set()
    for bits in itertools.product((False, True), repeat=cnf.num_vars):
        if all(any(bits[abs(l) - 1] == (l > 0) for l in c) for c in cnf.clauses):
            sat.add(bits[:atoms])
    return len(sat)


def test_every_single_bit_flip_is_an_artifact_error(tmp_path):
    circuit, data = _artifact(tmp_path)
    ir, _ = parse_artifact(data)
    assert np.array_equal(ir.children, circuit.ir.children)
    refused, missed = 0, []
    for bit in range(len(data) * 8):
        damaged = bytearray(data)
        damaged[bit // 8] ^= 1 << (bit % 8)
        try:
            parse_artifact(bytes(damaged), "t3.cc")
            missed.append(bit)
        except ArtifactError:
            refused += 1
    assert not missed and refused == len(data) * 8 > 20_000
    flips = refused
    print(f"[artifact] {flips} single-bit flips of a {len(data)}-byte artifact: all refused")


_DATA: dict = {}


def _good_bytes() -> bytes:
    if "bytes" not in _DATA:
        b = CNF(5, [(1, 2, -3), (-1, 4), (3, 5), (-2, -5)])
        ir = compile_cnf(b).ir
        path = Path(os.environ["CONSTRAINTC_CACHE"]).parent / "fuzz.cc"
        Circuit.from_ir(ir).save(path)
        _DATA["bytes"] = path.read_bytes()
    return _DATA["bytes"]


@settings(max_examples=300)
@given(data=st.data())
def test_random_corruption_is_an_artifact_error_never_a_traceback(data):
    good = _good_bytes()
    kind = data.draw(st.sampled_from(["truncate", "overwrite", "insert", "zero_range", "append"]))
    b = bytearray(good)
    if kind == "truncate":
        b = b[: data.draw(st.integers(0, len(good) - 1))]
    elif kind == "overwrite":
        at = data.draw(st.integers(0, len(good) - 1))
        chunk = data.draw(st.binary(min_size=1, max_size=16))
        b[at : at + len(chunk)] = chunk
    elif kind == "insert":
        at = data.draw(st.integers(0, len(good)))
        b[at:at] = data.draw(st.binary(min_size=1, max_size=16))
    elif kind == "zero_range":
        at = data.draw(st.integers(0, len(good) - 1))
        b[at : at + data.draw(st.integers(1, 64))] = bytes(min(64, len(good) - at))
    else:
        b += data.draw(st.binary(min_size=1, max_size=64))
    if bytes(b) == good:
        parse_artifact(bytes(b))
        return
    with pytest.raises(ArtifactError):
        parse_artifact(bytes(b), "fuzz.cc")


def test_a_damaged_user_file_is_a_clear_error(tmp_path):
    _, data = _artifact(tmp_path)
    damaged = bytearray(data)
    damaged[-3] ^= 0x10  # inside the tensor data
    path = tmp_path / "damaged.cc"
    path.write_bytes(damaged)
    with pytest.raises(ArtifactError, match=r"damaged\.cc: .*content digest does not match"):
        Circuit.load(path)


def _meta_of(circuit: Circuit) -> dict:
    from constraintc.circuit.artifact import FORMAT, FORMAT_VERSION

    ir = circuit.ir
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "num_vars": ir.num_vars, "num_atoms": ir.num_atoms,
        "atoms": list(ir.atom_names), "roots": list(ir.root_names),
        "model_counts": {"0": str(circuit.model_count())},
    }


def _tensors(ir) -> dict:
    return {"kinds": ir.kinds.astype(np.int8), "lits": ir.lits.astype(np.int32), "child_ptr": ir.child_ptr.astype(np.int64),
            "children": ir.children.astype(np.int32), "roots": ir.roots.astype(np.int32)}


def test_a_malformed_circuit_with_a_valid_digest_is_refused_also_under_python_O(tmp_path):
    """The structural checks were asserts: python -O skipped them and loaded a circuit whose
    child comes after its parent."""
    circuit = Circuit.from_ir(compile_cnf(CNF(3, [(1, 2), (-2, 3)])).ir)
    tensors = _tensors(circuit.ir)
    tensors["children"][-1] = len(tensors["kinds"]) - 1  # the root becomes its own child
    path = write_artifact_file(tensors, _meta_of(circuit), tmp_path / "cyclic.cc")
    with pytest.raises(ArtifactError, match="children must precede their parents"):
        Circuit.load(path)
    code = (  # the loader without torch: under -O torch's modules are compiled afresh (seconds)
        "from constraintc.circuit.artifact import ArtifactError, load_artifact\n"
        f"try:\n    load_artifact({str(path)!r})\nexcept ArtifactError as e:\n    print('refused:', e)\n"
        "assert False, 'asserts are skipped under -O'\n"
    )
    proc = subprocess.run([sys.executable, "-O", "-c", code], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "refused:" in proc.stdout and "children must precede their parents" in proc.stdout


@pytest.mark.parametrize("damage, message", [
    (lambda t, m: t.update(kinds=np.full_like(t["kinds"], 9)), "node kinds"),
    (lambda t, m: t.update(lits=t["lits"] * 100), "literals must be"),
    (lambda t, m: t.update(roots=np.array([10_000], dtype=np.int32)), "roots must be nodes"),
    (lambda t, m: t.update(child_ptr=t["child_ptr"][::-1].copy()), "child_ptr"),
    (lambda t, m: t.update(children=t["children"].astype(np.int64)), "tensor children"),
    (lambda t, m: m.update(num_atoms=99), "num_atoms"),
    (lambda t, m: m.update(atoms=["a"]), "atom names"),
    (lambda t, m: m.update(num_vars="3"), "num_vars"),
    (lambda t, m: m.update(model_counts={"0": "many"}), "model_counts"),
    (lambda t, m: m.update(format_version=1), "older constraintc, without a content digest"),
    (lambda t, m: m.update(format_version=99), "format version 99"),
])
def test_malformed_content_is_named(tmp_path, damage, message):
    circuit = Circuit.from_ir(compile_cnf(CNF(3, [(1, 2), (-2, 3)])).ir)
    tensors, meta = _tensors(circuit.ir), _meta_of(circuit)
    damage(tensors, meta)
    path = write_artifact_file(tensors, meta, tmp_path / "bad.cc")
    with pytest.raises(ArtifactError, match=message):
        Circuit.load(path)


def test_model_count_is_counted_not_read_from_metadata(tmp_path):
    cnf = CNF(4, [(1, 2), (-2, 3), (-1, -4)])
    circuit = Circuit.from_ir(compile_cnf(cnf).ir)
    tensors, meta = _tensors(circuit.ir), _meta_of(circuit)
    assert int(meta["model_counts"]["0"]) == _brute_count(cnf, 4)
    meta.pop("model_counts")
    assert Circuit.load(write_artifact_file(tensors, meta, tmp_path / "plain.cc")).model_count() == _brute_count(cnf, 4)
    meta["model_counts"] = {"0": str(_brute_count(cnf, 4) + 1)}  # a lie with a valid digest
    forged = Circuit.load(write_artifact_file(tensors, meta, tmp_path / "forged.cc"))
    with pytest.raises(ArtifactError, match=f"records {_brute_count(cnf, 4) + 1} models, the circuit has {_brute_count(cnf, 4)}"):
        forged.model_count()


def test_another_constraints_circuit_under_a_cache_key_is_refused(capfd):
    three = compile_rules("transitivity", nodes=3)
    four = compile_rules("transitivity", nodes=4)
    assert not three.meta["cache"]["hit"] and not four.meta["cache"]["hit"]
    # a valid, intact artifact of the 4-node constraint placed under the 3-node key
    Path(three.meta["cache"]["path"]).write_bytes(Path(four.meta["cache"]["path"]).read_bytes())
    again = compile_rules("transitivity", nodes=3)
    assert again.meta["cache"]["hit"] is False  # refused and recompiled
    assert again.atoms == three.atoms and again.model_count() == three.model_count() != four.model_count()
    assert "holds the circuit compiled under key" in capfd.readouterr().err
    assert compile_rules("transitivity", nodes=3).meta["cache"]["hit"] is True  # rewritten, served


def test_a_bit_flip_in_a_cache_entry_is_recompiled_not_served(capfd):
    first = compile_rules("transitivity", nodes=3)
    path = Path(first.meta["cache"]["path"])
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x04  # inside the tensor data
    path.write_bytes(data)
    again = compile_rules("transitivity", nodes=3)
    assert again.meta["cache"]["hit"] is False
    p = torch.rand(5, again.num_atoms, dtype=torch.float64)
    assert torch.equal(again.semantic_loss(p), first.semantic_loss(p))
    assert "content digest does not match" in capfd.readouterr().err


@pytest.mark.parametrize("how", ["group_writable", "other_owner"])
def test_a_cache_entry_that_is_not_ours_is_not_served(how, capfd):
    first = compile_rules("transitivity", nodes=3)
    path = Path(first.meta["cache"]["path"])
    if how == "group_writable":
        path.chmod(0o664)
    else:
        if os.geteuid() != 0:
            pytest.skip("changing a file's owner needs root")
        os.chown(path, 65534, 65534)
    again = compile_rules("transitivity", nodes=3)
    assert again.meta["cache"]["hit"] is False and again.model_count() == first.model_count()
    assert "not used" in capfd.readouterr().err
    st_ = path.stat()
    assert st_.st_uid == os.geteuid() and not st_.st_mode & 0o022  # replaced by our own entry


def test_cache_directories_are_private(tmp_path):
    compile_rules("transitivity", nodes=3)
    root = Path(os.environ["CONSTRAINTC_CACHE"])
    for d in (root, root / "circuits"):
        assert d.stat().st_mode & 0o777 == 0o700, d
    assert cached_path("x").parent == root / "circuits"


def test_the_cache_key_and_digest_are_in_the_file():
    c = compile_rules("transitivity", nodes=3)
    path = Path(c.meta["cache"]["path"])
    ir, meta = load_artifact(path, expected_key=path.stem)
    assert meta["cache_key"] == path.stem
    data = path.read_bytes()
    header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
    digest = header["__metadata__"]["sha256"]
    zeroed = data.replace(digest.encode(), b"0" * 64, 1)
    assert hashlib.sha256(zeroed).hexdigest() == digest  # the documented rule, checked independently


def test_concurrent_compiles_into_one_cache(tmp_path):
    cnf = tmp_path / "p.cnf"
    cnf.write_text("p cnf 6 4\n1 2 -3 0\n-1 4 0\n3 5 0\n-2 -5 6 0\n")
    code = (
        "import sys\nfrom constraintc.api import compile_file\n"
        f"print(compile_file({str(cnf)!r}).model_count())\n"
    )
    env = dict(os.environ)
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-1000:] for o in outs]
    expected = _brute_count(CNF.read(cnf), 6)
    assert [int(o[0]) for o in outs] == [expected] * 2
    assert all("refused" not in o[1] for o in outs)
    assert compile_file(cnf).meta["cache"]["hit"] is True


def test_a_cache_that_cannot_be_written_is_a_warning_not_a_failure(capfd):
    root = Path(os.environ["CONSTRAINTC_CACHE"])
    root.mkdir(parents=True, exist_ok=True)
    (root / "circuits").write_text("a file where the cache directory should be")
    circuit = compile_rules("transitivity", nodes=3)  # compiled, returned, not stored
    assert "cache" not in circuit.meta
    assert "not cached" in capfd.readouterr().err
    assert circuit.atoms == compile_rules("transitivity", nodes=3, cache=False).atoms
