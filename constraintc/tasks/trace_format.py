"""The sentences of a reasoning trace, defined once: the writer (:mod:`constraintc.tasks.traces`)
builds them with the functions below, and the checker (:mod:`constraintc.evaluation.traces`)
reads them with the patterns below, which are built from the same words.

The grammar, one sentence each (names are words; a set is ``{B, C}``)::

    step        := X "causes" Y "."
    nothing     := X "causes nothing."
    conclusion  := "So" X ("causes" | "does not cause") Y "."
    trail       := "Trail" X (("->" | "<-") N)+ "is" ("open" | "blocked at" N ","
                   ("a collider outside" | "which is in") SET) "."
    unjoined    := X "and" Y "are not joined by any trail."
    separation  := ["So"] X "and" Y "are" ["not"] "d-separated given" SET "."
    cap         := "Every other trail is blocked too." | "Other trails before it are blocked too."
    move        := N ("->" | "<-") M "."        (reachability search: down to a child, up to a parent)
    given       := N "is given."

The patterns read what a model writes as well as what the writer writes: any white space,
spaces around punctuation (``d - separated given { C , E }``, as a word-level tokenizer decodes
it), ``doesn't``/``cannot``/``can't cause`` for ``does not cause``, and a trail claim cut short
after ``is blocked`` or ``is blocked at N``.

>>> s = trail_sentence("B -> C <- D", ("C", True), ())
>>> s
'Trail B -> C <- D is blocked at C, a collider outside {}.'
>>> TRAIL_CLAIM.search(s).groups()
('B -> C <- D', None, 'C', 'a collider')
"""

from __future__ import annotations

import re
from typing import Sequence

CAUSES = "causes"
DOES_NOT_CAUSE = "does not cause"
NEGATIONS_READ = ("doesn't cause", "cannot cause", "can't cause")  # read, never written
CAUSES_NOTHING = "causes nothing"
SO = "So"
TRAIL = "Trail"
ARROWS = ("->", "<-")
OPEN = "open"
BLOCKED_AT = "blocked at"
COLLIDER = "a collider"
OUTSIDE = "outside"
IN_SET = "which is in"
SEPARATED = "d-separated given"
NOT_JOINED = "are not joined by any trail"
EVERY_OTHER_BLOCKED = "Every other trail is blocked too."
EARLIER_BLOCKED = "Other trails before it are blocked too."
DOWN, UP = ARROWS  # a search move to a child (N -> M: N causes M) or to a parent (N <- M: M causes N)
IS_GIVEN = "is given"


def set_text(z: Sequence[str]) -> str:
    """A conditioning set as questions and traces write it.

    >>> set_text(("E", "D")), set_text(())
    ('{D, E}', '{}')
    """
    return "{" + ", ".join(sorted(z)) + "}"


# ---------------------------------------------------------------- writing
def cause_step(x: str, y: str) -> str:
    return f"{x} {CAUSES} {y}."


def causes_nothing(x: str) -> str:
    return f"{x} {CAUSES_NOTHING}."


def cause_conclusion(x: str, y: str, causes: bool) -> str:
    return f"{SO} {x} {CAUSES if causes else DOES_NOT_CAUSE} {y}."


def trail_sentence(trail: str, block: tuple[str, bool] | None, z: Sequence[str]) -> str:
    """``trail`` (``B -> C <- D``) is open (``block`` None), or blocked at ``block[0]``, a
    collider (``block[1]``) or a node in ``z``."""
    if block is None:
        return f"{TRAIL} {trail} is {OPEN}."
    node, collider = block
    reason = f"{COLLIDER} {OUTSIDE}" if collider else IN_SET
    return f"{TRAIL} {trail} is {BLOCKED_AT} {node}, {reason} {set_text(z)}."


def move_step(node: str, other: str, down: bool) -> str:
    """A reachability-search move from ``node`` along one premise statement: down to its child
    ``other`` (``node -> other.``) or up to its parent ``other`` (``node <- other.``); the
    node moved to is always the last name written."""
    return f"{node} {DOWN if down else UP} {other}."


