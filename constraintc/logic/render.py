"""Groundings as text people read (``constraintc ground --format text``)."""

from __future__ import annotations

from constraintc.logic.boolean import AND, IFF, TRUE, VAR


def grounding_text(grounding) -> str:
    """A readable view of a :class:`~constraintc.logic.grounding.Grounding`: the atoms with
    their CNF variables, then each rule's ground formula; a subformula longer than a line is
    named ``$gN`` and defined under ``where:``.

    >>> from constraintc.logic import ground, load_rules
    >>> print(grounding_text(ground(load_rules("transitivity"), ["a", "b"], graph=[("a", "b")])))
    # constraintc grounding of transitivity
    # nodes a,b
    # graph a->b
    # 2 atoms, 2 variables, 2 clauses
    atoms:
      1 causes(a,b)
      2 causes(b,a)
    rule edges_cause:
      causes(a,b)
    rule transitive:
      ~causes(a,b) | ~causes(b,a)
    rule irreflexive:
      true
    rule asymmetric:
      ~causes(a,b) | ~causes(b,a)
    <BLANKLINE>
    """
    b = grounding.builder
    lines = [f"# {c}" for c in grounding.cnf.comments]
    stats = grounding.stats
    lines.append(f"# {stats['atoms']} atoms, {stats['variables']} variables, {stats['clauses']} clauses")
    lines.append("atoms:")
    lines += [f"  {i} {name}" for i, name in enumerate(grounding.atoms, 1)]
    defs: dict[int, str] = {}
    order: list[int] = []
    memo: dict[int, str] = {}

    def show(lit: int, top: bool = False) -> str:
        node = abs(lit)
        if node == TRUE:
            return "true" if lit > 0 else "false"
        if b.kind[node] == VAR:
            text = b.names[node]
        else:
            text = memo.get(node)
            if text is None:
                kids = b.children[node]
                if b.kind[node] == AND:
                    parts = [show(c) for c in kids]
                    # print negated conjunctions as disjunctions: rules read that way
                    text = " & ".join(parts)
                elif b.kind[node] == IFF:
                    text = f"{show(kids[0])} <-> {show(kids[1])}"
                if len(text) > 120:
                    defs[node] = text
                    order.append(node)
                    text = f"$g{node}"
                else:
                    text = f"({text})"
                memo[node] = text
        if lit < 0:
            if text.startswith("(") and b.kind[node] == AND:
                inner = " | ".join(show(-c) for c in b.children[node])
                return inner if top else f"({inner})"
            return f"~{text}"
        return text[1:-1] if top and text.startswith("(") else text

    for name, lit in grounding.rule_lits.items():
        lines.append(f"rule {name}:")
        conjuncts = [lit]
        if lit > 0 and b.kind[lit] == AND:
            conjuncts = list(b.children[lit])
        lines += [f"  {show(c, top=True)}" for c in conjuncts]
    if defs:
        lines.append("where:")
        lines += [f"  $g{n} := {defs[n]}" for n in order]
    return "\n".join(lines) + "\n"
