"""The before/after table of `constraintc finetune` puts the best shortcut beside the model."""

from constraintc.evaluation.metrics import compute_report
from constraintc.tasks import generate
from constraintc.evaluation.report import comparison_table, ends_table, size_table


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


def test_size_table_breaks_each_split_down_by_graph_size():
    """A model right on small graphs and wrong on large ones shows it, band by band."""
    records = generate("transitivity", "chains_long", 120, seed=5) + generate("transitivity", "mix", 80, seed=5)
    flip = {"Yes": "No", "No": "Yes"}
    preds = [{"id": r["id"], "prediction": r["label"] if len(r["nodes"]) <= 9 else flip[r["label"]]} for r in records]
    table = size_table(compute_report(records, preds))
    header, *rows = table.splitlines()
    assert header.split()[1:] == ["<=6", "nodes", "7-9", "nodes", "10-12", "nodes", "13-15", "nodes"]
    rows = {line.split()[0]: line.split()[1:] for line in rows}
    long_cells = rows["transitivity/chains_long"]
    assert long_cells[0] == "-"  # no chain of the long split has 6 nodes or fewer
    n_by_band = {}
    for r in records:
        if r["split"] == "chains_long":
            n = len(r["nodes"])
            band = "7-9" if n <= 9 else "10-12" if n <= 12 else "13-15"
            n_by_band[band] = n_by_band.get(band, 0) + 1
    assert long_cells[1:] == ["1.000", f"({n_by_band['7-9']})", "0.000", f"({n_by_band['10-12']})",
                              "0.000", f"({n_by_band['13-15']})"]
    assert rows["transitivity/mix"][0] == "1.000"
    assert size_table(None) == ""


def test_ends_table_shows_a_model_that_ranks_from_the_ends():
    """Right whenever X or Y is a source or a sink, wrong otherwise: 0 on both interior, 1 elsewhere."""
    import networkx as nx

    records = generate("transitivity", "chains_long", 120, seed=6) + generate("transitivity", "mix", 80, seed=6)
    flip = {"Yes": "No", "No": "Yes"}

    def at_end(r, v):
        g = nx.DiGraph([tuple(e) for e in r["edges"]])
        return g.in_degree(v) == 0 or g.out_degree(v) == 0

    preds = [{"id": r["id"], "prediction": r["label"] if at_end(r, r["meta"]["x"]) or at_end(r, r["meta"]["y"])
              else flip[r["label"]]} for r in records]
    table = ends_table(compute_report(records, preds))
    header, *rows = table.splitlines()
    assert header.split() == ["split", "both", "interior", "one", "at", "an", "end", "both", "at", "ends"]
    rows = {line.split()[0]: line.split()[1:] for line in rows}
    ends = [at_end(r, r["meta"]["x"]) + at_end(r, r["meta"]["y"]) for r in records if r["split"] == "chains_long"]
    assert rows["transitivity/chains_long"][:4] == ["0.000", f"({ends.count(0)})", "1.000", f"({ends.count(1)})"]
    assert rows["transitivity/mix"][2] == "1.000"
    assert ends_table(None) == ""
