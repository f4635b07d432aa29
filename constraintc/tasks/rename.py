"""Renaming a record's nodes: the same graph and question under other names.

``constraintc finetune`` renames training and evaluation graphs into a small pool of names (the
embedded model learns six names in minutes and 24 not at all); ``constraintc eval --name-pool``
applies the same renaming so that such a model is asked in the names it knows.
:func:`names_apart_from_words` gives a model whose tokenizer reads its task's words as words (the
embedded default) a view of a record in which no node name is one of those words.
"""

from __future__ import annotations

import functools
import random
import re

from constraintc.logic.atoms import format_atom, parse_atom, rename_args


def rename_words(text: str, mapping: dict[str, str]) -> str:
    """Replace whole-word node names in ``text`` all at once (so ``B->C, C->B`` swaps cleanly).

    >>> rename_words("B causes C. So B causes C.", {"B": "C", "C": "B"})
    'C causes B. So C causes B.'
    """
    if not mapping:
        return text
    pattern = re.compile(r"\b(" + "|".join(re.escape(k) for k in sorted(mapping, key=len, reverse=True)) + r")\b")
    return pattern.sub(lambda m: mapping[m.group(1)], text)


def rename_records(records: list[dict], pool: int, seed: int) -> list[dict]:
    """Rename each graph's nodes injectively from the first ``pool`` short names (seeded per graph).

    Everything that names a node follows (:func:`rename_record`). Graphs larger than the pool
    keep their names.

    >>> from constraintc.tasks import generate
    >>> r = rename_records(generate("dsep", "train", 1, seed=0, traces=True), 6, 0)[0]
    >>> set(r["nodes"]) <= set("BCDEFG"), r["question"].split()[1] in r["nodes"]
    (True, True)
    """
    from constraintc.tasks.generate import stable_seed
    from constraintc.tasks.graphs import SHORT_NAMES

    names = list(SHORT_NAMES[:pool])
    out = []
    for r in records:
        if len(r["nodes"]) > len(names):
            out.append(r)
            continue
        rng = random.Random(stable_seed("rename", seed, r["group"]))
        out.append(rename_record(r, dict(zip(r["nodes"], rng.sample(names, len(r["nodes"]))))))
    return out


def rename_record(r: dict, mapping: dict[str, str]) -> dict:
    """A generated record with its nodes renamed by ``mapping`` (injective, covering every node):
    nodes, edges, premise, question, atom, ``meta`` (x, y, z, edge) and a ``trace`` follow.

    >>> r = {"atom": "causes(B,C)", "nodes": ["B", "C"], "edges": [["B", "C"]]}
    >>> s = rename_record(r, {"B": "x1", "C": "y"})
    >>> s["premise"], s["question"], s["atom"], s["edges"]
    ('x1 causes y.', 'Does x1 cause y?', 'causes(x1,y)', [['x1', 'y']])
    """
    from constraintc.tasks.generate import premise_text, question_text

    pred, args = parse_atom(r["atom"])
    new_args = rename_args(args, mapping)
    edges = [[mapping[u], mapping[v]] for u, v in r["edges"]]
    z = tuple(sorted(new_args[2])) if len(new_args) > 2 else ()
    task = r.get("task", "transitivity")
    rec = dict(r)
    if rec.get("trace"):
        rec["trace"] = rename_words(rec["trace"], mapping)
    if isinstance(rec.get("meta"), dict):
        meta = dict(rec["meta"])
        for key in ("x", "y"):
            if meta.get(key) in mapping:
                meta[key] = mapping[meta[key]]
        if isinstance(meta.get("z"), list):
            meta["z"] = sorted(mapping.get(v, v) for v in meta["z"])
        if isinstance(meta.get("edge"), list):
            meta["edge"] = [mapping.get(v, v) for v in meta["edge"]]
        rec["meta"] = meta
    rec.update(
        nodes=[mapping[x] for x in r["nodes"]],
        edges=edges,
        premise=premise_text([tuple(e) for e in edges]),
        atom=format_atom(pred, new_args),
        question=question_text(task, new_args[0], new_args[1], z),
    )
    return rec


# ------------------------------------------------------------------ node names that are task words
_STATEMENT = re.compile(r"(\w+) causes (\w+)\.")
_SLOT = r"(\{[^{}]*\}|\w+)"  # a placeholder of a question: one name, or a set of names "{D, E}"


