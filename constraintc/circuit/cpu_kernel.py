"""Loader of the fused CPU kernel (``kernels/circuit_cpu.cpp``): built just in time, cached per user.

The kernel is a plain C ABI shared library built with the system C++ compiler
(``$CXX`` or ``g++``/``c++``/``clang++``) and OpenMP when available, and called through ctypes on
tensor data pointers: no torch headers, no ninja, and torch never becomes a build requirement.
It is built, cached and checked before loading by :mod:`constraintc.native` (under
``$CONSTRAINTC_CACHE/kernels``, keyed by a hash of the source, the compiler and the CPU's feature
flags: it is built with ``-march=native``). Without a compiler, :func:`available` is False and
``backend="auto"`` uses the torch reference.
"""

from __future__ import annotations

import ctypes
import os
import threading
import weakref

import numpy as np
import torch

from constraintc.circuit.layers import LayerPlan

_LOCK = threading.Lock()
_LIB: ctypes.CDLL | None = None
_ERROR: str | None = None

_BASE_FLAGS = ("-O3", "-std=c++17", "-shared", "-fPIC", "-fno-math-errno", "-fno-trapping-math")
# the first set that compiles wins: OpenMP and -march=native are both optional
_ATTEMPTS = (
    _BASE_FLAGS + ("-march=native", "-fopenmp"),
    _BASE_FLAGS + ("-fopenmp",),
    _BASE_FLAGS + ("-march=native",),
    _BASE_FLAGS,
)
ABI = 5  # constraintc_kernel_abi() in kernels/circuit_cpu.cpp


def native_library():
    """The kernel as a :class:`constraintc.native.NativeLibrary` (source, flags, ABI)."""
    from constraintc.native import NativeLibrary
    from constraintc.resources import kernels_dir

    return NativeLibrary("circuit_cpu", kernels_dir() / "circuit_cpu.cpp", _ATTEMPTS,
                         abi_symbol="constraintc_kernel_abi", abi=ABI, host_specific=True)


def load() -> ctypes.CDLL | None:
    """The kernel library, built on first use; None when it cannot be built."""
    global _LIB, _ERROR
    with _LOCK:
        if _LIB is not None or _ERROR is not None:
            return _LIB
        if os.environ.get("CONSTRAINTC_NO_CPU_KERNEL"):
            _ERROR = "disabled by CONSTRAINTC_NO_CPU_KERNEL"
            return None
        from constraintc.native import NativeBuildError, load_library

        try:
            lib = load_library(native_library())
        except NativeBuildError as exc:
            _ERROR = str(exc)
            return None
        p = ctypes.c_void_p
        i64 = ctypes.c_int64
        plan_args = [i64, p, p, p, p, p, p, i64, i64, p, p, p, p, p]
        for name in ("circuit_forward_f32", "circuit_forward_f64"):
            getattr(lib, name).argtypes = plan_args + [p, i64, i64, i64, ctypes.c_int]
            getattr(lib, name).restype = None
        for name in ("circuit_backward_f32", "circuit_backward_f64"):
            getattr(lib, name).argtypes = plan_args + [p, p, i64, i64, i64, ctypes.c_int]
            getattr(lib, name).restype = None
        for name in ("circuit_eval_f32", "circuit_eval_f64"):
            getattr(lib, name).argtypes = plan_args + [i64, i64, ctypes.c_int, p, p, i64, p, i64, i64,
                                                       i64, p, ctypes.c_int]
            getattr(lib, name).restype = None
        for name in ("circuit_grad_f32", "circuit_grad_f64"):
            getattr(lib, name).argtypes = plan_args + [i64, i64, ctypes.c_int, i64, p, p, i64, i64, i64,
                                                       p, p, p, ctypes.c_int]
            getattr(lib, name).restype = None
        lib.circuit_ctx_new.argtypes = plan_args + [i64, i64, i64]
        lib.circuit_ctx_new.restype = p
        lib.circuit_ctx_free.argtypes = [p]
        lib.circuit_ctx_free.restype = None
        for name in ("circuit_fused_f32", "circuit_fused_f64"):
            getattr(lib, name).argtypes = [p, i64, ctypes.c_int, ctypes.c_int, p, p, i64, p, p, p,
                                           ctypes.c_int]
            getattr(lib, name).restype = i64
        _LIB = lib
        return _LIB


def available() -> bool:
    """True when the kernel is built (or can be built) and loads."""
    return load() is not None


def unavailable_reason() -> str | None:
    load()
    return _ERROR


