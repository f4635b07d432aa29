"""The semantic loss in a plain torch training loop: no labels, only the rules.

A tiny Gemma-architecture model (built from a config, nothing downloaded) is asked every
"Does X cause Y?" question about random causal graphs; the loss is the semantic loss of
transitivity.rules, so the model learns to answer consistently with the graph and the rules.
Swap in any Hugging Face causal LM and its tokenizer, and your own graphs.

    python examples/own_training_loop.py --steps 40
"""

import argparse
import random

import torch

from constraintc import SemanticLoss
from constraintc.lm import atom_logits, build_tiny_model


def random_graph(rng: random.Random):
    """Your data: a DAG over some of the names the tiny tokenizer knows."""
    nodes = rng.sample("abcdef", rng.randint(3, 5))
    edges = [(u, v) for i, u in enumerate(nodes) for v in nodes[i + 1 :] if rng.random() < 0.4]
    return nodes, edges


def batch(loss_fn, rng: random.Random, size: int):
    """Graphs (nodes, edges, asked atoms) and one list of prompts per graph."""
    graphs, prompts = [], []
    for _ in range(size):
        nodes, edges = random_graph(rng)
        asked = loss_fn.graph_atoms(nodes, edges)  # every query atom and its question
        premise = " ".join(f"{u} causes {v}." for u, v in edges)
        graphs.append((nodes, edges, asked.atoms))
        prompts.append([f"{premise}\nQuestion: {q}\nAnswer:" for q in asked.questions])
    return graphs, prompts


def train(steps: int = 20, graphs_per_step: int = 8, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    rng = random.Random(seed)
    model, tokenizer = build_tiny_model(seed=seed)
    loss_fn = SemanticLoss("transitivity")  # a .rules file or a library name
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    heldout = batch(loss_fn, random.Random(seed + 1), 32)

    def heldout_loss() -> float:
        with torch.no_grad():
            out = atom_logits(model, tokenizer, heldout[1], loss_fn.yes, loss_fn.no)
            return loss_fn(heldout[0], out.yes, out.no).item()

    before, history = heldout_loss(), []
    for _ in range(steps):
        graphs, prompts = batch(loss_fn, rng, graphs_per_step)
        out = atom_logits(model, tokenizer, prompts, loss_fn.yes, loss_fn.no)  # with gradients
        loss = loss_fn(graphs, out.yes, out.no)  # mean exact semantic loss over the graphs
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(loss.item())
    return {"before": before, "after": heldout_loss(), "history": history}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    result = train(args.steps)
    print(f"semantic loss on 32 held-out graphs: {result['before']:.3f} before, {result['after']:.3f} after")
