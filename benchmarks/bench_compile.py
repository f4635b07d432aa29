"""Compile benchmark: constraintc's built-in compiler against PySDD and KLay's layerization.

Workloads: the all-pairs transitivity + asymmetry constraint on n nodes (variables r(i,j);
clauses r(i,j) & r(j,k) -> r(i,k) and ~(r(i,j) & r(j,i))), n = 4..8, and random 3-CNFs with
fixed seeds. For each workload it prints

- ours: compile seconds, circuit nodes and edges of ``compile_cnf(backend="builtin")`` (the IR E
  layerizes), the ordering heuristic the portfolio kept, and whether the model count equals the
  oracle (labelled strict partial orders for transitivity, PySDD's count for random CNFs);
- PySDD (``SddManager.from_cnf_string(..., "balanced")``): compile seconds, SDD size, and the
  edges of its SDD converted to our IR;
- KLay: the edge count of its layerization of PySDD's SDD (``klay.Circuit().add_sdd(root)``);
- ratios: PySDD time / ours (>1: we are faster) and our edges / KLay's (<1: we are smaller).

The anchors run one after the other with ours on the same machine, in a child process (PySDD
cannot be interrupted: the child is killed after ``--pysdd-timeout`` seconds, default 120).

Usage::

    python benchmarks/bench_compile.py                 # n = 4..8 and the random 3-CNFs
    python benchmarks/bench_compile.py --n 4 5 6 7     # a subset
    python benchmarks/bench_compile.py --json out.json --max-seconds 600
    python benchmarks/bench_compile.py --n --no-random --rules dsep:4 semigraphoid:4
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time

import numpy as np

from constraintc.compile import compile_cnf
from constraintc.compile.workloads import PARTIAL_ORDERS, transitivity_cnf
from constraintc.logic.cnf import CNF

RANDOM = [(30, 2.0, 0), (40, 3.0, 2), (50, 4.26, 0), (60, 4.26, 3)]


def random_3cnf(n: int, ratio: float, seed: int) -> CNF:
    rng = np.random.default_rng(seed)
    clauses = []
    for _ in range(int(round(n * ratio))):
        vs = rng.choice(np.arange(1, n + 1), 3, replace=False)
        clauses.append(tuple(int(v) * int(rng.choice([-1, 1])) for v in vs))
    return CNF(num_vars=n, clauses=clauses)


def _anchor_child(conn, dimacs: str) -> None:
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # the SDD library prints to stdout
    from pysdd.sdd import SddManager

    from constraintc.compile import from_pysdd

    t = time.perf_counter()
    mgr, root = SddManager.from_cnf_string(dimacs, b"balanced")
    seconds = time.perf_counter() - t
    out = {"pysdd_seconds": seconds, "sdd_size": int(root.size()),
           "pysdd_count": int(root.global_model_count()) if not root.is_false() else 0}
    ir = from_pysdd(mgr, root)
    out["pysdd_ir_edges"] = ir.num_edges
    try:
        import klay

        c = klay.Circuit()
        t = time.perf_counter()
        c.add_sdd(root)
        pointers, _ = c._get_indices()
        out["klay_layerize_seconds"] = time.perf_counter() - t
        out["klay_edges"] = int(sum(len(p) for p in pointers))
    except ImportError:
        out["klay_edges"] = None
    conn.send(out)
    conn.close()


def run_anchor(cnf: CNF, timeout: float) -> dict:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_anchor_child, args=(child, cnf.to_dimacs()), daemon=True)
    start = time.perf_counter()
    proc.start()
    child.close()
    try:
        if parent.poll(timeout):
            return parent.recv()
        return {"timeout": timeout, "elapsed": time.perf_counter() - start}
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join()


def run_ours(cnf: CNF, max_seconds: float | None) -> dict:
    from constraintc.errors import BudgetExceeded, Unsatisfiable

    t = time.perf_counter()
    try:
        out = compile_cnf(cnf, backend="builtin", max_seconds=max_seconds, progress=True)
    except BudgetExceeded as exc:
        return {"budget": str(exc), "seconds": time.perf_counter() - t}
    except Unsatisfiable:
        return {"seconds": time.perf_counter() - t, "model_count": 0, "unsat": True}
    s = out.stats
    return {"seconds": s["compile_seconds"], "nodes": s["nodes"], "edges": s["edges"],
            "model_count": s["model_count"], "heuristic": s.get("heuristic")}


def fmt(x, spec="{:.2f}"):
    return "-" if x is None else spec.format(x)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, nargs="*", default=[4, 5, 6, 7, 8],
                    help="transitivity sizes (default: 4 5 6 7 8)")
    ap.add_argument("--no-random", action="store_true", help="skip the random 3-CNFs")
    ap.add_argument("--pysdd-timeout", type=float, default=120.0,
                    help="seconds before the PySDD anchor is killed (default: 120)")
    ap.add_argument("--max-seconds", type=float, default=600.0,
                    help="time budget of our compiler per workload (default: 600)")
    ap.add_argument("--json", help="also write the rows as JSON to this file")
    ap.add_argument("--rules", nargs="*", default=[], metavar="NAME:NODES",
                    help="also compile library rules as schema circuits, e.g. dsep:4 semigraphoid:4")
    args = ap.parse_args(argv)

    work = [(f"transitivity n={n}", transitivity_cnf(n), PARTIAL_ORDERS.get(n)) for n in args.n]
    for spec in args.rules:
        from constraintc.language import load_rules
        from constraintc.logic import ground

        name, _, nodes = spec.partition(":")
        work.append((f"{name} n={nodes} (schema)", ground(load_rules(name), int(nodes)).cnf, None))
    if not args.no_random:
        work += [(f"random3 v={n} r={r} s={s}", random_3cnf(n, r, s), None) for n, r, s in RANDOM]

    header = (f"{'workload':<26} {'vars':>4} {'cls':>5} | {'ours s':>7} {'nodes':>8} {'edges':>8} "
              f"{'heur':>5} {'count':>5} | {'pysdd s':>7} {'sdd size':>8} {'sdd->ir':>8} "
              f"{'klay edges':>10} | {'time x':>7} {'edges/klay':>10}")
    compile_cnf(transitivity_cnf(3), backend="builtin")  # load (or build) the C++ core untimed
    print(header)
    print("-" * len(header))
    rows = []
    for name, cnf, oracle in work:
        print(f"[{name}] ours ...", file=sys.stderr)
        ours = run_ours(cnf, args.max_seconds)
        print(f"[{name}] PySDD + KLay anchor ...", file=sys.stderr)
        anchor = run_anchor(cnf, args.pysdd_timeout)
        if oracle is None and "pysdd_count" in anchor:
            oracle = anchor["pysdd_count"]
        ok = "-" if oracle is None or "model_count" not in ours else (
            "ok" if ours["model_count"] == oracle else "WRONG")
        speed = (anchor["pysdd_seconds"] / ours["seconds"]
                 if "pysdd_seconds" in anchor and "edges" in ours else None)
        size = (ours["edges"] / anchor["klay_edges"]
                if anchor.get("klay_edges") and "edges" in ours else None)
        pysdd_s = (fmt(anchor.get("pysdd_seconds")) if "timeout" not in anchor
                   else f">{anchor['timeout']:.0f}")
        ours_s = fmt(ours["seconds"]) if "budget" not in ours else f">{ours['seconds']:.0f}"
        print(f"{name:<26} {cnf.num_vars:>4} {len(cnf.clauses):>5} | {ours_s:>7} "
              f"{fmt(ours.get('nodes'), '{:d}'):>8} {fmt(ours.get('edges'), '{:d}'):>8} "
              f"{(ours.get('heuristic') or '-')[:5]:>5} {ok:>5} | {pysdd_s:>7} "
              f"{fmt(anchor.get('sdd_size'), '{:d}'):>8} {fmt(anchor.get('pysdd_ir_edges'), '{:d}'):>8} "
              f"{fmt(anchor.get('klay_edges'), '{:d}'):>10} | {fmt(speed, '{:.1f}x'):>7} "
              f"{fmt(size, '{:.2f}'):>10}", flush=True)
        if "budget" in ours:
            print(f"    ours stopped: {ours['budget']}")
        rows.append({"workload": name, "variables": cnf.num_vars, "clauses": len(cnf.clauses),
                     "oracle": oracle, "ours": ours, "anchor": anchor})
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1, default=int)
    return 0


if __name__ == "__main__":
    sys.exit(main())
