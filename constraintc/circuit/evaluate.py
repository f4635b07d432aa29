"""Batched log-space evaluation with exact gradients, over interchangeable back ends.

``Evaluator`` owns a layerized circuit and runs it through one of three back ends that share the
row layout of :mod:`constraintc.circuit.layers`:

* ``"torch"``: the pure-torch reference (:mod:`constraintc.circuit.torch_ref`), any device;
* ``"cpu"``: the fused C/OpenMP kernel (``kernels/circuit_cpu.cpp``), compiled just in time;
* ``"triton"``: the Triton kernel (``kernels/circuit_triton.py``) for CUDA tensors.

``"auto"`` picks ``cpu`` for CPU tensors when a C compiler is available, ``triton`` for CUDA
tensors when Triton is installed, and the torch reference otherwise.

The autograd function keeps the forward values (``[rows, batch]``) for the backward pass and
takes its buffers from a small pool: on glibc, large tensors freed and reallocated on every call
are returned to the OS and faulted back in, which costs several times the evaluation itself.
"""

from __future__ import annotations

import threading

import torch

from constraintc.circuit import torch_ref
from constraintc.circuit.layers import LayerPlan

BACKENDS = ("auto", "torch", "cpu", "triton")


class _BufferPool:
    """Reuses ``[rows, batch]`` work buffers across calls (see the module docstring)."""

    def __init__(self, keep: int = 2):  # one buffer in a live graph, one for the next call
        self.keep = keep
        self._free: dict[tuple, list[torch.Tensor]] = {}
        self._lock = threading.Lock()

    def take(self, shape, dtype, device) -> torch.Tensor:
        key = (tuple(shape), dtype, str(device))
        with self._lock:
            free = self._free.get(key)
            if free:
                return free.pop()
        return torch.empty(shape, dtype=dtype, device=device)

    def give(self, buf: torch.Tensor) -> None:
        key = (tuple(buf.shape), buf.dtype, str(buf.device))
        with self._lock:
            free = self._free.setdefault(key, [])
            if len(free) < self.keep:
                free.append(buf)

    def clear(self) -> None:
        with self._lock:
            self._free.clear()


class _Lease:
    """Returns a pooled buffer when the autograd graph that saved it is freed (so a second
    ``backward(retain_graph=True)`` still finds it intact)."""

    __slots__ = ("buf", "pool")

    def __init__(self, buf: torch.Tensor, pool: _BufferPool):
        self.buf, self.pool = buf, pool

    def __del__(self):
        try:
            self.pool.give(self.buf)
        except Exception:  # interpreter shutdown
            pass


