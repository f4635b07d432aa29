"""Ground a checked rules :class:`~constraintc.language.Program` over a set of nodes.

Every quantified template (rule, definition) is instantiated over the domains (the nodes, and
each subset domain: the node subsets up to its size bound, smallest first); given predicates stay
variables (a *schema*, one constraint for every graph on these nodes) or are substituted from a
graph (an *instance*). Derived predicates are computed, not guessed: non-recursive ones are
instantiated where used, recursive ones by bounded unrolling (level 0 false, level k from level
k-1, to the number of nodes: exact whenever a witness is a simple path, as for ancestors and
active trails in DAGs). The result is a hash-consed circuit, its Tseitin CNF (atoms first), and,
on request, sympy formulas.

>>> from constraintc.language import load_rules
>>> g = ground(load_rules("transitivity"), 3)
>>> g.atoms[:2], len(g.query_atoms), len(g.given_atoms)
(['causes(n0,n1)', 'causes(n0,n2)'], 6, 6)
>>> g.cnf.num_atoms
12
"""

from __future__ import annotations

import itertools
import math
import time
import unicodedata
from dataclasses import dataclass, field
from functools import cached_property

from constraintc.budget import Budget, format_count
from constraintc.errors import BudgetExceeded, ConstraintcError, OptionError, SourcePosition, Unsatisfiable
from constraintc.language import ast
from constraintc.language.ast import Program
from constraintc.logic.atoms import format_atom
from constraintc.logic.boolean import FALSE, TRUE, BoolBuilder, to_sympy, tseitin
from constraintc.logic.cnf import CNF

NODE = "node"


class GroundingBudget(BudgetExceeded):
    """Grounding needed more instantiation steps than ``max_steps`` allowed (a cheap probe's cap)."""


# Estimated bytes held per object of a grounding (CPython 3.11, 64-bit), fitted to the peak
# resident memory of the library's constraints grounded at 6-60 nodes (within about 15%).
BYTES_PER_NAME = 100
BYTES_PER_TUPLE = 120  # an argument tuple kept for a predicate whose atoms exist
BYTES_PER_ATOM = 700
BYTES_PER_GATE = 250
BYTES_PER_GATE_CHILD = 40
BYTES_PER_CLAUSE = 350

# Budgets are checked every this many grounding steps (a few milliseconds of work).
CHECK_EVERY_STEPS = 16_384


@dataclass(frozen=True)
class Atom:
    """One ground input atom: ``str(atom) == "dsep(a,b,{c,d})"`` (set members sorted)."""

    pred: str
    args: tuple
    kind: str  # "query" | "given"

    def __str__(self) -> str:
        return format_atom(self.pred, self.args)


@dataclass
class Grounding:
    """A ground constraint: atoms (query atoms first, then the given atoms of a schema), its
    circuit, its CNF, and sympy views of the whole formula and of each rule."""

    program: Program
    nodes: list[str]
    graph: list[tuple[str, str]] | None
    atoms: list[str]
    atom_info: list[Atom]
    cnf: CNF
    builder: BoolBuilder = field(repr=False)
    atom_lits: list[int] = field(repr=False)
    rule_lits: dict[str, int] = field(repr=False)
    stats: dict = field(default_factory=dict)

    @property
    def query_atoms(self) -> list[str]:
        return [str(a) for a in self.atom_info if a.kind == "query"]

    @property
    def given_atoms(self) -> list[str]:
        return [str(a) for a in self.atom_info if a.kind == "given"]

    @cached_property
    def _index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.atoms)}

    def index(self, name: str) -> int:
        """0-based position of an atom (``cnf`` variable ``index + 1``); spaces are ignored."""
        key = name.replace(" ", "")
        try:
            return self._index[key]
        except KeyError:
            raise KeyError(f"no atom {name!r} in this grounding") from None

    def evidence(self, graph: list[tuple[str, str]]) -> dict[str, bool]:
        """The value of every given atom of this schema for one graph (to clamp them to 0/1).

        >>> from constraintc.language import load_rules
        >>> g = ground(load_rules("transitivity"), ["a", "b"])
        >>> g.evidence([("a", "b")])
        {'edge(a,b)': True, 'edge(b,a)': False}
        """
        pred = graph_predicate(self.program)
        graph = normalize_graph(graph)
        edges = set()
        for edge in graph:
            if not all(x in self.nodes for x in edge):
                raise OptionError("graph", edge, f"edges between the nodes ({_shown(self.nodes)})")
            edges.add(edge)
        out = {}
        for atom in self.atom_info:
            if atom.kind == "given":
                if atom.pred != pred.name:
                    raise ConstraintcError(f"error: given {atom.pred} is not filled by a graph")
                out[str(atom)] = tuple(atom.args) in edges
        missing = {e for e in edges if format_atom(pred.name, e) not in out}
        if missing:
            shown = format_atom(pred.name, sorted(missing)[0])
            raise OptionError("graph", shown, f"atoms of given {pred.name} (its 'where' excludes this one)")
        check_acyclic(self.program, graph, pred)
        return out

    @cached_property
    def _sympy_memo(self):
        return {}, {}

    def _to_sympy(self, lit: int):
        symbols, memo = self._sympy_memo
        return to_sympy(self.builder, lit, symbols, memo)

    @cached_property
    def rule_formulas(self) -> dict:
        """rule name -> sympy formula over the atoms (built on first use: sympy is slow)."""
        return {name: self._to_sympy(lit) for name, lit in self.rule_lits.items()}

    @cached_property
    def formula(self):
        """The whole constraint as one sympy formula (the conjunction of the rules)."""
        from constraintc.logic.boolean import conjunction

        return conjunction(self.rule_formulas.values())