class CpuCircuit:
    """One layer plan bound to the kernel; ``forward(V)`` / ``backward(V, R)`` in place on
    ``[tiles, rows, width]`` buffers (see ``Evaluator.alloc``)."""

    def __init__(self, plan: LayerPlan):
        lib = load()
        if lib is None:
            raise RuntimeError(f"the CPU kernel is unavailable: {_ERROR}")
        self.lib = lib
        self.plan = plan
        blocks = np.asarray(plan.backward_blocks(), dtype=np.int64).reshape(-1, 2)
        # keep every array alive as long as this object: the kernel reads them by address
        self._arrays = [
            np.ascontiguousarray(a)
            for a in (plan.layer_start, plan.layer_mid, plan.layer_end, plan.node_ptr,
                      plan.child_rows, plan.is_or, blocks, plan.rev_ptr, plan.rev_edge,
                      plan.rev_parent, plan.edge_node)
        ]
        (ls, lm, le, nptr, crow, isor, blk, rptr, redge, rpar, enode) = self._arrays
        ptr = lambda a: a.ctypes.data  # noqa: E731
        self._plan_args = (
            plan.num_layers, ptr(ls), ptr(lm), ptr(le), ptr(nptr), ptr(crow), ptr(isor),
            plan.base, blk.shape[0], ptr(blk), ptr(rptr), ptr(redge), ptr(rpar), ptr(enode),
        )
        # the handle of the one-call path (``fused``): the plan bound once, plus per-thread
        # scratch tiles reused across calls; freed with this object (it reads self._arrays)
        self._ctx = lib.circuit_ctx_new(*self._plan_args, plan.num_atoms, plan.num_roots,
                                        plan.num_rows)
        weakref.finalize(self, lib.circuit_ctx_free, self._ctx)
        self._fused_fn = {torch.float32: lib.circuit_fused_f32, torch.float64: lib.circuit_fused_f64}

    def _check(self, t: torch.Tensor) -> str:
        if t.device.type != "cpu" or not t.is_contiguous() or t.dim() != 3:
            raise ValueError("the CPU kernel needs contiguous CPU tensors [tiles, rows, width]")
        if t.shape[1] != self.plan.num_rows or not 1 <= t.shape[2] <= 64:
            raise ValueError(f"bad work buffer shape {tuple(t.shape)}")
        if t.dtype == torch.float32:
            return "f32"
        if t.dtype == torch.float64:
            return "f64"
        raise TypeError(f"the CPU kernel evaluates float32 or float64, not {t.dtype}")

    def forward(self, V: torch.Tensor) -> None:
        suffix = self._check(V)
        fn = getattr(self.lib, f"circuit_forward_{suffix}")
        tiles, rows, width = V.shape
        fn(*self._plan_args, V.data_ptr(), tiles, rows, width, torch.get_num_threads())

    def backward(self, V: torch.Tensor, R: torch.Tensor) -> None:
        suffix = self._check(V)
        self._check(R)
        if R.shape != V.shape:
            raise ValueError("V and R differ in shape")
        R[:, :2, :] = float("-inf")
        fn = getattr(self.lib, f"circuit_backward_{suffix}")
        tiles, rows, width = V.shape
        fn(*self._plan_args, V.data_ptr(), R.data_ptr(), tiles, rows, width, torch.get_num_threads())

    # -- whole passes from [batch, atoms] inputs (the hot path of the autograd function) --------
    MODES = {"probs": 0, "log": 1}

    def eval(self, a: torch.Tensor, b: torch.Tensor | None, mode: str, V: torch.Tensor,
             out: torch.Tensor) -> None:
        """Fill the leaves from ``a`` (probs, or log p with ``b`` = log(1-p)), run the circuit
        into ``V`` and write the root values to ``out [batch, roots]``."""
        suffix = self._check(V)
        tiles, rows, width = V.shape
        fn = getattr(self.lib, f"circuit_eval_{suffix}")
        fn(*self._plan_args, self.plan.num_atoms, self.plan.num_roots, self.MODES[mode],
           a.data_ptr(), 0 if b is None else b.data_ptr(), a.shape[0], V.data_ptr(), tiles, rows,
           width, out.data_ptr(), torch.get_num_threads())

    def grad(self, mode: str, V: torch.Tensor, R: torch.Tensor | None, grad_out: torch.Tensor,
             ga: torch.Tensor, gb: torch.Tensor | None) -> None:
        """Accumulate the gradients of ``sum(grad_out * log W)`` into ``ga`` (and ``gb``).

        ``R=None`` lets each thread reuse one tile of adjoints (half the memory); a buffer
        shaped like ``V`` keeps every adjoint (for inspection and tests)."""
        suffix = self._check(V)
        tiles, rows, width = V.shape
        fn = getattr(self.lib, f"circuit_grad_{suffix}")
        fn(*self._plan_args, self.plan.num_atoms, self.plan.num_roots, self.MODES[mode],
           ga.shape[0], V.data_ptr(), 0 if R is None else R.data_ptr(), tiles, rows, width,
           grad_out.data_ptr(),
           ga.data_ptr(), 0 if gb is None else gb.data_ptr(), torch.get_num_threads())

    def fused(self, root: int, mode: int, sign: int, a: torch.Tensor, b: torch.Tensor | None,
              value: torch.Tensor, ga: torch.Tensor | None, gb: torch.Tensor | None) -> int:
        """Forward and backward of root ``root`` in one call, no work buffer kept.

        ``a`` (and ``b``): contiguous ``[batch, atoms]`` CPU tensors of one dtype (float32 or
        float64; probabilities for ``mode=0``, ``log p`` and ``log(1-p)`` for ``mode=1``). Writes
        ``value[i] = sign * log W_root`` (``batch`` contiguous values) and, when ``ga`` is given,
        ``ga`` (and ``gb``) ``= sign * d log W_root / d a`` (and ``/ d b``), overwriting them.
        ``sign=-1`` gives the semantic loss and its gradient. Returns -1; or, writing nothing,
        the flat index of the first input value outside its domain (a probability outside
        ``[0, 1]``, a log-probability that is NaN or positive; ``batch * atoms + i`` for ``b``).
        Shapes, dtypes and layout are unchecked: the hot path of
        :meth:`Circuit.semantic_loss_and_grad`; callers validate them.
        """
        return self._fused_fn[a.dtype](
            self._ctx, root, mode, sign, a.data_ptr(), 0 if b is None else b.data_ptr(), a.shape[0],
            value.data_ptr(), 0 if ga is None else ga.data_ptr(), 0 if gb is None else gb.data_ptr(),
            torch.get_num_threads())
