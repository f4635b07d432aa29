"""The loss of one micro-batch, as a pure function of the model's outputs.

    loss = CE(labelled answers) / n_labelled  +  lambda * sum_graphs SL(graph) / n_graphs
           [+ sum_labelled trace CE / n_labelled]

``n_labelled`` and ``n_graphs`` count the whole global batch (all micro-batches, all processes),
so summing the gradients of every micro-batch's loss gives the gradient of the global loss.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# the statistics row loss_step returns: sums over the micro-batch
STATS = ("ce", "semantic", "questions", "yes", "violated", "trace_ce")


def loss_step(
    graphs,
    batch,
    logits: torch.Tensor,
    log_p: torch.Tensor,
    log_q: torch.Tensor,
    trace_ce: torch.Tensor | None,
    constraint,
    *,
    lam: float | None,
    n_labelled: int,
    n_graphs: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(loss, stats)`` of one micro-batch of ``graphs`` (``train.data.Graph``).

    ``logits`` ``[Q, V]`` are the answer-position logits of the packed ``batch``; ``log_p`` /
    ``log_q`` the questions' ``log P(yes)`` / ``log P(no)``; ``trace_ce`` the mean token CE of
    each trace completion (or None); ``constraint`` gives ``log_wmc`` and ``violated`` per graph;
    ``lam`` None trains without the semantic loss. ``stats`` is a float64 tensor of the sums
    named in :data:`STATS`.
    """
    stats = torch.zeros(len(STATS), dtype=torch.float64)
    labels = [lab for g in graphs for lab in g.labels]
    device = logits.device
    labelled = [i for i, lab in enumerate(labels) if lab is not None]
    lab_idx = torch.tensor(labelled, dtype=torch.long, device=device)
    loss = logits.new_zeros((), dtype=torch.float64)
    if labelled:
        targets = torch.where(
            torch.tensor([labels[i] == constraint.yes for i in labelled], device=device),
            batch.yes_ids.to(device)[lab_idx], batch.no_ids.to(device)[lab_idx],
        )
        ce_sum = F.cross_entropy(logits[lab_idx].double(), targets, reduction="sum")
        loss = loss + ce_sum / n_labelled
        stats[0] += ce_sum.item()
    if trace_ce is not None and trace_ce.numel():
        loss = loss + trace_ce.sum() / n_labelled
        stats[5] += trace_ce.sum().item()
    keys = [(g.nodes, g.edges, g.atoms) for g in graphs]
    lp_groups = list(torch.split(log_p, batch.group_sizes))
    lq_groups = list(torch.split(log_q, batch.group_sizes))
    if lam is not None:
        sl = -constraint.log_wmc(keys, lp_groups, lq_groups)
        loss = loss + lam * sl.sum() / n_graphs
        stats[1] += sl.sum().item()
    answers = [lp >= math.log(0.5) for lp in lp_groups]
    stats[2] += len(labels)
    stats[3] += int(torch.cat(answers).sum()) if answers else 0
    stats[4] += int(constraint.violated(keys, answers).sum())
    return loss, stats
