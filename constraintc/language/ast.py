"""The rules language's abstract syntax: frozen dataclasses, each carrying its source span.

Formulas (``Atom``, ``Not``, ``And``, ``Or``, ``Implies``, ``Iff``, ``Quantified``, ``Counting``,
``Compare``, ``Const``) and terms (``Var``, ``SetAdd``) are what a rule or a definition says;
declarations (``ParamDecl``, ``DomainDecl``, ``PredDecl``, ``QueryDecl``, ``RuleDecl``) are the
statements of a file; :class:`Program` is a checked file with its parameters resolved.

>>> from constraintc.language import parse_rules
>>> prog = parse_rules('query p(X: node)\\nrule r: forall X: p(X)')
>>> rule = prog.rules["r"].formula
>>> rule.kind, rule.binders, rule.body.pred, rule.span.line
('forall', (Binder(name='X', type='node'),), 'p', 2)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Union


@dataclass(frozen=True)
class Span:
    """A 1-based source range; ``end_column`` is one past the last character."""

    line: int
    column: int
    end_line: int
    end_column: int

    def __repr__(self) -> str:
        return f"{self.line}:{self.column}"


NOSPAN = Span(1, 1, 1, 2)


# ---------------------------------------------------------------- terms
@dataclass(frozen=True)
class Var:
    name: str
    span: Span = field(default=NOSPAN, compare=False, repr=False)


@dataclass(frozen=True)
class SetAdd:
    """``Z + X``: the set ``Z`` with the node ``X`` added (an atom using it is false when the
    result is larger than the set domain allows)."""

    set: "Term"
    elem: Var
    span: Span = field(default=NOSPAN, compare=False, repr=False)


@dataclass(frozen=True)
class EmptySet:
    """``{}``: the empty set (of whichever set domain the context needs)."""

    span: Span = field(default=NOSPAN, compare=False, repr=False)


Term = Union[Var, SetAdd, EmptySet]


# ---------------------------------------------------------------- formulas
@dataclass(frozen=True)
class Const:
    value: bool
    span: Span = field(default=NOSPAN, compare=False, repr=False)


@dataclass(frozen=True)
class Atom:
    pred: str
    args: tuple[Term, ...]
    span: Span = field(default=NOSPAN, compare=False, repr=False)


@dataclass(frozen=True)
class Compare:
    """``=``, ``!=``, ``in`` or ``not in`` between terms (decided at grounding time)."""

    op: str
    left: Term
    right: Term
    span: Span = field(default=NOSPAN, compare=False, repr=False)


@dataclass(frozen=True)
class Not:
    arg: "Formula"
    span: Span = field(default=NOSPAN, compare=False, repr=False)


@dataclass(frozen=True)
class And:
    args: tuple["Formula", ...]
    span: Span = field(default=NOSPAN, compare=False, repr=False)


@dataclass(frozen=True)
class Or:
    args: tuple["Formula", ...]
    span: Span = field(default=NOSPAN, compare=False, repr=False)


@dataclass(frozen=True)
class Implies:
    left: "Formula"
    right: "Formula"
    span: Span = field(default=NOSPAN, compare=False, repr=False)


@dataclass(frozen=True)
class Iff:
    left: "Formula"
    right: "Formula"
    span: Span = field(default=NOSPAN, compare=False, repr=False)


@dataclass(frozen=True)
class Binder:
    """A quantified variable, optionally typed (``X in node``); else its type is inferred."""

    name: str
    type: str | None
    span: Span = field(default=NOSPAN, compare=False, repr=False)


@dataclass(frozen=True)
class Quantified:
    kind: str  # "forall" | "exists"
    binders: tuple[Binder, ...]
    body: "Formula"
    span: Span = field(default=NOSPAN, compare=False, repr=False)


@dataclass(frozen=True)
class Counting:
    """``exactly k X, Y: body`` (count the bindings that make ``body`` true) or
    ``atmost k {f1, f2, ...}`` (count the listed formulas that are true; ``binders`` empty)."""

    kind: str  # "exactly" | "atmost" | "atleast"
    count: int | str  # a number or a parameter name
    binders: tuple[Binder, ...]
    items: tuple["Formula", ...]
    span: Span = field(default=NOSPAN, compare=False, repr=False)


Formula = Union[Const, Atom, Compare, Not, And, Or, Implies, Iff, Quantified, Counting]


def children(node) -> tuple:
    """The direct children of an AST node, in source order: a formula's sub-formulas, an atom's
    or a comparison's terms, a ``Z + X`` term's set, a declaration's formulas. Every walk over
    the AST recurses through this.

    >>> children(Implies(Atom("p", ()), Not(Atom("q", ()))))
    (Atom(pred='p', args=()), Not(arg=Atom(pred='q', args=())))
    """
    if isinstance(node, Not):
        return (node.arg,)
    if isinstance(node, (And, Or)):
        return node.args
    if isinstance(node, (Implies, Iff, Compare)):
        return (node.left, node.right)
    if isinstance(node, Quantified):
        return (node.body,)
    if isinstance(node, Counting):
        return node.items
    if isinstance(node, Atom):
        return node.args
    if isinstance(node, SetAdd):
        return (node.set,)
    if isinstance(node, PredDecl):
        return tuple(f for f in (node.where, node.body) if f is not None)
    if isinstance(node, RuleDecl):
        return (node.formula,)
    return ()


def atoms(f: "Formula"):
    """Every :class:`Atom` in ``f`` (a formula or a declaration), in source order. Iterative: a
    formula may nest deeper than Python's recursion limit.

    >>> [a.pred for a in atoms(And((Atom("p", ()), Not(Atom("q", ())))))]
    ['p', 'q']
    """
    stack = [f]
    while stack:
        node = stack.pop()
        if isinstance(node, Atom):
            yield node
        else:
            stack.extend(reversed(children(node)))


# ---------------------------------------------------------------- declarations
@dataclass(frozen=True)
class ParamDecl:
    name: str
    default: int
    span: Span = field(default=NOSPAN, compare=False, repr=False)


@dataclass(frozen=True)
class DomainDecl:
    """``domain S = subsets of node up to K``: every subset of ``base`` with at most K elements."""

    name: str
    base: str
    size: int | str
    span: Span = field(default=NOSPAN, compare=False, repr=False)
    size_span: Span = field(default=NOSPAN, compare=False, repr=False)


@dataclass(frozen=True)
class ArgDecl:
    name: str
    type: str
    span: Span = field(default=NOSPAN, compare=False, repr=False)


@dataclass(frozen=True)
class PredDecl:
    """A ``given``, ``query`` or derived (``define``) predicate.

    Atoms exist only for arguments satisfying ``where``; an atom that does not exist is false.
    """

    name: str
    kind: str  # "given" | "query" | "derived"
    args: tuple[ArgDecl, ...]
    where: Formula | None = None
    body: Formula | None = None
    span: Span = field(default=NOSPAN, compare=False, repr=False)
    unroll: int | str | None = None  # recursion depth (number or parameter); None: the node count
    acyclic: bool = False  # a given over (node, node) declared acyclic: graphs with a cycle are refused

    @property
    def arity(self) -> int:
        return len(self.args)

    @property
    def arg_types(self) -> tuple[str, ...]:
        return tuple(a.type for a in self.args)

    @property
    def arg_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.args)


def _render_value(value) -> str:
    if isinstance(value, (set, frozenset, list, tuple)):
        return "{" + ", ".join(sorted(str(v) for v in value)) + "}"
    return str(value)


@dataclass(frozen=True)
class QueryDecl(PredDecl):
    """A query predicate: the atoms a language model answers, with their question wording.

    >>> q = QueryDecl("dsep", "query", (ArgDecl("X", "node"), ArgDecl("Y", "node"),
    ...               ArgDecl("Z", "nodeset")), template="Are {X} and {Y} d-separated given {Z}?")
    >>> q.render(("a", "b", frozenset({"d", "c"})))
    'Are a and b d-separated given {c, d}?'
    """

    template: str | None = None
    yes: str = "Yes"
    no: str = "No"

    def render(self, args) -> str:
        """The question for one atom; ``args`` are node names, sets are any iterable of names."""
        if self.template is None:
            raise ValueError(f"query {self.name} has no question template")
        if len(args) != self.arity:
            raise ValueError(f"query {self.name} takes {self.arity} arguments, got {len(args)}")
        values = {a.name: _render_value(v) for a, v in zip(self.args, args)}
        return _fill_template(self.template, values)


def template_fields(template: str) -> list[tuple[str, int]]:
    """``[(name, offset)]`` of the ``{Name}`` placeholders of a question template."""
    import re

    return [(m.group(1), m.start()) for m in re.finditer(r"\{([^{}]*)\}", template)]


def _fill_template(template: str, values: dict[str, str]) -> str:
    literal, fields = template_parts(template)
    out = [literal[0]]
    for name, text in zip(fields, literal[1:]):
        out += (values[name], text)
    return "".join(out)


@lru_cache(maxsize=256)
def template_parts(template: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A template split once into its literal pieces and the placeholders between them."""
    import re

    pieces = re.split(r"\{([^{}]*)\}", template)
    return tuple(pieces[0::2]), tuple(pieces[1::2])