def node_names(nodes: int | list[str] | tuple[str, ...]) -> list[str]:
    """``4`` -> ``["n0", "n1", "n2", "n3"]``; a list of names is checked and NFC-normalised.

    Names that look alike are refused: a name with an invisible or control character (a
    zero-width space, a direction mark), and two names that differ only in compatibility forms
    (``a`` and the full-width ``ａ``), would be different atoms that nobody can tell apart.

    >>> node_names(["caf\u0065\u0301", "b"])   # e + combining acute: stored as one character
    ['café', 'b']
    """
    if isinstance(nodes, int) and not isinstance(nodes, bool):
        if nodes < 1:
            raise OptionError("nodes", nodes, "a number of nodes >= 1 or a list of names")
        return [f"n{i}" for i in range(nodes)]
    if isinstance(nodes, (str, bytes)):
        raise OptionError("nodes", nodes, "a number of nodes or a list of names (not one string)")
    names = [node_name(x) for x in nodes]
    if not names:
        raise OptionError("nodes", [], "at least one node")
    distinct: set[str] = set()
    skeletons: dict[str, str] = {}
    for name in names:
        if name in distinct:
            raise OptionError("nodes", name, "distinct node names (this one appears twice)")
        other = skeletons.setdefault(_skeleton(name), name)
        if other != name:
            raise OptionError("nodes", name, f"names that do not look alike: this one looks like "
                                             f"{other!r}")
        distinct.add(name)
    return names


# these would not survive a round trip through atom names ("edge(a,b)") or --graph ("a->b; c d #")
_FORBIDDEN_IN_NAMES = " ,(){}#;"


def node_name(value) -> str:
    """One node name, NFC-normalised; a clear error for names nobody could read back."""
    name = unicodedata.normalize("NFC", str(value))
    if not name:
        raise OptionError("nodes", value, "non-empty node names")
    if "->" in name:
        raise OptionError("nodes", name, "node names without '->' (it separates the nodes of an "
                                         "edge)")
    for ch in name:
        if ch in _FORBIDDEN_IN_NAMES or unicodedata.category(ch) in _INVISIBLE:
            what = f"U+{ord(ch):04X} {unicodedata.name(ch, 'a control character')}"
            raise OptionError("nodes", name, f"node names of visible characters, without spaces, "
                                             f"',', '(', ')', '{{', '}}', '#' or ';' "
                                             f"(this one contains {what})")
    return name


# control, format (zero-width, direction marks), separators, unassigned, private use, surrogates
_INVISIBLE = {"Cc", "Cf", "Zs", "Zl", "Zp", "Cn", "Co", "Cs"}


def _skeleton(name: str) -> str:
    """What a name looks like: its compatibility form (full-width and ligature characters
    become plain ones); two names with one skeleton are refused as look-alikes."""
    return unicodedata.normalize("NFKC", name)


def normalize_graph(graph) -> list[tuple[str, str]]:
    """Edges as pairs of NFC-normalised node names; a clear error for anything else."""
    if isinstance(graph, (str, bytes)):
        raise OptionError("graph", graph, "a list of (source, target) edges (the CLI parses "
                                          "'a->b, b->c')")
    edges = []
    for edge in graph:
        if isinstance(edge, (str, bytes)) or len(edge) != 2:
            raise OptionError("graph", edge, "edges as (source, target) pairs")
        edges.append((node_name(edge[0]), node_name(edge[1])))
    return edges


def find_cycle(edges) -> list[str] | None:
    """A directed cycle of ``edges`` as ``[a, b, ..., a]``, or None for a DAG (iterative DFS).

    >>> find_cycle([("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")])
    ['a', 'b', 'c', 'a']
    >>> find_cycle([("a", "b"), ("a", "c"), ("b", "c")]) is None
    True
    """
    succ: dict[str, list[str]] = {}
    for u, v in edges:
        succ.setdefault(u, []).append(v)
        succ.setdefault(v, [])
    state = dict.fromkeys(succ, 0)  # 0 new, 1 on the current path, 2 done
    for root in succ:
        if state[root]:
            continue
        path = [root]
        state[root] = 1
        stack = [iter(succ[root])]
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                stack.pop()
                state[path.pop()] = 2
            elif state[nxt] == 1:
                return path[path.index(nxt):] + [nxt]
            elif state[nxt] == 0:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(succ[nxt]))
    return None


