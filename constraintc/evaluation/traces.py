"""Reasoning traces: is there one, is it complete, and are its stated steps true?

A prediction may carry its reasoning either as ``trace`` (the reasoning text; ``null`` when the
model gave none) or as the raw generation ``output`` (the reasoning, optionally inside
``<think>...</think>``, then the final answer). ``truncated: true`` or ``finish_reason: "length"``
marks a generation cut off by its length limit.

Status of a trace:

- ``truncated``: flagged as cut off, an unclosed ``<think>``, or reasoning with no final answer;
- ``missing``: no reasoning at all (``trace`` null, or an output that is only the answer);
- ``empty``: a reasoning section that is present but blank (``""``, ``<think> </think>``);
- ``valid``: non-empty reasoning followed by a final answer.

Steps: every ``X causes Y`` / ``X does not cause Y`` (also ``doesn't``, ``cannot``) in the
reasoning whose two names are nodes of the record's graph is checked against the premise graph
(reachability: an indirect cause is a true cause). Every d-separation trail claim,
``Trail X -> B <- Y is open.`` or ``Trail X -> B <- Y is blocked at B...``, is a step too: it is
true when the trail is a simple trail of the graph with exactly those arrow directions and the
claim holds given the record's conditioning set (see :func:`check_steps`). So are a reachability
search's moves, ``B -> C.`` (true when B causes C is a premise statement) and ``C <- D.`` (D causes
C), and ``C is given.`` (C is in the conditioning set); and the
conclusions ``X and Y are (not) d-separated given {Z}`` (judged by ``nx.is_d_separator`` with the
set the sentence names) and ``X and Y are not joined by any trail`` (the skeleton has no path). A
*sound* trace is valid, states at least one step, and every step is true. The sentences and the
patterns that read them are defined in :mod:`constraintc.tasks.trace_format`.
"""

from __future__ import annotations

import re

import networkx as nx

from constraintc.tasks.trace_format import (CAUSAL_STEP, CAUSES, DOWN, GIVEN_CLAIM, MOVE, NOT_JOINED_CLAIM, SEPARATION,
                                            TRAIL_CLAIM, TRAIL_TOKEN)

STATUSES = ("valid", "empty", "missing", "truncated")

_GIVEN = re.compile(r"given\s*\{([^}]*)\}")
_ANSWER = re.compile(r"\b(yes|no)\b", re.IGNORECASE)
_ANSWER_LEAD = re.compile(r"(?:(?:the\s+)?(?:final\s+)?answer(?:\s+is)?\s*:?\s*)$", re.IGNORECASE)


def parse_output(output: str) -> tuple[str | None, str | None, bool]:
    """Split a raw generation into (reasoning, final answer, cut off).

    >>> parse_output("<think>B causes C. C causes D.</think> Yes")
    ('B causes C. C causes D.', 'Yes', False)
    >>> parse_output("B causes C, so the answer is: No")
    ('B causes C, so', 'No', False)
    >>> parse_output("<think>B causes")
    ('B causes', None, True)
    """
    if "<think>" in output:
        head, _, rest = output.partition("<think>")
        body, closed, tail = rest.partition("</think>")
        if not closed:
            return body.strip(), None, True
        answers = _ANSWER.findall(tail)
        return body.strip(), (answers[-1].capitalize() if answers else None), False
    matches = list(_ANSWER.finditer(output))
    if not matches:
        return output.strip() or None, None, bool(output.strip())
    last = matches[-1]
    reasoning = _ANSWER_LEAD.sub("", output[: last.start()]).strip()
    return (reasoning or None), last.group(1).capitalize(), False


def classify_trace(prediction: dict) -> tuple[str, str | None]:
    """(status, reasoning text) of one prediction; see the module docstring for the statuses."""
    flagged = bool(prediction.get("truncated")) or prediction.get("finish_reason") == "length"
    if "trace" in prediction:
        trace = prediction["trace"]
        if trace is None:
            return ("truncated" if flagged else "missing"), None
        text = str(trace)
        stripped = re.sub(r"</?think>", "", text).strip()
        if flagged or ("<think>" in text and "</think>" not in text):
            return "truncated", stripped
        if not stripped:
            return "empty", ""
        if prediction.get("prediction") is None:
            return "truncated", stripped
        return "valid", stripped
    if "output" in prediction and prediction["output"] is not None:
        output = str(prediction["output"])
        reasoning, answer, cut = parse_output(output)
        if flagged or cut or answer is None:
            return "truncated", reasoning
        if reasoning is None:
            explicit_empty = "<think>" in output
            return ("empty" if explicit_empty else "missing"), ("" if explicit_empty else None)
        if not reasoning.strip():
            return "empty", ""
        return "valid", reasoning
    return ("truncated" if flagged else "missing"), None


