"""Can the embedded model learn to look links up? Train it on reasoning traces alone and watch.

    python examples/lookup_learning.py                       # 1500 steps, about 5-6 minutes on 2 cores
    python examples/lookup_learning.py --name-salt graph     # names read the same at every visit
    python examples/lookup_learning.py --seed 1 --output lookups.jsonl
    python examples/lookup_learning.py --seed 2 --steps 1000 --save runs/lookups-s2   # keep the model
    python examples/lookup_learning.py --search depth_first --batch 32 --steps 1250 --answers --save runs/df-s0
    python examples/lookup_learning.py --architecture examples/configs/embedded_alibi.toml --search depth_first --batch 32
                                        # the search that reads chains of any length; its own answers
    python examples/lookup_learning.py --search depth_first --batch 32 --curriculum 400   # 3-node graphs first

A written breadth-first trace ("B causes C. C causes D. So B causes D.") reaches any depth if
every step is a lookup: after "U causes" the model must find the statement "U causes V." in the
premise and copy V (an induction-style copy, the same at any chain length). `constraintc
finetune`'s models do not learn it (examples/probe_chains.py --lookups: 0.35-0.49 of the lookups
right on 5-node chains). This script isolates the question: a freshly initialised embedded model
is trained on the gold traces of the `mix` training graphs only (no direct answers, no semantic
loss; token-mean cross-entropy over every trace token), and every --every steps it reports the
teacher-forced lookup accuracy (examples/probe_chains.py) on held-out `mix` graphs and on
forward and shuffled chains of --sizes nodes, longer than any training graph (the JSON rows of
--output also carry the share of right subjects: the node each step goes on with).

``--answers`` adds, at the end, the model's own written reasoning on the forward chains: the share
of right final answers among questions whose answer is Yes and among those whose answer is No (a
search that stops too early concludes "causes" and gets the No questions wrong).

``--name-salt`` says how node names meet the model's name tokens: ``visit`` draws a fresh
assignment at every visit of a graph, ``graph`` gives each graph one assignment for the whole run
(as `constraintc finetune` does): then a graph reads the same at every visit and can be
memorised instead of read.

docs/finetune.md ("Can it learn lookups?") gives what this measured.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import probe_chains  # noqa: E402  (a sibling script: the lookup probe)

SALTS = ("visit", "graph")


def name_salt(mode: str, seed: int, graph: int, step: int) -> int:
    """The name-token assignment of training graph ``graph`` at ``step``: one per visit
    (``visit``) or one per graph for the whole run (``graph``)."""
    from constraintc.tasks.generate import stable_seed

    if mode not in SALTS:
        raise ValueError(f"name salt {mode!r}: expected one of {', '.join(SALTS)}")
    return stable_seed("names", seed, graph, step) if mode == "visit" else stable_seed("names", seed, graph)


def trace_groups(records: list[dict]) -> list[list]:
    """One list of trace completions per graph (records grouped by ``group``, in order)."""
    from constraintc.tasks.prompts import reasoning_prompt
    from constraintc.train.data import trace_completion

    groups: dict = {}
    for r in records:
        groups.setdefault(r["group"], []).append(trace_completion(reasoning_prompt(r), r["trace"], r["label"], "keep"))
    return list(groups.values())


def group_sizes(records: list[dict]) -> list[int]:
    """The number of nodes of each graph, in the order of :func:`trace_groups`."""
    sizes: dict = {}
    for r in records:
        sizes.setdefault(r["group"], len(r["nodes"]))
    return list(sizes.values())


def step_accuracy(model, tokenizer, groups) -> dict[str, float | None]:
    """Over every step sentence "U causes V." of ``groups``' traces, teacher-forced: the share of
    right lookups (V after "U causes") and of right subjects (U, the node the search goes on
    with); None without steps."""
    total = {"lookup": [0, 0], "subject": [0, 0]}
    for comps in groups:
        for key, (right, steps) in probe_chains.lookup_counts(model, tokenizer, comps).items():
            total[key][0] += right
            total[key][1] += steps
    return {key: (right / steps if steps else None) for key, (right, steps) in total.items()}


def lookup_accuracy(model, tokenizer, groups) -> float | None:
    """The share of right lookups over every step of ``groups``' traces (None without steps)."""
    return step_accuracy(model, tokenizer, groups)["lookup"]


