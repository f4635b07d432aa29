"""Fuzzing the front end: random token soup, mutated library files and randomly generated
(often ill-formed) programs must each end in a Program (then a grounding) or a clean
ConstraintcError, never in any other exception."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from constraintc.errors import ConstraintcError
from constraintc.language import parse_rules
from constraintc.logic import ground
from constraintc.resources import library_rules

LIBRARY = [p.read_text() for p in library_rules()]

TOKENS = [
    "param", "domain", "given", "query", "define", "rule", "subsets", "of", "node", "up", "to",
    "where", "unroll", "question", "yes", "no", "forall", "exists", "exactly", "atmost", "atleast", "in",
    "not", "true", "false", "(", ")", "{", "}", ",", ":", ":=", "=", "!=", "&", "|", "~", "->",
    "<->", "+", "X", "Y", "Z", "W", "p", "q", "edge", "nodeset", "k", "0", "1", "2", "99999999999",
    '"Does {X} cause {Y}?"', '"{Q}"', "\n", " ", "#", "# comment\n", "\t", "@", "'", '"', "=>",
    "&&", "é", "\\",
]


def attempt(text: str) -> None:
    try:
        program = parse_rules(text, filename="fuzz.rules")
    except ConstraintcError as err:
        message = str(err)
        assert "error" in message, message
        return
    for nodes in (1, 3):
        try:
            grounding = ground(program, nodes)
        except ConstraintcError:
            continue
        assert grounding.cnf.num_atoms == len(grounding.atoms)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(TOKENS), max_size=40).map(" ".join))
def test_token_soup(text):
    attempt(text)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=120))
def test_arbitrary_text(text):
    attempt(text)


@st.composite
def mutated_library_file(draw):
    text = draw(st.sampled_from(LIBRARY))
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(text)))
        j = draw(st.integers(i, min(len(text), i + 30)))
        op = draw(st.sampled_from(["delete", "insert", "replace", "duplicate"]))
        piece = draw(st.sampled_from(TOKENS))
        if op == "delete":
            text = text[:i] + text[j:]
        elif op == "insert":
            text = text[:i] + " " + piece + " " + text[i:]
        elif op == "replace":
            text = text[:i] + piece + text[j:]
        else:
            text = text[:j] + text[i:j] + text[j:]
    return text


@settings(max_examples=250, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_library_file())
def test_mutated_library_files(text):
    attempt(text)


NODE_VARS = ["X", "Y", "Z"]
ATOMS = {"p": ("node",), "q": ("node", "node"), "d": ("node", "node"), "s": ("node", "sets")}


@st.composite
def formula(draw, depth: int, scope: dict, counter: list):
    """A mostly well-formed formula over ``scope`` (name -> type); now and then a mistake."""
    nodes = [v for v, t in scope.items() if t == "node"] or ["X"]
    sets = ([v for v, t in scope.items() if t == "sets"] or ["S"]) + ["{}"]
    kind = draw(st.sampled_from(["atom", "atom", "compare", "const", "op", "not", "quant",
                                 "count", "list", "mistake"] if depth else ["atom", "compare"]))
    if kind == "atom":
        pred = draw(st.sampled_from(sorted(ATOMS) + (["r"] if "r" in scope.get("@preds", "") else [])))
        types = ATOMS.get(pred, ("node", "node"))
        args = []
        for t in types:
            if t == "node":
                args.append(draw(st.sampled_from(nodes)))
            else:
                base = draw(st.sampled_from(sets))
                args.append(base if draw(st.booleans()) else f"{base} + {draw(st.sampled_from(nodes))}")
        return f"{pred}({', '.join(args)})"
    if kind == "compare":
        if draw(st.booleans()):
            return f"{draw(st.sampled_from(nodes))} {draw(st.sampled_from(['=', '!=']))} " \
                   f"{draw(st.sampled_from(nodes))}"
        return f"{draw(st.sampled_from(nodes))} {draw(st.sampled_from(['in', 'not in']))} " \
               f"{draw(st.sampled_from(sets))}"
    if kind == "const":
        return draw(st.sampled_from(["true", "false"]))
    if kind == "op":
        op = draw(st.sampled_from(["&", "|", "->", "<->"]))
        return f"({draw(formula(depth - 1, scope, counter))} {op} {draw(formula(depth - 1, scope, counter))})"
    if kind == "not":
        return f"~{draw(formula(depth - 1, scope, counter))}"
    if kind in ("quant", "count"):
        counter[0] += 1
        name = f"V{counter[0]}"
        type_ = draw(st.sampled_from(["node", "node", "sets"]))
        inner = dict(scope)
        inner[name] = type_
        use = f"p({name})" if type_ == "node" else f"s({draw(st.sampled_from(nodes))}, {name})"
        body = f"({use} {draw(st.sampled_from(['&', '|', '->']))} {draw(formula(depth - 1, inner, counter))})"
        annot = f" in {type_}" if draw(st.booleans()) else ""
        if kind == "quant":
            return f"({draw(st.sampled_from(['forall', 'exists']))} {name}{annot}: {body})"
        k = draw(st.sampled_from(["0", "1", "2", "k", "99999999999"]))
        return f"({draw(st.sampled_from(['exactly', 'atmost', 'atleast']))} {k} {name}{annot}: {body})"
    if kind == "list":
        items = draw(st.lists(formula(depth - 1, scope, counter), min_size=1, max_size=3))
        return f"{draw(st.sampled_from(['exactly', 'atmost', 'atleast']))} 1 {{{', '.join(items)}}}"
    # a deliberate mistake: unknown predicate, wrong arity, unbound variable, bad type
    return draw(st.sampled_from(["zz(X)", "p(X, Y)", "p(U9)", "s(S, X)", "X in X", "q(S, X)"]))


@st.composite
def generated_program(draw):
    lines = [f"param k = {draw(st.integers(0, 3))}", "domain sets = subsets of node up to k",
             "given d(X: node, Y: node) where X != Y",
             "query p(X: node)", "query q(X: node, Y: node) where X != Y",
             "query s(X: node, S: sets) where X not in S" + (' question "Is {X} in {S}?"'
                                                              if draw(st.booleans()) else "")]
    scope = {"X": "node", "Y": "node", "Z": "node", "S": "sets"}
    if draw(st.booleans()):
        step = draw(st.sampled_from(["r(W, Y)", "r(W, Y)", "~r(W, Y)", "p(W)"]))
        lines.append(f"define r(X: node, Y: node) := d(X, Y) | exists W: d(X, W) & {step}")
        scope["@preds"] = "r"
    for i in range(draw(st.integers(1, 3))):
        body = draw(formula(3, scope, [0]))
        used = [v for v in ("X", "Y", "Z", "S") if re.search(rf"\b{v}\b", body)]
        head = f"forall {', '.join(used)}: " if used else ""
        lines.append(f"rule r{i}: {head}{body}")
    return "\n".join(lines) + "\n"


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(generated_program())
def test_generated_programs(text):
    attempt(text)
