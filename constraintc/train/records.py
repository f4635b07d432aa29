"""The task records a fine-tuning run trains on, checks against while training, and evaluates.

Three streams with their own seeds, so they never share a graph draw: training (``--data`` or
``--train-records`` generated records), the held-out slice checked every ``--eval-every`` steps,
and the final evaluation over ``--eval-splits``.
"""

from __future__ import annotations

from constraintc.train.config import FinetuneConfig

TRAIN_DATA_SEED, HELDOUT_SEED, EVAL_SEED = 0, 1, 2


def training_records(cfg: FinetuneConfig, log=None, gold: list | None = None) -> list[dict]:
    """``--data`` or generated records, filtered by ``max_nodes``, renamed from the name pool,
    labels skewed to ``label_yes_rate`` (unlabelled questions stay for the semantic loss).
    ``gold``, a list, receives the same records before the skew (every label kept: the
    traces-only stage's targets)."""
    from constraintc.tasks import generate
    from constraintc.tasks.rename import rename_records
    from constraintc.train.data import skew_labels

    traced = cfg.trace != "none"
    if cfg.data:
        records = user_records(cfg)[0]
    else:
        records = generate(
            cfg.task, cfg.train_split, cfg.train_records, TRAIN_DATA_SEED,
            questions_per_graph=cfg.questions_per_graph, traces=traced, trace_search=cfg.trace_search,
        )
    if cfg.max_nodes:
        records = [r for r in records if len(r["nodes"]) <= cfg.max_nodes]
    if cfg.name_pool:
        records = rename_records(records, cfg.name_pool, TRAIN_DATA_SEED)
    if gold is not None:
        gold.extend(records)
    records = skew_labels(records, cfg.label_yes_rate, TRAIN_DATA_SEED)
    if traced and log is not None:
        labelled = [r for r in records if r.get("label") is not None]
        bare = sum(not (r.get("trace") or "").strip() for r in labelled)
        if bare:
            log(
                f"--trace {cfg.trace}: {bare} of {len(labelled)} labelled records carry no trace; "
                "their reasoning section is empty"
            )
    return records


def heldout_records(cfg: FinetuneConfig) -> list[dict]:
    """The held-out slice: fresh records of the training distribution (from ``--data`` /
    ``--eval-data`` when given: see :func:`user_records`)."""
    from constraintc.tasks import generate
    from constraintc.tasks.rename import rename_records

    if cfg.data:
        return user_records(cfg)[1]
    held = generate(cfg.task, cfg.train_split, cfg.eval_records, HELDOUT_SEED) if cfg.eval_records else []
    if cfg.max_nodes:
        held = [r for r in held if len(r["nodes"]) <= cfg.max_nodes]
    if cfg.name_pool:
        held = rename_records(held, cfg.name_pool, HELDOUT_SEED)
    return held


def evaluation_records(cfg: FinetuneConfig) -> list[dict]:
    """``eval_records`` fresh records of every split in ``eval_splits`` (from ``--data`` /
    ``--eval-data`` when given: see :func:`user_records`)."""
    from constraintc.tasks import generate
    from constraintc.tasks.rename import rename_records

    if cfg.data:
        return user_records(cfg)[2]
    records: list[dict] = []
    for split in cfg.eval_splits:
        recs = generate(cfg.task, split, cfg.eval_records, EVAL_SEED)
        if cfg.name_pool:
            recs = rename_records(recs, cfg.name_pool, EVAL_SEED)
        records += recs
    return records


# ---------------------------------------------------------------------------- the user's own data
HELDOUT_SHARE = 0.2  # of --data's graphs, held out when no --eval-data is given


def user_records(cfg: FinetuneConfig) -> tuple[list[dict], list[dict], list[dict]]:
    """``(training, held-out slice, final evaluation)`` records from ``--data`` (and
    ``--eval-data``), so that a run on its own rules and data never generates ``--task`` records.

    With ``--eval-data`` the final evaluation is that file and the training set is all of
    ``--data``; without it, a seeded ``HELDOUT_SHARE`` of ``--data``'s graphs (whole groups) is
    held out of training and evaluated. The held-out slice checked while training is the first
    ``eval_records`` records of the evaluation set, whole graphs at a time. Evaluation records
    lacking ``id``, ``task`` or ``split`` get ``FILE:LINE``, the file's stem and ``eval``; they
    are renamed from the name pool like the training graphs.
    """
    import random
    from pathlib import Path

    from constraintc.tasks.rename import rename_records
    from constraintc.tasks.io import read_jsonl
    from constraintc.train.data import TRAINING_FIELDS

    def read(path: str) -> list[dict]:
        rows = read_jsonl(path, "--data", require=TRAINING_FIELDS)
        for i, r in enumerate(rows):
            r.setdefault("id", f"{path}:{i + 1}")
            r.setdefault("task", Path(path).stem)
            r.setdefault("split", "eval")
        return rows

    records = read(cfg.data)
    if cfg.eval_data:
        train, evaluation = records, read(cfg.eval_data)
    else:
        groups = sorted({r["group"] for r in records})
        k = round(len(groups) * HELDOUT_SHARE) if len(groups) > 1 else 0
        held = set(random.Random(HELDOUT_SEED).sample(groups, max(k, 1) if len(groups) > 1 else 0))
        train = [r for r in records if r["group"] not in held]
        evaluation = [r for r in records if r["group"] in held]
    if cfg.name_pool:
        evaluation = rename_records(evaluation, cfg.name_pool, EVAL_SEED)
    heldout, seen = [], set()
    for r in evaluation:
        if len(heldout) >= cfg.eval_records and r["group"] not in seen:
            break
        seen.add(r["group"])
        heldout.append(r)
    return train, heldout, evaluation


def check_rules_fit(cfg: FinetuneConfig, records: list[dict], queries: dict) -> None:
    """Stop with a message that names the fix when the records ask atoms the rules do not
    declare (``--rules dsep`` with generated ``--task transitivity`` records, or ``--data`` made
    for other rules). ``queries`` are the rules' query predicates (name -> declaration)."""
    from constraintc.errors import ConstraintcError
    from constraintc.logic.atoms import parse_atom

    asked = {}
    for r in records:
        pred, args = parse_atom(r["atom"])
        asked.setdefault(pred, (r["atom"], len(args)))
    stray = {p: a for p, a in asked.items() if p not in queries or queries[p].arity != a[1]}
    if not stray:
        return
    pred, (example, _) = next(iter(stray.items()))
    declared = ", ".join(f"{q.name}/{q.arity}" for q in queries.values())
    if cfg.data:
        raise ConstraintcError(
            f"error: --data={cfg.data!r} asks {example} but --rules={cfg.rules!r} declares {declared}: "
            "pass --rules with the rules the data was made for"
        )
    tasks = {"causes": "transitivity", "dsep": "dsep"}
    fits = [tasks[q] for q in queries if q in tasks]
    fix = f"pass --task {fits[0]}" if fits else "pass --data with records of your rules' atoms"
    raise ConstraintcError(
        f"error: --rules={cfg.rules!r} declares {declared}, but --task={cfg.task} generates questions "
        f"like {example}: {fix}"
    )
