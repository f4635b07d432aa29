"""Consistent answering: a graph's answers conditioned on the compiled rules.

A model answers each question about a graph on its own, so its answers can contradict each other
and the premise (``B causes C``, ``C causes D``, but not ``B causes D``). Conditioning the model's
answer probabilities on the rules (with the graph's edges as evidence) gives answers that cannot:

- **marginals**: ``P(atom | rules)`` under the model's answer distribution (asked atoms
  independent with the model's ``p``, atoms nobody asked fair coins), i.e. the posterior the
  semantic loss's circuit defines;
- **most probable consistent answer set**: the joint answer to the asked questions with the
  highest model probability among those the rules allow. Unasked atoms weigh 1/2 either way in
  every answer set, so this is the most probable *extendable* assignment of the asked atoms.

Both are computed by enumerating the ``2^k`` answer sets of a graph's ``k`` asked atoms
(``k <= MAX_ENUMERATED``; evaluation sets ask a few questions per graph): each answer set is
checked against the rules on the whole graph (``SemanticLoss.violated``, exact at any size) and
weighed by the rules' weighted model count with the asked atoms clamped, ``P(rules | answers)``
(``SemanticLoss.log_wmc``: exact for schema, instance and label circuits; for strict-order rules on
graphs past the schema size, the product over the node subsets that cover the asked atoms, see
docs/semantic_loss.md). The MPE answers are consistent by construction (a rule violation rate of
0); the marginal answers (``p >= 0.5``) usually are too, but need not be.
"""

from __future__ import annotations

import math

import torch

from constraintc.errors import ConstraintcError

MAX_ENUMERATED = 12


def _assignments(k: int) -> torch.Tensor:
    """All ``2^k`` answer sets of ``k`` atoms as a ``[2^k, k]`` bool tensor (row ``i``: bits of ``i``)."""
    rows = torch.arange(2**k).unsqueeze(1)
    return (rows >> torch.arange(k)).bitwise_and(1).bool()


def consistent_answers(constraint, graphs: list[tuple], probs: list[torch.Tensor]) -> list[dict]:
    """Per graph ``{"marginals": [k] float64, "mpe": [k] bool, "consistent": bool}``.

    ``constraint`` is the rules binding (:class:`constraintc.SemanticLoss`: ``violated`` and
    ``log_wmc``); ``graphs[g] = (nodes, edges, atoms)`` with the asked atoms in order;
    ``probs[g]`` the model's ``P(yes)`` for them. ``consistent`` is False when the evidence alone
    contradicts the rules (every answer set is impossible); marginals and MPE then fall back to
    the raw answers.

    >>> from constraintc import SemanticLoss
    >>> rc = SemanticLoss("transitivity").double()
    >>> g = (["B", "C", "D"], [["B", "C"], ["C", "D"]], ["causes(B,D)", "causes(D,B)"])
    >>> out = consistent_answers(rc, [g], [torch.tensor([0.2, 0.6], dtype=torch.float64)])[0]
    >>> out["mpe"].tolist(), [round(x, 3) for x in out["marginals"].tolist()]
    ([True, False], [1.0, 0.0])
    """
    results = []
    for graph, p in zip(graphs, probs):
        p = p.detach().to(torch.float64)
        k = int(p.numel())
        if k > MAX_ENUMERATED:
            raise ConstraintcError(
                f"error: consistent answering enumerates the answer sets of a graph's questions; "
                f"this graph has {k} questions (at most {MAX_ENUMERATED})"
            )
        sets = _assignments(k)
        log_p, log_q = torch.log(p), torch.log1p(-p)
        log_model = torch.where(sets, log_p, log_q).sum(dim=1)
        clamp_p = torch.where(sets, 0.0, -math.inf).double()
        clamp_q = torch.where(sets, -math.inf, 0.0).double()
        with torch.no_grad():
            impossible = constraint.violated([graph] * len(sets), list(sets))
            log_rules = constraint.log_wmc([graph] * len(sets), list(clamp_p), list(clamp_q)).double()
        log_rules = log_rules.masked_fill(impossible, -math.inf)
        joint = log_model + log_rules
        if torch.isneginf(joint).all():
            results.append({"marginals": p, "mpe": p >= 0.5, "consistent": False})
            continue
        # P(atom) as the sigmoid of its log-odds: in [0, 1] by construction (a sum of softmax
        # terms can round above 1) and exactly 0 or 1 when one side has no mass
        columns = joint.unsqueeze(1).expand(-1, k)
        log_yes = torch.logsumexp(columns.masked_fill(~sets, -math.inf), dim=0)
        log_no = torch.logsumexp(columns.masked_fill(sets, -math.inf), dim=0)
        marginals = torch.sigmoid(log_yes - log_no)
        allowed = torch.where(torch.isneginf(log_rules), -math.inf, log_model)
        mpe = sets[int(torch.argmax(allowed))]
        results.append({"marginals": marginals, "mpe": mpe, "consistent": True})
    return results


