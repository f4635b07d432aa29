"""Benchmark: forward+backward semantic loss on the all-pairs transitivity circuits.

Workload: the constraint "r(i,j) & r(j,k) -> r(i,k)" and "~(r(i,j) & r(j,i))" over n nodes
(n*(n-1) atoms), compiled once with PySDD (balanced vtree). The same SDD is evaluated by

* constraintc (``Circuit`` built with ``constraintc.compile.from_pysdd``): ``semantic_loss``
  + ``backward()`` on the fused CPU kernel, the same without autograd
  (``semantic_loss_and_grad``: one kernel call), the previous two-call path without autograd
  (for before/after ratios), and the torch reference back end;
* KLay (``klaycircuits``, log semiring, ``compile=False``), the anchor;
* PySDD's own WMC (log mode, one ``propagate()`` per sample: values and derivatives);

and, for reference, constraintc on the circuit of its own built-in compiler (``compile_cnf``).
Every number is taken in this one process, so the printed ratios (KLay time / ours) survive
machine noise better than the absolute times. Peak memory is the growth of the process's peak
resident set during one forward+backward (``/proc/self/clear_refs``), after freeing caches.
Small batches (``--small-batch``, default 64) are timed again side by side: ours (the three
paths) and PySDD in turns, thousands of calls per sample, medians of 15 samples.

Run:  python benchmarks/bench_eval.py                  (n = 4..7, batch 1024 and 1)
      python benchmarks/bench_eval.py --sizes 4,5 --batches 1 --markdown
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time

import torch


# -- memory ------------------------------------------------------------------------------------
def _status_kb(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1])
    return 0


def reset_peak() -> int:
    """Reset the kernel's peak-RSS counter; returns the current RSS in KiB."""
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    return _status_kb("VmRSS:")


def peak_growth_mb(base_kb: int) -> float:
    return max(0, _status_kb("VmHWM:") - base_kb) / 1024


