"""Semantic checks of a parsed rules file; every problem is collected before anything is raised.

Checks: duplicate names; unknown predicates, types and parameters; arity and type mismatches;
unbound, shadowed and untyped variables; ``where`` conditions that are not plain comparisons;
question templates naming unknown arguments; recursion through negation and recursion without
a base case; and, once the file is otherwise sound, rules that ground to false.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field, replace

from constraintc.errors import OptionError
from constraintc.language import ast
from constraintc.language.ast import Span
from constraintc.language.diagnostics import Diagnostic

NODE = "node"


@dataclass
class _Slot:
    """A bound variable being type-checked."""

    name: str
    span: Span
    type: str | None = None
    declared: bool = False
    candidates: list = field(default_factory=list)  # (type, span) from uses
    used: bool = False


class Checker:
    def __init__(self, statements: list, params_override: dict[str, int] | None,
                 opaque: dict | None = None):
        self.statements = statements
        self.override = dict(params_override or {})
        # names that statements with syntax errors may declare ("pred", "type", "param" -> a set
        # of names or "*"): their uses are not reported as unknown, the syntax error is
        self.opaque = dict(opaque or {})
        self.diags: list[Diagnostic] = []
        self.params: dict[str, int] = {}
        self.domains: dict[str, ast.DomainDecl] = {}
        self.domain_sizes: dict[str, int] = {}
        self.preds: dict[str, ast.PredDecl] = {}
        self.rules: dict[str, ast.RuleDecl] = {}

    def error(self, span: Span, message: str) -> None:
        self.diags.append(Diagnostic(span, message))

    def is_opaque(self, kind: str, name: str) -> bool:
        names = self.opaque.get(kind, ())
        return names == "*" or name in names

    # ------------------------------------------------------------ declarations
    def collect(self) -> None:
        first: dict[tuple[str, str], ast.Span] = {}

        def claim(space: str, name: str, span: Span, what: str) -> bool:
            key = (space, name)
            if key in first:
                self.error(span, f"duplicate {what} '{name}' (first declared at line {first[key].line})")
                return False
            first[key] = span
            return True

        for st in self.statements:
            if isinstance(st, ast.ParamDecl):
                if claim("param", st.name, st.span, "parameter"):
                    self.params[st.name] = st.default
            elif isinstance(st, ast.DomainDecl):
                if st.name == NODE:
                    self.error(st.span, "'node' is the built-in domain of graph nodes; choose another name")
                elif claim("type", st.name, st.span, "domain"):
                    self.domains[st.name] = st
            elif isinstance(st, ast.PredDecl):
                if claim("pred", st.name, st.span, "predicate"):
                    self.preds[st.name] = st
            elif isinstance(st, ast.RuleDecl):
                if claim("rule", st.name, st.span, "rule"):
                    self.rules[st.name] = st
        unknown = sorted(n for n in set(self.override) - set(self.params)
                         if not self.is_opaque("param", n))
        if unknown:
            known = ", ".join(sorted(self.params)) or "none"
            raise OptionError("param", unknown[0], f"a parameter of this file (declared: {known})")
        for name, value in self.override.items():
            if name not in self.params:
                continue  # declared by a statement with a syntax error
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise OptionError("param", f"{name}={value!r}", "a whole number >= 0")
            self.params[name] = value
        for dom in self.domains.values():
            if dom.base != NODE:
                self.error(dom.span, f"only subsets of node are supported, not subsets of '{dom.base}'")
            size = self.resolve_count(dom.size, dom.size_span)
            if size is not None:
                self.domain_sizes[dom.name] = size

    def resolve_count(self, value: int | str, span: Span) -> int | None:
        if isinstance(value, int):
            return value
        if value not in self.params:
            if self.is_opaque("param", value):
                return None
            self.error(span, f"unknown parameter '{value}'{self.suggest(value, self.params)}")
            return None
        return self.params[value]

    @staticmethod
    def suggest(name: str, options) -> str:
        close = difflib.get_close_matches(name, list(options), n=1)
        return f"; did you mean '{close[0]}'?" if close else ""

    @property
    def types(self) -> list[str]:
        return [NODE] + list(self.domains)

    def check_type(self, type_: str, span: Span) -> bool:
        if type_ in self.types:
            return True
        if self.is_opaque("type", type_):
            return False
        self.error(span, f"unknown type '{type_}' (known: {', '.join(self.types)})"
                   f"{self.suggest(type_, self.types)}")
        return False

    # ------------------------------------------------------------ formulas
    def check_decls(self) -> None:
        for pred in self.preds.values():
            seen: dict[str, Span] = {}
            scope: dict[str, _Slot] = {}
            for arg in pred.args:
                self.check_type(arg.type, arg.span)
                if arg.name in seen:
                    self.error(arg.span, f"argument {arg.name} appears twice in {pred.name}")
                seen[arg.name] = arg.span
                scope[arg.name] = _Slot(arg.name, arg.span, arg.type if arg.type in self.types else None,
                                        declared=True)
            if pred.acyclic and pred.arg_types != (NODE, NODE):
                self.error(pred.span, f"'acyclic' describes a graph: it applies to a given predicate "
                                      f"over (node, node), and {pred.name} is over "
                                      f"({', '.join(pred.arg_types)})")
            where, body = pred.where, pred.body
            if pred.unroll is not None:
                self.resolve_count(pred.unroll, pred.span)
            if where is not None and self.where_is_plain(where):
                where = self.check_formula(where, scope)
            if body is not None:
                body = self.check_formula(body, scope)
            self.preds[pred.name] = replace(pred, where=where, body=body)
            if isinstance(pred, ast.QueryDecl) and pred.template is not None:
                for name, _ in ast.template_fields(pred.template):
                    if name not in seen:
                        args = ", ".join(pred.arg_names) or "none"
                        self.error(pred.span, f"the question of {pred.name} uses {{{name}}}, which is "
                                   f"not one of its arguments ({args})")
        for rule in list(self.rules.values()):
            self.rules[rule.name] = replace(rule, formula=self.check_formula(rule.formula, {}))

    def where_is_plain(self, f) -> bool:
        bad = _first_non_comparison(f)
        if bad is None:
            return True
        self.error(bad.span, "a 'where' condition may only compare the arguments "
                             "(=, !=, in, not in, with ~ & |)")
        return False

    def check_formula(self, formula, scope: dict[str, _Slot]) -> None:
        # pass 1 gathers the type evidence of quantified variables, pass 2 checks every use
        slots: dict[int, _Slot] = {}
        self._equalities: list[tuple[_Slot, _Slot]] = []
        self.walk(formula, dict(scope), slots, infer=True)
        for slot in slots.values():
            if slot.type is None and slot.candidates:
                slot.type = slot.candidates[0][0]
        changed = True
        while changed:  # X = Y passes a known type across
            changed = False
            for a, b in self._equalities:
                for x, y in ((a, b), (b, a)):
                    if x.type is None and y.type is not None:
                        x.type, changed = y.type, True
        self.walk(formula, dict(scope), slots, infer=False)
        return _annotate(formula, slots)

    def walk(self, f, scope: dict[str, _Slot], slots: dict[int, _Slot], infer: bool) -> None:
        if isinstance(f, ast.Const):
            return
        if isinstance(f, ast.Atom):
            self.walk_atom(f, scope, infer)
        elif isinstance(f, ast.Compare):
            self.walk_compare(f, scope, infer)
        elif isinstance(f, (ast.Not, ast.And, ast.Or, ast.Implies, ast.Iff)):
            for child in ast.children(f):
                self.walk(child, scope, slots, infer)
        elif isinstance(f, (ast.Quantified, ast.Counting)):
            if isinstance(f, ast.Counting):
                if not infer:
                    self.resolve_count(f.count, f.span)
            inner = dict(scope)
            for b in f.binders:
                slot = slots.get(id(b))
                if slot is None:
                    slot = _Slot(b.name, b.span)
                    slots[id(b)] = slot
                    if b.type is not None and self.check_type(b.type, b.span):
                        slot.type, slot.declared = b.type, True
                    elif b.type is not None:
                        slot.declared = True  # unknown type already reported
                if not infer and b.name in scope:
                    self.error(b.span, f"{b.name} is already bound at line {scope[b.name].span.line}; "
                                       f"use another name (a quantifier's body extends as far "
                                       f"right as it can: parenthesize '(exists ...)' to end it)")
                inner[b.name] = slot
            for item in ast.children(f):
                self.walk(item, inner, slots, infer)
            if not infer:
                for b in f.binders:
                    slot = slots[id(b)]
                    if slot.type is None and not slot.declared:
                        if not slot.used:
                            self.error(b.span, f"{b.name} is quantified but never used")
                        else:
                            self.error(b.span, f"cannot tell the type of {b.name}: use it as a "
                                               f"predicate argument or write '{b.name} in node'")
        else:  # pragma: no cover - the parser builds nothing else
            raise TypeError(f"unexpected formula {f!r}")

    def lookup(self, var: ast.Var, scope: dict[str, _Slot], infer: bool) -> _Slot | None:
        slot = scope.get(var.name)
        if slot is None:
            if not infer:
                self.error(var.span, f"variable {var.name} is not bound: quantify it "
                                     f"(forall {var.name}: ... or exists {var.name}: ...)")
            return None
        slot.used = True
        return slot

    def term_type(self, term, scope, infer: bool, expected: str | None, where: str) -> str | None:
        """The type of a term; in pass 1 records ``expected`` as evidence, in pass 2 checks it."""
        if isinstance(term, ast.Var):
            slot = self.lookup(term, scope, infer)
            if slot is None:
                return None
            if infer:
                if expected is not None:
                    slot.candidates.append((expected, term.span))
                return slot.type
            if expected is not None and slot.type is not None and slot.type != expected:
                self.error(term.span, f"{where}, but {term.name} is a {slot.type}")
            return slot.type
        if isinstance(term, ast.EmptySet):
            if not infer and expected is not None and expected not in self.domains:
                self.error(term.span, f"{where}, but {{}} is a set")
            return None  # fits whichever set domain the other side has
        # SetAdd: Z + X where X is a node and the result has Z's type
        self.term_type(term.elem, scope, infer, NODE, "'+' adds a node to a set")
        set_type = self.term_type(term.set, scope, infer, expected, where)
        if not infer and set_type is not None and set_type not in self.domains:
            self.error(term.set.span, f"'+' adds a node to a set, but the left side is a {set_type}")
        return set_type

    def walk_atom(self, f: ast.Atom, scope, infer: bool) -> None:
        pred = self.preds.get(f.pred)
        if pred is None:
            if not infer and not self.is_opaque("pred", f.pred):
                self.error(f.span, f"unknown predicate '{f.pred}'{self.suggest(f.pred, self.preds)}")
            for t in f.args:
                self.term_type(t, scope, infer, None, "")
            return
        if len(f.args) != pred.arity:
            if not infer:
                sig = ", ".join(f"{a.name}: {a.type}" for a in pred.args)
                self.error(f.span, f"{f.pred} takes {pred.arity} argument{'s' * (pred.arity != 1)} "
                                   f"({sig}), not {len(f.args)}")
            # the arguments that line up still tell their types (one error, not a cascade)
            for t in f.args[pred.arity:]:
                self.term_type(t, scope, infer, None, "")
        for i, (t, decl) in enumerate(zip(f.args, pred.args), 1):
            self.term_type(t, scope, infer, decl.type if decl.type in self.types else None,
                           f"{f.pred} expects a {decl.type} as argument {i}")

    def walk_compare(self, f: ast.Compare, scope, infer: bool) -> None:
        if f.op in ("in", "not in"):
            self.term_type(f.left, scope, infer, NODE, f"the left side of '{f.op}' must be a node")
            right = self.term_type(f.right, scope, infer,
                                   next(iter(self.domains)) if len(self.domains) == 1 else None,
                                   f"the right side of '{f.op}' must be a set")
            if not infer and right is not None and right not in self.domains:
                self.error(f.right.span, f"the right side of '{f.op}' must be a set, but "
                                         f"{_term_text(f.right)} is a {right}")
            return
        left = self.term_type(f.left, scope, infer, None, "")
        right = self.term_type(f.right, scope, infer, None, "")
        if infer:
            if isinstance(f.left, ast.Var) and isinstance(f.right, ast.Var) \
                    and f.left.name in scope and f.right.name in scope:
                self._equalities.append((scope[f.left.name], scope[f.right.name]))
        elif left is not None and right is not None and left != right:
            self.error(f.span, f"'{f.op}' compares a {left} with a {right}")

    # ------------------------------------------------------------ recursion
    def check_recursion(self) -> None:
        from constraintc.language.dependencies import derived_components

        derived = {n: p for n, p in self.preds.items() if p.kind == "derived"}
        for component in derived_components(derived):
            if not component.recursive:
                continue
            scc = set(component.names)
            for name in component.names:
                for atom, positive in _atoms_with_polarity(derived[name].body, True):
                    if atom.pred in scc and positive is not True:
                        self.error(atom.span, f"{name} depends on itself through negation (~, <->, the "
                                              f"left of ->, or counting): recursion must be positive, "
                                              f"or unrolling it has no fixed point")
            if all(_folds_false(derived[n].body, scc) for n in scc):
                name = component.names[0]
                self.error(derived[name].span, f"the recursion of {name} has no base case: every "
                                               f"alternative uses {name} again, so it is always false")


def _annotate(f, slots: dict[int, _Slot]):
    """The formula with every quantified variable's type filled in (for the grounder)."""
    if isinstance(f, (ast.Quantified, ast.Counting)):
        binders = tuple(replace(b, type=slots[id(b)].type) if id(b) in slots else b
                        for b in f.binders)
        if isinstance(f, ast.Quantified):
            return replace(f, binders=binders, body=_annotate(f.body, slots))
        return replace(f, binders=binders, items=tuple(_annotate(i, slots) for i in f.items))
    if isinstance(f, ast.Not):
        return replace(f, arg=_annotate(f.arg, slots))
    if isinstance(f, (ast.And, ast.Or)):
        return replace(f, args=tuple(_annotate(a, slots) for a in f.args))
    if isinstance(f, (ast.Implies, ast.Iff)):
        return replace(f, left=_annotate(f.left, slots), right=_annotate(f.right, slots))
    return f