class Evaluator:
    """Runs one layerized circuit: forward values, top-down adjoints, on a chosen back end."""

    def __init__(self, plan: LayerPlan):
        self.plan = plan
        self.pool = _BufferPool()
        self._torch_plans: dict[str, torch_ref.TorchPlan] = {}
        self._cpu = None
        self._triton: dict[str, object] = {}
        # device -> the plan's index tensors already there (a Circuit's buffers, see
        # Circuit._link_buffers): device plans reuse them instead of copying from numpy
        self.device_tensors: dict[str, dict[str, torch.Tensor]] = {}

    def __getstate__(self):
        # kernels, device plans and buffers are caches (and hold locks and C handles): a copy or
        # an unpickled circuit rebuilds them on first use
        return {"plan": self.plan}

    def __setstate__(self, state):
        self.__init__(state["plan"])

    # -- back ends ---------------------------------------------------------------------------
    def torch_plan(self, device) -> torch_ref.TorchPlan:
        key = str(device)
        tp = self._torch_plans.get(key)
        if tp is None:
            tp = self._torch_plans[key] = torch_ref.TorchPlan(self.plan, device, self.device_tensors.get(key))
        return tp

    def cpu_kernel(self):
        if self._cpu is None:
            from constraintc.circuit import cpu_kernel

            self._cpu = cpu_kernel.CpuCircuit(self.plan)
        return self._cpu

    def triton_kernel(self, device):
        key = str(device)
        k = self._triton.get(key)
        if k is None:
            from constraintc.kernels import circuit_triton

            k = self._triton[key] = circuit_triton.TritonCircuit(self.plan, device, self.device_tensors.get(key))
        return k

    def resolve(self, backend: str, device: torch.device) -> str:
        if backend not in BACKENDS:
            raise ValueError(f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
        if backend != "auto":
            return backend
        if device.type == "cpu":
            from constraintc.circuit import cpu_kernel

            return "cpu" if cpu_kernel.available() else "torch"
        if device.type == "cuda":
            return "triton" if triton_available() else "torch"
        return "torch"

    def forward(self, V: torch.Tensor, backend: str) -> None:
        if backend == "torch":
            torch_ref.forward(self.torch_plan(V.device), V)
        elif backend == "cpu":
            self.cpu_kernel().forward(V)
        else:
            self.triton_kernel(V.device).forward(V)

    def backward(self, V: torch.Tensor, R: torch.Tensor, backend: str) -> None:
        if backend == "torch":
            torch_ref.backward(self.torch_plan(V.device), V, R)
        elif backend == "cpu":
            self.cpu_kernel().backward(V, R)
        else:
            self.triton_kernel(V.device).backward(V, R)

    # -- buffer layouts ----------------------------------------------------------------------
    # torch/triton: [rows, batch]. cpu: [tiles, rows, W], W batch columns per tile (see
    # kernels/circuit_cpu.cpp); the batch is padded to tiles * W with finite dummy columns.
    def alloc(self, backend: str, batch: int, dtype, device) -> torch.Tensor:
        rows = self.plan.num_rows
        if backend == "cpu":
            width = cpu_tile_width(batch)
            return self.pool.take((-(-batch // width), rows, width), dtype, device)
        return self.pool.take((rows, batch), dtype, device)

    @staticmethod
    def get_rows(buf: torch.Tensor, r0: int, r1: int, batch: int) -> torch.Tensor:
        """Rows ``r0:r1`` as ``[batch, r1 - r0]`` (a copy for the tiled layout)."""
        if buf.dim() == 2:
            return buf[r0:r1].t()
        tiles, _, width = buf.shape
        return buf[:, r0:r1, :].permute(0, 2, 1).reshape(tiles * width, r1 - r0)[:batch]

    @staticmethod
    def set_rows(buf: torch.Tensor, r0: int, r1: int, values, pad: float = 0.0) -> None:
        """Write ``values [batch, r1 - r0]`` (or a scalar) into rows ``r0:r1``."""
        if buf.dim() == 2:
            buf[r0:r1] = values if not isinstance(values, torch.Tensor) else values.t()
            return
        if not isinstance(values, torch.Tensor):
            buf[:, r0:r1, :] = values
            return
        tiles, _, width = buf.shape
        batch = values.shape[0]
        if tiles * width != batch:
            filler = values.new_full((tiles * width - batch, r1 - r0), pad)
            values = torch.cat([values, filler])
        buf[:, r0:r1, :] = values.reshape(tiles, width, r1 - r0).permute(0, 2, 1)

    # -- the pieces the autograd function uses ------------------------------------------------
    def run_forward(self, log_p: torch.Tensor, log_not_p: torch.Tensor, backend: str) -> torch.Tensor:
        """Values of every row for inputs ``[batch, atoms]``; returns the work buffer."""
        plan = self.plan
        A = plan.num_atoms
        V = self.alloc(backend, log_p.shape[0], log_p.dtype, log_p.device)
        self.set_rows(V, 0, 1, float("-inf"))
        self.set_rows(V, 1, 2, 0.0)
        self.set_rows(V, 2, 2 + A, log_p)
        self.set_rows(V, 2 + A, plan.base, log_not_p)
        self.forward(V, backend)
        return V

    def roots(self, V: torch.Tensor, batch: int) -> torch.Tensor:
        """``[batch, roots]`` root values of a forward buffer (a fresh tensor)."""
        plan = self.plan
        out = self.get_rows(V, plan.num_rows - plan.num_roots, plan.num_rows, batch)
        return out.clone(memory_format=torch.contiguous_format)

    def run_backward(self, V: torch.Tensor, seed: torch.Tensor, batch: int, backend: str) -> torch.Tensor:
        """Adjoint rows ``R`` for root seeds ``seed [batch, roots]`` given as logs of the
        multipliers of ``log W_root``'s gradient: ``R = log(g * dW/dW_row / W)`` in every row."""
        plan = self.plan
        R = self.pool.take(V.shape, V.dtype, V.device)
        root_vals = self.roots(V, batch)
        # a root whose constraint is false under the evidence has W = 0: its gradient is defined
        # as zero (no +inf seed), so it contributes nothing
        seeds = torch.where(torch.isfinite(root_vals), seed - root_vals,
                            torch.full_like(seed, float("-inf")))
        self.set_rows(R, plan.num_rows - plan.num_roots, plan.num_rows, seeds, pad=float("-inf"))
        self.backward(V, R, backend)
        return R


_TRITON: list = []  # [bool] once probed


def triton_available() -> bool:
    """Whether the Triton kernel module imports (Triton installed and usable). When it does not,
    CUDA tensors run on the torch reference instead, with one warning saying why."""
    if not _TRITON:
        try:
            import constraintc.kernels.circuit_triton  # noqa: F401
        except Exception as exc:  # not installed, or a Triton that cannot load here
            import warnings

            if not isinstance(exc, ImportError) or "triton" not in str(exc):
                warnings.warn(f"constraintc: the Triton kernel is unavailable ({exc}); CUDA tensors "
                              "use the torch evaluator", RuntimeWarning, stacklevel=3)
            _TRITON.append(False)
        else:
            _TRITON.append(True)
    return _TRITON[0]


def cpu_tile_width(batch: int) -> int:
    """Batch columns per tile of the CPU kernel: the whole batch when small, else 64 (whole
    cache lines, and a tile's rows stay in cache for circuits of up to ~100k nodes); an empty
    batch gets zero tiles of one column."""
    return min(max(batch, 1), 64)


class LogWMC(torch.autograd.Function):
    """``[batch, atoms]`` inputs -> ``[batch, roots]`` log weighted model counts.

    ``mode="probs"``: inputs ``(p, None)``; the gradient is ``dlogW/dp = A/W - B/W`` computed
    from adjoints directly (never ``marginal / p``), so it is exact and finite at p in {0, 1}.
    ``mode="log"``: inputs ``(log_p, log_not_p)``; gradients w.r.t. both.
    """

    @staticmethod
    def forward(ctx, a, b, evaluator: Evaluator, backend: str, mode: str):
        batch = a.shape[0]
        wants_grad = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        if backend == "cpu":
            # the fused path: one kernel call fills the leaves, evaluates and reads the roots
            a = a.contiguous()
            b = None if b is None else b.contiguous()
            V = evaluator.alloc("cpu", batch, a.dtype, a.device)
            out = torch.empty((batch, evaluator.plan.num_roots), dtype=a.dtype)
            evaluator.cpu_kernel().eval(a, b, mode, V, out)
            if wants_grad:
                ctx.lease = _Lease(V, evaluator.pool)
                ctx.evaluator, ctx.backend, ctx.mode, ctx.batch = evaluator, backend, mode, batch
            else:
                evaluator.pool.give(V)
            return out
        if mode == "probs":
            log_p, log_not_p = torch.log(a), torch.log1p(-a)
        else:
            log_p, log_not_p = a, b
        V = evaluator.run_forward(log_p, log_not_p, backend)
        out = evaluator.roots(V, batch)
        if wants_grad:
            ctx.lease = _Lease(V, evaluator.pool)
            ctx.evaluator, ctx.backend, ctx.mode, ctx.batch = evaluator, backend, mode, batch
            ctx.log_p, ctx.log_not_p = (None, None) if mode == "probs" else (log_p, log_not_p)
        else:
            evaluator.pool.give(V)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        ev, V, mode = ctx.evaluator, ctx.lease.buf, ctx.mode
        if ctx.backend == "cpu":
            A = ev.plan.num_atoms
            gout = grad_out.to(V.dtype).contiguous()
            ga = torch.zeros((ctx.batch, A), dtype=V.dtype)
            gb = torch.zeros((ctx.batch, A), dtype=V.dtype) if mode == "log" else None
            ev.cpu_kernel().grad(mode, V, None, gout, ga, gb)
            return ga, gb, None, None, None
        grads = [None, None]
        # the top-down pass is linear in its seed but runs in log space: split the seed by sign
        g = grad_out.to(V.dtype)
        batch = ctx.batch
        live = torch.isfinite(ev.roots(V, batch))  # roots with W > 0
        for sign, part in ((1.0, g.clamp(min=0)), (-1.0, (-g).clamp(min=0))):
            if not bool((part > 0).any()):
                continue
            R = ev.run_backward(V, torch.log(part), batch, ctx.backend)
            total = (part * live).sum(1)[:, None]  # sum of the live seeds per batch row
            ga, gb = _leaf_grads(ev, R, batch, mode, ctx.log_p, ctx.log_not_p, total)
            grads[0] = sign * ga if grads[0] is None else grads[0] + sign * ga
            if gb is not None:
                grads[1] = sign * gb if grads[1] is None else grads[1] + sign * gb
            ev.pool.give(R)
        atoms = ev.plan.num_atoms
        if grads[0] is None:
            grads[0] = torch.zeros((batch, atoms), dtype=V.dtype, device=V.device)
            if mode == "log":
                grads[1] = torch.zeros_like(grads[0])
        if mode == "probs":
            grads[1] = None
        return grads[0], grads[1], None, None, None


# Batches up to this size take the one-call path (FusedLogWMC) through autograd; larger ones keep
# the two-call LogWMC path. See docs/performance.md ("batch 1").
FUSED_MAX_BATCH = 64
FUSED_DTYPES = (torch.float32, torch.float64)


class InputOutOfRange(ValueError):
    """Raised by the kernel's one-call path: input ``index`` (flat, ``batch * atoms + i`` for the
    second input) is outside its domain. ``Circuit`` turns it into a message naming the entry."""

    def __init__(self, index: int):
        super().__init__(f"input value {index} is outside its domain")
        self.index = index


class FusedLogWMC(torch.autograd.Function):
    """``sign * log WMC`` of one root, shape ``shape`` (``[batch]`` or ``[batch, 1]``), with its
    gradient computed in the same kernel call as the values (``CpuCircuit.fused``).

    The backward pass only scales the stored gradient by the upstream one: each output row
    depends on its own input row only. No work buffer outlives the forward call; the price is
    that the gradient is computed whenever an input requires it, even if backward never runs,
    which is why it is used for small batches (:data:`FUSED_MAX_BATCH`). Inputs: contiguous CPU
    tensors of one dtype in :data:`FUSED_DTYPES`; ``mode`` 0 (probs, ``b=None``) or 1 (logs). The
    kernel checks their values in the same call (:class:`InputOutOfRange`).
    """

    @staticmethod
    def forward(ctx, a, b, kernel, root: int, mode: int, sign: int, shape):
        value = torch.empty(shape, dtype=a.dtype)
        ga = gb = None
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            ga = torch.empty_like(a)
            gb = None if b is None else torch.empty_like(b)
        bad = kernel.fused(root, mode, sign, a, b, value, ga, gb)
        if bad >= 0:
            raise InputOutOfRange(bad)
        ctx.ga, ctx.gb = ga, gb
        return value

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        g = grad_out.reshape(-1, 1)
        ga = g * ctx.ga
        gb = None if ctx.gb is None else g * ctx.gb
        return ga, gb, None, None, None, None, None


def _leaf_grads(ev: Evaluator, R, batch, mode, log_p, log_not_p, total):
    A = ev.plan.num_atoms
    r_pos, r_neg = ev.get_rows(R, 2, 2 + A, batch), ev.get_rows(R, 2 + A, ev.plan.base, batch)
    if mode == "probs":
        # dlogW/dp = (A - B) / W: the derivative of a multilinear W, finite at p in {0, 1}
        return torch.exp(r_pos) - torch.exp(r_neg), None
    # in log space the circuit is not smoothed: branches that do not mention an atom weigh it
    # p + (1 - p) = 1 implicitly. Their share of W is total - m_pos - m_neg; giving it back to
    # the atom's two literals in proportion p : 1-p makes the partials those of the smoothed
    # (brute-force) polynomial, not only its derivative along log p ++ log(1-p) = 0.
    m_pos, m_neg = torch.exp(log_p + r_pos), torch.exp(log_not_p + r_neg)
    rest = total - m_pos - m_neg
    return m_pos + torch.exp(log_p) * rest, m_neg + torch.exp(log_not_p) * rest


def smoothed_marginals(ev: Evaluator, R, log_p, log_not_p, live):
    """``P(atom | root)`` from one top-down pass seeded with 0 at the root (see ``_leaf_grads``);
    rows where the root is false (``live`` False) get zeros."""
    batch = log_p.shape[0]
    grad, _ = _leaf_grads(ev, R, batch, "log", log_p, log_not_p, live[:, None].to(log_p.dtype))
    return grad