# -- timing ------------------------------------------------------------------------------------
def timed(fn, reps: int, min_seconds: float = 0.5, max_reps: int = 200) -> float:
    """Median seconds of ``fn()`` after one warm-up; at least ``reps`` runs and ``min_seconds``."""
    fn()
    times = []
    start = time.perf_counter()
    while len(times) < reps or (time.perf_counter() - start < min_seconds and len(times) < max_reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def side_by_side(fns: dict, samples: int = 15, sample_seconds: float = 0.02) -> dict:
    """Median seconds per call of each of ``fns``, timed in turns (the order alternating between
    samples) so that load changes hit every contender alike. One sample times as many calls as
    fit in about ``sample_seconds``: batch-1 calls take microseconds, below a timer's noise."""
    calls = {}
    for name, fn in fns.items():
        fn()
        t = time.perf_counter()
        fn()
        calls[name] = max(1, min(5000, int(sample_seconds / max(time.perf_counter() - t, 1e-7))))
    res = {name: [] for name in fns}
    items = list(fns.items())
    for s in range(samples):
        for name, fn in (items if s % 2 == 0 else items[::-1]):
            k = calls[name]
            t = time.perf_counter()
            for _ in range(k):
                fn()
            res[name].append((time.perf_counter() - t) / k)
    return {name: statistics.median(v) for name, v in res.items()}


def measure(fn, reps: int, clear=None) -> tuple[float, float]:
    """(median seconds, peak memory growth in MB of one call from a clean state)."""
    if clear:
        clear()
    base = reset_peak()
    fn()
    mem = peak_growth_mb(base)
    return timed(fn, reps), mem


# -- the contenders ------------------------------------------------------------------------------
def ours_step(circuit, probs):
    def step():
        p = probs.detach().requires_grad_(True)
        loss = circuit.semantic_loss(p).sum()
        loss.backward()
        return p.grad

    return step


def ours_direct_step(circuit, probs):
    def step():
        return circuit.semantic_loss_and_grad(probs)[1]

    return step


def ours_two_call_step(circuit, probs):
    """The previous ``semantic_loss_and_grad`` (before the one-call kernel entry): a forward call
    into a pooled ``[rows, batch]`` buffer, then a gradient call with a ``gout`` tensor."""
    def step():
        ev = circuit.evaluator
        batch, roots = probs.shape[0], circuit.num_roots
        p = circuit._check(probs, "probs").detach().contiguous()
        V = ev.alloc("cpu", batch, p.dtype, p.device)
        out = torch.empty((batch, roots), dtype=p.dtype)
        kernel = ev.cpu_kernel()
        kernel.eval(p, None, "probs", V, out)
        gout = torch.zeros((batch, roots), dtype=p.dtype)
        gout[:, 0] = -1.0
        grad = torch.zeros((batch, circuit.num_atoms), dtype=p.dtype)
        kernel.grad("probs", V, None, gout, grad, None)
        ev.pool.give(V)
        return grad

    return step


def klay_step(module, probs):
    def step():
        p = probs.detach().requires_grad_(True)
        loss = -module(torch.log(p), torch.log1p(-p)).sum()
        loss.backward()
        return p.grad

    return step


def pysdd_step(root, probs):
    import numpy as np

    wmc = root.wmc(log_mode=True)
    nv = probs.shape[1]
    lp = torch.log(probs).double().numpy()
    lq = torch.log1p(-probs).double().numpy()
    lits = list(range(1, nv + 1))

    def step():
        for b in range(probs.shape[0]):
            # order [-V..-1, 1..V]
            wmc.set_literal_weights_from_array(np.concatenate([lq[b, ::-1], lp[b]]))
            wmc.propagate()
            for v in lits:  # the derivatives: the backward half of the work
                wmc.literal_derivative(v)
                wmc.literal_derivative(-v)

    return step


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="4,5,6,7", help="node counts n (default 4,5,6,7)")
    ap.add_argument("--batches", default="1024,1", help="batch sizes (default 1024,1)")
    ap.add_argument("--reps", type=int, default=3, help="timed repetitions at least (default 3)")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch/kernel threads")
    ap.add_argument("--no-klay", action="store_true", help="skip the KLay anchor")
    ap.add_argument("--no-torch-ref", action="store_true", help="skip constraintc's torch reference path")
    ap.add_argument("--pysdd-max-batch", type=int, default=1, help="largest batch for PySDD's per-sample WMC loop")
    ap.add_argument("--small-batch", type=int, default=64,
                    help="batches up to this size time ours and PySDD side by side, in turns, "
                         "many calls per sample (default 64)")
    ap.add_argument("--markdown", action="store_true", help="also print the table as markdown")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from pysdd.sdd import SddManager

    from constraintc.circuit import Circuit
    from constraintc.compile import compile_cnf, from_pysdd
    from constraintc.compile.workloads import transitivity_cnf
    from constraintc.logic.cnf import CNF

    if not args.no_klay:
        import klay

    sizes = [int(x) for x in args.sizes.split(",")]
    batches = [int(x) for x in args.batches.split(",")]
    print(f"# bench_eval: torch {torch.__version__}, threads {args.threads}, sizes {sizes}, "
          f"batches {batches}", flush=True)
    rows = []
    for n in sizes:
        cnf = transitivity_cnf(n)
        nv, clauses = cnf.num_vars, cnf.clauses
        text = f"p cnf {nv} {len(clauses)}\n" + "".join(" ".join(map(str, c)) + " 0\n" for c in clauses)
        t = time.perf_counter()
        mgr, root = SddManager.from_cnf_string(text, b"balanced")
        sdd_seconds = time.perf_counter() - t
        ir = from_pysdd(mgr, root)
        ours = Circuit.from_ir(ir, backend="cpu")
        assert ours.model_count() == root.model_count()
        t = time.perf_counter()
        builtin = compile_cnf(CNF(nv, clauses))
        builtin_seconds = time.perf_counter() - t
        ours_builtin = Circuit.from_ir(builtin.ir, backend="cpu")
        klay_module = None
        if not args.no_klay:
            kc = klay.Circuit()
            kc.add_sdd(root)
            klay_module = kc.to_torch_module(semiring="log", compile=False)
        print(f"n={n}: {nv} atoms, PySDD {sdd_seconds:.2f} s -> {ir.num_nodes} nodes {ir.num_edges} "
              f"edges; built-in {builtin_seconds:.2f} s -> {builtin.ir.num_nodes} nodes "
              f"{builtin.ir.num_edges} edges", flush=True)
        for batch in batches:
            gen = torch.Generator().manual_seed(n * 1000 + batch)
            probs = torch.rand(batch, nv, generator=gen) * 0.98 + 0.01
            row = {"n": n, "batch": batch, "edges": ir.num_edges}
            # agreement check before timing: same values, same gradients
            if klay_module is not None:  # on a slice: KLay's float64 peak on n=7 would be ~9 GB
                a = ours_step(ours, probs[:8].double())()
                b = klay_step(klay_module, probs[:8].double())()
                assert torch.allclose(a, b, rtol=1e-8, atol=1e-10), "gradients differ from KLay"
            a = ours_direct_step(ours, probs)()
            b = ours_two_call_step(ours, probs)()
            assert torch.allclose(a, b, rtol=1e-5, atol=1e-6), "one-call and two-call paths differ"
            row["ours"] = measure(ours_step(ours, probs), args.reps, clear=ours.evaluator.pool.clear)
            row["ours_direct"] = measure(ours_direct_step(ours, probs), args.reps,
                                         clear=ours.evaluator.pool.clear)
            row["ours_two_call"] = measure(ours_two_call_step(ours, probs), args.reps,
                                           clear=ours.evaluator.pool.clear)
            row["ours_builtin"] = measure(ours_step(ours_builtin, probs), args.reps,
                                          clear=ours_builtin.evaluator.pool.clear)
            if not args.no_torch_ref and (batch <= 64 or n <= 6):
                ref = Circuit.from_ir(ir, backend="torch")
                row["torch_ref"] = measure(ours_step(ref, probs), 1, clear=ref.evaluator.pool.clear)
            if klay_module is not None:
                row["klay"] = measure(klay_step(klay_module, probs), 1 if n >= 7 and batch > 64 else args.reps)
            if batch <= args.pysdd_max_batch:
                row["pysdd"] = measure(pysdd_step(root, probs), args.reps)
            if batch <= args.small_batch:
                # microsecond calls: re-time ours and PySDD in turns, many calls per sample
                fns = {"ours": ours_step(ours, probs), "ours_direct": ours_direct_step(ours, probs),
                       "ours_two_call": ours_two_call_step(ours, probs)}
                if "pysdd" in row:
                    fns["pysdd"] = pysdd_step(root, probs)
                for key, sec in side_by_side(fns).items():
                    row[key] = (sec, row[key][1])
            rows.append(row)
            print(format_row(row), flush=True)
        del klay_module
        gc.collect()
    print()
    print(table(rows, markdown=False))
    if args.markdown:
        print()
        print(table(rows, markdown=True))
    return 0


