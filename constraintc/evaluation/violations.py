"""Rule violations: do a graph's predicted answers contradict the rules?

For every group (the questions asked about one graph) the answered atoms are clamped to the
model's answers (Yes = 1, No = 0), the graph's edges to the given relation, and the rules decide:
the answers violate them exactly when no value of the unasked atoms makes them consistent with
the rules and the graph. This is :meth:`constraintc.semantic.SemanticLoss.violated`, the same
binding the fine-tuning loss uses: schema circuits for small graphs, an exact transitive-closure
check for strict-order rules (``transitivity``) at any size, rule-derived labels where the graph
decides every atom (``dsep``), instance circuits otherwise (docs/semantic_loss.md).

Groups larger than ``max_nodes`` nodes (when given), and groups that cannot be checked (a
question outside the rules, a circuit past its budget), are reported as skipped with the reason.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from constraintc.errors import ConstraintcError


def violation_checker(rules, params: dict[str, int] | None = None, schema_seconds: float = 5.0,
                      instance_seconds: float = 20.0):
    """The rules ``rules`` (a file or library name) read once, as :func:`rule_violations` checks
    answers against them: a ``SemanticLoss`` with the check's compile budgets, to pass as
    ``rules`` to several reports of the same rules (each would read and compile them again)."""
    from constraintc.semantic import SemanticLoss

    return SemanticLoss(rules, params, schema_seconds=schema_seconds, instance_seconds=instance_seconds)


def rule_violations(
    records: list[dict],
    pred_map: dict[str, dict],
    rules,
    max_nodes: int | None = None,
    params: dict[str, int] | None = None,
    schema_seconds: float = 5.0,
    instance_seconds: float = 20.0,
    progress: bool = False,
) -> dict:
    """``{"groups": {group: violated (bool)}, "skipped": {group: reason}, "strategies": {...}}``.

    ``rules`` is a rules file or library name, or a ``SemanticLoss`` whose rules were read before
    (then ``params`` and the budgets are its own).

    >>> from constraintc.tasks import generate
    >>> recs = generate("transitivity", "train", 8, seed=0)
    >>> truth = {r["id"]: {"prediction": r["label"]} for r in recs}
    >>> any(rule_violations(recs, truth, "transitivity")["groups"].values())
    False
    """
    import torch
    from tqdm.auto import tqdm

    from constraintc.semantic import SemanticLoss

    if isinstance(rules, SemanticLoss):  # rules already read (a training run's own, or a violation_checker)
        loss = rules
    else:
        loss = violation_checker(rules, params, schema_seconds, instance_seconds)
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        groups[r.get("group", r["id"])].append(r)
    result: dict = {"groups": {}, "skipped": {}, "strategies": {}}
    strategies: Counter = Counter()
    graphs, answers, names = [], [], []
    for gid, members in tqdm(groups.items(), desc="rule check", unit="graph", disable=not progress, leave=False):
        nodes, edges = list(members[0]["nodes"]), [tuple(e) for e in members[0]["edges"]]
        if max_nodes and len(nodes) > max_nodes:
            result["skipped"][gid] = f"more than {max_nodes} nodes"
            continue
        answered: dict[str, bool] = {}
        contradictory = False
        for r in members:
            answer = pred_map.get(r["id"], {}).get("prediction")
            if answer is None:
                continue  # unanswered: like an unasked atom
            if r["atom"] in answered and answered[r["atom"]] != (answer == "Yes"):
                contradictory = True  # the same question answered both ways
            answered[r["atom"]] = answer == "Yes"
        graph = (nodes, edges, list(answered))
        try:
            strategies[loss.strategy(nodes, edges)] += 1
            loss.prepare([graph])
        except ConstraintcError as why:
            result["skipped"][gid] = str(why).splitlines()[0].removeprefix("error: ")
            continue
        if contradictory:
            result["groups"][gid] = True
            continue
        graphs.append(graph)
        answers.append(torch.tensor(list(answered.values()), dtype=torch.bool))
        names.append(gid)
    if graphs:
        for gid, bad in zip(names, loss.violated(graphs, answers).tolist()):
            result["groups"][gid] = bool(bad)
    result["strategies"] = dict(strategies)
    return result
