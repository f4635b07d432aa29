"""Atom strings: ``causes(B,C)``, ``dsep(B,C,{D,E})``; one parser and one printer for the project.

Records, circuits and the rules side all name atoms this way: a predicate, then its arguments,
where a set argument is written ``{...}`` with its members sorted (``{}`` when empty).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from constraintc.errors import ConstraintcError

_ATOM = re.compile(r"^\s*([A-Za-z_]\w*)\s*(?:\((.*)\))?\s*$", re.DOTALL)


def parse_atom(text: str) -> tuple[str, tuple]:
    """``"dsep(a,b,{c,d})"`` -> ``("dsep", ("a", "b", frozenset({"c", "d"})))``; spaces are
    ignored and a bare name is a 0-ary atom.

    >>> parse_atom("causes(B,C)")
    ('causes', ('B', 'C'))
    >>> parse_atom("dsep(B, C, {})")
    ('dsep', ('B', 'C', frozenset()))
    >>> parse_atom("rain")
    ('rain', ())
    """
    m = _ATOM.match(text)
    if not m:
        raise ConstraintcError(f"error: atom {text!r}: expected pred(arg, ...)")
    pred, body = m.group(1), m.group(2)
    args: list = []
    if body is None or not body.strip():
        return pred, ()
    depth, cur = 0, ""
    for ch in body + ",":
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            cur = cur.strip()
            if cur.startswith("{") and cur.endswith("}"):
                inner = cur[1:-1].strip()
                args.append(frozenset(x.strip() for x in inner.split(",")) if inner else frozenset())
            elif cur and "{" not in cur and "}" not in cur:
                args.append(cur)
            else:
                raise ConstraintcError(f"error: atom {text!r}: malformed argument {cur!r}")
            cur = ""
        else:
            cur += ch
    if depth != 0:
        raise ConstraintcError(f"error: atom {text!r}: unbalanced braces")
    return pred, tuple(args)


def format_atom(pred: str, args: tuple) -> str:
    """The canonical atom string (sets sorted, ``{}`` empty), as in ``str(Atom)``.

    >>> format_atom("dsep", ("B", "C", frozenset({"E", "D"})))
    'dsep(B,C,{D,E})'
    """
    parts = ["{" + ",".join(sorted(a)) + "}" if isinstance(a, frozenset) else a for a in args]
    return f"{pred}({','.join(parts)})"


def rename_args(args: tuple, mapping: dict[str, str]) -> tuple:
    """The arguments with every node name (also inside sets) replaced through ``mapping``.

    >>> rename_args(("B", frozenset({"C"})), {"B": "n0", "C": "n1"})
    ('n0', frozenset({'n1'}))
    """
    return tuple(frozenset(mapping[v] for v in a) if isinstance(a, frozenset) else mapping[a] for a in args)


@dataclass(frozen=True)
class Atom:
    """One ground input atom: ``str(atom) == "dsep(a,b,{c,d})"`` (set members sorted)."""

    pred: str
    args: tuple
    kind: str  # "query" | "given"

    def __str__(self) -> str:
        return format_atom(self.pred, self.args)