def consistent_predictions(records: list[dict], pred_map: dict[str, dict], rules: str, params: dict | None = None):
    """Marginal and MPE predictions (``{id: {"prediction", "p_yes"}}`` each) for every record whose
    prediction carries ``p_yes``, graph by graph (records sharing a ``group``), under ``rules``."""
    from constraintc.semantic import SemanticLoss

    loss_fn = SemanticLoss(rules, params).double()
    groups: dict[str, list[dict]] = {}
    for r in records:
        if pred_map.get(r["id"], {}).get("p_yes") is not None:
            groups.setdefault(r.get("group", r["id"]), []).append(r)
    marginal: dict[str, dict] = {}
    mpe: dict[str, dict] = {}
    for members in groups.values():
        first = members[0]
        atoms: dict[str, list[dict]] = {}
        for r in members:
            atoms.setdefault(r["atom"], []).append(r)
        graph = (list(first["nodes"]), [list(e) for e in first["edges"]], list(atoms))
        p = torch.tensor([float(pred_map[rs[0]["id"]]["p_yes"]) for rs in atoms.values()], dtype=torch.float64)
        out = consistent_answers(loss_fn, [graph], [p])[0]
        for i, rs in enumerate(atoms.values()):
            m, a = float(out["marginals"][i]), bool(out["mpe"][i])
            for r in rs:
                marginal[r["id"]] = {"prediction": "Yes" if m >= 0.5 else "No", "p_yes": m}
                mpe[r["id"]] = {"prediction": "Yes" if a else "No"}
    return marginal, mpe


def consistent_report(records: list[dict], predictions: list[dict], rules: str, params: dict | None,
                      thresholds, rules_max_nodes: int | None = 15, checker=None) -> dict:
    """The evaluation report (splits and overall) of the marginal and of the MPE answers, each
    with the number of records answered; an :class:`OptionError` naming ``--consistent`` when no
    prediction carries ``p_yes``. ``checker``: the rules as the violation rates read them
    (:func:`~constraintc.evaluation.violations.violation_checker` of the same rules), when the
    caller has them already."""
    from constraintc.errors import OptionError
    from constraintc.evaluation.metrics import compute_report, prepare_predictions
    from constraintc.evaluation.violations import violation_checker

    pred_map = prepare_predictions(predictions, "--predictions")
    if not any(p.get("p_yes") is not None for p in pred_map.values()):
        raise OptionError("--consistent", True, "predictions with p_yes (P(Yes) per answer) to condition on the rules")
    marginal, mpe = consistent_predictions(records, pred_map, rules, params)
    checker = checker if checker is not None else violation_checker(rules, params)
    out = {}
    for name, preds in (("marginal", marginal), ("mpe", mpe)):
        rep = compute_report(
            records, [{"id": rid, **pred} for rid, pred in preds.items()], thresholds=thresholds, rules=checker,
            rules_max_nodes=rules_max_nodes, rules_params=params, source=f"--consistent {name}",
        )
        out[name] = {"splits": rep["splits"], "overall": rep["overall"], "answered": len(preds)}
    return out
