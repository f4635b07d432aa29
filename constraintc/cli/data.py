"""Generate balanced causal reasoning tasks as JSONL, one question per line.

Labels come from networkx (transitivity: reachability; dsep: nx.is_d_separator). Every split is
balanced: Yes and No counts differ by at most one. Questions about one graph share a "group" id.

tasks:   transitivity, dsep
splits:  train (3-6 nodes), length (7-15), reversed (effects stated first), shuffled
         (statement order random), branching (dense DAGs), long_names (8-10 letter names),
         adversarial (minimal pairs + cases where a surface shortcut is wrong);
         the training mixtures: mix (3-7 nodes, every family, order and name style),
         mix_pairs, mix_twins, mix_large (3-12 nodes), mix_wide (random DAGs of 3-15, dense
         ones of 4-8); the transfer splits of a model trained on mix: chains_long (7-15),
         chains_reversed (5-12), chains_shuffled (7-15), branching_large (5-12 dense),
         unseen_names (held-out names); docs/tasks.md

examples:
  constraintc data transitivity --split train --n 1000 -o train.jsonl
  constraintc data dsep --split adversarial --n 200 --seed 3 -o adv.jsonl
  constraintc data dsep --split length --n 5 --format prompt      # show prompts
  constraintc data transitivity --all-splits --n 500 -o test.jsonl  # every split but train
  constraintc data dsep --n 1000 --traces -o train.jsonl            # with gold reasoning traces
"""

from __future__ import annotations

import argparse
import sys

from constraintc.cli.options import add_output_file, check_output_file
from constraintc.errors import OptionError
from constraintc.tasks.traces import SEARCHES, searches_for


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from constraintc.tasks.generate import SPLITS, TASKS

    parser.add_argument("task", choices=TASKS, help="which task")
    parser.add_argument("--split", default="train", choices=SPLITS, help="which split (default: train)")
    parser.add_argument(
        "--all-splits", action="store_true", help="write every evaluation split (all but train), --n each"
    )
    parser.add_argument("--n", type=int, default=1000, help="records per split (default: 1000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0); same seed, same file")
    parser.add_argument(
        "--questions-per-graph", type=int, default=4, help="questions per graph, half Yes half No (default: 4)"
    )
    parser.add_argument(
        "--traces",
        action="store_true",
        help="add a gold reasoning trace (a short derivation of the label from the premise) to every "
        "record as the field \"trace\" (docs/tasks.md); records are otherwise unchanged",
    )
    parser.add_argument(
        "--trace-search",
        choices=SEARCHES,
        default=SEARCHES[0],
        help="with --traces, transitivity: the breadth-first search stops at the edge that reaches Y "
        "(until_found, default), writes every edge of the search tree first (exhaustive) or expands every "
        "reached node, with all its statements or 'N causes nothing.', breadth first (expand) or depth first "
        "(depth_first); dsep: the trails between X and Y (until_found, default) or a reachability search "
        "from X over node and direction, depth first (bayes_ball)",
    )
    add_output_file(parser, "output JSONL file (default: stdout)")
    parser.add_argument(
        "--format",
        choices=("jsonl", "prompt"),
        default="jsonl",
        help="jsonl records (default) or the plain prompt text followed by the label "
        "(with --traces: the reasoning prompt, the trace, then 'Answer: <label>')",
    )


def run(args: argparse.Namespace) -> int:
    from constraintc.tasks.generate import SPLITS, iter_records
    from constraintc.tasks.io import write_jsonl
    from constraintc.tasks.prompts import answered_text

    if args.n < 0:
        raise OptionError("--n", args.n, "a non-negative integer")
    splits = [s for s in SPLITS if s != "train"] if args.all_splits else [args.split]
    if args.trace_search != "until_found" and not args.traces:
        raise OptionError("--trace-search", args.trace_search, "used with --traces (it shapes the traces)")
    if args.trace_search not in searches_for(args.task):
        raise OptionError("--trace-search", args.trace_search,
                          f"for {args.task} traces one of {', '.join(searches_for(args.task))}")

    def records():
        for split in splits:
            yield from iter_records(
                args.task, split, args.n, args.seed, questions_per_graph=args.questions_per_graph, traces=args.traces,
                trace_search=args.trace_search,
            )

    to_stdout = args.output in (None, "-")
    if not to_stdout:
        check_output_file(args.output)
    if args.format == "prompt":
        out = sys.stdout if to_stdout else open(args.output, "w", encoding="utf-8")
        try:
            for record in records():
                out.write(answered_text(record, args.traces) + "\n\n")
        finally:
            if out is not sys.stdout:
                out.close()
        return 0
    count = write_jsonl(records(), None if to_stdout else args.output)
    if not to_stdout:
        print(f"wrote {count} records to {args.output}", file=sys.stderr)
    return 0
