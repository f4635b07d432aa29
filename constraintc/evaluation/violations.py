"""Rule violations: do a graph's predicted answers contradict the rules?

For every group (the questions asked about one graph) the rules file is compiled once per graph
size into a *schema* circuit over nodes ``n0..n{k-1}`` (given predicates left as variables) with
:func:`constraintc.api.compile_rules`. The graph's nodes are renamed to ``n0..`` in the order of
the record's ``nodes``, and the circuit is evaluated at

- given atoms (the evidence, e.g. ``edge(n0,n1)``): 1 if the premise states that edge, else 0;
- query atoms the model answered: 1 for Yes, 0 for No;
- query atoms nobody asked about: 0.5.

The predicted answers violate the rules exactly when the weighted model count is zero, i.e.
``log_wmc`` of root 0 is ``-inf``: no assignment of the unasked atoms makes the answers consistent
with the rules and the graph. Groups larger than ``max_nodes`` nodes are skipped (compiling a
schema grows quickly with the node count) and reported as skipped.
"""

from __future__ import annotations

import math
from collections import defaultdict

from constraintc.errors import ConstraintcError


def split_atom(atom: str) -> tuple[str, tuple]:
    """``dsep(a,b,{c,d})`` -> ``("dsep", ("a", "b", frozenset({"c", "d"})))``.

    >>> split_atom("causes(n0,n1)")
    ('causes', ('n0', 'n1'))
    >>> split_atom("dsep(a, b, {})")
    ('dsep', ('a', 'b', frozenset()))
    """
    atom = atom.replace(" ", "")
    name, paren, rest = atom.partition("(")
    if not paren or not rest.endswith(")"):
        return atom, ()
    body = rest[:-1]
    args: list = []
    depth = 0
    current = ""
    for ch in body + ",":
        if ch == "," and depth == 0:
            if current.startswith("{"):
                inner = current[1:-1]
                args.append(frozenset(s for s in inner.split(",") if s))
            elif current:
                args.append(current)
            current = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        current += ch
    return name, tuple(args)


def _rename(args: tuple, mapping: dict[str, str]) -> tuple:
    return tuple(frozenset(mapping[v] for v in a) if isinstance(a, frozenset) else mapping[a] for a in args)


def rule_violations(
    records: list[dict],
    pred_map: dict[str, dict],
    rules: str,
    max_nodes: int = 5,
    params: dict[str, int] | None = None,
) -> dict:
    """``{"groups": {group: violated (bool)}, "skipped": {group: reason}}`` for the records' groups.

    Needs :func:`constraintc.language.load_rules` and :func:`constraintc.api.compile_rules`.
    """
    import torch

    from constraintc.api import compile_rules
    from constraintc.language import load_rules

    program = load_rules(rules, params)
    queries = set(program.queries)
    givens = dict(program.givens)
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        groups[r.get("group", r["id"])].append(r)
    result: dict = {"groups": {}, "skipped": {}}
    by_size: dict[int, list[tuple[str, list[dict]]]] = defaultdict(list)
    for gid, members in groups.items():
        n = len(members[0]["nodes"])
        if n > max_nodes:
            result["skipped"][gid] = f"more than {max_nodes} nodes"
            continue
        by_size[n].append((gid, members))
    for n, items in sorted(by_size.items()):
        try:
            circuit = compile_rules(rules, n, params=params)
        except ConstraintcError as err:
            for gid, _ in items:
                result["skipped"][gid] = f"rules do not compile for {n} nodes: {str(err).splitlines()[0]}"
            continue
        atoms = [split_atom(a) for a in circuit.atoms]
        index = {a: i for i, a in enumerate(atoms)}
        rows = []
        row_groups = []
        for gid, members in items:
            nodes = members[0]["nodes"]
            mapping = {name: f"n{i}" for i, name in enumerate(nodes)}
            edges = {(mapping[u], mapping[v]) for u, v in members[0]["edges"]}
            probs = [0.5] * len(atoms)
            problem = None
            for i, (pred, args) in enumerate(atoms):
                if pred in givens:
                    if len(args) != 2:
                        problem = f"given predicate {pred}/{len(args)} is not a binary edge relation"
                        break
                    probs[i] = 1.0 if (args[0], args[1]) in edges else 0.0
                elif pred not in queries:
                    problem = f"atom {pred} is neither a query nor a given of the rules"
                    break
            for r in members if problem is None else ():
                pred_answer = pred_map.get(r["id"], {}).get("prediction")
                if pred_answer is None:
                    continue
                name, args = split_atom(r["atom"])
                if name not in queries:
                    problem = f"the rules have no query predicate {name!r}"
                    break
                key = (name, _rename(args, mapping))
                if key not in index and name == "dsep" and len(args) == 3:
                    # d-separation is symmetric; the rules may ground only one order
                    key = (name, (key[1][1], key[1][0], key[1][2]))
                if key not in index:
                    problem = "a question has no atom in the compiled rules (a rules parameter too small?)"
                    break
                probs[index[key]] = 1.0 if pred_answer == "Yes" else 0.0
            if problem is not None:
                result["skipped"][gid] = problem
                continue
            rows.append(probs)
            row_groups.append(gid)
        if not rows:
            continue
        with torch.no_grad():
            values = circuit.log_wmc(torch.tensor(rows, dtype=torch.float64))[:, 0]
        for gid, value in zip(row_groups, values.tolist()):
            result["groups"][gid] = value == -math.inf
    return result
