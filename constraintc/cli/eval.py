"""Score predictions (or run a model) on a task file; report per split and flag collapse.

Predictions are JSONL with "id" and "prediction" ("Yes"/"No"), optionally "p_yes" (then the
prediction may be omitted: Yes iff p_yes >= 0.5) and "trace" or "output" (reasoning, checked
step by step against the premise graph). With --model, the model is run instead: P(Yes) against
P(No) at the answer position, batched, with a progress bar; with --traces N the model first
writes up to N tokens of reasoning (greedy) and its final Yes/No is scored, with the trace checks.
Model outputs are checkpointed to DIR/predictions.jsonl every chunk; a rerun with the same --output-dir
resumes. A node named like a word of the embedded model's text ("a", "d", "at") is asked with a
stand-in name (a_1) and written back, so it reads as a name (docs/evaluation.md).

The report (per task/split and overall): accuracy, balanced accuracy, MCC, F1 per class,
yes-rate, prediction entropy, a collapse flag (one answer >= 90% of predictions, or balanced
accuracy at chance with one answer >= 75%, or constant p_yes), context sensitivity over minimal
pairs, every shortcut baseline (always-Yes, always-No, name order, statement order, recency,
overlap, chain length, conditioning) with the gap to the best one, trace validity, and with
--rules the fraction of graphs whose answers violate the rules.

examples:
  constraintc eval --data test.jsonl --predictions preds.jsonl
  constraintc eval --data test.jsonl --predictions preds.jsonl --json > report.json
  constraintc eval --data test.jsonl --model embedded --output-dir runs/eval   # report.md, plots, ...
  constraintc eval --data test.jsonl --model ./my-model --prompt-style chat --batch-size 32
  constraintc eval --data test.jsonl --model smollm2 --prompt-style chat --traces 96 --limit 50
  constraintc eval --data test.jsonl --predictions p.jsonl --rules transitivity --fail-on-collapse
  constraintc eval --data test.jsonl --model runs/finetune/model --rules transitivity --consistent   # after `constraintc finetune`
  constraintc eval --data test.jsonl --model runs/small/model --name-pool 6   # a model trained with --name-pool 6

outputs with --output-dir DIR: report.json, report.md, balanced_accuracy.png, yes_rate.png
(and predictions.jsonl with --model). The Markdown report also goes to stdout (--json: the JSON).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from constraintc.cli.options import add_output_dir, add_param_option, check_output_dir, params_of
from constraintc.errors import OptionError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="task records (JSONL from `constraintc data`)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--predictions", help="predictions JSONL: id, prediction and/or p_yes, optional trace")
    source.add_argument("--model", help="run a causal LM: hub id, local directory, .gguf file or 'embedded'")
    parser.add_argument("--prompt-style", choices=("plain", "chat"), default="plain", help="prompt format for --model (default: plain)")
    parser.add_argument("--batch-size", type=int, default=16, help="prompts per forward pass with --model (default: 16)")
    parser.add_argument("--device", default="auto",
                        help="where --model runs: auto (the GPU when torch sees one), cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--yes", default="Yes", help="the Yes verbalizer (default: Yes)")
    parser.add_argument("--no", default="No", help="the No verbalizer (default: No)")
    parser.add_argument(
        "--traces",
        type=int,
        default=None,
        metavar="MAX_NEW_TOKENS",
        help="with --model: let the model reason first (greedy, up to this many tokens) and score the "
        "answer after its reasoning, with trace checks, instead of P(Yes) at the answer position",
    )
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N records")
    parser.add_argument(
        "--name-pool",
        type=int,
        default=0,
        metavar="N",
        help="rename each graph's nodes from the first N short names first, as `constraintc finetune "
        "--name-pool N` did for its model; default 0 keeps the names",
    )
    parser.add_argument("--rules", default=None, help="rules file or library name for the rule violation rate")
    add_param_option(parser, "--rules-param")
    parser.add_argument(
        "--consistent",
        action="store_true",
        help="with --rules and P(Yes) per answer (--model, written answers of --traces too, or p_yes in "
        "--predictions): also answer every "
        "graph's questions jointly through the compiled rules (the model's probabilities conditioned on "
        "the rules and the graph: marginals, and the most probable consistent answer set) and report "
        "them beside the raw answers",
    )
    parser.add_argument(
        "--rules-max-nodes", type=int, default=15,
        help="check rule violations on graphs up to this many nodes (default: 15; transitivity is decided exactly "
        "at any size, other rules may need a circuit per graph size)"
    )
    parser.add_argument(
        "--collapse-threshold", type=float, default=0.90, help="share of one answer that flags collapse (default: 0.90)"
    )
    parser.add_argument("--json", action="store_true", help="print the JSON report to stdout instead of Markdown")
    add_output_dir(parser, "directory for report.json, report.md and the PNG plots (and, with --model, "
                           "the checkpointed predictions)", "--out")
    parser.add_argument("--no-plots", action="store_true", help="with --output-dir: skip the PNG plots")
    parser.add_argument("--fail-on-collapse", action="store_true", help="exit with status 1 when any split collapsed")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _check_args(args) -> None:
    if args.batch_size < 1:
        raise OptionError("--batch-size", args.batch_size, "a positive integer")
    if args.traces is not None and (args.traces < 1 or args.model is None):
        raise OptionError("--traces", args.traces, "a positive token budget, together with --model")
    if args.name_pool < 0:
        raise OptionError("--name-pool", args.name_pool, "a number of names >= 0 (0 keeps the names)")
    if args.model is not None:
        from constraintc.lm.models import resolve_device

        resolve_device(args.device)  # a device that is not there: refused before any work
    if args.limit is not None and args.limit < 1:
        raise OptionError("--limit", args.limit, "a positive integer")
    if not 0.5 < args.collapse_threshold <= 1.0:
        raise OptionError("--collapse-threshold", args.collapse_threshold, "a number in (0.5, 1]")
    if args.consistent and args.rules is None:
        raise OptionError("--consistent", True, "--rules too: the rules the answers are conditioned on")
    if args.rules_max_nodes < 1:
        raise OptionError("--rules-max-nodes", args.rules_max_nodes, "a positive integer")
    check_output_dir(args.output_dir)


def run(args: argparse.Namespace) -> int:
    from constraintc.evaluation.metrics import Thresholds, check_records, compute_report
    from constraintc.evaluation.report import markdown, plot
    from constraintc.tasks.io import read_jsonl

    _check_args(args)
    params = params_of(args)
    records = read_jsonl(args.data, "--data", with_lines=True)
    if not records:
        raise OptionError("--data", args.data, "a JSONL file with at least one record")
    check_records(records, args.data)
    if args.rules is not None:  # the rule checks read each graph: a record without it is refused here
        from constraintc.tasks.io import DataError

        for r in records:
            missing = [k for k in ("nodes", "edges", "atom") if k not in r]
            if missing:
                raise DataError(f"{args.data}:{r.get('_line', '?')}:1: error: record lacks {', '.join(missing)}: "
                                f"--rules checks each graph's answers against the rules and needs its nodes, "
                                f"edges and the atom each question asks (or leave out --rules)")
    if args.limit is not None:
        records = records[: args.limit]
    if args.name_pool:
        from constraintc.tasks.rename import rename_records

        records = rename_records(records, args.name_pool, seed=0)
    out_dir = Path(args.output_dir) if args.output_dir else None
    checker = None
    if args.rules is not None:  # read once (errors before any model work), for every report below
        from constraintc.evaluation.violations import violation_checker

        checker = violation_checker(args.rules, params)
    if args.model is not None:
        from constraintc.evaluation.answers import Answering, model_answers

        how = Answering(args.model, args.prompt_style, args.yes, args.no, args.traces, args.name_pool,
                        args.batch_size, args.device)
        templates = ()
        if checker is not None:  # node names are found in the questions by the rules' templates too
            templates = tuple(q.template for q in checker.program.queries.values() if q.template)
        predictions = model_answers(records, how, args.data, out_dir, progress=not args.no_progress,
                                    templates=templates)
        source = args.model
    else:
        predictions = read_jsonl(args.predictions, "--predictions", with_lines=True)
        source = args.predictions
    thresholds = Thresholds(dominance=args.collapse_threshold)
    report = compute_report(
        records,
        predictions,
        thresholds=thresholds,
        rules=checker,
        rules_max_nodes=args.rules_max_nodes,
        rules_params=params,
        source=source,
        progress=not args.no_progress,
    )
    report["data"] = args.data
    report["source"] = source
    if args.consistent and args.model and not any(p.get("p_yes") is not None for p in predictions):
        # the model wrote no answer at all (a model not yet trained to answer after its reasoning):
        # its raw report stands, there is nothing to condition on the rules
        print(f"note: --consistent: none of the model's {len(predictions)} outputs ends in an answer with "
              f"P(Yes), so there is nothing to condition on the rules (the report has no 'consistent' part)",
              file=sys.stderr)
    elif args.consistent:
        from constraintc.evaluation.consistent import consistent_report

        report["consistent"] = consistent_report(records, predictions, args.rules, params, thresholds,
                                                 args.rules_max_nodes, checker=checker)
    text = markdown(report, title=f"constraintc eval: {source} on {args.data}")
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "report.json").write_text(json.dumps(report, indent=1, default=str))
        (out_dir / "report.md").write_text(text)
        written = ["report.json", "report.md"]
        if not args.no_plots:
            written += [p.name for p in plot(report, out_dir)]
        print(f"wrote {', '.join(written)} to {out_dir}", file=sys.stderr)
    if args.json:
        print(json.dumps(report, indent=1, default=str))
    else:
        print(text, end="")
    if args.fail_on_collapse and report["collapsed_splits"]:
        print(f"collapsed: {', '.join(report['collapsed_splits'])}", file=sys.stderr)
        return 1
    return 0
