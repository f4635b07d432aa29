"""The Triton kernel equals the torch reference, run on CPU under ``TRITON_INTERPRET=1``.

The interpreter must be switched on before triton is imported, so the check runs in a child
process; it prints one line per comparison and the test asserts on them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import os, sys, warnings
    assert os.environ["TRITON_INTERPRET"] == "1"
    warnings.simplefilter("ignore")  # numpy warns on the masked-off lanes of torch.where
    import random
    import torch
    from constraintc.circuit import Circuit
    from constraintc.compile import compile_cnf
    from constraintc.logic.cnf import CNF

    seed = int(sys.argv[1])
    rng = random.Random(seed)
    torch.manual_seed(seed)
    print("seed", seed)
    done = 0
    while done < 3:
        n = rng.randint(2, 6)
        clauses = [tuple(rng.choice([1, -1]) * rng.randint(1, n) for _ in range(rng.randint(1, 3)))
                   for _ in range(rng.randint(1, 8))]
        try:
            ir = compile_cnf([CNF(n, clauses), CNF(n, clauses[:1])]).ir
        except Exception:  # unsatisfiable draw
            continue
        done += 1
        for dtype, batch in ((torch.float32, 3), (torch.float64, 70)):
            probs = torch.rand(batch, n, dtype=dtype)
            clamp = torch.rand(batch, n) < 0.3
            probs = torch.where(clamp, probs.round(), probs)
            grads = {}
            for backend in ("torch", "triton"):
                c = Circuit.from_ir(ir, backend=backend)
                p = probs.clone().requires_grad_(True)
                out = c.log_wmc(p)
                g = torch.tensor([[1.0, -0.5]], dtype=dtype).expand(batch, 2)
                (grad,) = torch.autograd.grad((out.masked_fill(torch.isinf(out), 0) * g).sum(), p)
                grads[backend] = (out.detach(), grad, c.marginals(probs))
            (o_t, g_t, m_t), (o_k, g_k, m_k) = grads["torch"], grads["triton"]
            same_inf = torch.equal(torch.isinf(o_t), torch.isinf(o_k))
            nan = bool(torch.isnan(o_k).any() or torch.isnan(g_k).any() or torch.isnan(m_k).any())
            f = torch.isfinite(o_t)
            err = max((o_t[f] - o_k[f]).abs().max().item() if f.any() else 0.0,
                      (g_t - g_k).abs().max().item(), (m_t - m_k).abs().max().item())
            print("compare", str(dtype), batch, same_inf, nan, err)

    # what users hold: SemanticLoss over subsets, its circuits on the Triton kernel
    from constraintc.circuit.evaluate import Evaluator, triton_available
    from constraintc.semantic import SemanticLoss

    print("auto", triton_available(), Evaluator(Circuit.from_ir(ir).plan).resolve("auto", torch.device("cuda")))
    out = {}
    for backend in ("torch", "triton"):
        sl = SemanticLoss("transitivity", schema_max_nodes=3, backend=backend).double()
        names, edges = list("abcd"), [("a", "b"), ("b", "c")]
        atoms = sl.graph_atoms(names, edges).atoms
        z = torch.linspace(-3, 3, len(atoms), dtype=torch.float64).requires_grad_(True)
        loss = sl([(names, edges, atoms)], z)
        (grad,) = torch.autograd.grad(loss, z)
        out[backend] = (loss.detach(), grad, sl.strategy(names, edges))
    (l_t, g_t, s_t), (l_k, g_k, s_k) = out["torch"], out["triton"]
    print("semantic", s_k, (l_t - l_k).abs().item(), (g_t - g_k).abs().max().item())
    """
)


def test_triton_interpreted_equals_reference(tmp_path, pytestconfig):
    seed = int(pytestconfig.option.hypothesis_seed)  # the run's seed, printed in the header
    env = dict(os.environ, TRITON_INTERPRET="1", CONSTRAINTC_CACHE=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(seed)], env=env,
                          capture_output=True, text=True, timeout=1200)  # the interpreter is slow on a loaded machine
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout.splitlines()
    assert "auto True triton" in out, proc.stdout  # CUDA tensors would run this kernel
    (semantic,) = [l.split() for l in out if l.startswith("semantic")]
    assert semantic[1] == "subsets" and float(semantic[2]) <= 1e-10 and float(semantic[3]) <= 1e-10, semantic
    lines = [l.split() for l in out if l.startswith("compare")]
    assert len(lines) == 6, proc.stdout
    for _, dtype, batch, same_inf, nan, err in lines:
        assert same_inf == "True" and nan == "False", (dtype, batch)
        tol = 1e-4 if "float32" in dtype else 1e-10
        assert float(err) <= tol, (dtype, batch, err)
