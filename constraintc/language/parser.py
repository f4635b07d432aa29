"""Parse rules text into AST statements (Lark LALR with positions) and explain syntax errors.

Syntax errors are explained with a catalogue of known-bad inputs, matched on the LALR state
(lark's ``match_examples`` idea, keyed on the top state so that a mistake deep inside a formula
matches its shallow example); after an error the parser resumes at the next line that starts a
statement, so one run reports the syntax errors of every statement.

>>> stmts = parse_statements("param k = 2\\nquery p(X: node)")
>>> [type(s).__name__ for s in stmts]
['ParamDecl', 'QueryDecl']
"""

from __future__ import annotations

import re
from functools import lru_cache

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, VisitError

from constraintc.language import ast
from constraintc.language.ast import Span
from constraintc.language.diagnostics import Diagnostic
from constraintc.resources import grammar_path

STATEMENT_KEYWORDS = ("param", "domain", "given", "query", "define", "rule")
RESERVED = STATEMENT_KEYWORDS + (
    "unroll", "subsets", "of", "up", "to", "where", "question", "yes", "no", "forall", "exists",
    "exactly", "atmost", "atleast", "in", "not", "true", "false",
)


@lru_cache(maxsize=1)
def rules_parser() -> Lark:
    """The LALR parser of ``grammars/rules.lark`` (built once per process)."""
    return Lark(grammar_path("rules.lark").read_text(), parser="lalr", propagate_positions=True,
                maybe_placeholders=True)


def _span_of_meta(meta) -> Span:
    if getattr(meta, "empty", False):
        return ast.NOSPAN
    return Span(meta.line, meta.column, meta.end_line, meta.end_column)


def _span_of_token(tok: Token) -> Span:
    end_col = tok.end_column if tok.end_column is not None else tok.column + len(tok)
    end_line = tok.end_line if tok.end_line is not None else tok.line
    return Span(tok.line, tok.column, end_line, end_col)


def _unquote(tok: Token) -> str:
    body = str(tok)[1:-1]
    return re.sub(r"\\(.)", r"\1", body)


@v_args(meta=True, inline=True)
class _ToAst(Transformer):
    """Parse tree -> frozen AST dataclasses (every node keeps its span)."""

    def __init__(self):
        super().__init__()
        self.diagnostics: list[Diagnostic] = []

    def start(self, meta, *statements):
        return list(statements)

    # ---- statements
    def param_decl(self, meta, name, value):
        return ast.ParamDecl(str(name), int(value), _span_of_meta(meta))

    def domain_decl(self, meta, name, base, count):
        size, size_span = count
        return ast.DomainDecl(str(name), str(base), size, _span_of_meta(meta), size_span)

    def count(self, meta, tok):
        return (int(tok) if tok.type == "INT" else str(tok)), _span_of_token(tok)

    def given_decl(self, meta, name, args, where):
        return ast.PredDecl(str(name), "given", tuple(args or ()), where, None, _name_span(meta, name))

    def query_decl(self, meta, name, args, where, *options):
        opts: dict[str, object] = {}
        for key, value, span in options:
            if key in opts:
                self.diagnostics.append(Diagnostic(span, f"'{key}' is given twice for query {name}"))
            opts[key] = value
        decl = ast.QueryDecl(str(name), "query", tuple(args or ()), where, None,
                             _name_span(meta, name), template=opts.get("question"),
                             yes=opts.get("yes", "Yes"), no=opts.get("no", "No"))
        return decl

    def define_decl(self, meta, name, args, where, unroll, body):
        decl = ast.PredDecl(str(name), "derived", tuple(args or ()), where, body, _name_span(meta, name),
                            unroll=None if unroll is None else unroll[0])
        return decl

    def unroll_clause(self, meta, count):
        return count

    def rule_decl(self, meta, name, formula):
        return ast.RuleDecl(str(name), formula, _name_span(meta, name))

    def arg_decls(self, meta, *args):
        return list(args)

    def arg_decl(self, meta, var, type_):
        return ast.ArgDecl(str(var), str(type_), _span_of_token(var))

    def where_clause(self, meta, formula):
        return formula

    def question(self, meta, s):
        return ("question", _unquote(s), _span_of_token(s))

    def yes(self, meta, s):
        return ("yes", _unquote(s), _span_of_token(s))

    def no(self, meta, s):
        return ("no", _unquote(s), _span_of_token(s))

    # ---- formulas
    def iff(self, meta, a, b):
        return ast.Iff(a, b, _span_of_meta(meta))

    def implies(self, meta, a, b):
        return ast.Implies(a, b, _span_of_meta(meta))

    def or_(self, meta, a, b):
        args = (a.args if isinstance(a, ast.Or) else (a,)) + (b,)
        return ast.Or(args, _span_of_meta(meta))

    def and_(self, meta, a, b):
        args = (a.args if isinstance(a, ast.And) else (a,)) + (b,)
        return ast.And(args, _span_of_meta(meta))

    def not_(self, meta, a):
        return ast.Not(a, _span_of_meta(meta))

    def forall(self, meta, binders, body):
        return ast.Quantified("forall", tuple(binders), body, _span_of_meta(meta))

    def exists(self, meta, binders, body):
        return ast.Quantified("exists", tuple(binders), body, _span_of_meta(meta))

    def counting_kw(self, meta, tok):
        return str(tok)

    def counting(self, meta, kind, count, binders, body):
        return ast.Counting(kind, count[0], tuple(binders), (body,), _span_of_meta(meta))

    def counting_list(self, meta, kind, count, *items):
        return ast.Counting(kind, count[0], (), tuple(items), _span_of_meta(meta))

    def binders(self, meta, *bs):
        return list(bs)

    def binder(self, meta, var, type_):
        return ast.Binder(str(var), None if type_ is None else str(type_), _span_of_token(var))

    def true(self, meta):
        return ast.Const(True, _span_of_meta(meta))

    def false(self, meta):
        return ast.Const(False, _span_of_meta(meta))

    def atom(self, meta, name, terms):
        return ast.Atom(str(name), tuple(terms or ()), _span_of_meta(meta))

    def terms(self, meta, *ts):
        return list(ts)

    def var(self, meta, tok):
        return ast.Var(str(tok), _span_of_token(tok))

    def empty_set(self, meta):
        return ast.EmptySet(_span_of_meta(meta))

    def set_add(self, meta, set_term, var):
        return ast.SetAdd(set_term, ast.Var(str(var), _span_of_token(var)), _span_of_meta(meta))

    def _cmp(self, op, meta, a, b):
        return ast.Compare(op, a, b, _span_of_meta(meta))

    def eq(self, meta, a, b):
        return self._cmp("=", meta, a, b)

    def neq(self, meta, a, b):
        return self._cmp("!=", meta, a, b)

    def member(self, meta, a, b):
        return self._cmp("in", meta, a, b)

    def not_member(self, meta, a, b):
        return self._cmp("not in", meta, a, b)


