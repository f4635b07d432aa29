"""The semantic loss inside a Hugging Face ``Trainer``.

``SemanticTrainer`` is ``transformers.Trainer`` whose ``compute_loss`` adds the semantic loss of
a rules file to the cross-entropy of the labelled answers; ``GraphCollator`` packs every question
about a graph into one row. Rows are graphs: nodes, edges and (optionally) labels for some atoms.
For TRL use ``constraintc.integrations.SemanticSFTTrainer`` (``pip install 'constraintc[trl]'``)
the same way.

    python examples/hf_trainer.py --steps 40
"""

import argparse
import random
import tempfile

import networkx as nx
from transformers import TrainingArguments

from constraintc import SemanticLoss
from constraintc.integrations import GraphCollator, SemanticTrainer
from constraintc.lm import build_tiny_model


def graph_rows(n: int, seed: int) -> list[dict]:
    """Random DAGs over the tiny tokenizer's names, one labelled question each (mostly Yes:
    the skew under which cross-entropy alone collapses); the other questions are unlabelled."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        nodes = rng.sample("abcdef", rng.randint(3, 5))
        edges = [(u, v) for i, u in enumerate(nodes) for v in nodes[i + 1 :] if rng.random() < 0.4]
        dag = nx.DiGraph(edges)
        dag.add_nodes_from(nodes)
        x, y = rng.sample(nodes, 2)
        label = "Yes" if nx.has_path(dag, x, y) else "No"
        rows.append({"nodes": nodes, "edges": edges, "labels": {f"causes({x},{y})": label}})
    return rows


def train(steps: int = 20, seed: int = 0, output_dir: str | None = None):
    model, tokenizer = build_tiny_model(seed=seed)
    loss_fn = SemanticLoss("transitivity")
    args = TrainingArguments(
        output_dir=output_dir or tempfile.mkdtemp(prefix="constraintc-hf-"), max_steps=steps,
        per_device_train_batch_size=8, learning_rate=3e-3, logging_steps=1, save_strategy="no",
        report_to=[], use_cpu=True, seed=seed, disable_tqdm=True,
    )
    trainer = SemanticTrainer(
        model=model, args=args, train_dataset=graph_rows(400, seed),
        data_collator=GraphCollator(tokenizer, loss_fn), semantic_loss=loss_fn, semantic_weight=0.5,
    )
    heldout = graph_rows(32, seed + 1)
    before = trainer.semantic_loss_of(heldout)
    trainer.train()
    history = [row["semantic_loss"] for row in trainer.state.log_history if "semantic_loss" in row]
    return {"before": before, "after": trainer.semantic_loss_of(heldout), "history": history}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40)
    cli = parser.parse_args()
    result = train(cli.steps)
    print(f"semantic loss on 32 held-out graphs: {result['before']:.3f} before, {result['after']:.3f} after")
