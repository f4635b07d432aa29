"""The task records a fine-tuning run trains on, checks against while training, and evaluates.

Three streams with their own seeds, so they never share a graph draw: training (``--data`` or
``--train-records`` generated records), the held-out slice checked every ``--eval-every`` steps,
and the final evaluation over ``--eval-splits``.
"""

from __future__ import annotations

from constraintc.train.config import FinetuneConfig

TRAIN_DATA_SEED, HELDOUT_SEED, EVAL_SEED = 0, 1, 2


def training_records(cfg: FinetuneConfig, log=None) -> list[dict]:
    """``--data`` or generated records, filtered by ``max_nodes``, renamed from the name pool,
    labels skewed to ``label_yes_rate`` (unlabelled questions stay for the semantic loss)."""
    from constraintc.tasks import generate
    from constraintc.tasks.rename import rename_records
    from constraintc.train.data import read_jsonl, skew_labels

    traced = cfg.trace != "none"
    if cfg.data:
        records = read_jsonl(cfg.data)
    else:
        records = generate(
            cfg.task, cfg.train_split, cfg.train_records, TRAIN_DATA_SEED,
            questions_per_graph=cfg.questions_per_graph, traces=traced,
        )
    if cfg.max_nodes:
        records = [r for r in records if len(r["nodes"]) <= cfg.max_nodes]
    if cfg.name_pool:
        records = rename_records(records, cfg.name_pool, TRAIN_DATA_SEED)
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
    """The held-out slice: fresh records of the training distribution."""
    from constraintc.tasks import generate
    from constraintc.tasks.rename import rename_records

    held = generate(cfg.task, cfg.train_split, cfg.eval_records, HELDOUT_SEED) if cfg.eval_records else []
    if cfg.max_nodes:
        held = [r for r in held if len(r["nodes"]) <= cfg.max_nodes]
    if cfg.name_pool:
        held = rename_records(held, cfg.name_pool, HELDOUT_SEED)
    return held


def evaluation_records(cfg: FinetuneConfig) -> list[dict]:
    """``eval_records`` fresh records of every split in ``eval_splits``."""
    from constraintc.tasks import generate
    from constraintc.tasks.rename import rename_records

    records: list[dict] = []
    for split in cfg.eval_splits:
        recs = generate(cfg.task, split, cfg.eval_records, EVAL_SEED)
        if cfg.name_pool:
            recs = rename_records(recs, cfg.name_pool, EVAL_SEED)
        records += recs
    return records
