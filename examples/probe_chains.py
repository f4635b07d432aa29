"""Does a trained model read the links of a chain, or rank its nodes? Two probes on linear chains.

    python examples/probe_chains.py runs/finetune/model
    python examples/probe_chains.py runs/finetune/model --sizes 5,8,15 --chains 20 --lookups

1. Reading or ranking. For chains of each size, told forwards or shuffled, questions about two
   nodes d links apart (both directions: "Does X cause Y?" is Yes, "Does Y cause X?" is No) are
   asked twice: with the whole chain as the premise, and with the premise cut to the d links
   between X and Y (then X is the root and Y the leaf). A model that follows links scores alike
   on both; one that ranks nodes by how far they sit from the ends of the graph scores 1.0 on the
   cut premise and falls on the whole one, adjacent nodes included.
2. Lookups (``--lookups``, models trained with reasoning traces). The gold breadth-first trace of
   each question (constraintc.tasks.traces) is fed to the model token by token; at every step
   sentence "U causes V." the probe checks the model's prediction of V after "U causes" (one
   lookup in the premise) and of U (which node the search expands next). As in generation, name
   tokens the premise does not use are ruled out.

The numbers of docs/finetune.md, "What the model computes", come from this script (seed 0's
default model; --chains 12).
"""

from __future__ import annotations

import argparse
import random
import string
import sys
from typing import Callable

DISTANCES = (1, 2, 4, 7, 10)
ORDERS = ("forward", "shuffled")
NAMES = string.ascii_uppercase


def chain(rng: random.Random, n: int) -> list[str]:
    """``n`` distinct one-letter node names in chain order."""
    return rng.sample(NAMES, n)


def premise(edges: list[tuple[str, str]]) -> str:
    return " ".join(f"{u} causes {v}." for u, v in edges)


def reading_questions(rng: random.Random, n: int, order: str, chains: int, cut: bool):
    """Groups of prompts (one group per chain and question pair) and, per group, the distance.

    Each group holds ``[Does X cause Y?, Does Y cause X?]`` over the whole chain's premise, or
    (``cut``) over the links from X to Y only; the first answer is Yes, the second No.
    """
    from constraintc.tasks.prompts import plain_prompt

    groups, dists = [], []
    for _ in range(chains):
        nodes = chain(rng, n)
        edges = list(zip(nodes, nodes[1:]))
        for d in DISTANCES:
            if d > n - 1:
                continue
            for _ in range(2):
                i = rng.randrange(0, n - d)
                x, y = nodes[i], nodes[i + d]
                told = list(edges[i:i + d] if cut else edges)
                if order == "shuffled":
                    rng.shuffle(told)
                text = premise(told)
                groups.append([plain_prompt(text, f"Does {x} cause {y}?"), plain_prompt(text, f"Does {y} cause {x}?")])
                dists.append(d)
    return groups, dists


def reading_table(score: Callable[[list[list[str]]], list[list[float]]], sizes, chains: int, seed: int) -> list[dict]:
    """One row per (order, size, premise): accuracy per distance over both directions.

    ``score(groups)`` returns P(Yes) for every prompt, grouped like its input.
    """
    rng = random.Random(seed)
    rows = []
    for order in ORDERS:
        for n in sizes:
            for cut in (False, True):
                groups, dists = reading_questions(rng, n, order, chains, cut)
                p = score(groups)
                right: dict[int, list[int]] = {}
                for d, (p_fwd, p_back) in zip(dists, p):
                    r = right.setdefault(d, [0, 0])
                    r[0] += (p_fwd >= 0.5) + (p_back < 0.5)
                    r[1] += 2
                rows.append({"order": order, "nodes": n, "premise": "path only" if cut else "whole chain",
                             "accuracy": {d: a / t for d, (a, t) in sorted(right.items())}})
    return rows


def model_scorer(model, tokenizer, batch: int = 8):
    from constraintc.lm.binding import score_groups

    def score(groups):
        return [g.tolist() for g in score_groups(model, tokenizer, groups, groups_per_batch=batch)]

    return score


def step_positions(ids: list[int], causes: int, stop: int, so: int, nothing: int) -> list[int]:
    """Indices ``j`` of "causes" in each step sentence "U causes V ." of a tokenized trace: U is
    token ``j - 1``, V token ``j + 1`` (the conclusion "So X causes Y ." and "X causes nothing ."
    are not steps)."""
    return [j for j in range(1, len(ids) - 2)
            if ids[j] == causes and ids[j + 2] == stop and ids[j + 1] != nothing and (j < 2 or ids[j - 2] != so)]


def chain_trace_groups(sizes, chains: int, seed: int, questions: int = 4, search: str = "until_found"):
    """``(order, nodes, completions)`` per chain: ``questions`` random questions about the chain,
    each as the reasoning prompt followed by its gold trace (``search``, see
    :data:`constraintc.tasks.traces.TRANSITIVITY_SEARCHES`), ``Answer:`` and the label."""
    from constraintc.tasks.prompts import reasoning_prompt
    from constraintc.tasks.traces import GraphTracer
    from constraintc.train.data import trace_completion

    rng = random.Random(seed)
    for order in ORDERS:
        for n in sizes:
            for _ in range(chains):
                nodes = chain(rng, n)
                edges = list(zip(nodes, nodes[1:]))
                if order == "shuffled":
                    rng.shuffle(edges)
                text, tracer = premise(edges), GraphTracer(nodes, edges)
                comps = []
                for _ in range(questions):
                    x, y = rng.sample(nodes, 2)
                    label = "Yes" if nodes.index(x) < nodes.index(y) else "No"
                    prompt = reasoning_prompt({"premise": text, "question": f"Does {x} cause {y}?"})
                    trace = tracer.trace("transitivity", x, y, search=search)
                    comps.append(trace_completion(prompt, trace, label, "keep"))
                yield order, n, comps