@dataclass(frozen=True)
class RuleDecl:
    name: str
    formula: Formula
    span: Span = field(default=NOSPAN, compare=False, repr=False)


Statement = Union[ParamDecl, DomainDecl, PredDecl, QueryDecl, RuleDecl]


@dataclass(frozen=True, eq=False)  # identity semantics: hashable, usable as a cache key
class Program:
    """A checked rules file.

    ``params`` holds the resolved parameter values (defaults overridden by ``params=``);
    ``domains`` the subset domains with their resolved size bound; ``preds`` every predicate
    (given, query and derived) in declaration order.
    """

    filename: str
    source: str
    params: dict[str, int]
    domains: dict[str, DomainDecl]
    domain_sizes: dict[str, int]
    preds: dict[str, PredDecl]
    rules: dict[str, RuleDecl]
    statements: tuple[Statement, ...] = ()

    @property
    def queries(self) -> dict[str, QueryDecl]:
        return {n: p for n, p in self.preds.items() if p.kind == "query"}

    @property
    def givens(self) -> dict[str, PredDecl]:
        return {n: p for n, p in self.preds.items() if p.kind == "given"}

    @property
    def derived(self) -> dict[str, PredDecl]:
        return {n: p for n, p in self.preds.items() if p.kind == "derived"}

    def derived_components(self) -> list["Component"]:
        """The derived predicates grouped by mutual recursion, dependencies first."""
        from constraintc.language.dependencies import derived_components

        return derived_components(self.derived)
