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

from lark import Lark, Token, Transformer_NonRecursive, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput

from constraintc.language import ast
from constraintc.language.ast import Span
from constraintc.language.diagnostics import Diagnostic
from constraintc.resources import grammar_path

STATEMENT_KEYWORDS = ("param", "domain", "given", "query", "define", "rule")
RESERVED = STATEMENT_KEYWORDS + (
    "unroll", "subsets", "of", "up", "to", "where", "question", "yes", "no", "forall", "exists",
    "exactly", "atmost", "atleast", "in", "not", "true", "false", "acyclic",
)


@lru_cache(maxsize=1)
def rules_parser() -> Lark:
    """The LALR parser of ``grammars/rules.lark`` (built once per process)."""
    return Lark(grammar_path("rules.lark").read_text(), parser="lalr", propagate_positions=True,
                maybe_placeholders=True)


# Whole numbers (parameters, counts, sizes) must fit in 64 bits: larger ones mean nothing here,
# and Python refuses to convert strings of more than 4,300 digits at all.
MAX_WHOLE_NUMBER = 2**63 - 1

# Formulas nest at most this deep (parentheses, negations, quantifiers, chains of '->', 'Z + X'
# terms); the checker and the grounder walk formulas recursively, and this keeps them far from
# Python's recursion limit. Flat '&' and '|' lists do not nest: they may have any length.
MAX_NESTING = 200


def _span_of_meta(meta, offset: int = 0) -> Span:
    if getattr(meta, "empty", False):
        return ast.NOSPAN
    return Span(meta.line + offset, meta.column, meta.end_line + offset, meta.end_column)


def _span_of_token(tok: Token, offset: int = 0) -> Span:
    end_col = tok.end_column if tok.end_column is not None else tok.column + len(tok)
    end_line = tok.end_line if tok.end_line is not None else tok.line
    return Span(tok.line + offset, tok.column, end_line + offset, end_col)


def _unquote(tok: Token) -> str:
    body = str(tok)[1:-1]
    return re.sub(r"\\(.)", r"\1", body)


