"""``Circuit`` as a torch module: buffers, ``.to()``, ``state_dict`` round trips, copies, and
which back end a device selects."""

from __future__ import annotations

import copy
import io

import pytest
import torch

from constraintc.api import compile_rules
from constraintc.circuit import Circuit
from constraintc.circuit import evaluate


@pytest.fixture(scope="module")
def circuits():
    return compile_rules("transitivity", 3), compile_rules("transitivity", 4)


def _probs(circuit, seed=0):
    return torch.rand(5, circuit.num_atoms, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def test_index_tensors_are_buffers_and_the_ir_is_the_state(circuits):
    c3, _ = circuits
    buffers = dict(c3.named_buffers())
    assert {"ir_kinds", "ir_children", "plan_child_rows", "plan_rev_parent"} <= set(buffers)
    state = c3.state_dict()
    assert sorted(state) == sorted(["ir_kinds", "ir_lits", "ir_child_ptr", "ir_children", "ir_roots", "_extra_state"])
    assert torch.equal(state["ir_children"], torch.as_tensor(c3.ir.children))
    assert state["_extra_state"]["atoms"] == c3.atoms


def test_load_state_dict_rebuilds_another_circuit(circuits):
    c3, c4 = circuits
    p = _probs(c3)
    want = c3.log_wmc(p)
    buf = io.BytesIO()
    torch.save(c3.state_dict(), buf)
    buf.seek(0)
    target = copy.deepcopy(c4)  # other atoms, other shapes
    target.load_state_dict(torch.load(buf, weights_only=True))
    assert target.atoms == c3.atoms and target.model_count() == c3.model_count() == 85
    assert torch.equal(target.log_wmc(p), want)
    for backend in ("torch", "cpu"):
        target.backend = backend
        assert torch.allclose(target.log_wmc(p), want)


def test_bad_state_is_reported_not_loaded(circuits):
    c3, c4 = circuits
    state = dict(c3.state_dict())
    state["ir_children"] = state["ir_children"].flip(0)  # children no longer precede parents
    target = copy.deepcopy(c4)
    with pytest.raises(RuntimeError, match="not a valid circuit state"):
        target.load_state_dict(state)
    assert target.atoms == c4.atoms  # unchanged
    with pytest.raises(RuntimeError, match="Missing key"):
        target.load_state_dict({"ir_kinds": state["ir_kinds"]})


def test_deepcopy_and_to_move_with_a_model(circuits):
    c3, _ = circuits
    p = _probs(c3, 1)
    twin = copy.deepcopy(c3)
    assert twin.ir_children.data_ptr() != c3.ir_children.data_ptr()
    assert torch.equal(twin.log_wmc(p), c3.log_wmc(p))
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), copy.deepcopy(c3))
    model.to("meta")  # a device without storage: shows where every tensor went
    moved = model[1]
    assert moved.device.type == "meta" and all(b.device.type == "meta" for b in moved.buffers())
    assert set(moved.evaluator.device_tensors) == {"meta"}
    on_cpu = torch.nn.Sequential(copy.deepcopy(c3)).to(torch.float64)  # index tensors keep their dtype
    assert on_cpu[0].ir_children.dtype == c3.ir_children.dtype and on_cpu[0].evaluator.device_tensors == {}
    assert torch.equal(on_cpu[0].log_wmc(p), c3.log_wmc(p))


def test_torch_plan_uses_the_buffers_on_their_device(circuits):
    c3, _ = circuits
    c = copy.deepcopy(c3)
    c.evaluator.device_tensors = {"cpu": {name: getattr(c, f"plan_{name}") for name in
                                          ("node_ptr", "child_rows", "edge_node", "is_or", "rev_ptr", "rev_edge", "rev_parent")}}
    tp = c.evaluator.torch_plan(torch.device("cpu"))
    storage = c.plan_child_rows.untyped_storage().data_ptr()
    assert all(kids.untyped_storage().data_ptr() == storage for _, _, kids, _, _ in tp.blocks_fwd)
    c.backend = "torch"
    p = _probs(c3, 2)
    assert torch.allclose(c.log_wmc(p), c3.log_wmc(p))


def test_cuda_selects_triton_and_falls_back_to_torch(monkeypatch):
    ev = evaluate.Evaluator(compile_rules("transitivity", 3).plan)
    monkeypatch.setattr(evaluate, "_TRITON", [True])
    assert ev.resolve("auto", torch.device("cuda")) == "triton"
    monkeypatch.setattr(evaluate, "_TRITON", [False])
    assert ev.resolve("auto", torch.device("cuda")) == "torch"
    assert ev.resolve("auto", torch.device("meta")) == "torch"
    monkeypatch.setattr(evaluate, "_TRITON", [])
    import importlib.util

    has_triton = importlib.util.find_spec("triton") is not None
    assert evaluate.triton_available() == has_triton  # importable here (TRITON_INTERPRET aside)
