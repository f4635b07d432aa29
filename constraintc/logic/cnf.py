"""CNF in DIMACS numbering: the bridge between grounding and knowledge compilation.

Variables ``1..num_atoms`` are the constraint's *atoms* (inputs that carry a probability, in the
artifact's atom order); variables ``num_atoms+1..num_vars`` are auxiliary (Tseitin) variables.
Auxiliary variables are defined by full equivalences, so every model of the atoms extends to
exactly one model of the CNF: weighted model counts are preserved when both literals of an
auxiliary variable get weight 1.

>>> cnf = CNF(num_vars=3, num_atoms=2, clauses=[(1, -3), (2, -3), (-1, -2, 3), (3,)],
...           names={1: "a", 2: "b"})
>>> print(cnf.to_dimacs().splitlines()[0])
c atom 1 a
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from constraintc.errors import ConstraintcError, SourcePosition


class DimacsError(ConstraintcError):
    """A malformed DIMACS file; the message names file, line and column."""


# Literals are stored as 32-bit integers by the compilers and in circuit artifacts.
MAX_VARIABLES = 2**31 - 1


def _number(digits: str, lineno: int, col: int, fail) -> int:
    """A whole number of a DIMACS file (headers, 'c atoms'), refusing absurd lengths before
    converting (Python refuses strings of more than 4,300 digits)."""
    if len(digits.lstrip("0")) > 19:
        raise fail(lineno, col, f"number too large ({len(digits)} digits)")
    return int(digits)


@dataclass
class CNF:
    num_vars: int
    clauses: list[tuple[int, ...]]
    num_atoms: int | None = None
    names: dict[int, str] = field(default_factory=dict)
    comments: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.num_atoms is None:
            self.num_atoms = self.num_vars
        if not 0 <= self.num_atoms <= self.num_vars:
            raise ValueError(f"num_atoms={self.num_atoms} outside 0..num_vars={self.num_vars}")
        self.clauses = [tuple(int(x) for x in c) for c in self.clauses]
        for clause in self.clauses:
            for lit in clause:
                if lit == 0 or abs(lit) > self.num_vars:
                    raise ValueError(f"literal {lit} outside 1..{self.num_vars} in clause {clause}")

    @property
    def atom_names(self) -> list[str]:
        """Names of variables ``1..num_atoms`` in order (``x<i>`` where a variable is unnamed)."""
        return [self.names.get(v, f"x{v}") for v in range(1, self.num_atoms + 1)]

    def to_dimacs(self) -> str:
        lines = [f"c {c}" if c else "c" for c in self.comments]
        lines += [f"c atom {v} {self.names[v]}" for v in sorted(self.names)]
        if self.num_atoms != self.num_vars:
            lines.append(f"c atoms {self.num_atoms}")
        lines.append(f"p cnf {self.num_vars} {len(self.clauses)}")
        lines += [" ".join(map(str, clause)) + " 0" for clause in self.clauses]
        return "\n".join(lines) + "\n"

    def write(self, path: str | Path) -> None:
        Path(path).write_text(self.to_dimacs())

    @classmethod
    def read(cls, path: str | Path) -> "CNF":
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise DimacsError(f"error: cannot read {path}: {exc.strerror}") from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
            raise DimacsError(f"{SourcePosition(str(path), line, col)}: error: byte "
                              f"0x{data[exc.start]:02x} is not text: a DIMACS file is ASCII "
                              f"(or UTF-8) text") from None
        return cls.from_dimacs(text, filename=str(path))

    @classmethod
    def from_dimacs(cls, text: str, filename: str = "<dimacs>") -> "CNF":
        """Parse DIMACS CNF; ``c atom <var> <name>`` and ``c atoms <k>`` comments are understood."""
        num_vars = num_clauses = None
        names: dict[int, str] = {}
        num_atoms = None
        comments: list[str] = []
        clauses: list[tuple[int, ...]] = []
        current: list[int] = []

        lines = text.splitlines()

        def fail(lineno: int, col: int, msg: str) -> DimacsError:
            line = lines[lineno - 1] if text else ""
            pos = SourcePosition(filename, lineno, col)
            return DimacsError(f"{pos}: error: {msg}\n    {line}\n    {' ' * (col - 1)}^")

        atoms_at = names_at = None  # where 'c atoms' and the highest 'c atom' were given
        for lineno, line in enumerate(text.splitlines(), 1):
            stripped = line.strip()
            if not stripped or stripped == "%":
                continue
            if stripped.startswith("c"):
                m = re.match(r"c\s+atom\s+([0-9]+)\s+(\S.*)$", stripped)
                if m:
                    var = _number(m.group(1), lineno, line.index(m.group(1)) + 1, fail)
                    if var == 0 or var > MAX_VARIABLES:
                        raise fail(lineno, line.index(m.group(1)) + 1,
                                   f"'c atom' names variable {m.group(1)}: variables are 1 to "
                                   f"{MAX_VARIABLES}")
                    names[var] = m.group(2).strip()
                    if names_at is None or var > names_at[0]:
                        names_at = (var, lineno, line.index(m.group(1)) + 1)
                    continue
                m = re.match(r"c\s+atoms\s+([0-9]+)\s*$", stripped)
                if m:
                    num_atoms = _number(m.group(1), lineno, line.index(m.group(1)) + 1, fail)
                    atoms_at = (lineno, line.index(m.group(1)) + 1)
                    continue
                comments.append(stripped[1:].strip())
                continue
            if stripped.startswith("p"):
                parts = stripped.split()
                if len(parts) != 4 or parts[1] != "cnf" or not all(re.fullmatch(r"[0-9]+", p)
                                                                    for p in parts[2:]):
                    raise fail(lineno, 1, "expected a header 'p cnf <variables> <clauses>'")
                if num_vars is not None:
                    raise fail(lineno, 1, "second 'p cnf' header")
                col = line.index(parts[2], line.index("cnf")) + 1
                num_vars = _number(parts[2], lineno, col, fail)
                num_clauses = _number(parts[3], lineno, line.index(parts[3], col + len(parts[2]) - 1) + 1,
                                      fail)
                if num_vars > MAX_VARIABLES:
                    raise fail(lineno, col, f"{num_vars} variables: at most {MAX_VARIABLES} are "
                                            f"supported (literals are 32-bit)")
                continue
            if num_vars is None:
                raise fail(lineno, 1, "clause before the 'p cnf <variables> <clauses>' header")
            col = 1
            for token in line.split():
                col = line.index(token, col - 1) + 1
                if not re.fullmatch(r"-?[0-9]+", token):
                    raise fail(lineno, col, f"expected an integer literal, found {token!r}")
                if len(token.lstrip("-").lstrip("0")) > len(str(num_vars)):
                    raise fail(lineno, col, f"literal {token[:20]}{'...' if len(token) > 20 else ''} "
                                            f"exceeds the {num_vars} variables declared")
                lit = int(token)
                if abs(lit) > num_vars:
                    raise fail(lineno, col, f"literal {lit} exceeds the {num_vars} variables declared")
                if lit == 0:
                    clauses.append(tuple(current))
                    current = []
                else:
                    current.append(lit)
                col += len(token)
        if num_vars is None:
            raise DimacsError(f"{filename}: error: no 'p cnf <variables> <clauses>' header found")
        if num_atoms is not None and num_atoms > num_vars:
            raise fail(*atoms_at, f"'c atoms {num_atoms}' declares more atoms than the {num_vars} "
                                  f"variables of the 'p cnf' header")
        if names_at is not None and names_at[0] > num_vars:
            raise fail(names_at[1], names_at[2], f"'c atom' names variable {names_at[0]}, but the "
                                                 f"'p cnf' header declares {num_vars} variables")
        if current:
            clauses.append(tuple(current))
        if num_clauses is not None and len(clauses) != num_clauses:
            raise DimacsError(
                f"{filename}: error: header declares {num_clauses} clauses, file has {len(clauses)}"
            )
        return cls(num_vars=num_vars, clauses=clauses, num_atoms=num_atoms, names=names,
                   comments=comments)
