"""The rules language's grammar (``grammars/rules.lark``, loaded once), its keywords, and the
source spans of what it parses.

>>> tree = rules_parser().parse("rule r: p(X)")
>>> span_of_token(next(tree.scan_values(lambda t: t == "r")))
1:6
"""

from __future__ import annotations

from functools import lru_cache

from lark import Lark, Token

from constraintc.language import ast
from constraintc.language.ast import Span
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


def span_of_meta(meta, offset: int = 0) -> Span:
    if getattr(meta, "empty", False):
        return ast.NOSPAN
    return Span(meta.line + offset, meta.column, meta.end_line + offset, meta.end_column)


def span_of_token(tok: Token, offset: int = 0) -> Span:
    end_col = tok.end_column if tok.end_column is not None else tok.column + len(tok)
    end_line = tok.end_line if tok.end_line is not None else tok.line
    return Span(tok.line + offset, tok.column, end_line + offset, end_col)