def cycle_text(cycle: list[str]) -> str:
    return " -> ".join(cycle)


def check_acyclic(program: Program, edges, pred: ast.PredDecl | None = None) -> None:
    """Refuse a graph with a cycle when the rules declare its predicate ``acyclic``."""
    pred = pred or graph_predicate(program)
    if not getattr(pred, "acyclic", False):
        return
    cycle = find_cycle(edges)
    if cycle is not None:
        pos = SourcePosition(program.filename, pred.span.line, pred.span.column)
        raise OptionError("graph", cycle_text(cycle),
                          f"a graph without cycles: {pos} declares 'given acyclic {pred.name}', "
                          f"and this graph has the cycle {cycle_text(cycle)}")


def fold_rule(b: BoolBuilder, conj: bool):
    """How a conjunction (``conj``) or disjunction of literals folds as they are computed:
    ``(stop, neutral, build)``. A literal equal to ``stop`` decides the whole (the rest is never
    computed), a ``neutral`` one is dropped, ``build`` joins what remains. The instantiation
    loops below apply it inline: they are the hot loops of grounding, and a generator or a call
    per literal costs them 10-50% more time."""
    return (FALSE, TRUE, b.and_) if conj else (TRUE, FALSE, b.or_)


class _Grounder:
    def __init__(self, program: Program, names: list[str], budget: Budget | None = None,
                 max_steps: int | None = None):
        self.program = program
        self.names = names
        self.n = len(names)
        self.b = BoolBuilder()
        self.budget = budget if budget is not None else Budget(max_memory=None)
        self.max_steps = max_steps
        self.steps = 0
        self.next_check = CHECK_EVERY_STEPS if max_steps is None else min(CHECK_EVERY_STEPS, max_steps + 1)
        self.kept_tuples = 0
        self.atoms_made = 0
        self.phase = "grounding"
        self.domain_values: dict[str, list[int]] = {NODE: list(range(self.n))}
        self.domain_bound: dict[str, int] = {}
        for dom, size in program.domain_sizes.items():
            bound = min(size, self.n)
            self.domain_bound[dom] = size
            values = []
            for k in range(bound + 1):
                for combo in itertools.combinations(range(self.n), k):
                    mask = 0
                    for i in combo:
                        mask |= 1 << i
                    values.append(mask)
                    self.spend(1)
            self.kept_tuples += len(values)
            self.domain_values[dom] = values
        self.tables: dict[str, dict[tuple, int]] = {}
        self.lazy: set[str] = set()
        self.compiled_bodies: dict[str, tuple] = {}
        self.existing: dict[str, list[tuple]] = {}
        self.existing_sets: dict[str, set[tuple]] = {}

    # ------------------------------------------------------------ budget
    def spend(self, k: int) -> None:
        self.steps += k
        if self.steps >= self.next_check:
            self.checkpoint()

    def checkpoint(self) -> None:
        """Check the budget (and report progress); called every ``CHECK_EVERY_STEPS`` steps."""
        self.next_check = self.steps + CHECK_EVERY_STEPS
        if self.max_steps is not None:
            if self.steps > self.max_steps:
                raise GroundingBudget(f"grounding needs more than {self.max_steps} steps")
            self.next_check = min(self.next_check, self.max_steps + 1)
        detail = self.describe()
        self.budget.check_time(self.phase, detail)
        self.budget.check_memory(self.memory_estimate(), self.phase, detail)
        self.budget.report(self.phase, detail)

    def memory_estimate(self) -> int:
        return (self.n * BYTES_PER_NAME + self.kept_tuples * BYTES_PER_TUPLE
                + self.atoms_made * BYTES_PER_ATOM + len(self.b) * BYTES_PER_GATE
                + self.b.edges * BYTES_PER_GATE_CHILD)

    def describe(self) -> str:
        return (f"{format_count(self.atoms_made)} atoms, {format_count(len(self.b))} gates, "
                f"{format_count(self.steps)} steps")

    # ------------------------------------------------------------ values
    def value_name(self, type_: str, value: int):
        if type_ == NODE:
            return self.names[value]
        return frozenset(self.names[i] for i in range(self.n) if value >> i & 1)

    def existing_tuples(self, pred: ast.PredDecl) -> list[tuple]:
        """Argument tuples for which ``pred``'s atoms exist (its ``where`` holds), in order."""
        if pred.name in self.existing:
            return self.existing[pred.name]
        doms = [self.domain_values[a.type] for a in pred.args]
        test = None
        if pred.where is not None:
            scope = {a.name: (i, a.type) for i, a in enumerate(pred.args)}
            test, width = self.compile_top(pred.where, scope)
            pad = [None] * (width - len(pred.args))
        # in slices, filtered as they come: the budget sees the work before the memory is taken
        tuples: list[tuple] = []
        product = itertools.product(*doms)
        while chunk := list(itertools.islice(product, 4096)):
            if test is not None:
                chunk = [t for t in chunk if test(list(t) + pad) == TRUE]
            tuples += chunk
            self.kept_tuples += len(chunk)
            self.spend(4096)
        self.existing[pred.name] = tuples
        return tuples

    # ------------------------------------------------------------ compile AST to closures
    def compile_top(self, formula, scope: dict[str, tuple[int, str]]):
        """A closure ``env -> literal`` and the environment width it needs."""
        self._width = len(scope)
        fn = self.comp(formula, dict(scope), len(scope))
        return fn, self._width

    def comp_term(self, term, scope):
        """``(fn, type)``: ``fn(env)`` is the term's value, or None when it leaves its domain."""
        if isinstance(term, ast.Var):
            i, type_ = scope[term.name]
            return (lambda env: env[i]), type_
        if isinstance(term, ast.EmptySet):
            # an atom whose set argument is outside its domain is missing from the atom tables
            return (lambda env: 0), None
        set_fn, type_ = self.comp_term(term.set, scope)
        j, _ = scope[term.elem.name]
        bound = self.domain_bound.get(type_, self.n)

        def add(env):
            s = set_fn(env)
            if s is None:
                return None
            s |= 1 << env[j]
            return s if s.bit_count() <= bound else None

        return add, type_

    def comp(self, f, scope, depth: int):
        b = self.b
        if isinstance(f, ast.Const):
            value = TRUE if f.value else FALSE
            return lambda env: value
        if isinstance(f, ast.Atom):
            return self.comp_atom(f, scope)
        if isinstance(f, ast.Compare):
            left, _ = self.comp_term(f.left, scope)
            right, _ = self.comp_term(f.right, scope)
            op = f.op
            if op == "=":
                return lambda env: TRUE if (x := left(env)) is not None and x == right(env) else FALSE
            if op == "!=":
                return lambda env: TRUE if (x := left(env)) is not None and (y := right(env)) is not None \
                    and x != y else FALSE
            if op == "in":
                return lambda env: TRUE if (s := right(env)) is not None and s >> left(env) & 1 else FALSE
            return lambda env: TRUE if (s := right(env)) is not None and not s >> left(env) & 1 else FALSE
        if isinstance(f, ast.Not):
            inner = self.comp(f.arg, scope, depth)
            return lambda env: -inner(env)
        if isinstance(f, (ast.And, ast.Or)):
            parts = [self.comp(a, scope, depth) for a in f.args]
            stop, neutral, build = fold_rule(b, isinstance(f, ast.And))

            def junction(env):
                out = []
                for p in parts:
                    lit = p(env)
                    if lit == stop:
                        return stop
                    if lit != neutral:
                        out.append(lit)
                return build(out)

            return junction
        if isinstance(f, ast.Implies):
            left = self.comp(f.left, scope, depth)
            right = self.comp(f.right, scope, depth)

            def imp(env):
                a = left(env)
                if a == FALSE:
                    return TRUE
                return b.or_((-a, right(env)))

            return imp
        if isinstance(f, ast.Iff):
            left = self.comp(f.left, scope, depth)
            right = self.comp(f.right, scope, depth)
            return lambda env: b.iff(left(env), right(env))
        if isinstance(f, ast.Quantified) and len(f.binders) == 1:
            guarded = self.comp_guarded(f, scope, depth)
            if guarded is not None:
                return guarded
        if isinstance(f, (ast.Quantified, ast.Counting)):
            inner = dict(scope)
            idxs = []
            doms = []
            for k, binder in enumerate(f.binders):
                inner[binder.name] = (depth + k, binder.type)
                idxs.append(depth + k)
                doms.append(self.domain_values[binder.type])
            new_depth = depth + len(f.binders)
            self._width = max(self._width, new_depth)
            if isinstance(f, ast.Quantified):
                return self.comp_quant(f.kind == "forall", idxs, doms,
                                       self.comp(f.body, inner, new_depth))
            return self.comp_counting(f, idxs, doms, [self.comp(i, inner, new_depth) for i in f.items])
        raise TypeError(f"cannot ground {f!r}")  # pragma: no cover

    def comp_guarded(self, f: ast.Quantified, scope, depth: int):
        """``exists W: g(.., W, ..) & rest`` and ``forall W: g(.., W, ..) -> rest`` where ``g`` is a
        given or query atom: loop only over the W whose ``g`` atom is not false (an index on
        ``g``'s table). On an instance most edges are false, so this is most of the speed."""
        binder = f.binders[0]
        body = f.body
        if f.kind == "exists" and isinstance(body, ast.And) and isinstance(body.args[0], ast.Atom):
            guard = body.args[0]
            rest = body.args[1] if len(body.args) == 2 else ast.And(body.args[1:], body.span)
        elif f.kind == "forall" and isinstance(body, ast.Implies) and isinstance(body.left, ast.Atom):
            guard, rest = body.left, body.right
        elif (f.kind == "forall" and isinstance(body, ast.Implies) and isinstance(body.left, ast.And)
              and isinstance(body.left.args[0], ast.Atom)):
            guard = body.left.args[0]
            left = body.left.args[1] if len(body.left.args) == 2 else ast.And(body.left.args[1:], body.span)
            rest = ast.Implies(left, body.right, body.span)
        else:
            return None
        pred = self.program.preds[guard.pred]
        if pred.kind not in ("given", "query") or not all(isinstance(t, ast.Var) for t in guard.args):
            return None
        names = [t.name for t in guard.args]
        if names.count(binder.name) != 1 or any(n not in scope for n in names if n != binder.name):
            return None
        w_pos = names.index(binder.name)
        others = [(k, scope[n][0]) for k, n in enumerate(names) if n != binder.name]
        slot = depth
        inner = dict(scope)
        inner[binder.name] = (slot, binder.type)
        self._width = max(self._width, depth + 1)
        rest_fn = self.comp(rest, inner, depth + 1)
        b, tables, grounder = self.b, self.tables, self
        exists = f.kind == "exists"
        index: dict | None = None
        slots = [s for _, s in others]
        single = len(slots) == 1
        s0 = slots[0] if slots else None

        def build_index() -> dict:
            # built on first use: given and query tables are complete once atoms exist
            idx: dict = {}
            grounder.spend(len(tables[guard.pred]))
            for key, lit in tables[guard.pred].items():
                if lit != FALSE:
                    idx.setdefault(tuple(key[k] for k, _ in others), []).append((key[w_pos], lit))
            return idx

        # exists: OR over W of (g & rest); forall: AND over W of (~g | rest) = ~(g & ~rest)
        stop, neutral, build = fold_rule(b, not exists)
        sign = 1 if exists else -1

        def quant(env):
            nonlocal index
            if index is None:
                index = build_index()
            entries = index.get((env[s0],) if single else tuple(env[s] for s in slots), ())
            grounder.spend(len(entries))
            out = []
            for value, g in entries:
                env[slot] = value
                lit = sign * b.and_((g, sign * rest_fn(env)))
                if lit == stop:
                    return stop
                if lit != neutral:
                    out.append(lit)
            return build(out)

        return quant

    def bindings(self, idxs, doms):
        if len(idxs) == 1:
            i = idxs[0]
            dom = doms[0]

            def gen(env):
                self.spend(len(dom))
                for v in dom:
                    env[i] = v
                    yield

            return gen

        def gen_many(env):
            for combo in itertools.product(*doms):
                self.spend(1)
                for i, v in zip(idxs, combo):
                    env[i] = v
                yield

        return gen_many

    def comp_quant(self, forall: bool, idxs, doms, body):
        stop, neutral, build = fold_rule(self.b, forall)
        grounder = self
        if len(idxs) == 1:
            i, dom = idxs[0], doms[0]
            size = len(dom)

            def quant(env):
                grounder.spend(size)
                out = []
                for v in dom:
                    env[i] = v
                    lit = body(env)
                    if lit == stop:
                        return stop
                    if lit != neutral:
                        out.append(lit)
                return build(out)

            return quant
        total = 1
        for d in doms:
            total *= len(d)

        def quant_many(env):
            grounder.spend(total)
            out = []
            for combo in itertools.product(*doms):
                for i, v in zip(idxs, combo):
                    env[i] = v
                lit = body(env)
                if lit == stop:
                    return stop
                if lit != neutral:
                    out.append(lit)
            return build(out)

        return quant_many

    def comp_counting(self, f: ast.Counting, idxs, doms, items):
        b = self.b
        k = f.count if isinstance(f.count, int) else self.program.params[f.count]
        kind = f.kind
        gen = self.bindings(idxs, doms) if idxs else None

        def count(env):
            lits = []
            if gen is None:
                lits = [item(env) for item in items]
            else:
                body = items[0]
                for _ in gen(env):
                    lits.append(body(env))
            if k > len(lits):  # more than there are: no counter needed (and k may be huge)
                return FALSE if kind != "atmost" else TRUE
            s = b.counts(lits, k + 1)
            self.spend(len(lits) * (k + 1))
            if kind == "atleast":
                return s[k]
            if kind == "atmost":
                return -s[k + 1]
            return b.and_((s[k], -s[k + 1]))

        return count

    def comp_atom(self, f: ast.Atom, scope):
        pred = self.program.preds[f.pred]
        tables = self.tables
        name = f.pred
        if all(isinstance(t, ast.Var) for t in f.args):
            idxs = tuple(scope[t.name][0] for t in f.args)
            if len(idxs) == 1:
                i0 = idxs[0]
                key_fn = lambda env: (env[i0],)  # noqa: E731
            elif len(idxs) == 2:
                i0, i1 = idxs
                key_fn = lambda env: (env[i0], env[i1])  # noqa: E731
            elif len(idxs) == 3:
                i0, i1, i2 = idxs
                key_fn = lambda env: (env[i0], env[i1], env[i2])  # noqa: E731
            else:
                key_fn = lambda env: tuple(env[i] for i in idxs)  # noqa: E731
        else:
            fns = [self.comp_term(t, scope)[0] for t in f.args]

            def key_fn(env):
                key = tuple(fn(env) for fn in fns)
                return None if None in key else key

        if pred.kind == "derived" and name in self.lazy:
            get = self.lazy_get

            def lazy_atom(env):
                key = key_fn(env)
                return FALSE if key is None else get(name, key)

            return lazy_atom

        def atom(env):
            key = key_fn(env)
            return FALSE if key is None else tables[name].get(key, FALSE)

        return atom

    # ------------------------------------------------------------ derived predicates
    def body_fn(self, pred: ast.PredDecl):
        if pred.name not in self.compiled_bodies:
            scope = {a.name: (i, a.type) for i, a in enumerate(pred.args)}
            fn, width = self.compile_top(pred.body, scope)
            self.compiled_bodies[pred.name] = (fn, width - len(pred.args))
        return self.compiled_bodies[pred.name]

    def lazy_get(self, name: str, key: tuple) -> int:
        table = self.tables[name]
        lit = table.get(key)
        if lit is None:
            pred = self.program.preds[name]
            if pred.where is not None and key not in self.existing_set(pred):
                lit = FALSE
            else:
                fn, pad = self.body_fn(pred)
                lit = fn(list(key) + [None] * pad)
            table[key] = lit
        return lit

    def existing_set(self, pred) -> set:
        cached = self.existing_sets.get(pred.name)
        if cached is None:
            cached = self.existing_sets[pred.name] = set(self.existing_tuples(pred))
        return cached

    def ground_derived(self, depth: int | None = None) -> None:
        components = self.program.derived_components()
        for component in components:
            if not component.recursive:
                (name,) = component.names
                self.lazy.add(name)
                self.tables[name] = {}
        for component in components:
            if not component.recursive:
                continue
            scc_depth = depth
            if scc_depth is None:
                # the node count, unless a definition of the component asks for more or less
                given = [self.program.preds[n].unroll for n in component.names
                         if self.program.preds[n].unroll is not None]
                values = [v if isinstance(v, int) else self.program.params[v] for v in given]
                scc_depth = max(values) if values else self.n
            self.unroll(list(component.names), scc_depth)

    def unroll(self, names: list[str], depth: int) -> None:
        """Bounded unrolling of one recursive component: level k from level k-1, level 0 false;
        stops early at a fixed point (always reached on an instance whose evidence is constant)."""
        preds = [self.program.preds[n] for n in names]
        for name in names:
            self.tables[name] = {}
        plan = [(p.name, self.existing_tuples(p), *self.body_fn(p)) for p in preds]
        for _level in range(depth):
            new = {}
            for name, tuples, fn, pad in plan:
                padding = [None] * pad
                self.spend(len(tuples))
                table = {}
                for key in tuples:
                    lit = fn(list(key) + padding)
                    if lit != FALSE:
                        table[key] = lit
                new[name] = table
            if all(new[n] == self.tables[n] for n in names):
                break
            for n in names:
                self.tables[n] = new[n]

    # ------------------------------------------------------------ atoms, rules
    def make_atoms(self, evidence: dict[str, dict[tuple, bool]] | None):
        atoms: list[Atom] = []
        lits: list[int] = []
        for kind in ("query", "given"):
            for pred in self.program.preds.values():
                if pred.kind != kind:
                    continue
                table = {}
                known = None if evidence is None else evidence.get(pred.name)
                for key in self.existing_tuples(pred):
                    args = tuple(self.value_name(a.type, v) for a, v in zip(pred.args, key))
                    if known is not None:
                        table[key] = TRUE if known.get(key, False) else FALSE
                        continue
                    atom = Atom(pred.name, args, kind)
                    lit = self.b.var(str(atom))
                    atoms.append(atom)
                    lits.append(lit)
                    table[key] = lit
                    self.atoms_made += 1
                    self.spend(1)
                self.tables[pred.name] = table
        return atoms, lits

    def ground_rules(self) -> dict[str, int]:
        out = {}
        for name, rule in self.program.rules.items():
            fn, width = self.compile_top(rule.formula, {})
            out[name] = fn([None] * width)
        return out