def conditioning_set(record: dict) -> tuple[str, ...]:
    """The record's conditioning set: ``meta.z``, else the ``{...}`` of a ``dsep`` atom, else of the
    question's ``given {...}``; empty when there is none (transitivity).

    >>> conditioning_set({"atom": "dsep(B,C,{D,E})"}), conditioning_set({"question": "Does B cause C?"})
    (('D', 'E'), ())
    """
    meta = record.get("meta")
    if isinstance(meta, dict) and meta.get("z") is not None:
        return tuple(meta["z"])
    for text in (record.get("atom"), record.get("question")):
        if isinstance(text, str) and text.replace(" ", "").startswith("dsep(") and "{" in text:
            body = text[text.index("{") + 1 : text.rindex("}")] if "}" in text else ""
            return tuple(v.strip() for v in body.split(",") if v.strip())
        if isinstance(text, str):
            match = _GIVEN.search(text)
            if match:
                return tuple(v.strip() for v in match.group(1).split(",") if v.strip())
    return ()


def trail_claim_holds(
    claim: tuple[str, str, str, str], graph: nx.DiGraph, z: tuple[str, ...] | set[str], openers: set[str]
) -> bool:
    """Whether one parsed trail claim ``(trail text, "open" or "", blocked-at node, reason)`` is
    true in ``graph`` given ``z`` (``openers``: z and its ancestors, the nodes that open a collider)."""
    trail_text, is_open, at, reason = claim
    tokens = TRAIL_TOKEN.findall(trail_text)
    names, arrows = tokens[0::2], tokens[1::2]
    if len(set(names)) != len(names) or any(n not in graph for n in names):
        return False
    for a, arrow, b in zip(names, arrows, names[1:]):
        if not (graph.has_edge(a, b) if arrow == "->" else graph.has_edge(b, a)):
            return False
    blockers: dict[str, bool] = {}  # blocking node -> is a collider on this trail
    for i in range(1, len(names) - 1):
        collider = arrows[i - 1] == "->" and arrows[i] == "<-"
        if (collider and names[i] not in openers) or (not collider and names[i] in z):
            blockers[names[i]] = collider
    if is_open:
        return not blockers
    if not at:
        return bool(blockers)
    if at not in blockers:
        return False
    if reason.startswith("a"):
        return blockers[at]
    if reason.startswith("which"):
        return not blockers[at]
    return True