def _fmt_t(x):
    if x < 1e-3:
        return f"{x * 1e6:.1f} us"
    return f"{x * 1e3:.2f} ms" if x < 1 else f"{x:.2f} s"


def format_row(row):
    parts = [f"n={row['n']} batch={row['batch']}"]
    for key in ("ours", "ours_direct", "ours_two_call", "ours_builtin", "torch_ref", "klay", "pysdd"):
        if key in row:
            t, mem = row[key]
            parts.append(f"{key} {_fmt_t(t)} ({mem:.0f} MB)")
    if "klay" in row:
        parts.append(f"KLay/ours x{row['klay'][0] / row['ours'][0]:.1f}")
    if "pysdd" in row:
        parts.append(f"PySDD/ours x{row['pysdd'][0] / row['ours'][0]:.2f}")
        parts.append(f"PySDD/ours-no-autograd x{row['pysdd'][0] / row['ours_direct'][0]:.2f}")
    return "  ".join(parts)


def table(rows, markdown: bool) -> str:
    head = ["n", "batch", "edges (SDD)", "ours", "ours, no autograd", "ours, two calls (before)",
            "ours, built-in circuit", "torch reference", "KLay", "PySDD WMC", "KLay / ours",
            "PySDD / ours", "PySDD / ours no autograd", "peak MB ours", "peak MB KLay"]
    out = []
    for r in rows:
        t = lambda k: _fmt_t(r[k][0]) if k in r else "-"  # noqa: E731
        ratio = lambda k: f"{r[k][0] / r['ours'][0]:.2f}x" if k in r else "-"  # noqa: E731
        mem = lambda k: f"{r[k][1]:.0f}" if k in r else "-"  # noqa: E731
        direct = f"{r['pysdd'][0] / r['ours_direct'][0]:.2f}x" if "pysdd" in r else "-"
        out.append([str(r["n"]), str(r["batch"]), str(r["edges"]), t("ours"), t("ours_direct"),
                    t("ours_two_call"), t("ours_builtin"), t("torch_ref"), t("klay"), t("pysdd"), ratio("klay"),
                    ratio("pysdd"), direct, mem("ours"), mem("klay")])
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in out]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in out)) for i, h in enumerate(head)] if out else []
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in out]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