def _name_span(meta, name_tok: Token) -> Span:
    """Declarations are located at their name: that is where a reader looks for them."""
    return _span_of_token(name_tok)


# ---------------------------------------------------------------- syntax errors
# A catalogue of broken inputs: lark finds the one whose parser state matches the error.
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
    return (state.position, frozenset(getattr(err, "accepts", None) or ()))


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


def _syntax_diagnostic(parser: Lark, text: str, err: UnexpectedInput) -> Diagnostic:
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
    span = _span_of_token(tok)
    if label is None:
        expected = _describe_expected(parser, getattr(err, "accepts", None) or err.expected)
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


_STATEMENT_START = re.compile(r"^[ \t]*(?:%s)\b" % "|".join(STATEMENT_KEYWORDS), re.M)


def _statement_chunks(text: str) -> list[tuple[int, int]]:
    """Byte ranges that each start at a line beginning with a statement keyword."""
    starts = [m.start() for m in _STATEMENT_START.finditer(text)]
    if not starts or starts[0] != 0:
        starts = [0] + starts
    ends = starts[1:] + [len(text)]
    return list(zip(starts, ends))


def _blank_prefix(text: str, start: int) -> str:
    """Replace everything before ``start`` by spaces (keeping newlines) so positions stay true."""
    return re.sub(r"[^\n]", " ", text[:start])


def parse_statements(text: str) -> list:
    """Parse rules text into AST statements; raises :class:`SyntaxErrors` listing every error."""
    parser = rules_parser()
    try:
        tree = parser.parse(text)
    except UnexpectedInput as first:
        diags = _collect_syntax_errors(parser, text, first)
        raise SyntaxErrors(diags) from None
    builder = _ToAst()
    try:
        statements = builder.transform(tree)
    except VisitError as err:
        if isinstance(err.orig_exc, RecursionError):
            raise RecursionError("formula nested too deeply") from None
        raise
    if builder.diagnostics:
        raise SyntaxErrors(builder.diagnostics)
    return statements


def _collect_syntax_errors(parser: Lark, text: str, first: UnexpectedInput) -> list[Diagnostic]:
    diags = [_syntax_diagnostic(parser, text, first)]
    chunks = _statement_chunks(text)
    if len(chunks) <= 1:
        return diags
    first_line = diags[0].span.line
    for start, end in chunks:
        chunk_last_line = text.count("\n", 0, end) + 1
        if chunk_last_line < first_line:
            continue  # parsed fine before the first error
        padded = _blank_prefix(text, start) + text[start:end]
        try:
            parser.parse(padded)
        except UnexpectedInput as err:
            diag = _syntax_diagnostic(parser, padded, err)
            if diag.span.line >= first_line and diag not in diags:
                # one error per statement: later errors in the same statement are usually echoes
                if not any(d.span.line == diag.span.line and d.span.column == diag.span.column
                           for d in diags):
                    diags.append(diag)
    # the first error also shows up in its own chunk, possibly with a different message
    seen = set()
    result = []
    for d in diags:
        key = (d.span.line, d.span.column)
        if key not in seen:
            seen.add(key)
            result.append(d)
    return result


class SyntaxErrors(Exception):
    """Internal: the syntax errors of one text (turned into a RulesError by the caller)."""

    def __init__(self, diagnostics: list[Diagnostic]):
        super().__init__(f"{len(diagnostics)} syntax errors")
        self.diagnostics = diagnostics