def graph_predicate(program: Program) -> ast.PredDecl:
    """The given predicate a graph fills: the one given predicate over (node, node)."""
    candidates = [p for p in program.givens.values() if p.arg_types == (NODE, NODE)]
    if len(candidates) != 1:
        found = ", ".join(p.name for p in candidates) or "none"
        raise ConstraintcError(
            f"error: {program.filename}: a graph fills the one given predicate over (node, node), "
            f"but this file has {len(candidates)} ({found}); pass evidence= instead")
    return candidates[0]


def _shown(names: list[str], limit: int = 12) -> str:
    if len(names) <= limit:
        return ", ".join(names)
    return ", ".join(names[:limit]) + f", ... ({len(names)} nodes)"


def _evidence_from_graph(program: Program, names: list[str], graph) -> dict[str, dict[tuple, bool]]:
    pred = graph_predicate(program)
    index = {n: i for i, n in enumerate(names)}
    skeletons = {_skeleton(n): n for n in names}
    table: dict[tuple, bool] = {}
    for u, v in graph:
        for x in (u, v):
            if x not in index:
                alike = skeletons.get(_skeleton(x))
                hint = f"; {x!r} looks like the node {alike!r} but is not it" if alike else ""
                raise OptionError("graph", f"{u}->{v}", f"edges between the nodes "
                                                        f"({_shown(names)}){hint}")
        table[(index[u], index[v])] = True
    return {pred.name: table}