@v_args(meta=True, inline=True)
class _ToAst(Transformer_NonRecursive):
    """Parse tree -> frozen AST dataclasses (every node keeps its span).

    Iterative (not recursive), so any nesting the parser accepts can be transformed; positions
    are shifted down by ``line_offset`` lines (a statement parsed on its own keeps its true line).
    """

    def __init__(self, line_offset: int = 0):
        super().__init__()
        self.diagnostics: list[Diagnostic] = []
        self.offset = line_offset

    def _meta_span(self, meta) -> Span:
        return _span_of_meta(meta, self.offset)

    def _tok_span(self, tok: Token) -> Span:
        return _span_of_token(tok, self.offset)

    def _whole_number(self, tok: Token) -> int:
        digits = str(tok).lstrip("0") or "0"
        if len(digits) > len(str(MAX_WHOLE_NUMBER)) or int(digits) > MAX_WHOLE_NUMBER:
            self.diagnostics.append(Diagnostic(
                self._tok_span(tok), f"number too large ({len(digits)} digits): whole numbers here "
                                     f"are at most {MAX_WHOLE_NUMBER} (2^63 - 1)"))
            return 0
        return int(digits)

    def start(self, meta, *statements):
        return list(statements)

    # ---- statements
    def param_decl(self, meta, name, value):
        return ast.ParamDecl(str(name), self._whole_number(value), self._meta_span(meta))

    def domain_decl(self, meta, name, base, count):
        size, size_span = count
        return ast.DomainDecl(str(name), str(base), size, self._meta_span(meta), size_span)

    def count(self, meta, tok):
        return (self._whole_number(tok) if tok.type == "INT" else str(tok)), self._tok_span(tok)

    def given_decl(self, meta, acyclic, name, args, where):
        return ast.PredDecl(str(name), "given", tuple(args or ()), where, None, self._tok_span(name),
                            acyclic=acyclic is not None)

    def query_decl(self, meta, name, args, where, *options):
        opts: dict[str, object] = {}
        for key, value, span in options:
            if key in opts:
                self.diagnostics.append(Diagnostic(span, f"'{key}' is given twice for query {name}"))
            opts[key] = value
        decl = ast.QueryDecl(str(name), "query", tuple(args or ()), where, None,
                             self._tok_span(name), template=opts.get("question"),
                             yes=opts.get("yes", "Yes"), no=opts.get("no", "No"))
        return decl

    def define_decl(self, meta, name, args, where, unroll, body):
        decl = ast.PredDecl(str(name), "derived", tuple(args or ()), where, body, self._tok_span(name),
                            unroll=None if unroll is None else unroll[0])
        return decl

    def unroll_clause(self, meta, count):
        return count

    def rule_decl(self, meta, name, formula):
        return ast.RuleDecl(str(name), formula, self._tok_span(name))

    def arg_decls(self, meta, *args):
        return list(args)

    def arg_decl(self, meta, var, type_):
        return ast.ArgDecl(str(var), str(type_), self._tok_span(var))

    def where_clause(self, meta, formula):
        return formula

    def question(self, meta, s):
        return ("question", _unquote(s), self._tok_span(s))

    def yes(self, meta, s):
        return ("yes", _unquote(s), self._tok_span(s))

    def no(self, meta, s):
        return ("no", _unquote(s), self._tok_span(s))

    # ---- formulas
    def iff(self, meta, a, b):
        return ast.Iff(a, b, self._meta_span(meta))

    def implies(self, meta, a, b):
        return ast.Implies(a, b, self._meta_span(meta))

    # a parenthesized list on the left joins the list: (a | b) | c is a | b | c
    def disj(self, meta, first, *rest):
        args = (first.args if isinstance(first, ast.Or) else (first,)) + rest
        return ast.Or(args, self._meta_span(meta))

    def conj(self, meta, first, *rest):
        args = (first.args if isinstance(first, ast.And) else (first,)) + rest
        return ast.And(args, self._meta_span(meta))

    def not_(self, meta, a):
        return ast.Not(a, self._meta_span(meta))

    def forall(self, meta, binders, body):
        return ast.Quantified("forall", tuple(binders), body, self._meta_span(meta))

    def exists(self, meta, binders, body):
        return ast.Quantified("exists", tuple(binders), body, self._meta_span(meta))

    def counting_kw(self, meta, tok):
        return str(tok)

    def counting(self, meta, kind, count, binders, body):
        return ast.Counting(kind, count[0], tuple(binders), (body,), self._meta_span(meta))

    def counting_list(self, meta, kind, count, *items):
        return ast.Counting(kind, count[0], (), tuple(items), self._meta_span(meta))

    def binders(self, meta, *bs):
        return list(bs)

    def binder(self, meta, var, type_):
        return ast.Binder(str(var), None if type_ is None else str(type_), self._tok_span(var))

    def true(self, meta):
        return ast.Const(True, self._meta_span(meta))

    def false(self, meta):
        return ast.Const(False, self._meta_span(meta))

    def atom(self, meta, name, terms):
        return ast.Atom(str(name), tuple(terms or ()), self._meta_span(meta))

    def terms(self, meta, *ts):
        return list(ts)

    def var(self, meta, tok):
        return ast.Var(str(tok), self._tok_span(tok))

    def empty_set(self, meta):
        return ast.EmptySet(self._meta_span(meta))

    def set_add(self, meta, set_term, var):
        return ast.SetAdd(set_term, ast.Var(str(var), self._tok_span(var)), self._meta_span(meta))

    def _cmp(self, op, meta, a, b):
        return ast.Compare(op, a, b, self._meta_span(meta))

    def eq(self, meta, a, b):
        return self._cmp("=", meta, a, b)

    def neq(self, meta, a, b):
        return self._cmp("!=", meta, a, b)

    def member(self, meta, a, b):
        return self._cmp("in", meta, a, b)

    def not_member(self, meta, a, b):
        return self._cmp("not in", meta, a, b)


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


_STATEMENT_START = re.compile(r"^[ \t]*(?:%s)\b" % "|".join(STATEMENT_KEYWORDS), re.M)
_DECLARES = re.compile(r"[ \t]*(param|domain|given|query|define|rule)\b[ \t]*(?:acyclic\b[ \t]*)?"
                       r"([a-z][A-Za-z0-9_]*)?")
_WORD = re.compile(r"\b[a-z][A-Za-z0-9_]*\b")

# What a broken statement may have declared: "pred", "type" and "param" -> names (or ANY).
ANY = "*"
_KIND_OF = {"param": "param", "domain": "type", "given": "pred", "query": "pred", "define": "pred"}


def _statement_chunks(text: str) -> list[tuple[int, int]]:
    """Character ranges that each start at a line beginning with a statement keyword."""
    starts = [m.start() for m in _STATEMENT_START.finditer(text)]
    if not starts or starts[0] != 0:
        starts = [0] + starts
    ends = starts[1:] + [len(text)]
    return list(zip(starts, ends))


