"""Rule violations: do a graph's predicted answers contradict the rules?

For every group (the questions asked about one graph) the rules are compiled to a circuit and
evaluated at

- given atoms (the evidence, e.g. ``edge(n0,n1)``): 1 if the premise states that edge, else 0;
- query atoms the model answered: 1 for Yes, 0 for No;
- query atoms nobody asked about: 0.5.

The answers violate the rules exactly when the weighted model count is zero, i.e. ``log_wmc`` of
root 0 is ``-inf``: no value of the unasked atoms makes the answers consistent with the rules
and the graph.

Circuits: one *schema* circuit per graph size over nodes ``n0..n{k-1}`` (given predicates left as
variables, the graph's nodes renamed in ``nodes`` order) serves every graph of that size. When the
schema does not compile within ``schema_seconds`` (d-separation beyond 4 nodes), each graph gets
its own *instance* circuit (the graph substituted), within ``instance_seconds``. Compilation goes
through :func:`constraintc.api.compile_rules` (load, ground, compile, cache).
Groups larger than ``max_nodes`` nodes, and groups that cannot be checked, are reported as skipped
with the reason.
"""

from __future__ import annotations

import math
from collections import defaultdict

from constraintc.errors import ConstraintcError
from constraintc.tasks.atoms import parse_atom, rename_args


def compile_circuit(rules: str, nodes, graph=None, params=None, max_seconds: float | None = None, cache: bool = True):
    """The rules compiled over ``nodes`` (an int: ``n0..``; or names) and optionally a graph."""
    from constraintc.api import compile_rules

    return compile_rules(rules, nodes, graph=graph, params=params, max_seconds=max_seconds, cache=cache)


class _Unchecked(Exception):
    """A group that cannot be checked against these rules (the message says why)."""


def _probabilities(circuit_atoms, index, members, pred_map, queries, givens, mapping, edges) -> list[float]:
    probs = [0.5] * len(circuit_atoms)
    for i, (pred, args) in enumerate(circuit_atoms):
        if pred in givens:
            if len(args) != 2:
                raise _Unchecked(f"given predicate {pred}/{len(args)} is not a binary edge relation")
            probs[i] = 1.0 if (args[0], args[1]) in edges else 0.0
        elif pred not in queries:
            raise _Unchecked(f"atom {pred} is neither a query nor a given of the rules")
    for r in members:
        answer = pred_map.get(r["id"], {}).get("prediction")
        if answer is None:
            continue  # unanswered: stays 0.5, like an unasked atom
        name, args = parse_atom(r["atom"])
        if name not in queries:
            raise _Unchecked(f"the rules have no query predicate {name!r}")
        key = (name, rename_args(args, mapping))
        if key not in index and name == "dsep" and len(args) == 3:
            key = (name, (key[1][1], key[1][0], key[1][2]))  # d-separation is symmetric
        if key not in index:
            raise _Unchecked("a question has no atom in the compiled rules (a rules parameter too small?)")
        probs[index[key]] = 1.0 if answer == "Yes" else 0.0
    return probs


def rule_violations(
    records: list[dict],
    pred_map: dict[str, dict],
    rules: str,
    max_nodes: int = 5,
    params: dict[str, int] | None = None,
    schema_seconds: float = 5.0,
    instance_seconds: float = 20.0,
    progress: bool = False,
) -> dict:
    """``{"groups": {group: violated (bool)}, "skipped": {group: reason}, "circuits": {...}}``.

    >>> from constraintc.tasks import generate
    >>> recs = generate("transitivity", "train", 8, seed=0)
    >>> truth = {r["id"]: {"prediction": r["label"]} for r in recs}
    >>> any(rule_violations(recs, truth, "transitivity")["groups"].values())
    False
    """
    import torch
    from tqdm.auto import tqdm

    from constraintc.language import load_rules

    program = load_rules(rules, params)
    queries = set(program.queries)
    givens = set(program.givens)
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        groups[r.get("group", r["id"])].append(r)
    result: dict = {"groups": {}, "skipped": {}, "circuits": {"schema": [], "instance": 0}}
    by_size: dict[int, list[tuple[str, list[dict]]]] = defaultdict(list)
    for gid, members in groups.items():
        n = len(members[0]["nodes"])
        if n > max_nodes:
            result["skipped"][gid] = f"more than {max_nodes} nodes"
        else:
            by_size[n].append((gid, members))
    bar = tqdm(total=sum(len(v) for v in by_size.values()), desc="rule check", unit="graph", disable=not progress, leave=False)

    def evaluate(circuit, items, rename: bool) -> None:
        atoms = [parse_atom(a) for a in circuit.atoms]
        index = {a: i for i, a in enumerate(atoms)}
        rows, row_groups = [], []
        for gid, members in items:
            nodes = members[0]["nodes"]
            mapping = {v: (f"n{i}" if rename else v) for i, v in enumerate(nodes)}
            edges = {(mapping[u], mapping[v]) for u, v in members[0]["edges"]}
            try:
                rows.append(_probabilities(atoms, index, members, pred_map, queries, givens, mapping, edges))
                row_groups.append(gid)
            except _Unchecked as why:
                result["skipped"][gid] = str(why)
        if rows:
            with torch.no_grad():
                values = circuit.log_wmc(torch.tensor(rows, dtype=torch.float64))[:, 0]
            for gid, value in zip(row_groups, values.tolist()):
                result["groups"][gid] = value == -math.inf

    try:
        for n, items in sorted(by_size.items()):
            try:
                circuit = compile_circuit(rules, n, params=params, max_seconds=schema_seconds)
            except ConstraintcError:
                circuit = None
            if circuit is not None:
                result["circuits"]["schema"].append(n)
                evaluate(circuit, items, rename=True)
                bar.update(len(items))
                continue
            for gid, members in items:
                graph = [tuple(e) for e in members[0]["edges"]]
                try:
                    # one circuit per graph: not worth a file in the on-disk cache each
                    circuit = compile_circuit(rules, list(members[0]["nodes"]), graph=graph, params=params,
                                              max_seconds=instance_seconds, cache=False)
                except ConstraintcError as err:
                    result["skipped"][gid] = f"rules do not compile for this graph: {str(err).splitlines()[0]}"
                else:
                    result["circuits"]["instance"] += 1
                    evaluate(circuit, [(gid, members)], rename=False)
                bar.update(1)
    finally:
        bar.close()
    return result
