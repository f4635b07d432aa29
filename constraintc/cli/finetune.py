"""Fine-tune a causal LM with cross-entropy + lambda(t) x the exact semantic loss of a rules file.

Every question about a graph is asked in one packed row (the premise is encoded once); the yes/no
logits give each query atom's probability; the compiled rules turn them into the semantic loss,
with the graph's edges clamped as evidence. Unlabelled questions train through the semantic loss
alone. At the end the model is evaluated before/after with the evaluation suite (balanced
accuracy, yes-rate, rule violations, collapse flags).

defaults (the README's run): the embedded ~0.6M-parameter Gemma-3 model trained from scratch
(nothing downloaded), rules `transitivity`, 4000 generated training questions with the labels
skewed to 75% Yes (the published setting where cross-entropy alone collapses to always-Yes),
graphs of at most 4 nodes renamed from 6 names, the adaptive lambda schedule (from 0.05, up while
the held-out answers look collapsed, down once they do not), 1000 steps of 16 graphs (about
0.2 s each: about 3-4 minutes in all), output in runs/finetune. Measured over seeds 0-2 (docs/finetune.md):
CE alone ends collapsed (balanced accuracy 0.50-0.55, yes-rate 0.87-1.00); CE + semantic loss
ends at 0.76-0.79 with yes-rate 0.44-0.55 on fresh training-distribution graphs.

examples:
  constraintc finetune                                   # the default run, about 5 minutes on CPU
  constraintc finetune --lambda-schedule none --output-dir runs/ce-only      # CE-only baseline
  constraintc finetune --config examples/configs/finetune_transitivity.toml --steps 600
  constraintc finetune --model smollm2 --finetune lora --lr 2e-4 --name-pool 0 --steps 50
  constraintc finetune --data train.jsonl --rules dsep --task dsep --atoms-per-graph 24
  constraintc finetune --rules examples/rules/confounding.rules --data examples/data/confounding.jsonl \
      --max-nodes 0 --steps 200                          # your own rules and data (docs/finetune.md)
  constraintc finetune --resume --output-dir runs/ce-only            # continue after a crash or Ctrl-C
  torchrun --nproc-per-node 2 -m constraintc finetune --steps 100     # data parallel (gloo)
  constraintc finetune --trace keep --output-dir runs/traces          # learn to write the gold traces

output directories: a new run refuses a directory that holds another run (--overwrite deletes
that run first; other files in the directory are left alone; a run that stopped before its first
step is replaced), and one process at a time writes a directory. --resume continues the run in --output-dir (default runs/finetune) from its newest
intact checkpoint with the checkpoint's settings; flags that change training are refused unless
--allow-config-change; a finished run is not rerun. Ctrl-C prints the command that continues.

outputs in --output-dir: run.json (run id, finished or not), metrics.jsonl (one row per step:
loss, ce, semantic, lambda, lr, yes_rate, violation_rate, trace_ce with --trace, and every
--eval-every steps heldout_balanced_accuracy, heldout_yes_rate, heldout_violation_rate,
heldout_collapsed), checkpoints/step-N/ (resumable: tensors in safetensors, the rest JSON,
SHA-256 digests in manifest.json; no pickle), model/ (final weights, LoRA merged;
`constraintc eval --model DIR` reads it), training.png, eval_before.json / eval_after.json
(evaluation-suite reports), config.json.

reasoning traces (--trace): with keep or mask, every labelled question is also trained as
"<premise> Question: <q> Think step by step, then answer with Yes or No. Reasoning: <trace>
Answer: <label>" in the same packed row. keep puts the cross-entropy on the trace tokens, "Answer:",
the answer and EOS; mask on the answer alone (the trace is context). Generated data carries gold
traces (see docs/tasks.md); a --data record without a "trace" field gets an empty reasoning
section, the setting where keep teaches a model to skip its reasoning and mask does not. The
final evaluation then also lets the model write its own reasoning (--trace-tokens) and grades it.

lambda schedules: none (CE only), constant (--lambda-start), linear (start -> end over the run),
cosine (start -> end along a half cosine), adaptive (starts at --lambda-start, x lambda_up each
held-out check that flags collapse, x lambda_down when it does not, within [start, lambda_max]).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from constraintc.train.schedules import SCHEDULES

# flag -> config key; every flag defaults to None so that the config file's value stands
_FLAGS = {
    "model": ("--model", str, "hub id, local directory, .gguf file, 'smollm2' or 'embedded' (default embedded)"),
    "rules": ("--rules", str, "rules file or library name (default transitivity)"),
    "data": ("--data", str, "JSONL task records (default: generate --train-records records of --task)"),
    "eval_data": ("--eval-data", str, "JSONL records for the held-out checks and the final evaluation "
                  "(default with --data: 20%% of its graphs, held out of training)"),
    "task": ("--task", str, "task to generate when --data is not given: transitivity | dsep"),
    "train_split": ("--train-split", str, "the generated split to train on (default mix: random DAGs, chains, dense DAGs, every statement order, letters and open names)"),
    "train_records": ("--train-records", int, "generated training questions (default 4000)"),
    "questions_per_graph": ("--questions-per-graph", int, "generated questions per training graph, half Yes and half No (default 4)"),
    "eval_records": ("--eval-records", int, "questions per held-out / evaluation split (default 200)"),
    "steps": ("--steps", int, "optimizer steps (default 1000)"),
    "batch_groups": ("--batch-groups", int, "graphs per optimizer step, over all processes (default 16)"),
    "grad_accum": ("--grad-accum", int, "micro-batches per step (default 1)"),
    "lr": ("--lr", float, "AdamW learning rate (default 3e-3, for training from scratch)"),
    "warmup_steps": ("--warmup-steps", int, "linear learning-rate warm-up (default 50)"),
    "lr_schedule": ("--lr-schedule", str, "constant | cosine: after the warm-up, constant or a half cosine down to lr/10 (default cosine)"),
    "max_grad_norm": ("--max-grad-norm", float, "gradient clipping norm, 0 = off (default 1.0)"),
    "lambda_schedule": ("--lambda-schedule", str, f"one of {', '.join(SCHEDULES)} (default adaptive)"),
    "lambda_start": ("--lambda-start", float, "lambda at the start (default 0.05)"),
    "lambda_end": ("--lambda-end", float, "lambda at the end (default 0.30)"),
    "finetune": ("--finetune", str, "full | lora | auto (default auto: full for embedded, LoRA otherwise)"),
    "lora_r": ("--lora-r", int, "LoRA rank (default 8)"),
    "label_yes_rate": ("--label-yes-rate", float, "drop No labels until this share of labels is Yes; 0 keeps all (default 0.75)"),
    "name_pool": ("--name-pool", int, "rename nodes from the first N short names; 0 keeps names (default 0)"),
    "max_nodes": ("--max-nodes", int, "train on graphs of at most N nodes, 0 = all (default 0)"),
    "atoms_per_graph": ("--atoms-per-graph", int, "cap on questions per graph, 0 = every query atom (default 0)"),
    "prompt_style": ("--prompt-style", str, "plain | chat (default plain)"),
    "trace": ("--trace", str, "none | keep | mask: also train each labelled question as reasoning prompt -> the record's trace -> 'Answer:' -> answer, "
              "with the CE on the trace tokens and the answer (keep) or on the answer only (mask); default none"),
    "trace_tokens": ("--trace-tokens", int, "with --trace: tokens the final evaluation lets the model reason for before answering (default 128; 0 = skip)"),
    "output_dir": ("--output-dir", str, "where metrics, checkpoints, model and plots go (default runs/finetune)"),
    "eval_every": ("--eval-every", int, "held-out check every N steps (default 50)"),
    "checkpoint_every": ("--checkpoint-every", int, "checkpoint every N steps (default 100)"),
    "seed": ("--seed", int, "seed for initialisation and batch order (default 0)"),
    "threads": ("--threads", int, "torch threads per process; 0 (default) = 1 for the embedded model, torch's default otherwise"),
    "dtype": ("--dtype", str, "float32 | bfloat16 | float64 (default float32)"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="TOML", help="a config file (see examples/configs/); flags override it")
    for key, (flag, typ, help_text) in _FLAGS.items():
        parser.add_argument(flag, dest=key, type=typ, default=None, help=help_text)
    parser.add_argument("--resume", metavar="CKPT", nargs="?", const="latest",
                        help="continue the run in --output-dir from its newest intact checkpoint (alone or 'latest'), "
                             "or from a checkpoint directory OUT/checkpoints/step-N or an output directory OUT")
    parser.add_argument("--overwrite", action="store_true",
                        help="a new run may replace the run already in --output-dir (its files are deleted)")
    parser.add_argument("--allow-config-change", action="store_true",
                        help="with --resume: continue with settings that differ from the checkpoint's (listed when refused)")
    parser.add_argument("--eval-splits", dest="eval_splits", default=None, help="comma-separated splits for the final evaluation (default mix and the transfer splits: chains_long, chains_reversed, chains_shuffled, branching_large, unseen_names)")
    parser.add_argument("--no-final-eval", dest="final_eval", action="store_const", const=False, default=None, help="skip the before/after evaluation")
    parser.add_argument("--no-plots", dest="plots", action="store_const", const=False, default=None, help="do not draw training.png")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def overrides_from_args(args: argparse.Namespace) -> dict:
    values = {key: getattr(args, key, None) for key in _FLAGS}
    if getattr(args, "eval_splits", None):
        values["eval_splits"] = [s.strip() for s in args.eval_splits.split(",") if s.strip()]
    values["final_eval"] = getattr(args, "final_eval", None)
    values["plots"] = getattr(args, "plots", None)
    return values


def _fmt(x) -> str:
    return "  -  " if x is None else f"{x:.3f}"


def _shortcut(m: dict) -> str:
    name, bacc = m.get("best_baseline"), m.get("best_baseline_balanced_accuracy")
    return "-" if name is None or bacc is None else f"{name} {bacc:.3f}"


def format_comparison(before: dict | None, after: dict | None) -> str:
    """A before/after table per split: balanced accuracy, yes-rate, MCC, rule violations, collapse,
    and the best shortcut baseline on the same records (a surface cue, either polarity): a model
    that does not beat it has not shown that it reasons."""
    if after is None:
        return ""
    lines = [
        f"{'split':<30}{'n':>5}  {'bal.acc before -> after':>24}  {'best shortcut':>28}  "
        f"{'yes-rate before -> after':>25}  {'MCC after':>9}  {'violations before -> after':>27}  collapsed before -> after"
    ]
    for key, m in list(after["splits"].items()) + [("overall", after["overall"])]:
        b = (before["splits"].get(key) if key != "overall" else before["overall"]) if before else None
        flag = lambda s: "-" if s is None else ("COLLAPSED" if s["collapsed"] else "ok")  # noqa: E731
        lines.append(
            f"{key:<30}{m['n']:>5}  {_fmt(b and b['balanced_accuracy']):>11} -> {_fmt(m['balanced_accuracy']):<9}"
            f"  {_shortcut(m):>28}"
            f"  {_fmt(b and b['yes_rate']):>12} -> {_fmt(m['yes_rate']):<9}  {_fmt(m['mcc']):>9}"
            f"  {_fmt(b and b.get('rule_violation_rate')):>14} -> {_fmt(m.get('rule_violation_rate')):<9}"
            f"  {flag(b):>9} -> {flag(m)}"
        )
    for key, m in after["splits"].items():
        for reason in m.get("collapse_reasons", []):
            lines.append(f"  after, {key}: collapsed: {reason}")
    return "\n".join(lines)


def format_reasoning(before: dict | None, after: dict | None) -> str:
    """With --trace: the generated answers' balanced accuracy and the traces' validity per split."""
    if not after or not after.get("reasoning"):
        return ""
    b_rep = (before or {}).get("reasoning")
    lines = [
        f"{'split':<26}{'n':>5}  {'bal.acc before -> after':>24}  {'valid traces before -> after':>29}  "
        f"{'sound traces before -> after':>29}  {'step precision after':>20}"
    ]
    for key, m in list(after["reasoning"]["splits"].items()) + [("overall", after["reasoning"]["overall"])]:
        b = (b_rep["splits"].get(key) if key != "overall" else b_rep["overall"]) if b_rep else None
        t, bt = m.get("traces") or {}, (b or {}).get("traces") or {}
        sound = lambda tr: tr["sound_traces"] / tr["n"] if tr.get("n") else None  # noqa: E731
        lines.append(
            f"{key:<26}{m['n']:>5}  {_fmt(b and b['balanced_accuracy']):>11} -> {_fmt(m['balanced_accuracy']):<9}"
            f"  {_fmt(bt.get('valid_rate')):>16} -> {_fmt(t.get('valid_rate')):<9}"
            f"  {_fmt(sound(bt)):>16} -> {_fmt(sound(t)):<9}  {_fmt(t.get('step_precision')):>20}"
        )
    return "\n".join(lines)


def _resume_config(args: argparse.Namespace):
    """``(config, resume point)`` for ``--resume``: the checkpoint's saved settings, overridden by
    the config file and the flags given (the recipe refuses differences unless allowed)."""
    from constraintc.errors import OptionError
    from constraintc.train.config import FinetuneConfig, load_config, read_config_file
    from constraintc.train.rundir import find_resume, run_dir_of

    explicit = read_config_file(args.config) if args.config else {}
    explicit.update({k: v for k, v in overrides_from_args(args).items() if v is not None})
    given_out = explicit.get("output_dir")
    run_dir, _ = run_dir_of(args.resume, Path(given_out or FinetuneConfig.output_dir))
    if given_out is not None and os.path.realpath(given_out) != os.path.realpath(run_dir):
        raise OptionError("--resume", args.resume, f"a checkpoint of the run in --output-dir={given_out!r} "
                                                   f"(it belongs to {str(run_dir)!r}; give one of the two)")
    point = find_resume(args.resume, run_dir)
    overrides = {k: v for k, v in overrides_from_args(args).items() if v is not None}
    overrides["output_dir"] = str(run_dir)
    return load_config(args.config, overrides, base=point.config), point


def run(args: argparse.Namespace) -> int:
    from constraintc.train.config import load_config
    from constraintc.train.recipe import FinetuneRecipe

    if args.resume is not None and args.overwrite:
        from constraintc.train.rundir import RunDirError

        raise RunDirError("error: --overwrite and --resume contradict each other: give one")
    if args.resume is not None:
        cfg, resume = _resume_config(args)
    else:
        cfg, resume = load_config(args.config, overrides_from_args(args)), None
    recipe = FinetuneRecipe(cfg, resume=resume, progress=not args.no_progress, overwrite=args.overwrite,
                            allow_config_change=args.allow_config_change)
    try:
        summary = recipe.run()
    except KeyboardInterrupt:
        if getattr(recipe, "rank", 0) == 0:
            print(f"\n{recipe.resume_hint()}", file=sys.stderr, flush=True)
        raise
    if recipe.rank == 0:
        print(f"model, metrics, checkpoints and plots in {summary['output_dir']}")
        table = format_comparison(summary["before"], summary["after"])
        if table:
            print(f"evaluation before -> after training ({cfg.model}, rules {cfg.rules}, lambda {cfg.lambda_schedule}):")
            print(table)
        reasoning = format_reasoning(summary["before"], summary["after"])
        if reasoning:
            print(f"reasoning written by the model (--trace {cfg.trace}, at most {cfg.trace_tokens} tokens), before -> after:")
            print(reasoning)
    return 0
