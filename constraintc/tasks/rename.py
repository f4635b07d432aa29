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

    rec = _renamed_fields(r, mapping)
    _, new_args = parse_atom(rec["atom"])
    z = tuple(sorted(new_args[2])) if len(new_args) > 2 else ()
    rec.update(
        premise=premise_text([tuple(e) for e in rec["edges"]]),
        question=question_text(r.get("task", "transitivity"), new_args[0], new_args[1], z),
    )
    return rec


def _renamed_fields(r: dict, mapping: dict[str, str]) -> dict:
    """``r`` with nodes, edges, atom, ``meta`` and a ``trace`` renamed by ``mapping`` (covering
    every node); premise and question as they were."""
    pred, args = parse_atom(r["atom"])
    new_args = rename_args(args, mapping)
    edges = [[mapping[u], mapping[v]] for u, v in r["edges"]]
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
    rec.update(nodes=[mapping[x] for x in r["nodes"]], edges=edges, atom=format_atom(pred, new_args))
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


@functools.lru_cache(maxsize=4)
def trace_words(task: str) -> frozenset[str]:
    """The words a ``task``'s reasoning traces are written in, their placeholder names left out
    (transitivity: "causes", "So", "does", "not", "cause", "nothing"; d-separation's include "a"
    of "a collider"). Any other task: every trace word."""
    from constraintc.tasks import trace_format as tf

    transitivity = " ".join([tf.cause_step("B", "C"), tf.cause_conclusion("B", "C", True),
                             tf.cause_conclusion("B", "C", False), tf.causes_nothing("B")])
    every = " ".join(tf.SENTENCE_FORMS + tf.SEARCH_FORMS)
    text = transitivity if task == "transitivity" else every
    return frozenset(re.findall(r"\w+", text)) - {"B", "C", "D", "E", "F"}


def records_apart_from_words(records: list[dict], words, templates=()) -> tuple[list[dict], list[str]]:
    """Training records as a model whose tokenizer reads ``words`` as words must learn them:
    every graph (records of one ``group``) whose node names include such words gets the stand-ins
    of :func:`names_apart_from_words` everywhere: premise and question where they stand as names,
    nodes, edges, atom, ``meta`` and the ``trace`` (whole words, where no stand-in's name is a word
    the task's traces are written in, :func:`trace_words`). Returns
    the records (in order) and the sorted word-like names left as they were: a graph whose text is
    in no known format, whose trace uses the name as one of its own words ("a" of "a collider"),
    or whose records do not agree on the stand-ins.

    >>> recs = [{"premise": "a causes b.", "question": "Does a cause b?", "nodes": ["a", "b"],
    ...          "edges": [["a", "b"]], "atom": "causes(a,b)", "group": "g", "trace": "a causes b. So a causes b."}]
    >>> out, left = records_apart_from_words(recs, {"a", "cause"})
    >>> out[0]["premise"], out[0]["atom"], out[0]["trace"], left
    ('a_1 causes b.', 'causes(a_1,b)', 'a_1 causes b. So a_1 causes b.', [])
    """
    groups: dict = {}
    for i, r in enumerate(records):
        groups.setdefault(r.get("group", i), []).append(i)
    out, left = list(records), set()
    for members in groups.values():
        found = [names_apart_from_words(records[i], words, templates) for i in members]
        clash = {str(n) for i in members for n in records[i].get("nodes") or () if n in words}
        if all(f is not None and not f[1] for f in found):
            continue
        backs = [f[1] if f is not None else None for f in found]
        ok = all(b is not None and b == backs[0] for b in backs) and backs[0] and all(
            isinstance(records[i].get("nodes"), list) and records[i].get("edges") is not None and records[i].get("atom")
            for i in members)
        mapping = {orig: stand for stand, orig in (backs[0] or {}).items()}
        traced = [records[i] for i in members if records[i].get("trace")]
        if ok and any(name in trace_words(str(r.get("task", "transitivity"))) for r in traced for name in mapping):
            ok = False
        if not ok:
            left |= clash | set(mapping)
            continue
        try:
            renamed = [dict(_renamed_fields(records[i], {str(n): mapping.get(str(n), str(n)) for n in records[i]["nodes"]}),
                            premise=view["premise"], question=view["question"]) for i, (view, _) in zip(members, found)]
        except (KeyError, ValueError, TypeError):  # a record the renaming cannot follow: the graph keeps its names
            left |= set(mapping)
            continue
        for i, rec in zip(members, renamed):
            out[i] = rec
    return out, sorted(left)
