"""Benchmark: the semantic loss on a CUDA GPU, the Triton kernel against the torch reference.

Workload: transitivity's schema circuits over n nodes (``compile_rules("transitivity", n)``,
the built-in compiler), forward + backward of ``log_wmc`` (autograd) on a batch of random
probabilities, a third of them clamped to exactly 0 or 1.

Checked first, on every size and batch: the Triton kernel (float32 and float64) against the
torch reference in float64 on the CPU over the same inputs (the float32 draw upcast), values and
gradients (max error relative to max(1, |reference|) over finite values;
the same -inf pattern; no NaN). Then timed, in this one process: Triton on the GPU, the torch
reference on the GPU, and the fused CPU kernel on this machine's cores (the CPU anchor whose
ratios to KLay are in docs/performance.md); medians of CUDA-event (GPU) or wall-clock (CPU) times.
Prints one table and the ratios torch-GPU / Triton and CPU / Triton.

Run:  python benchmarks/bench_gpu.py                     (n = 4, 5, 6; batch 1024, 8192, 65536)
      python benchmarks/bench_gpu.py --sizes 4 --batches 1024 --markdown
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch


def _fwd_bwd(circuit, probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    p = probs.clone().requires_grad_(True)
    out = circuit.log_wmc(p)
    (grad,) = torch.autograd.grad(out.masked_fill(torch.isinf(out), 0).sum(), p)
    return out.detach(), grad


def _time_cuda(fn, reps: int) -> float:
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return statistics.median(times)


def _time_cpu(fn, reps: int) -> float:
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _draw(batch: int, n_atoms: int, dtype, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    probs = torch.rand(batch, n_atoms, generator=g, dtype=torch.float64)
    clamp = torch.rand(batch, n_atoms, generator=g) < 1 / 3
    return torch.where(clamp, probs.round(), probs).to(dtype)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="4,5,6", help="node counts n (default 4,5,6)")
    ap.add_argument("--batches", default="1024,8192,65536", help="batch sizes (default 1024,8192,65536)")
    ap.add_argument("--reps", type=int, default=20, help="timed repetitions (median; default 20)")
    ap.add_argument("--markdown", action="store_true", help="also print the table as markdown")
    ap.add_argument("--device", default="cuda", help=argparse.SUPPRESS)  # cpu: the script's own check, under TRITON_INTERPRET=1
    args = ap.parse_args(argv)
    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        print("bench_gpu: torch sees no CUDA GPU here; nothing to measure", file=sys.stderr)
        return 2
    from constraintc import compile_rules
    from constraintc.circuit import Circuit
    from constraintc.circuit.evaluate import triton_available

    if not triton_available():
        print("bench_gpu: the Triton kernel does not load here (see the warning above)", file=sys.stderr)
        return 2
    gpu = dev.type == "cuda"
    name = torch.cuda.get_device_name(dev) if gpu else "cpu (Triton interpreted)"
    print(f"device: {name}, torch {torch.__version__}, CPU threads {torch.get_num_threads()}")
    timer = _time_cuda if gpu else _time_cpu
    rows, failures = [], 0
    for n in [int(s) for s in args.sizes.split(",")]:
        ir = compile_rules("transitivity", n, cache=False).ir
        ref_circuit = Circuit.from_ir(ir, backend="torch")
        triton, torch_dev = Circuit.from_ir(ir, backend="triton").to(dev), Circuit.from_ir(ir, backend="torch").to(dev)
        cpu = Circuit.from_ir(ir, backend="cpu")
        for batch in [int(s) for s in args.batches.split(",")]:
            probs64 = _draw(batch, ref_circuit.num_atoms, torch.float64, seed=n * 1000 + batch)
            errs = {}
            for dtype in (torch.float32, torch.float64):
                # the reference sees the inputs the kernel sees: rounding probabilities near 0 or 1
                # to float32 moves log(1 - p) and the gradient far more than any kernel error
                ref_out, ref_grad = _fwd_bwd(ref_circuit, probs64.to(dtype).double())
                out, grad = _fwd_bwd(triton, probs64.to(dev, dtype))
                out, grad = out.double().cpu(), grad.double().cpu()
                same_inf = torch.equal(torch.isinf(out), torch.isinf(ref_out))
                nan = bool(torch.isnan(out).any() or torch.isnan(grad).any())
                f = torch.isfinite(ref_out)
                # error relative to max(1, |reference|): float32 carries ~7 digits of a log value
                err = max(((out[f] - ref_out[f]).abs() / ref_out[f].abs().clamp(min=1)).max().item() if f.any() else 0.0,
                          ((grad - ref_grad).abs() / ref_grad.abs().clamp(min=1)).max().item())
                ok = same_inf and not nan and err < (1e-4 if dtype == torch.float32 else 1e-9)
                failures += not ok
                errs[str(dtype).split(".")[1]] = f"{err:.1e}{'' if ok else ' FAIL'}"
            probs_gpu = probs64.to(dev, torch.float32)
            probs_cpu = probs64.float()
            t_triton = timer(lambda: _fwd_bwd(triton, probs_gpu), args.reps)
            t_torch = timer(lambda: _fwd_bwd(torch_dev, probs_gpu), args.reps)
            t_cpu = _time_cpu(lambda: _fwd_bwd(cpu, probs_cpu), max(3, args.reps // 4))
            rows.append((n, ref_circuit.num_atoms, batch, errs["float32"], errs["float64"],
                         t_triton * 1e3, t_torch * 1e3, t_cpu * 1e3, t_torch / t_triton, t_cpu / t_triton))
            print(f"n={n} batch={batch}: triton {t_triton * 1e3:.3f} ms, torch-gpu {t_torch * 1e3:.3f} ms, "
                  f"cpu {t_cpu * 1e3:.3f} ms; errors f32 {errs['float32']}, f64 {errs['float64']}", flush=True)
    head = ("n", "atoms", "batch", "err f32", "err f64", "triton ms", "torch-gpu ms", "cpu ms",
            "torch-gpu/triton", "cpu/triton")
    print()
    print(" ".join(f"{h:>16}" for h in head))
    for r in rows:
        print(" ".join(f"{v:>16.3f}" if isinstance(v, float) else f"{v!s:>16}" for v in r))
    if args.markdown:
        print("\n| " + " | ".join(head) + " |\n|" + "---|" * len(head))
        for r in rows:
            print("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in r) + " |")
    print(f"\n{failures} check(s) failed" if failures else "\nall checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