def lookup_counts(model, tokenizer, comps) -> dict[str, list[int]]:
    """``{"lookup": [right, steps], "subject": [right, steps]}`` of one premise's trace
    completions ``comps`` (all with the same premise), teacher-forced: at every step sentence
    "U causes V." whether the model's most likely next token after "U causes" is V (lookup) and
    before it U (subject). As in generation, name tokens the premise does not use are ruled out."""
    import torch

    from constraintc.lm.binding import pack_groups, packed_logits

    causes, stop, so, nothing = tokenizer.convert_tokens_to_ids(["causes", ".", "So", "nothing"])
    counts = {"lookup": [0, 0], "subject": [0, 0]}
    batch = pack_groups(tokenizer, [[comps[0].prompt]], completions=[comps])
    with torch.no_grad():
        _, logits = packed_logits(model, batch)
    if hasattr(tokenizer, "unused_slot_ids"):
        logits[:, tokenizer.unused_slot_ids(comps[0].prompt)] = float("-inf")
    pred, target, seq = logits.argmax(-1).tolist(), batch.target_ids.tolist(), batch.target_seq.tolist()
    for c in range(len(comps)):
        ids = [t for t, s in zip(target, seq) if s == c]
        got = [p for p, s in zip(pred, seq) if s == c]
        for j in step_positions(ids, causes, stop, so, nothing):
            counts["lookup"][0] += got[j + 1] == ids[j + 1]
            counts["lookup"][1] += 1
            counts["subject"][0] += got[j - 1] == ids[j - 1]
            counts["subject"][1] += 1
    return counts


def lookup_table(model, tokenizer, sizes, chains: int, seed: int, questions: int = 4) -> list[dict]:
    """Teacher-forced accuracy of the trace's names: V after "U causes" (lookups) and U."""
    totals: dict[tuple[str, int], dict[str, list[int]]] = {}
    for order, n, comps in chain_trace_groups(sizes, chains, seed, questions):
        row = totals.setdefault((order, n), {"lookup": [0, 0], "subject": [0, 0]})
        for key, (right, steps) in lookup_counts(model, tokenizer, comps).items():
            row[key][0] += right
            row[key][1] += steps
    return [
        {"order": order, "nodes": n, **{k: (a / t if t else None, t) for k, (a, t) in counts.items()}}
        for (order, n), counts in totals.items()
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("model", help="a saved model directory (RUN/model of `constraintc finetune`) or a model spec")
    ap.add_argument("--sizes", default="5,8,11,15", help="chain sizes in nodes, comma-separated (default: 5,8,11,15)")
    ap.add_argument("--chains", type=int, default=12, help="chains per size and order (default: 12)")
    ap.add_argument("--seed", type=int, default=5, help="seed of the chains and questions (default: 5)")
    ap.add_argument("--lookups", action="store_true", help="also probe the reasoning traces' lookups")
    args = ap.parse_args(argv)
    try:
        sizes = [int(s) for s in args.sizes.split(",")]
        if not sizes or any(not 2 <= s <= len(NAMES) for s in sizes):
            raise ValueError
    except ValueError:
        print(f"error: --sizes {args.sizes!r}: expected comma-separated chain sizes of 2-{len(NAMES)} nodes", file=sys.stderr)
        return 2
    if args.chains < 1:
        print(f"error: --chains {args.chains}: expected a number >= 1", file=sys.stderr)
        return 2
    import torch

    from constraintc.errors import ConstraintcError
    from constraintc.lm import load_model
    from constraintc.tasks.corpus import task_text

    torch.set_num_threads(min(2, torch.get_num_threads()))
    try:
        model, tokenizer = load_model(args.model, corpus=task_text)
    except (ConstraintcError, OSError, ValueError) as exc:
        print(f"error: model {args.model!r}: {exc}", file=sys.stderr)
        return 2
    model.eval()
    print("accuracy by distance in links (both directions of each question)")
    print(f"{'order':9s} {'nodes':>5s} {'premise':12s} " + " ".join(f"{f'd={d}':>6s}" for d in DISTANCES))
    for row in reading_table(model_scorer(model, tokenizer), sizes, args.chains, args.seed):
        cells = " ".join(f"{row['accuracy'][d]:6.2f}" if d in row["accuracy"] else f"{'-':>6s}" for d in DISTANCES)
        print(f"{row['order']:9s} {row['nodes']:5d} {row['premise']:12s} {cells}")
    if args.lookups:
        print("\nteacher-forced gold traces: the name after 'U causes' (lookup) and U (subject)")
        print(f"{'order':9s} {'nodes':>5s} {'lookup':>8s} {'subject':>8s} {'steps':>6s}")
        for row in lookup_table(model, tokenizer, sizes, args.chains, args.seed):
            (look, steps), (subj, _) = row["lookup"], row["subject"]
            f = lambda v: f"{v:8.2f}" if v is not None else f"{'-':>8s}"
            print(f"{row['order']:9s} {row['nodes']:5d} {f(look)} {f(subj)} {steps:6d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
