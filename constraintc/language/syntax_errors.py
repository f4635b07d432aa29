"""Syntax errors explained: a catalogue of known-bad inputs, matched on the LALR state.

lark's ``match_examples`` idea, keyed on the top state so that a mistake deep inside a formula
matches its shallow example; mistakes clearest from the characters (``=>``, ``&&``, ``!``) are
recognised from the text; anything else says what came and what was expected.

>>> from lark.exceptions import UnexpectedInput
>>> try:
...     rules_parser().parse("rule r p(X)")
... except UnexpectedInput as err:
...     print(syntax_diagnostic(rules_parser(), "rule r p(X)", err).message)
expected ':' after the rule name
"""

from __future__ import annotations

import re
from functools import lru_cache

from lark import Lark, Token
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput

from constraintc.language.ast import Span
from constraintc.language.diagnostics import Diagnostic
from constraintc.language.grammar import RESERVED, rules_parser, span_of_token

# A catalogue of broken inputs: the one whose parser state matches an error explains it.
SYNTAX_EXAMPLES: dict[str, list[str]] = {
    "a rule needs a name: write 'rule NAME: formula'": [
        "rule: p(X)", "rule (X): p(X)",
    ],
    "expected ':' after the rule name": ["rule r p(X)", "rule r = p(X)", "rule r(X): p(X)"],
    "expected ':' after the quantified variables, as in 'forall X, Y: ...'": [
        "rule r: forall X p(X)", "rule r: exists X p(X)", "rule r: forall X, Y p(X)",
        "rule r: forall X in node p(X)", "rule r: atmost 1 X p(X)",
    ],
    "variables start with an uppercase letter (X, Y, Node)": [
        "rule r: forall x: p(X)", "rule r: p(x)", "given p(x: node)", "rule r: p(X, y)",
        "rule r: forall X, y: p(X)", "rule r: exists x: p(X)", "rule r: x != Y", "rule r: X != y",
        "rule r: X in z", "rule r: atmost 1 x: p(X)", "query p(x: node)", "define p(x: node) := q(x)",
    ],
    "predicate names start with a lowercase letter": [
        "rule r: P(X)", "given P(X: node)", "query P(X: node)", "define P(X: node) := q(X)",
        "rule r: p(X) & Q(X)",
    ],
    "missing ')'": ["rule r: (p(X)", "rule r: p(X", "given e(X: node", "rule r: (p(X) & q(X)"],
    "unexpected ')': it has no matching '('": ["rule r: p(X))", "rule r: (p(X)))"],
    "a predicate's arguments need types: write 'X: node'": [
        "given e(X)", "given e(X, Y: node)", "query e(X)", "define e(X) := p(X)",
        "given e(X: node, Y)", "query e(X, Y: node)", "define e(X, Y: node) := p(X)",
        "query e(X: node, Y)", "define e(X: node, Y) := p(X)",
    ],
    "write a single '&' for 'and' and a single '|' for 'or'": [
        "rule r: p(X) && q(X)", "rule r: p(X) || q(X)",
    ],
    "the formula is incomplete: expected a formula after the operator": [
        "rule r: p(X) &", "rule r: p(X) ->", "rule r: ~", "rule r: p(X) |", "rule r: p(X) <->",
        "rule r: p(X) &\nrule s: p(X)", "rule r: p(X) ->\nrule s: p(X)",
        "rule r: p(X) |\nrule s: p(X)", "rule r: forall X:", "rule r:", "rule r:\nrule s: p(X)",
        "rule r: p(X) & )",
    ],
    "expected an operator (& | -> <->) between two formulas": [
        "rule r: p(X) q(X)", "rule r: p(X) ~q(X)", "rule r: p(X) (q(X))", "rule r: p(X) X",
        "rule r: p(X) forall X: q(X)",
    ],
    "expected a statement: param, domain, given, query, define or rule": [
        "foo", "p(X)", "X", "forall X: p(X)", "edge(X: node)", "(", "~p(X)", "given e(X: node) foo",
    ],
    "a parameter needs a whole-number value: write 'param NAME = 2'": [
        "param k", "param k =", "param k = x", "param k = X", "param k 2",
        "param k = \"2\"",
    ],
    "parameter names start with a lowercase letter": ["param K = 2"],
    "write a subset domain as 'domain NAME = subsets of node up to SIZE'": [
        "domain s", "domain s = node", "domain s = subsets node", "domain s = subsets of node",
        "domain s = subsets of node up", "domain s = subsets of node up to",
        "domain s = subsets of node to 2", "domain S = subsets of node up to 2",
        "domain s subsets of node up to 2",
    ],
    "question, yes and no take a double-quoted string": [
        "query p(X: node) question Does", "query p(X: node) yes Yes", "query p(X: node) no No",
        "query p(X: node) question", "query p(X: node) yes",
    ],
    "a counting formula needs a number or a parameter before its variables: 'atmost 2 X: ...'": [
        "rule r: atmost X: p(X)", "rule r: exactly {p(X)}", "rule r: atleast X, Y: p(X)",
    ],
    "write 'unroll' and a number or a parameter before ':='": [
        "define p(X: node) unroll := q(X)", "define p(X: node) unroll X := q(X)",
        "define p(X: node) := unroll 3 q(X)",
    ],
    "use ':=' to give a derived predicate its definition": [
        "define p(X: node) = q(X)", "define p(X: node): q(X)", "define p(X: node) q(X)",
        "define p(X: node) :- q(X)",
    ],
    "comparisons (=, !=, in, not in) take variables, such as 'X != Y'": [
        "rule r: p(X) = q(X)", "rule r: p(X) != q(X)", "rule r: p(X) in Z", "rule r: X = p(X)",
        "rule r: X != p(X)", "rule r: X in p(X)", "rule r: X = 1",
    ],
    "a variable alone is not a formula: compare it (X = Y, X in Z) or pass it to a predicate": [
        "rule r: X", "rule r: X & p(X)", "rule r: forall X: X", "rule r: p(X) & X)",
    ],
    "expected a type name after ':', such as 'node'": [
        "given e(X: Node)", "given e(X: )", "given e(X:, Y: node)",
    ],
    "expected a type name after 'in', such as 'node'": ["rule r: forall X in Node: p(X)"],
    "a 'where' condition must come before the question and answer options": [
        "query p(X: node) question \"q {X}\" where X != X",
    ],
}