@functools.lru_cache(maxsize=64)
def _question_patterns(templates: tuple[str, ...]) -> list[re.Pattern]:
    """``templates`` and the library tasks' question templates as patterns whose groups are
    their placeholders."""
    from constraintc.language.ast import template_parts
    from constraintc.tasks.generate import TASK_RULES, task_query

    out = []
    for template in dict.fromkeys([*templates, *(task_query(task).template for task in TASK_RULES)]):
        literal, _ = template_parts(template)  # split as the question is rendered
        out.append(re.compile(_SLOT.join(re.escape(p) for p in literal)))
    return out


def _name_spans(premise: str, question: str, templates: tuple[str, ...] = ()) \
        -> tuple[list[tuple[int, int]], list[tuple[int, int]]] | None:
    """Where the node names stand in ``premise`` ("U causes V." statements) and ``question`` (one
    of ``templates`` or a library task's question), as character spans; None when either text is
    not in that format."""
    spans_p, at = [], 0
    for m in _STATEMENT.finditer(premise):
        if premise[at:m.start()].strip():
            return None
        spans_p += [m.span(1), m.span(2)]
        at = m.end()
    if premise[at:].strip():
        return None
    for pattern in _question_patterns(tuple(templates)):
        m = pattern.fullmatch(question.strip())
        if m is None:
            continue
        offset = len(question) - len(question.lstrip())
        spans_q = []
        for g in range(1, m.re.groups + 1):
            start = m.start(g) + offset
            spans_q += [(start + w.start(), start + w.end()) for w in re.finditer(r"\w+", m.group(g))]
        return spans_p, spans_q
    return None


def _respell(text: str, spans: list[tuple[int, int]], mapping: dict[str, str]) -> str:
    out, at = [], 0
    for start, end in sorted(spans):
        out += [text[at:start], mapping.get(text[start:end], text[start:end])]
        at = end
    return "".join(out) + text[at:]


def names_apart_from_words(record: dict, words, templates=()) -> tuple[dict, dict[str, str]] | None:
    """``record`` as a model whose tokenizer reads ``words`` as words must see it, and the way back.

    A node named like one of the task's words (``a``, ``d``, ``at``, ``by``: ``d`` is the first
    letter of "d-separated") would be read as that word, not as a name. In the returned copy each
    such name is replaced, where it stands as a name (the premise's "U causes V." statements and
    the question's placeholders, found by the question ``templates`` of the rules, e.g. "Do {X} and
    {Y} have a common cause?", and the library tasks'), by a stand-in (``a_1``)
    that is neither a word nor another name of the record; the second value maps each stand-in
    back (for the text the model writes). Names carry no meaning, only identity, so the model is
    asked the same question. Returns ``(record, {})`` when no name is a word, and None when one may
    be but the premise or question is not in the generated format (nothing to rename by).

    >>> view, back = names_apart_from_words(
    ...     {"premise": "a causes b. b causes d.", "question": "Does a cause d?"}, {"a", "d", "cause"})
    >>> view["premise"], view["question"], back
    ('a_1 causes b. b causes d_1.', 'Does a_1 cause d_1?', {'a_1': 'a', 'd_1': 'd'})
    >>> names_apart_from_words({"premise": "a feeds b.", "question": "Does a eat b?", "nodes": ["a", "b"]}, {"a"}) is None
    True
    """
    premise, question = str(record.get("premise") or ""), str(record.get("question") or "")
    spans = _name_spans(premise, question, tuple(templates))
    if spans is None:
        declared = {str(n) for n in record.get("nodes") or ()}
        return (record, {}) if not declared & set(words) else None
    spans_p, spans_q = spans
    names = {premise[a:b] for a, b in spans_p} | {question[a:b] for a, b in spans_q}
    clash = sorted(n for n in names if n in words)
    if not clash:
        return record, {}
    taken = names | set(words) | set(re.findall(r"\w+", premise + " " + question))
    mapping = {}
    for name in clash:
        k = 1
        while f"{name}_{k}" in taken:
            k += 1
        mapping[name] = f"{name}_{k}"
        taken.add(mapping[name])
    view = dict(record, premise=_respell(premise, spans_p, mapping), question=_respell(question, spans_q, mapping))
    return view, {v: k for k, v in mapping.items()}
