"""``Circuit``: a compiled constraint as a torch module giving exact log WMC, semantic loss,
marginals and model counts for a batch of atom probabilities.

>>> import torch
>>> from constraintc.compile.ir import IRBuilder
>>> b = IRBuilder(num_vars=2)                      # a XOR b
>>> xor = b.disj([b.conj([b.lit(1), b.lit(-2)]), b.conj([b.lit(-1), b.lit(2)])])
>>> c = Circuit.from_ir(b.build([xor], atom_names=["a", "b"]))
>>> p = torch.tensor([[0.9, 0.2]], dtype=torch.float64)
>>> round(float(c.log_wmc(p).exp()), 6)           # 0.9*0.8 + 0.1*0.2
0.74
>>> c.model_count()
2
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from constraintc.circuit.evaluate import (
    BACKENDS,
    FUSED_DTYPES,
    FUSED_MAX_BATCH,
    Evaluator,
    FusedLogWMC,
    InputOutOfRange,
    LogWMC,
    smoothed_marginals,
)
from constraintc.circuit.layers import layerize
from constraintc.compile.counting import model_count
from constraintc.compile.ir import CircuitIR


_IR_FIELDS = ("kinds", "lits", "child_ptr", "children", "roots")
_PLAN_FIELDS = ("node_ptr", "child_rows", "edge_node", "is_or", "rev_ptr", "rev_edge", "rev_parent")


class Circuit(torch.nn.Module):
    """A compiled constraint (one or more roots over the same atoms).

    Inputs are ``[batch, atoms]`` tensors in :attr:`atoms` order; outputs keep the input dtype
    (float32 for training, float64 for verification; float16 and bfloat16 are evaluated in
    float32, since half precision cannot hold log-space sums, and the results cast back; integer
    and bool inputs give the default float dtype) and device. Probabilities 0 and 1 are exact:
    values are ``-inf`` only where the constraint is false under them, and no value or gradient
    is ever NaN (the gradient of a false constraint is zero). Inputs are checked: a probability
    outside ``[0, 1]`` (NaN and infinities included), or a log-probability that is NaN or above
    0, raises ``ValueError`` naming its ``[row, atom]`` index. An empty batch gives empty results.

    ``backend`` is ``"auto"`` (fused C kernel on CPU, Triton on CUDA, torch otherwise), ``"cpu"``,
    ``"triton"`` or ``"torch"`` (the reference).

    The IR (``ir_*``) and the layer plan's index tensors (``plan_*``) are registered buffers:
    ``.to(device)`` moves them, ``state_dict()`` holds the IR (plus names in its extra state) and
    ``load_state_dict()`` rebuilds the circuit from it, whatever circuit it was before.
    """

    def __init__(self, ir: CircuitIR, meta: dict | None = None, backend: str = "auto"):
        super().__init__()
        if backend not in BACKENDS:
            raise ValueError(f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
        self.backend = backend
        self._set_ir(ir, meta)

    def _set_ir(self, ir: CircuitIR, meta: dict | None) -> None:
        """Bind the circuit to ``ir``: its layer plan, evaluator and buffers (on the device the
        buffers were on before, if any)."""
        device = self.ir_kinds.device if "ir_kinds" in self._buffers else torch.device("cpu")
        self.ir = ir
        self.plan = layerize(ir)
        self.evaluator = Evaluator(self.plan)
        self.meta = dict(meta or {})
        # counted from the circuit on first use; a count in the metadata is only compared with it
        self._model_counts: dict[int, int] = {}
        # the IR is the state (state_dict, load_state_dict); the layer plan's index tensors are
        # derived from it, so they move with .to() but are not saved
        for name in _IR_FIELDS:
            array = np.array(getattr(ir, name), copy=True)
            self.register_buffer(f"ir_{name}", torch.from_numpy(array).to(device), persistent=True)
        for name in _PLAN_FIELDS:
            array = np.ascontiguousarray(getattr(self.plan, name), dtype=np.int64)
            self.register_buffer(f"plan_{name}", torch.from_numpy(array).to(device), persistent=False)
        self._link_buffers()

    def _link_buffers(self) -> None:
        """Let the evaluator's device plans use the buffers where they are (no second copy)."""
        device = self.plan_child_rows.device
        if device.type != "cpu":  # the CPU kernel reads the numpy plan; torch on CPU copies cheaply
            self.evaluator.device_tensors = {
                str(device): {name: getattr(self, f"plan_{name}") for name in _PLAN_FIELDS}
            }
        else:
            self.evaluator.device_tensors = {}

    def _apply(self, fn, recurse=True):
        out = super()._apply(fn, recurse)
        self._link_buffers()
        return out

    def __setstate__(self, state):
        super().__setstate__(state)
        self._link_buffers()

    @property
    def device(self) -> torch.device:
        """Where the circuit's index tensors live (``.to(device)`` moves them)."""
        return self.ir_kinds.device

    def get_extra_state(self) -> dict:
        """What ``state_dict()`` needs beside the IR tensors to rebuild the circuit: sizes and
        names (plain JSON values, so ``torch.load(weights_only=True)`` reads them)."""
        import json

        meta = json.loads(json.dumps(self.meta, default=str))
        return {"num_vars": int(self.ir.num_vars), "num_atoms": int(self.ir.num_atoms),
                "atoms": list(self.ir.atom_names), "roots": list(self.ir.root_names), "meta": meta}

    def set_extra_state(self, state) -> None:
        pass  # read by _load_from_state_dict together with the IR tensors

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        # a state_dict may hold a different circuit (other shapes): rebuild from its IR instead of
        # copying tensors into buffers of the current shape
        keys = {name: f"{prefix}ir_{name}" for name in _IR_FIELDS}
        extra = f"{prefix}_extra_state"
        absent = [k for k in [*keys.values(), extra] if k not in state_dict]
        if absent:
            if strict:
                missing_keys.extend(absent)
            return
        state = state_dict[extra]
        try:
            ir = CircuitIR(
                num_vars=int(state["num_vars"]), num_atoms=int(state["num_atoms"]),
                kinds=state_dict[keys["kinds"]].cpu().numpy().astype(np.int8),
                lits=state_dict[keys["lits"]].cpu().numpy().astype(np.int32),
                child_ptr=state_dict[keys["child_ptr"]].cpu().numpy().astype(np.int64),
                children=state_dict[keys["children"]].cpu().numpy().astype(np.int32),
                roots=state_dict[keys["roots"]].cpu().numpy().astype(np.int32),
                root_names=list(state["roots"]), atom_names=list(state["atoms"]),
            )
            ir.validate()
        except (AssertionError, KeyError, TypeError, ValueError) as exc:
            error_msgs.append(f"{prefix or 'circuit'}: not a valid circuit state ({exc or 'bad structure'})")
            return
        self._set_ir(ir, state.get("meta"))

    # -- construction and artifacts -----------------------------------------------------------
    @classmethod
    def from_ir(cls, ir: CircuitIR, meta: dict | None = None, backend: str = "auto") -> "Circuit":
        """Wrap a compiled ``CircuitIR``.

        >>> from constraintc.compile.ir import IRBuilder
        >>> b = IRBuilder(num_vars=1)
        >>> Circuit.from_ir(b.build([b.lit(1)])).atoms
        ['x1']
        """
        return cls(ir, meta=meta, backend=backend)

    def save(self, path: str | Path) -> Path:
        """Write the artifact: IR tensors in safetensors, metadata as JSON in its header.

        >>> import tempfile, os
        >>> from constraintc.compile.ir import IRBuilder
        >>> b = IRBuilder(num_vars=1)
        >>> c = Circuit.from_ir(b.build([b.lit(1)]))
        >>> with tempfile.TemporaryDirectory() as d:
        ...     Circuit.load(c.save(os.path.join(d, "x.cc"))).atoms
        ['x1']
        """
        from constraintc.circuit.artifact import save_artifact

        return save_artifact(self, path)

    @classmethod
    def load(cls, path: str | Path, backend: str = "auto") -> "Circuit":
        """Read an artifact written by :meth:`save` or ``constraintc compile -o PATH``; a missing,
        damaged (digest mismatch) or malformed file raises :class:`ArtifactError` naming it."""
        from constraintc.circuit.artifact import load_artifact

        ir, meta = load_artifact(path)
        return cls(ir, meta=meta, backend=backend)

    # -- names -------------------------------------------------------------------------------
    @property
    def atoms(self) -> list[str]:
        return list(self.ir.atom_names)

    @property
    def num_atoms(self) -> int:
        return int(self.ir.num_atoms)

    @property
    def root_names(self) -> list[str]:
        return list(self.ir.root_names)

    @property
    def num_roots(self) -> int:
        return int(self.plan.num_roots)

    def root_index(self, root: int | str) -> int:
        if isinstance(root, str):
            try:
                return self.root_names.index(root)
            except ValueError:
                raise KeyError(f"no root named {root!r}; roots are {self.root_names}") from None
        if not -self.num_roots <= root < self.num_roots:
            raise IndexError(f"root {root} out of range for {self.num_roots} roots")
        return root % self.num_roots

    # -- evaluation --------------------------------------------------------------------------
    def _check(self, x: torch.Tensor, what: str, log: bool = False, values: bool = True) -> torch.Tensor:
        """``x`` as a float32/float64 ``[batch, atoms]`` tensor with valid values (see the class
        docstring; ``values=False`` leaves the values to the kernel's one-call path, which checks
        them in the same pass); the caller casts results back to ``x``'s own dtype (:meth:`_out`)."""
        if not isinstance(x, torch.Tensor):
            x = torch.as_tensor(x)
        if not torch.is_floating_point(x):
            x = x.to(torch.get_default_dtype())
        elif x.dtype not in (torch.float32, torch.float64):
            x = x.float()  # half precision cannot hold log-space sums; autograd casts back
        if x.dim() != 2 or x.shape[1] != self.num_atoms:
            raise ValueError(
                f"{what} must have shape [batch, {self.num_atoms}] (atoms {self.atoms[:4]}"
                f"{'...' if self.num_atoms > 4 else ''}), got {tuple(x.shape)}"
            )
        if values:
            self._check_values(x, what, log)
        return x

    def _check_values(self, x: torch.Tensor, what: str, log: bool = False) -> None:
        """Raise ``ValueError`` at the first entry outside ``[0, 1]`` (``[-inf, 0]`` for log
        inputs); NaN fails both comparisons, so it is caught by the same test."""
        if x.numel() == 0:
            return
        if x.is_cpu and x.dtype in FUSED_DTYPES:
            a = x.detach().numpy()  # numpy's min/max propagate NaN, in microseconds at batch 1
            lo, hi = a.min(), a.max()
        else:
            lo, hi = (t.item() for t in torch.aminmax(x.detach()))
        if (lo >= -math.inf if log else lo >= 0) and hi <= (0 if log else 1):
            return
        v = x.detach()
        bad = ~(v <= 0) if log else ~((v >= 0) & (v <= 1))
        row, col = (int(i) for i in bad.nonzero()[0])
        value = v[row, col].item()
        expected = "log-probabilities must be NaN-free and <= 0" if log else "probabilities must be in [0, 1]"
        raise ValueError(
            f"{what}[{row}, {col}] = {value} (atom {self.atoms[col]!r}): {expected}"
            f" ({int(bad.sum())} such entr{'y' if int(bad.sum()) == 1 else 'ies'} in all)"
        )

    def _refused(self, inputs, log: bool = False):
        """The kernel refused one of ``inputs`` (``(tensor, name)`` pairs): raise the message
        that names the entry."""
        for x, what in inputs:
            self._check_values(x, what, log)
        raise ValueError(f"{', '.join(w for _, w in inputs)}: a value outside its domain")

    @staticmethod
    def _out(result: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """``result`` in the caller's dtype when that was a half-precision float."""
        if isinstance(like, torch.Tensor) and like.dtype in (torch.float16, torch.bfloat16):
            return result.to(like.dtype)
        return result

    def _backend(self, device: torch.device) -> str:
        return self.evaluator.resolve(self.backend, device)

    def _fused_kernel(self, x):
        """The CPU kernel when ``x`` can go to its one-call path as it is (a float32/float64 CPU
        tensor ``[batch, atoms]``, and the C kernel is this circuit's back end), else None.
        Cheap on purpose: at batch 1 the whole evaluation takes microseconds."""
        if not (isinstance(x, torch.Tensor) and x.is_cpu and x.dtype in FUSED_DTYPES
                and x.dim() == 2 and x.shape[1] == self.plan.num_atoms):
            return None
        backend = self.backend
        if backend == "cpu" or (backend == "auto" and self._backend(x.device) == "cpu"):
            return self.evaluator.cpu_kernel()
        return None

    def _root_fast(self, root) -> int:
        if type(root) is int and 0 <= root < self.plan.num_roots:
            return root
        return self.root_index(root)

    def _fused_ok(self, *inputs: torch.Tensor) -> bool:
        """Use the one-call autograd path: single pass, small batch or no gradient wanted."""
        if inputs[0].shape[0] <= FUSED_MAX_BATCH:
            return True
        return not (torch.is_grad_enabled() and any(x.requires_grad for x in inputs))

    def log_wmc(self, probs: torch.Tensor) -> torch.Tensor:
        """``log`` of the weighted model count of every root: ``[batch, atoms] -> [batch, roots]``.

        Gradients flow to ``probs`` and are exact at 0 and 1.
        """
        given = probs
        probs = self._check(probs, "probs", values=False)
        kernel = self._fused_kernel(probs) if self.plan.num_roots == 1 else None
        if kernel is not None and self._fused_ok(probs):
            probs = probs.contiguous()
            try:
                return self._out(FusedLogWMC.apply(probs, None, kernel, 0, 0, 1, (probs.shape[0], 1)), given)
            except InputOutOfRange:
                self._refused([(probs, "probs")])
        self._check_values(probs, "probs")
        return self._out(LogWMC.apply(probs, None, self.evaluator, self._backend(probs.device), "probs"), given)

    def log_wmc_log(self, log_p: torch.Tensor, log_not_p: torch.Tensor) -> torch.Tensor:
        """Like :meth:`log_wmc` from ``log p`` and ``log (1 - p)`` (e.g. ``logsigmoid(z)`` and
        ``logsigmoid(-z)`` of yes/no logits), exact without ever forming ``p``."""
        given = log_p if getattr(log_p, "dtype", None) == getattr(log_not_p, "dtype", None) else None
        log_p = self._check(log_p, "log_p", log=True, values=False)
        log_not_p = self._check(log_not_p, "log_not_p", log=True, values=False)
        if log_p.shape != log_not_p.shape:
            raise ValueError(f"log_p {tuple(log_p.shape)} and log_not_p {tuple(log_not_p.shape)} differ")
        dtype = torch.promote_types(log_p.dtype, log_not_p.dtype)
        log_p, log_not_p = log_p.to(dtype), log_not_p.to(dtype)
        kernel = self._fused_kernel(log_p) if self.plan.num_roots == 1 else None
        if kernel is not None and self._fused_ok(log_p, log_not_p):
            log_p, log_not_p = log_p.contiguous(), log_not_p.contiguous()
            try:
                return self._out(FusedLogWMC.apply(log_p, log_not_p, kernel, 0, 1, 1, (log_p.shape[0], 1)), given)
            except InputOutOfRange:
                self._refused([(log_p, "log_p"), (log_not_p, "log_not_p")], log=True)
        self._check_values(log_p, "log_p", log=True)
        self._check_values(log_not_p, "log_not_p", log=True)
        return self._out(LogWMC.apply(log_p, log_not_p, self.evaluator, self._backend(log_p.device), "log"), given)

    def forward(self, probs: torch.Tensor) -> torch.Tensor:
        return self.log_wmc(probs)

    def semantic_loss(self, probs: torch.Tensor, root: int | str = 0) -> torch.Tensor:
        """``-log WMC`` of one root per batch row, ``[batch]``; ``+inf`` where the probabilities
        make the constraint impossible (with a zero gradient there)."""
        kernel = self._fused_kernel(probs)
        if kernel is not None and self._fused_ok(probs):
            # one kernel call for the loss and (when probs requires it) its gradient
            probs = probs.contiguous()
            try:
                return FusedLogWMC.apply(probs, None, kernel, self._root_fast(root), 0, -1,
                                         (probs.shape[0],))
            except InputOutOfRange:
                self._refused([(probs, "probs")])
        return -self.log_wmc(probs)[:, self.root_index(root)]

    def semantic_loss_and_grad(self, probs: torch.Tensor, root: int | str = 0, *, out=None):
        """``(loss [batch], d loss / d probs [batch, atoms])`` without building an autograd graph.

        The same numbers as ``semantic_loss(probs)`` and its backward pass. On the CPU kernel it
        is one call that evaluates and differentiates each tile of the batch while it is in
        cache, keeping no work buffer: the fastest path at every batch size, and at batch 1 a
        few microseconds plus the cost of the two output tensors. ``out=(loss, grad)``
        (contiguous, the input's dtype) reuses the caller's tensors instead, and returns them.

        >>> from constraintc.compile.ir import IRBuilder
        >>> b = IRBuilder(num_vars=2)
        >>> c = Circuit.from_ir(b.build([b.disj([b.lit(1), b.conj([b.lit(-1), b.lit(2)])])]))
        >>> loss, grad = c.semantic_loss_and_grad(torch.tensor([[0.0, 0.5]], dtype=torch.float64))
        >>> float(loss[0]), grad.tolist()      # -log(p1 + (1-p1) p2): -(1-p2)/W, -(1-p1)/W
        (0.6931471805599453, [[-1.0, -2.0]])
        """
        kernel = self._fused_kernel(probs)
        if kernel is not None:  # the hot path: _fused_kernel checked the type, shape and layout
            if not probs.is_contiguous():
                probs = probs.detach().contiguous()
            k = self._root_fast(root)
            if out is None:
                loss = torch.empty(probs.shape[0], dtype=probs.dtype)
                grad = torch.empty_like(probs, memory_format=torch.contiguous_format)
            else:
                loss, grad = self._check_out(out, probs)
            if kernel.fused(k, 0, -1, probs, None, loss, grad, None) >= 0:  # values checked in the call
                self._refused([(probs, "probs")])
            return loss, grad
        given = probs
        probs = self._check(probs, "probs").detach()
        k = self.root_index(root)
        p = probs.clone().requires_grad_(True)
        with torch.enable_grad():
            loss = self.semantic_loss(p, k)
            (grad,) = torch.autograd.grad(loss.sum(), p)
        loss, grad = self._out(loss.detach(), given), self._out(grad, given)
        if out is None:
            return loss, grad
        o_loss, o_grad = self._check_out(out, grad)
        o_loss.copy_(loss)
        o_grad.copy_(grad)
        return o_loss, o_grad

    @staticmethod
    def _check_out(out, probs):
        loss, grad = out
        batch, atoms = probs.shape
        for t, shape, what in ((loss, (batch,), "loss"), (grad, (batch, atoms), "grad")):
            if (not isinstance(t, torch.Tensor) or tuple(t.shape) != shape or t.dtype != probs.dtype
                    or t.device != probs.device or not t.is_contiguous()):
                raise ValueError(f"out {what} must be a contiguous {probs.dtype} tensor of shape "
                                 f"{list(shape)} on {probs.device}")
        return loss, grad

    @torch.no_grad()
    def marginals(self, probs: torch.Tensor, root: int | str = 0) -> torch.Tensor:
        """``P(atom = 1 | constraint)`` under independent ``probs``, ``[batch, atoms]``.

        Computed by one top-down pass (it equals ``d log WMC / d log p``); a row whose
        constraint is impossible under ``probs`` gets zeros.
        """
        given = probs
        probs = self._check(probs, "probs")
        k = self.root_index(root)
        backend = self._backend(probs.device)
        ev = self.evaluator
        log_p, log_not_p = torch.log(probs), torch.log1p(-probs)
        V = ev.run_forward(log_p, log_not_p, backend)
        batch = probs.shape[0]
        seed = torch.full((batch, self.num_roots), float("-inf"), dtype=V.dtype, device=V.device)
        seed[:, k] = 0.0
        R = ev.run_backward(V, seed, batch, backend)
        live = torch.isfinite(ev.roots(V, batch)[:, k])
        out = smoothed_marginals(ev, R, log_p, log_not_p, live)
        ev.pool.give(R)
        ev.pool.give(V)
        return self._out(out, given)

    def model_count(self, root: int | str = 0) -> int:
        """Exact number of assignments of the atoms that satisfy the root (a Python int).

        Counted from the circuit itself (once, then remembered). A count recorded in the
        metadata (an artifact's ``model_counts``) must agree, else :class:`ArtifactError`.
        """
        k = self.root_index(root)
        if k not in self._model_counts:
            count = model_count(self.ir, k)
            claimed = self.meta.get("model_counts", {}).get(str(k))
            if claimed is not None and str(claimed) != str(count):
                from constraintc.circuit.artifact import ArtifactError

                raise ArtifactError(
                    f"error: root {self.root_names[k]!r}: the metadata records {claimed} models, "
                    f"the circuit has {count}"
                )
            self._model_counts[k] = count
        return self._model_counts[k]

    def release_buffers(self) -> None:
        """Free the pooled work buffers (kept between calls for speed; ``rows * batch`` values
        each, e.g. ~0.5 GB for a 117k-node circuit at batch 1024 in float32)."""
        self.evaluator.pool.clear()

    def extra_repr(self) -> str:
        return (
            f"atoms={self.num_atoms}, roots={self.root_names}, nodes={self.ir.num_nodes}, "
            f"edges={self.ir.num_edges}, layers={self.plan.num_layers}, backend={self.backend!r}"
        )
