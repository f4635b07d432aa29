"""Instantiation: every quantified template of a program (rule, definition) over the domains,
as a hash-consed circuit of literals; derived predicates computed, recursive ones by bounded
unrolling (level 0 false, level k from level k-1, to a fixed point or the depth bound).

The grounder compiles each formula once into a closure over an environment of bound values
and calls it for every binding; :func:`fold_rule` is how every conjunction, disjunction and
quantifier folds its instances. :mod:`constraintc.logic.grounding` drives it.
"""

from __future__ import annotations

import itertools

from constraintc.budget import Budget, format_count
from constraintc.errors import BudgetExceeded, OptionError
from constraintc.language import ast
from constraintc.language.ast import Program
from constraintc.logic.atoms import Atom, format_atom
from constraintc.logic.boolean import FALSE, TRUE, BoolBuilder
from constraintc.logic.evidence import NODE

# Estimated bytes held per object of a grounding (CPython 3.11, 64-bit), fitted to the peak
# resident memory of the library's constraints grounded at 6-60 nodes (within about 15%).
BYTES_PER_NAME = 100
BYTES_PER_TUPLE = 120  # an argument tuple kept for a predicate whose atoms exist
BYTES_PER_ATOM = 700
BYTES_PER_GATE = 250
BYTES_PER_GATE_CHILD = 40
BYTES_PER_CLAUSE = 350


class GroundingBudget(BudgetExceeded):
    """Grounding needed more instantiation steps than ``max_steps`` allowed (a cheap probe's cap)."""


# Budgets are checked every this many grounding steps (a few milliseconds of work).
CHECK_EVERY_STEPS = 16_384


def fold_rule(b: BoolBuilder, conj: bool):
    """How a conjunction (``conj``) or disjunction of literals folds as they are computed:
    ``(stop, neutral, build)``. A literal equal to ``stop`` decides the whole (the rest is never
    computed), a ``neutral`` one is dropped, ``build`` joins what remains. The instantiation
    loops below apply it inline: they are the hot loops of grounding, and a generator or a call
    per literal costs them 10-50% more time."""
    return (FALSE, TRUE, b.and_) if conj else (TRUE, FALSE, b.or_)


class Grounder:
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


def check_evidence(g: Grounder, evidence: dict[str, dict[tuple, bool]]) -> None:
    for name, table in evidence.items():
        pred = g.program.preds[name]
        exists = set(g.existing_tuples(pred))
        for key, value in table.items():
            if value and key not in exists:
                shown = format_atom(name, tuple(g.value_name(a.type, v) for a, v in zip(pred.args, key)))
                raise OptionError("graph", shown, f"atoms of given {name} (its 'where' excludes this one)")