def _children(node) -> tuple:
    if isinstance(node, ast.Not):
        return (node.arg,)
    if isinstance(node, (ast.And, ast.Or)):
        return node.args
    if isinstance(node, (ast.Implies, ast.Iff, ast.Compare)):
        return (node.left, node.right)
    if isinstance(node, ast.Quantified):
        return (node.body,)
    if isinstance(node, ast.Counting):
        return node.items
    if isinstance(node, ast.Atom):
        return node.args
    if isinstance(node, ast.SetAdd):
        return (node.set,)
    if isinstance(node, ast.PredDecl):
        return tuple(f for f in (node.where, node.body) if f is not None)
    if isinstance(node, ast.RuleDecl):
        return (node.formula,)
    return ()


def _too_deep(statement):
    """The first node nested more than ``MAX_NESTING`` levels deep in a statement, or None."""
    stack = [(statement, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_NESTING:
            return node
        stack.extend((child, depth + 1) for child in _children(node))
    return None


def _nesting_diagnostic(node) -> Diagnostic:
    return Diagnostic(node.span, f"the formula nests more than {MAX_NESTING} levels deep here "
                                 f"(parentheses, '~', quantifiers, chains of '->'): define a "
                                 f"helper predicate for part of it; '&' and '|' lists may be "
                                 f"of any length")


def _build(tree, line_offset: int, opaque: dict) -> tuple[list, list[Diagnostic]]:
    """AST statements of a parse tree, and the problems found while building them. A statement
    nested too deeply is left out (its name, if it declares one, becomes opaque)."""
    builder = _ToAst(line_offset)
    statements = builder.transform(tree)
    diags = list(builder.diagnostics)
    kept = []
    for st in statements:
        deep = _too_deep(st)
        if deep is None:
            kept.append(st)
            continue
        diags.append(_nesting_diagnostic(deep))
        if isinstance(st, ast.PredDecl):
            opaque.setdefault("pred", set()).add(st.name)
    return kept, diags


def _shift(diag: Diagnostic, offset: int) -> Diagnostic:
    s = diag.span
    return Diagnostic(Span(s.line + offset, s.column, s.end_line + offset, s.end_column), diag.message)


def _note_opaque(chunk: str, opaque: dict) -> None:
    """Record the names a statement that failed to parse may declare, so that their uses are not
    reported as unknown (they are echoes of the syntax error, which is reported)."""
    m = _DECLARES.match(chunk)
    if m is None:  # text before the first statement: any word in it may be a mangled declaration
        for kind in ("pred", "type", "param"):
            names = opaque.setdefault(kind, set())
            if names is not ANY:
                names.update(_WORD.findall(chunk))
        return
    kind = _KIND_OF.get(m.group(1))
    if kind is None:
        return
    if m.group(2) is None or m.group(2) in RESERVED:
        opaque[kind] = ANY
    elif opaque.get(kind) is not ANY:
        opaque.setdefault(kind, set()).add(m.group(2))


def parse_statements(text: str) -> list:
    """Parse rules text into AST statements; raises :class:`SyntaxErrors` listing every error.

    After a syntax error, each statement (a line starting with a statement keyword begins one)
    is parsed on its own: every statement's first syntax error is reported, and the statements
    that parse are kept in the exception so that their semantic errors can be reported too.
    Linear in the length of the text.
    """
    parser = rules_parser()
    opaque: dict = {}
    try:
        tree = parser.parse(text)
    except UnexpectedInput:
        pass
    else:
        statements, diags = _build(tree, 0, opaque)
        if diags:
            raise SyntaxErrors(diags, statements, opaque)
        return statements
    statements, diags = [], []
    line, pos = 1, 0
    for start, end in _statement_chunks(text):
        line += text.count("\n", pos, start)
        pos = start
        chunk = text[start:end]
        try:
            tree = parser.parse(chunk)
        except UnexpectedInput as err:
            diags.append(_shift(_syntax_diagnostic(parser, chunk, err), line - 1))
            _note_opaque(chunk, opaque)
            continue
        stmts, problems = _build(tree, line - 1, opaque)
        statements += stmts
        diags += problems
    if not diags:  # pragma: no cover - the chunks of a text parse exactly when the text does
        diags.append(Diagnostic(Span(1, 1, 1, 2), "the file does not parse as a whole"))
    raise SyntaxErrors(diags, statements, opaque)


class SyntaxErrors(Exception):
    """Internal: the syntax errors of one text (turned into a RulesError by the caller), with the
    statements that did parse and the names the broken ones may declare (``opaque``)."""

    def __init__(self, diagnostics: list[Diagnostic], statements: list | None = None,
                 opaque: dict | None = None):
        super().__init__(f"{len(diagnostics)} syntax errors")
        self.diagnostics = diagnostics
        self.statements = list(statements or [])
        self.opaque = dict(opaque or {})