def _check_evidence(g: _Grounder, evidence: dict[str, dict[tuple, bool]]) -> None:
    for name, table in evidence.items():
        pred = g.program.preds[name]
        exists = set(g.existing_tuples(pred))
        for key, value in table.items():
            if value and key not in exists:
                shown = format_atom(name, tuple(g.value_name(a.type, v) for a, v in zip(pred.args, key)))
                raise OptionError("graph", shown, f"atoms of given {name} (its 'where' excludes this one)")


def _domain_size(program: Program, type_: str, n: int) -> int:
    if type_ == NODE:
        return n
    k = min(program.domain_sizes.get(type_, 0), n)
    if k > 64:  # beyond anything that could be grounded: a lower bound is enough
        return math.comb(n, 64)
    return sum(math.comb(n, i) for i in range(k + 1))


def _set_partitions(k: int):
    """Every way to make ``k`` positions equal or distinct: block labels, first use in order."""
    def extend(prefix, blocks):
        if len(prefix) == k:
            yield tuple(prefix)
            return
        for b in range(blocks + 1):
            yield from extend(prefix + [b], max(blocks, b + 1))
    yield from extend([], 0)


def _atoms_at_least(program: Program, pred: ast.PredDecl, n: int) -> int:
    """How many atoms ``pred`` has over ``n`` nodes: exact for node arguments (its ``where``
    only compares them, so it depends only on which arguments are equal), 0 (a lower bound)
    for set arguments or more than 6 arguments."""
    if any(a.type != NODE for a in pred.args) or len(pred.args) > 6:
        return 0
    if pred.where is None:
        return n ** len(pred.args)
    probe = _Grounder(program, [f"n{i}" for i in range(len(pred.args))], budget=None)
    scope = {a.name: (i, a.type) for i, a in enumerate(pred.args)}
    test, width = probe.compile_top(pred.where, scope)
    total = 0
    for labels in _set_partitions(len(pred.args)):
        blocks = max(labels, default=-1) + 1
        if blocks <= n and test(list(labels) + [None] * (width - len(labels))) == TRUE:
            total += math.perm(n, blocks)
    return total


