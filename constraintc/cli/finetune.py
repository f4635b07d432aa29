"""Fine-tune a causal LM with cross-entropy + lambda(t) x the exact semantic loss of a rules file.

Every question about a graph is asked in one packed row (the premise is encoded once); the yes/no
logits give each query atom's probability; the compiled rules turn them into the semantic loss,
with the graph's edges clamped as evidence. Unlabelled questions train through the semantic loss
alone. At the end the model is evaluated before/after with the evaluation suite (balanced
accuracy, yes-rate, rule violations, collapse flags).

defaults: the embedded ~0.6M-parameter Gemma-3 model trained from scratch (nothing downloaded)
on generated transitivity questions whose labels are skewed toward Yes (--label-yes-rate; the
published setting where cross-entropy alone collapses to always-Yes), with the adaptive lambda
schedule. Each setting's default is shown with its flag below; measured results and run times
are in docs/finetune.md.

examples:
  constraintc finetune                                   # the default run (the README's set-up)
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
step is replaced), and one process at a time writes a directory. --resume continues the run in
--output-dir from its newest intact checkpoint with the checkpoint's settings; flags that change training are refused unless
--allow-config-change; a finished run is not rerun. Ctrl-C prints the command that continues.

outputs in --output-dir: run.json (run id, finished or not), metrics.jsonl (one row per step:
loss, ce, semantic, lambda, lr, yes_rate, violation_rate, trace_ce with --trace, and every
--eval-every steps heldout_balanced_accuracy, heldout_yes_rate, heldout_violation_rate,
heldout_collapsed), checkpoints/step-N/ (resumable: tensors in safetensors, the rest JSON,
SHA-256 digests in manifest.json; no pickle), model/ (final weights, LoRA merged;
`constraintc eval --model DIR` reads it), model-traces/ (with --pretrain-steps: the model at
the end of the traces-only stage), training.png, eval_before.json / eval_after.json
(evaluation-suite reports), config.json.

reasoning traces (--trace): with keep or mask, every labelled question is also trained as
"<premise> Question: <q> Think step by step, then answer with Yes or No. Reasoning: <trace>
Answer: <label>" in the same packed row. keep puts the cross-entropy on the trace tokens, "Answer:",
the answer and EOS; mask on the answer alone (the trace is context). Generated data carries gold
traces (see docs/tasks.md); a --data record without a "trace" field gets an empty reasoning
section, the setting where keep teaches a model to skip its reasoning and mask does not. The
final evaluation then also lets the model write its own reasoning (--trace-tokens) and grades it.

config files: TOML with the settings below at the top level or under [finetune]; a key is the
flag without '--' and with '_' for '-' (--lambda-start: lambda_start; --param: params, a table).
Flags override the file.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _shown(value) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        return ",".join(map(str, value)) or "none"
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in value.items()) or "the rules file's"
    return repr(value) if value == "" else str(value)


def _comma_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def flag_of(name: str) -> str:
    """The command-line flag of a config field: ``lambda_start`` -> ``--lambda-start``."""
    from constraintc.train.config import flag_of as config_flag

    return config_flag(name)


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per :class:`~constraintc.train.config.FinetuneConfig` field, its help and its
    default taken from the field. Every flag defaults to None so that the config file's value
    stands unless the flag is given."""
    from constraintc.train.config import default_of, options

    group = parser.add_argument_group("settings (also config file keys: the flag without '--', '-' as '_')")
    for name, (field, opt) in options().items():
        default = default_of(field)
        help_text = f"{opt.help} (default: {_shown(default)})".replace("%", "%%")
        kwargs: dict = {"dest": name, "default": None, "help": help_text}
        if opt.choices is not None:
            kwargs["metavar"] = "{" + ",".join(map(str, opt.choices)) + "}"
        elif opt.metavar:
            kwargs["metavar"] = opt.metavar
        elif isinstance(default, (int, float)) and not isinstance(default, bool):
            kwargs["metavar"] = "N" if isinstance(default, int) else "X"
        if isinstance(default, bool):
            kwargs["action"] = argparse.BooleanOptionalAction
            kwargs.pop("metavar", None)
        elif isinstance(default, dict):
            kwargs["action"] = "append"  # NAME=VALUE items, read by overrides_from_args
        elif isinstance(default, list):
            kwargs["type"] = _comma_list
        else:
            kwargs["type"] = type(default)
        group.add_argument(flag_of(name), **kwargs)


def overrides_from_args(args: argparse.Namespace) -> dict:
    """``config field -> value`` of the flags given (None where a flag was not given)."""
    from constraintc.cli.options import parse_params
    from constraintc.train.config import default_of, options

    values = {name: getattr(args, name, None) for name in options()}
    for name, value in values.items():
        if isinstance(value, list) and isinstance(default_of(options()[name][0]), dict):
            values[name] = parse_params(value, flag_of(name))
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="TOML", help="a config file (see examples/configs/); flags override it")
    parser.add_argument("--resume", metavar="CKPT", nargs="?", const="latest",
                        help="continue the run in --output-dir from its newest intact checkpoint (alone or 'latest'), "
                             "or from a checkpoint directory OUT/checkpoints/step-N or an output directory OUT")
    parser.add_argument("--overwrite", action="store_true",
                        help="a new run may replace the run already in --output-dir (its files are deleted)")
    parser.add_argument("--allow-config-change", action="store_true",
                        help="with --resume: continue with settings that differ from the checkpoint's (listed when refused)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_config_flags(parser)


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
    from constraintc.evaluation.report import comparison_table, ends_table, reasoning_table, size_table
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
        if summary.get("first_stage"):
            print(recipe.first_stage_note())
        table = comparison_table(summary["before"], summary["after"])
        if table:
            print(f"evaluation before -> after training ({cfg.model}, rules {cfg.rules}, lambda {cfg.lambda_schedule}):")
            print(table)
        sizes = size_table(summary["after"])
        if sizes:
            print("balanced accuracy after training by graph size (questions in brackets):")
            print(sizes)
        ends = ends_table(summary["after"])
        if ends:
            print("balanced accuracy after training by how many of the two nodes sit at an end of the graph (no parent or no child):")
            print(ends)
        reasoning = reasoning_table(summary["before"], summary["after"])
        if reasoning:
            print(f"reasoning written by the model (--trace {cfg.trace}, at most {cfg.trace_tokens} tokens), before -> after:")
            print(reasoning)
    return 0