_TERMINAL_NAMES = {
    "NAME": "a name", "VAR": "a variable", "INT": "a number", "STRING": "a string",
    "$END": "the end of the file",
}
_TOKEN_KINDS = {"NAME": "name", "VAR": "variable", "INT": "number", "STRING": "string"}


def _describe_token(tok: Token) -> str:
    if tok.type == "$END":
        return "the end of the file"
    kind = _TOKEN_KINDS.get(tok.type)
    if kind is None or tok.type in ("NAME",) and str(tok) in RESERVED:
        return f"'{tok}'"
    return f"{kind} '{tok}'"


def _describe_expected(parser: Lark, names) -> str:
    shown = []
    for name in sorted(names):
        if name in _TERMINAL_NAMES:
            shown.append(_TERMINAL_NAMES[name])
            continue
        try:
            pattern = parser.get_terminal(name).pattern
        except KeyError:
            continue
        if pattern.type == "str":
            shown.append(f"'{pattern.value}'")
    shown = sorted(set(shown))
    if not shown:
        return ""
    if len(shown) > 8:
        shown = shown[:8] + ["..."]
    return "; expected " + ", ".join(shown)


def _lexer_message(text: str, pos: int) -> str:
    ch = text[pos]
    prev = text[pos - 1] if pos > 0 else ""
    nxt = text[pos + 1] if pos + 1 < len(text) else ""
    if ch == ">" and prev == "=":
        return "write implication as '->' and equivalence as '<->'"
    if ch == "!" and nxt != "=":
        return "write negation as '~' ('!' only appears in '!=')"
    if ch == "'":
        return "strings use double quotes: \"...\""
    if ch == '"':
        return "unterminated string: close it with '\"' on the same line"
    if ch == "<" and text[pos:pos + 3] != "<->":
        return "'<' is not an operator here: equivalence is '<->'"
    if ch == "-" and nxt.isdigit():
        return "negative numbers are not allowed here: counts and sizes are whole numbers"
    if ch == "-" and nxt != ">":
        return "'-' is not an operator here: implication is '->', a set plus a node is 'Z + X'"
    if ch == ":" and nxt == "-":
        return "use ':=' to give a derived predicate its definition"
    if ch == "_":
        return "names start with a letter"
    if ch == "/" and nxt == "/":
        return "comments start with '#'"
    if ch.isdigit():
        return "a number cannot appear here"
    return f"unexpected character {ch!r}"