def check_grounding_budget(program: Program, n: int, budget: Budget, instance: bool = False) -> None:
    """Refuse at once a grounding over ``n`` nodes that cannot fit ``budget``: from exact counts
    of the atoms and of the argument tuples grounding must enumerate (lower bounds of its work
    and of its memory), before any of it is done."""
    preds = [p for p in program.preds.values() if p.kind == "query" or (p.kind == "given" and not instance)]
    enumerated = sum(_domain_size(program, d, n) for d in program.domain_sizes)
    atoms: dict[str, int] = {}
    for pred in program.preds.values():
        if pred.kind in ("query", "given"):
            size = 1
            for a in pred.args:
                size *= _domain_size(program, a.type, n)
            enumerated += size
    for pred in preds:
        atoms[pred.name] = _atoms_at_least(program, pred, n)
    where = f"grounding {program.filename} over {format_count(n)} nodes"
    budget.refuse_impossible(enumerated, where, f"enumerate at least {format_count(enumerated)} "
                                                f"argument tuples")
    total = sum(atoms.values())
    memory = n * BYTES_PER_NAME + total * BYTES_PER_ATOM
    shown = ", ".join(f"{name} {format_count(c)}" for name, c in atoms.items() if c)
    budget.check_memory(memory, where, f"at least {format_count(total)} atoms: {shown}" if total
                        else f"{format_count(n)} node names")