def given_step(node: str) -> str:
    return f"{node} {IS_GIVEN}."


def not_joined(x: str, y: str) -> str:
    return f"{x} and {y} {NOT_JOINED}."


def separation_conclusion(x: str, y: str, z: Sequence[str], separated: bool) -> str:
    return f"{SO} {x} and {y} are {'' if separated else 'not '}{SEPARATED} {set_text(z)}."


# ---------------------------------------------------------------- reading
def _words(phrase: str) -> str:
    """A pattern for ``phrase`` with any white space between words and around '-'."""
    return r"\s+".join(r"\s*-\s*".join(map(re.escape, word.split("-"))) for word in phrase.split())


_NAME = r"(\w[\w-]*)"
_SET = r"\{([^}]*)\}"
_ARROW = "|".join(map(re.escape, ARROWS))

# (X, verb, Y): "X causes Y", "X does not cause Y" and the negations a model may write instead
CAUSAL_STEP = re.compile(
    rf"\b{_NAME}\s+({'|'.join(_words(v) for v in (CAUSES, DOES_NOT_CAUSE, *NEGATIONS_READ))})\s+{_NAME}"
)
# (trail, "open" or None, blocked-at node or None, "a collider" / "which is in" or None)
TRAIL_CLAIM = re.compile(
    rf"\b[{TRAIL[0]}{TRAIL[0].lower()}]{TRAIL[1:]}\s+(\w+(?:\s*(?:{_ARROW})\s*\w+)+)\s+is\s+"
    rf"(?:({OPEN})|{_words(BLOCKED_AT.split()[0])}(?:\s+{_words(BLOCKED_AT.split()[1])}\s+(\w+)"
    rf"(?:\s*,\s*({_words(COLLIDER)}|{_words(IN_SET)}))?)?)"
)
TRAIL_TOKEN = re.compile(rf"{_ARROW}|\w+")
# (X, Y, "not " or "", the set's members)
SEPARATION = re.compile(rf"\b(\w+)\s+and\s+(\w+)\s+are\s+(not\s+)?{_words(SEPARATED)}\s*{_SET}")
# (N, arrow, M): a search move; a trail's arrows are never followed by a period, so trails do not match
MOVE = re.compile(rf"\b{_NAME}\s*({_ARROW})\s*{_NAME}\s*\.")
# (N,)
GIVEN_CLAIM = re.compile(rf"\b{_NAME}\s+{_words(IS_GIVEN)}\s*\.")
# (X, Y)
NOT_JOINED_CLAIM = re.compile(rf"\b(\w+)\s+and\s+(\w+)\s+{_words(NOT_JOINED)}")

# every sentence form a trace can take, with sample names (a word-level tokenizer's vocabulary
# must cover the rare ones too, such as the sentences written past the trail cap)
SENTENCE_FORMS = (
    " ".join([cause_step("B", "C"), cause_step("C", "D"), cause_conclusion("B", "D", True)]),
    " ".join([cause_step("B", "C"), cause_conclusion("B", "C", True)]),
    " ".join([causes_nothing("B"), cause_conclusion("B", "C", False)]),
    trail_sentence("B -> C <- D", ("C", True), ("E", "F")),
    trail_sentence("B <- C -> D", ("C", False), ("C",)),
    trail_sentence("B -> C -> D", None, ()),
    EVERY_OTHER_BLOCKED,
    EARLIER_BLOCKED,
    not_joined("B", "D"),
    separation_conclusion("B", "D", (), True),
    separation_conclusion("B", "D", ("C",), False),
)
# The reachability search's sentences use only words of the forms above (its arrows, "is",
# "given", "causes nothing"), so they need no vocabulary of their own and are not added: a new
# word would renumber the embedded tokenizer's vocabulary and change every trained run.
SEARCH_FORMS = (
    " ".join([move_step("B", "C", True), given_step("C"), move_step("C", "D", False),
              separation_conclusion("B", "D", ("C",), False)]),
    " ".join([move_step("B", "C", True), causes_nothing("C"), separation_conclusion("B", "D", (), True)]),
)