def _state_key(err: UnexpectedInput):
    state = getattr(err, "state", None)
    if state is None:
        return None
    # the top LALR state, not the whole stack: the same mistake deeper inside a formula has a
    # longer stack (lark's own match_examples compares stack lengths too and so misses it)
    return (state.position, frozenset(_accepts(err) or ()))


_ACCEPTS: dict[tuple, frozenset] = {}


def _accepts(err: UnexpectedInput):
    """``err.accepts``, memoized on the parser's state stack (which alone decides it): lark
    computes it by trying every terminal on a copy of the parser, the dominant cost of a file
    with thousands of errors."""
    stack = getattr(getattr(err, "state", None), "state_stack", None)
    if stack is None:
        return getattr(err, "accepts", None)
    key = tuple(stack)
    found = _ACCEPTS.get(key)
    if found is None:
        found = frozenset(getattr(err, "accepts", None) or ())
        if len(_ACCEPTS) < 10_000:
            _ACCEPTS[key] = found
    return found


@lru_cache(maxsize=1)
def _example_table() -> tuple[dict, dict]:
    """(state, token) -> label and state -> label, from SYNTAX_EXAMPLES (first example wins)."""
    parser = rules_parser()
    exact: dict = {}
    by_state: dict = {}
    for label, examples in SYNTAX_EXAMPLES.items():
        for example in examples:
            try:
                parser.parse(example)
            except UnexpectedInput as err:
                key = _state_key(err)
                if key is None:
                    continue
                tok = getattr(err, "token", None)
                tok_key = (tok.type, str(tok)) if tok is not None else ("$END", "")
                exact.setdefault((key, tok_key), label)
                exact.setdefault((key, (tok_key[0], None)), label)
                by_state.setdefault(key, label)
    return exact, by_state


def _match_example(err: UnexpectedInput) -> str | None:
    key = _state_key(err)
    if key is None:
        return None
    exact, by_state = _example_table()
    tok = getattr(err, "token", None)
    tok_key = (tok.type, str(tok)) if tok is not None else ("$END", "")
    return exact.get((key, tok_key)) or exact.get((key, (tok_key[0], None))) or by_state.get(key)


def _hint_from_text(text: str, err: UnexpectedInput) -> str | None:
    """Mistakes that are clearest from the characters themselves (habits from other languages)."""
    pos = getattr(getattr(err, "token", None), "start_pos", None)
    if pos is None:
        return None
    two = text[pos:pos + 2]
    before = text[max(pos - 1, 0):pos + 1]
    if two == "=>":
        return "write implication as '->' and equivalence as '<->'"
    if two in ("&&", "||") or before in ("&&", "||"):
        return "write a single '&' for 'and' and a single '|' for 'or'"
    if two == "==":
        return "write equality as a single '='"
    return None


def syntax_diagnostic(parser: Lark, text: str, err: UnexpectedInput) -> Diagnostic:
    """The diagnostic of the first syntax error of ``text``: a message from the catalogue, from
    the characters themselves, or else what came and what was expected."""
    if isinstance(err, UnexpectedCharacters):
        pos = err.pos_in_stream
        msg = _lexer_message(text, pos)
        return Diagnostic(Span(err.line, err.column, err.line, err.column + 1), msg)
    label = _hint_from_text(text, err) or _match_example(err)
    tok = getattr(err, "token", None)
    if isinstance(err, UnexpectedEOF) or tok is None or tok.type == "$END":
        line, col = _end_position(text)
        expected = _describe_expected(parser, getattr(err, "expected", ()) or ())
        msg = label or f"unexpected end of file{expected}"
        return Diagnostic(Span(line, col, line, col + 1), msg)
    span = span_of_token(tok)
    if label is None:
        expected = _describe_expected(parser, _accepts(err) or err.expected)
        label = f"unexpected {_describe_token(tok)}{expected}"
    return Diagnostic(span, label)


def _end_position(text: str) -> tuple[int, int]:
    """The position just after the last non-blank character (where the text stopped short)."""
    stripped = text.rstrip()
    # a trailing comment is not where the statement stopped
    lines = stripped.splitlines() or [""]
    line_no = len(lines)
    last = re.sub(r"#.*$", "", lines[-1]).rstrip()
    while not last and line_no > 1:
        line_no -= 1
        last = re.sub(r"#.*$", "", lines[line_no - 1]).rstrip()
    return line_no, len(last) + 1