def check_steps(reasoning: str | None, record: dict) -> dict:
    """Count the steps stated in ``reasoning`` and how many are true in the record's graph.

    Causal steps (``X causes Y``, ``X does not cause Y``) are judged by reachability and count
    towards ``in_premise`` when they state a premise edge. Trail claims (``Trail X -> B <- Y is
    open.``, ``Trail X <- C -> Y is blocked at C, which is in {C}.``) are judged given the record's
    :func:`conditioning_set`: the trail must be simple, name only nodes and have every arrow as the
    premise states the edge; ``open`` holds when no node blocks it (a non-collider in the set, or a
    collider neither in the set nor an ancestor of one in it); ``blocked at N`` holds when N is an
    inner node that blocks it, and with ``, a collider`` / ``, which is in`` N must block as a
    collider / as a non-collider; a bare ``is blocked`` holds when some node blocks it.

    >>> rec = {"nodes": ["B", "C", "D"], "edges": [["B", "C"], ["C", "D"]]}
    >>> check_steps("B causes C. C causes D. So B causes D. D does not cause B. D causes C.", rec)
    {'steps': 5, 'true': 4, 'in_premise': 2}
    >>> rec = {"nodes": ["B", "C", "D"], "edges": [["B", "C"], ["D", "C"]], "atom": "dsep(B,D,{})"}
    >>> check_steps("Trail B -> C <- D is blocked at C, a collider outside {}. Trail B -> C -> D is open.", rec)
    {'steps': 2, 'true': 1, 'in_premise': 0}
    >>> check_steps("So B and D are d - separated given { } . B and D are d-separated given {C}.", rec)
    {'steps': 2, 'true': 1, 'in_premise': 0}
    >>> check_steps("B -> C. C is given. C <- D. D -> B.", rec)
    {'steps': 4, 'true': 2, 'in_premise': 2}
    """
    out = {"steps": 0, "true": 0, "in_premise": 0}
    if not reasoning:
        return out
    nodes = set(record.get("nodes", ()))
    edges = {tuple(e) for e in record.get("edges", ())}
    graph = nx.DiGraph()
    graph.add_nodes_from(nodes)
    graph.add_edges_from(edges)
    for x, verb, y in CAUSAL_STEP.findall(reasoning):
        if x not in nodes or y not in nodes or x == y:
            continue
        positive = verb == CAUSES
        holds = nx.has_path(graph, x, y)
        out["steps"] += 1
        out["true"] += holds == positive
        out["in_premise"] += positive and (x, y) in edges
    skeleton = None
    for x, y, negated, given in SEPARATION.findall(reasoning):
        z = {v.strip() for v in given.split(",") if v.strip()}
        if x not in nodes or y not in nodes or x == y or not z <= nodes or {x, y} & z:
            continue
        out["steps"] += 1
        out["true"] += bool(nx.is_d_separator(graph, {x}, {y}, z)) != bool(negated)
    for x, y in NOT_JOINED_CLAIM.findall(reasoning):
        if x not in nodes or y not in nodes or x == y:
            continue
        skeleton = graph.to_undirected() if skeleton is None else skeleton
        out["steps"] += 1
        out["true"] += not nx.has_path(skeleton, x, y)
    for a, arrow, b in MOVE.findall(reasoning):
        if a not in nodes or b not in nodes or a == b:
            continue
        holds = ((a, b) if arrow == DOWN else (b, a)) in edges
        out["steps"] += 1
        out["true"] += holds
        out["in_premise"] += holds
    z = set(conditioning_set(record))
    for v in GIVEN_CLAIM.findall(reasoning):
        if v in nodes:
            out["steps"] += 1
            out["true"] += v in z
    claims = TRAIL_CLAIM.findall(reasoning)
    if claims:
        openers = set(z)
        for v in z:
            if v in graph:
                openers |= nx.ancestors(graph, v)
        for claim in claims:
            out["steps"] += 1
            out["true"] += trail_claim_holds(claim, graph, z, openers)
    return out


def _rate(a: int, b: int) -> float | None:
    return a / b if b else None


def trace_metrics(records: list[dict], pred_map: dict[str, dict]) -> dict | None:
    """Trace statuses, step validity and accuracy conditional on the trace, or None when no
    prediction carries a ``trace`` or ``output`` field."""
    rows = [(r, pred_map[r["id"]]) for r in records if r["id"] in pred_map]
    if not any("trace" in p or "output" in p for _, p in rows):
        return None
    counts = {s: 0 for s in STATUSES}
    right = {s: 0 for s in STATUSES}
    steps = true = in_premise = 0
    sound = sound_right = 0
    for record, pred in rows:
        status, reasoning = classify_trace(pred)
        correct = pred.get("prediction") == record["label"]
        counts[status] += 1
        right[status] += correct
        checked = check_steps(reasoning, record)
        steps += checked["steps"]
        true += checked["true"]
        in_premise += checked["in_premise"]
        if status == "valid" and checked["steps"] and checked["true"] == checked["steps"]:
            sound += 1
            sound_right += correct
    n = len(rows)
    not_valid = n - counts["valid"]
    return {
        "n": n,
        "status_counts": counts,
        "status_rates": {s: _rate(c, n) for s, c in counts.items()},
        "valid_rate": _rate(counts["valid"], n),
        "steps": steps,
        "true_steps": true,
        "premise_steps": in_premise,
        "step_precision": _rate(true, steps),
        "sound_traces": sound,
        "accuracy": _rate(sum(right.values()), n),
        "accuracy_given_valid": _rate(right["valid"], counts["valid"]),
        "accuracy_given_not_valid": _rate(sum(right.values()) - right["valid"], not_valid),
        "accuracy_given_sound": _rate(sound_right, sound),
        "accuracy_by_status": {s: _rate(right[s], counts[s]) for s in STATUSES},
    }
