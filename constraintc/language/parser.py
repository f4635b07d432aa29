"""Parse rules text into AST statements (Lark LALR with positions, a Transformer to the
dataclasses of :mod:`constraintc.language.ast`).

After a syntax error the parser resumes at the next line that starts a statement, so one run
reports the syntax errors of every statement (each explained by
:mod:`constraintc.language.syntax_errors`).

>>> stmts = parse_statements("param k = 2\\nquery p(X: node)")
>>> [type(s).__name__ for s in stmts]
['ParamDecl', 'QueryDecl']
"""

from __future__ import annotations

import re

from lark import Token, Transformer_NonRecursive, v_args
from lark.exceptions import UnexpectedInput

from constraintc.language import ast
from constraintc.language.ast import Span
from constraintc.language.diagnostics import Diagnostic
from constraintc.language.grammar import (RESERVED, STATEMENT_KEYWORDS, rules_parser, span_of_meta,
                                          span_of_token)
from constraintc.language.syntax_errors import syntax_diagnostic

# Whole numbers (parameters, counts, sizes) must fit in 64 bits: larger ones mean nothing here,
# and Python refuses to convert strings of more than 4,300 digits at all.
MAX_WHOLE_NUMBER = 2**63 - 1

# Formulas nest at most this deep (parentheses, negations, quantifiers, chains of '->', 'Z + X'
# terms); the checker and the grounder walk formulas recursively, and this keeps them far from
# Python's recursion limit. Flat '&' and '|' lists do not nest: they may have any length.
MAX_NESTING = 200


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
        return span_of_meta(meta, self.offset)

    def _tok_span(self, tok: Token) -> Span:
        return span_of_token(tok, self.offset)

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


def _too_deep(statement):
    """The first node nested more than ``MAX_NESTING`` levels deep in a statement, or None."""
    stack = [(statement, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_NESTING:
            return node
        stack.extend((child, depth + 1) for child in ast.children(node))
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
            diags.append(_shift(syntax_diagnostic(parser, chunk, err), line - 1))
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
