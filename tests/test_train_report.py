"""The before/after table of `constraintc finetune` puts the best shortcut beside the model."""

from constraintc.evaluation.metrics import compute_report
from constraintc.tasks import generate
from constraintc.evaluation.report import comparison_table


def test_table_shows_the_best_shortcut_of_every_split():
    records = generate("transitivity", "chains_long", 60, seed=4) + generate("transitivity", "chains_reversed", 60, seed=4)
    always_yes = compute_report(records, [{"id": r["id"], "prediction": "Yes"} for r in records])
    oracle = compute_report(records, [{"id": r["id"], "prediction": r["label"]} for r in records])
    table = comparison_table(always_yes, oracle)
    rows = {line.split()[0]: line for line in table.splitlines()[1:]}
    # a chain told forwards is answered by statement order, one told backwards by its inverse:
    # the table says so next to the model's (here perfect) score
    assert "statement_order 1.000" in rows["transitivity/chains_long"]
    assert "not_statement_order" in rows["transitivity/chains_reversed"]
    assert "0.500 -> 1.000" in rows["transitivity/chains_long"]
    assert "COLLAPSED -> ok" in rows["transitivity/chains_long"]
