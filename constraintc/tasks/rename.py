"""Renaming a record's nodes: the same graph and question under other names.

``constraintc finetune`` renames training and evaluation graphs into a small pool of names (the
embedded model learns six names in minutes and 24 not at all); ``constraintc eval --name-pool``
applies the same renaming so that such a model is asked in the names it knows.
"""

from __future__ import annotations

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

    Everything that names a node follows: nodes, edges, premise, question, atom, ``meta`` (x, y,
    z) and a ``trace``. Graphs larger than the pool keep their names.

    >>> from constraintc.tasks import generate
    >>> r = rename_records(generate("dsep", "train", 1, seed=0, traces=True), 6, 0)[0]
    >>> set(r["nodes"]) <= set("BCDEFG"), r["question"].split()[1] in r["nodes"]
    (True, True)
    """
    from constraintc.tasks.generate import premise_text, question_text, stable_seed
    from constraintc.tasks.graphs import SHORT_NAMES

    names = list(SHORT_NAMES[:pool])
    out = []
    for r in records:
        if len(r["nodes"]) > len(names):
            out.append(r)
            continue
        rng = random.Random(stable_seed("rename", seed, r["group"]))
        mapping = dict(zip(r["nodes"], rng.sample(names, len(r["nodes"]))))
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
        out.append(rec)
    return out