def ground(program: Program, nodes: int | list[str], graph: list[tuple[str, str]] | None = None,
           check_rules: bool = True, budget: Budget | None = None) -> Grounding:
    """Ground ``program`` over ``nodes`` (``4`` means ``n0..n3``).

    With ``graph=None`` the given predicates stay variables (a schema constraint: atoms are the
    query atoms then the given atoms); with a graph (a list of ``(u, v)`` edges) the one given
    predicate over (node, node) is substituted (an instance constraint: only query atoms).
    Raises :class:`~constraintc.errors.Unsatisfiable` when a rule grounds to false, and
    :class:`~constraintc.errors.BudgetExceeded` when ``budget`` (default: :class:`Budget()`,
    the default memory limit and no time limit) runs out or cannot be met: that is checked
    before grounding starts, and every few milliseconds while it runs.

    >>> from constraintc.language import load_rules
    >>> g = ground(load_rules("transitivity"), ["a", "b", "c"], graph=[("a", "b"), ("b", "c")])
    >>> g.atoms[:3], g.cnf.num_atoms
    (['causes(a,b)', 'causes(a,c)', 'causes(b,a)'], 6)
    """
    start = time.perf_counter()
    budget = budget if budget is not None else Budget()
    n = nodes if isinstance(nodes, int) and not isinstance(nodes, bool) else None
    if n is not None and n >= 1:
        check_grounding_budget(program, n, budget, instance=graph is not None)
    names = node_names(nodes)
    if n is None:
        check_grounding_budget(program, len(names), budget, instance=graph is not None)
    budget.check_time("starting to ground")  # what came before (loading, imports) counts too
    g = _Grounder(program, names, budget=budget)
    evidence = None
    if graph is not None:
        graph = normalize_graph(graph)
        evidence = _evidence_from_graph(program, names, graph)
        _check_evidence(g, evidence)
        check_acyclic(program, graph)  # after the atoms: a self-loop its 'where' excludes says so
    atoms, atom_lits = g.make_atoms(evidence)
    g.ground_derived()
    rule_lits = g.ground_rules()
    for name, lit in rule_lits.items():
        if lit == FALSE and check_rules:
            rule = program.rules[name]
            pos = SourcePosition(program.filename, rule.span.line, rule.span.column)
            where = "this graph" if graph is not None else f"{len(names)} nodes"
            cycle = find_cycle(graph) if graph is not None else None
            why = "" if cycle is None else f" (the graph has the cycle {cycle_text(cycle)})"
            raise Unsatisfiable(f"{pos}: error: rule {name} is false on {where}{why}: the "
                                f"constraint has no model")
    grounded = time.perf_counter()
    g.checkpoint()
    g.phase = "encoding the grounding as CNF"
    held = g.memory_estimate()

    def check(num_clauses: int) -> None:
        detail = f"{format_count(num_clauses)} clauses so far"
        budget.check_clauses(num_clauses, g.phase, detail)
        budget.check_time(g.phase, detail)
        budget.check_memory(held + num_clauses * BYTES_PER_CLAUSE, g.phase, detail)
        budget.report(g.phase, detail)

    num_vars, clauses = tseitin(g.b, atom_lits, list(rule_lits.values()), check=check)
    budget.check_clauses(len(clauses), g.phase)
    names_map = {i + 1: str(a) for i, a in enumerate(atoms)}
    comments = [f"constraintc grounding of {program.filename}",
                f"nodes {','.join(names)}",
                "schema (given atoms are variables)" if graph is None else
                "graph " + ", ".join(f"{u}->{v}" for u, v in graph)]
    if program.params:
        comments.append("params " + ", ".join(f"{k}={v}" for k, v in program.params.items()))
    cnf = CNF(num_vars=num_vars, clauses=clauses, num_atoms=len(atoms), names=names_map,
              comments=comments)
    done = time.perf_counter()
    stats = {"atoms": len(atoms), "variables": num_vars, "clauses": len(clauses),
             "circuit_nodes": len(g.b), "ground_seconds": grounded - start,
             "cnf_seconds": done - grounded, "seconds": done - start,
             "memory_estimate": held + len(clauses) * BYTES_PER_CLAUSE}
    return Grounding(program=program, nodes=names, graph=None if graph is None else list(graph),
                     atoms=[str(a) for a in atoms], atom_info=atoms, cnf=cnf, builder=g.b,
                     atom_lits=atom_lits, rule_lits=rule_lits, stats=stats)


def rule_constants(program: Program, nodes: int, budget: int | None = None) -> dict[str, bool | None]:
    """Which rules ground to a constant on a schema over ``nodes`` (None: not constant).
    Raises :class:`GroundingBudget` if grounding takes more than ``budget`` steps."""
    g = _Grounder(program, node_names(nodes), max_steps=budget)
    g.make_atoms(None)
    g.ground_derived()
    out = {}
    for name, lit in g.ground_rules().items():
        out[name] = True if lit == TRUE else False if lit == FALSE else None
    return out
