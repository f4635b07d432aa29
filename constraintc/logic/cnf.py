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
            text = path.read_text()
        except OSError as exc:
            raise DimacsError(f"error: cannot read {path}: {exc.strerror}") from None
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

        def fail(lineno: int, col: int, msg: str) -> DimacsError:
            line = text.splitlines()[lineno - 1] if text else ""
            pos = SourcePosition(filename, lineno, col)
            return DimacsError(f"{pos}: error: {msg}\n    {line}\n    {' ' * (col - 1)}^")

        for lineno, line in enumerate(text.splitlines(), 1):
            stripped = line.strip()
            if not stripped or stripped == "%":
                continue
            if stripped.startswith("c"):
                m = re.match(r"c\s+atom\s+(\d+)\s+(\S.*)$", stripped)
                if m:
                    names[int(m.group(1))] = m.group(2).strip()
                    continue
                m = re.match(r"c\s+atoms\s+(\d+)\s*$", stripped)
                if m:
                    num_atoms = int(m.group(1))
                    continue
                comments.append(stripped[1:].strip())
                continue
            if stripped.startswith("p"):
                parts = stripped.split()
                if len(parts) != 4 or parts[1] != "cnf" or not all(p.isdigit() for p in parts[2:]):
                    raise fail(lineno, 1, "expected a header 'p cnf <variables> <clauses>'")
                if num_vars is not None:
                    raise fail(lineno, 1, "second 'p cnf' header")
                num_vars, num_clauses = int(parts[2]), int(parts[3])
                continue
            if num_vars is None:
                raise fail(lineno, 1, "clause before the 'p cnf <variables> <clauses>' header")
            col = 1
            for token in line.split():
                col = line.index(token, col - 1) + 1
                try:
                    lit = int(token)
                except ValueError:
                    raise fail(lineno, col, f"expected an integer literal, found {token!r}") from None
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
        if current:
            clauses.append(tuple(current))
        if num_clauses is not None and len(clauses) != num_clauses:
            raise DimacsError(
                f"{filename}: error: header declares {num_clauses} clauses, file has {len(clauses)}"
            )
        return cls(num_vars=num_vars, clauses=clauses, num_atoms=num_atoms, names=names,
                   comments=comments)