def answer_accuracy(model, tokenizer, groups, max_new_tokens: int) -> dict[str, float | None]:
    """The model writes its own reasoning (greedy, at most ``max_new_tokens``) after each
    completion's prompt; the share of right final answers among the questions whose answer is Yes
    and among those whose answer is No (an answer the model never reached counts as wrong)."""
    from constraintc.evaluation.generation import generate_traces

    comps = [c for g in groups for c in g]
    rows = generate_traces(model, tokenizer, [c.prompt for c in comps], max_new_tokens, batch_size=32)
    out: dict[str, float | None] = {}
    for label in ("Yes", "No"):
        got = [row.get("prediction") == label for c, row in zip(comps, rows) if c.answer == label]
        out[label] = sum(got) / len(got) if got else None
    return out


def train(args, log=print) -> list[dict]:
    """Train on traces only; return (and log) one row of lookup accuracies every ``args.every``
    steps; with ``args.save`` the trained model and its tokenizer go to that directory (a model
    directory that `constraintc finetune --model DIR --finetune full` and the probes read)."""
    import torch
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    from constraintc.lm.binding import pack_groups, packed_logits
    from constraintc.lm.models import build_embedded_model
    from constraintc.tasks import generate
    from constraintc.tasks.corpus import task_text
    from constraintc.train.data import curriculum_indices
    from constraintc.train.records import HELDOUT_SEED, TRAIN_DATA_SEED

    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    model, tokenizer = build_embedded_model(task_text, args.architecture or None, seed=args.seed, traces=True)
    gen = lambda n, seed: generate("transitivity", "mix", n, seed, traces=True, trace_search=args.search)  # noqa: E731
    train_records = gen(args.records, TRAIN_DATA_SEED)
    train_groups, train_sizes = trace_groups(train_records), group_sizes(train_records)
    probes = {"mix (held out)": trace_groups(gen(args.heldout, HELDOUT_SEED))}
    forward_sizes: dict[str, int] = {}  # probe key -> nodes of its forward chains (--answers)
    for order, n, comps in probe_chains.chain_trace_groups(args.sizes, args.chains, args.probe_seed, search=args.search):
        probes.setdefault(f"{order} {n}", []).append(comps)
        if order == "forward":
            forward_sizes[f"{order} {n}"] = n
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / args.warmup))
    rng = random.Random(args.seed)
    rows, start = [], time.time()
    model.train()
    for step in tqdm(range(1, args.steps + 1), desc="traces only", unit="step", disable=not args.progress):
        if step <= args.curriculum:  # the smallest graphs first, as `constraintc finetune`'s curriculum
            chosen = curriculum_indices(train_sizes, min(args.batch, len(train_groups)), step - 1, args.seed,
                                        args.curriculum)
        else:
            chosen = rng.sample(range(len(train_groups)), min(args.batch, len(train_groups)))
        batch = pack_groups(
            tokenizer, [[train_groups[i][0].prompt] for i in chosen], completions=[train_groups[i] for i in chosen],
            name_salts=[name_salt(args.name_salt, args.seed, i, step) for i in chosen],
        )
        _, target_logits = packed_logits(model, batch)
        loss = F.cross_entropy(target_logits.float(), batch.target_ids)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        if not math.isfinite(loss.item()):
            raise RuntimeError(f"step {step}: the trace loss is {loss.item()}")
        if step % args.every == 0 or step == args.steps:
            model.eval()
            measured = {k: step_accuracy(model, tokenizer, g) for k, g in probes.items()}
            row = {"step": step, "seconds": round(time.time() - start, 1), "trace_loss": loss.item(),
                   "lookup": {k: v["lookup"] for k, v in measured.items()},
                   "subject": {k: v["subject"] for k, v in measured.items()}}
            model.train()
            rows.append(row)
            log(f"{step:6d} {row['seconds']:7.0f}s  loss {row['trace_loss']:.3f}  " + "  ".join(
                f"{k} {v:.2f}" if v is not None else f"{k} -" for k, v in row["lookup"].items()))
    if args.answers:
        model.eval()
        answers = {}
        for key, n in forward_sizes.items():
            answers[key] = answer_accuracy(model, tokenizer, probes[key], 8 * n + 24)
        rows[-1]["answers"] = answers
        log("written answers (Yes / No questions): " + "  ".join(
            f"{k} {_f(v['Yes'])} / {_f(v['No'])}" for k, v in answers.items()))
    if args.save:
        model.save_pretrained(args.save)
        tokenizer.save_pretrained(args.save)
    return rows


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def main(argv: list[str] | None = None) -> int:
    from constraintc.tasks.traces import TRANSITIVITY_SEARCHES

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--steps", type=int, default=1500, help="training steps (default: 1500)")
    ap.add_argument("--every", type=int, default=250, help="probe the lookups every N steps (default: 250)")
    ap.add_argument("--seed", type=int, default=0, help="initialisation, batch order and name salts (default: 0)")
    ap.add_argument("--name-salt", choices=SALTS, default="visit", help="a fresh name assignment at every visit "
                    "of a graph, or one per graph (default: visit)")
    ap.add_argument("--search", choices=TRANSITIVITY_SEARCHES, default="exhaustive",
                    help="the gold traces' search (default: exhaustive)")
    ap.add_argument("--lr", type=float, default=6e-3, help="AdamW learning rate, constant after --warmup steps (default: 6e-3)")
    ap.add_argument("--warmup", type=int, default=50, help="linear learning-rate warm-up steps (default: 50)")
    ap.add_argument("--batch", type=int, default=16, help="graphs per step (default: 16)")
    ap.add_argument("--curriculum", type=int, default=0, metavar="N",
                    help="draw the first N steps' graphs smallest first (3 nodes, rising evenly to the largest "
                    "at step N), as `constraintc finetune --curriculum-steps`; 0: none (default: 0)")
    ap.add_argument("--records", type=int, default=4000, help="generated training questions, 4 per graph (default: 4000)")
    ap.add_argument("--heldout", type=int, default=600, help="held-out mix questions probed (default: 600)")
    ap.add_argument("--sizes", default="5,8,15", help="probed chain sizes, comma-separated (default: 5,8,15)")
    ap.add_argument("--chains", type=int, default=12, help="probed chains per size and order (default: 12)")
    ap.add_argument("--probe-seed", type=int, default=5, help="seed of the probed chains (default: 5)")
    ap.add_argument("--answers", action="store_true", help="at the end, let the model write its reasoning on the "
                    "forward chains and report its final answers, Yes and No questions apart")
    ap.add_argument("--architecture", default="", metavar="TOML", help="an embedded architecture file (the keys of "
                    "examples/configs/embedded_model.toml, e.g. examples/configs/embedded_alibi.toml); default: the "
                    "embedded default")
    ap.add_argument("--threads", type=int, default=0, help="torch threads; 0: torch's default (default: 0)")
    ap.add_argument("--output", default="", help="also write the rows as JSON lines to this file")
    ap.add_argument("--save", default="", metavar="DIR", help="save the trained model and tokenizer to DIR (a new directory)")
    ap.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    args = ap.parse_args(argv)
    if args.curriculum < 0:
        print(f"error: --curriculum {args.curriculum}: expected a number of steps >= 0", file=sys.stderr)
        return 2
    for name in ("steps", "every", "batch", "records", "heldout", "chains", "warmup"):
        if getattr(args, name) < 1:
            print(f"error: --{name} {getattr(args, name)}: expected a number >= 1", file=sys.stderr)
            return 2
    if not args.lr > 0:
        print(f"error: --lr {args.lr}: expected a number > 0", file=sys.stderr)
        return 2
    try:
        sizes = [int(s) for s in args.sizes.split(",")]
        if not sizes or any(not 2 <= s <= len(probe_chains.NAMES) for s in sizes):
            raise ValueError
        args.sizes = sizes
    except ValueError:
        print(f"error: --sizes {args.sizes!r}: expected comma-separated chain sizes of 2-{len(probe_chains.NAMES)} nodes",
              file=sys.stderr)
        return 2
    if args.architecture and not Path(args.architecture).is_file():
        print(f"error: --architecture {args.architecture!r}: no such file", file=sys.stderr)
        return 2
    out = Path(args.output) if args.output else None
    if out is not None and out.exists():
        print(f"error: --output {args.output!r}: the file exists (choose another name; nothing is overwritten)",
              file=sys.stderr)
        return 2
    if args.save and Path(args.save).exists():
        print(f"error: --save {args.save!r}: the path exists (choose a new directory; nothing is overwritten)",
              file=sys.stderr)
        return 2
    rows = train(args)
    if out is not None:
        out.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
