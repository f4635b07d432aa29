"""The size curriculum (``--curriculum-steps``): small graphs first, every graph after."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from constraintc.train.data import batch_indices, curriculum_indices


@given(st.lists(st.integers(3, 15), min_size=1, max_size=60), st.integers(1, 20), st.integers(0, 400),
       st.integers(1, 300), st.integers(0, 5))
def test_batches_hold_only_graphs_within_the_rising_limit(sizes, batch, step, steps, seed):
    chosen = curriculum_indices(sizes, batch, step, seed, steps)
    assert len(chosen) == batch and all(0 <= i < len(sizes) for i in chosen)
    assert chosen == curriculum_indices(sizes, batch, step, seed, steps)  # a function of the step (resume)
    if step >= steps:
        assert chosen == batch_indices(len(sizes), batch, step, seed)
    else:
        limit = min(sizes) + (max(sizes) - min(sizes)) * step / steps
        assert all(sizes[i] <= limit for i in chosen)


def test_the_recipe_draws_its_first_batches_from_the_smallest_graphs(tmp_path):
    from constraintc.train.config import validate
    from constraintc.train.recipe import FinetuneRecipe

    cfg = validate({"steps": 2, "batch_groups": 8, "train_records": 80, "eval_records": 8, "eval_every": 2,
                    "eval_splits": ["mix"], "final_eval": False, "output_dir": str(tmp_path / "run"),
                    "plots": False, "threads": 1, "curriculum_steps": 1000, "trace": "none"})
    recipe = FinetuneRecipe(cfg, progress=False)
    recipe.setup()
    smallest = min(len(g.nodes) for g in recipe.train_graphs)
    assert max(len(g.nodes) for g in recipe.train_graphs) > smallest
    seen = []
    forward = recipe._forward

    def spy(graphs, **kwargs):
        seen.extend(len(g.nodes) for g in graphs)
        return forward(graphs, **kwargs)

    recipe._forward = spy
    recipe.train_step(0)
    assert seen and set(seen) == {smallest}