def _term_text(t) -> str:
    if isinstance(t, ast.EmptySet):
        return "{}"
    return t.name if isinstance(t, ast.Var) else f"{_term_text(t.set)} + {t.elem.name}"


def _first_non_comparison(f):
    """The first part of ``f`` that is not built from comparisons and constants with the
    connectives, or None."""
    if isinstance(f, (ast.Compare, ast.Const)):
        return None
    if isinstance(f, (ast.Not, ast.And, ast.Or, ast.Implies, ast.Iff)):
        return next((bad for c in ast.children(f) if (bad := _first_non_comparison(c)) is not None), None)
    return f


def _atoms_with_polarity(f, positive):
    """``(atom, polarity)`` pairs; polarity True, False, or None (both: <->, counting)."""
    if isinstance(f, ast.Atom):
        yield f, positive
    elif isinstance(f, ast.Not):
        yield from _atoms_with_polarity(f.arg, None if positive is None else not positive)
    elif isinstance(f, (ast.And, ast.Or)):
        for a in f.args:
            yield from _atoms_with_polarity(a, positive)
    elif isinstance(f, ast.Implies):
        yield from _atoms_with_polarity(f.left, None if positive is None else not positive)
        yield from _atoms_with_polarity(f.right, positive)
    elif isinstance(f, ast.Iff):
        yield from _atoms_with_polarity(f.left, None)
        yield from _atoms_with_polarity(f.right, None)
    elif isinstance(f, ast.Quantified):
        yield from _atoms_with_polarity(f.body, positive)
    elif isinstance(f, ast.Counting):
        for item in f.items:
            yield from _atoms_with_polarity(item, None)


def _folds_false(f, scc) -> bool:
    """Is ``f`` false once the atoms of ``scc`` are false (decided syntactically, conservatively)?"""
    if isinstance(f, ast.Atom):
        return f.pred in scc
    if isinstance(f, ast.Const):
        return not f.value
    if isinstance(f, ast.And):
        return any(_folds_false(a, scc) for a in f.args)
    if isinstance(f, ast.Or):
        return all(_folds_false(a, scc) for a in f.args)
    if isinstance(f, ast.Quantified):
        return _folds_false(f.body, scc)
    return False


def check_statements(statements: list, params: dict[str, int] | None, opaque: dict | None = None):
    """Run every static check; returns the checker (``.diags`` empty when the file is sound).

    ``opaque`` names what statements that failed to parse may declare (see ``Checker``)."""
    checker = Checker(statements, params, opaque)
    checker.collect()
    checker.check_decls()
    checker.check_recursion()
    return checker
