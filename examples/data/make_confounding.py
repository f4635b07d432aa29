"""Write examples/data/confounding.jsonl: questions for examples/rules/confounding.rules.

Random DAGs of 4-6 nodes; for each graph every confounded pair is asked and as many unconfounded
ones (balanced labels), labels from networkx (a common ancestor). Records use the schema of
`constraintc data` (premise, nodes, edges, atom, question, label, group, id, task, split).

    python examples/data/make_confounding.py            # deterministic (seed 0)
"""

import json
import random
from pathlib import Path

import networkx as nx

NAMES = ["B", "C", "D", "E", "F", "G", "H"]


def records(graphs: int = 40, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for g in range(graphs):
        nodes = rng.sample(NAMES, rng.randint(4, 6))
        edges = [(u, v) for i, u in enumerate(nodes) for v in nodes[i + 1 :] if rng.random() < 0.35]
        dag = nx.DiGraph(edges)
        dag.add_nodes_from(nodes)
        pairs = [(x, y) for x in nodes for y in nodes if x != y]
        yes = [p for p in pairs if nx.ancestors(dag, p[0]) & nx.ancestors(dag, p[1])]
        no = [p for p in pairs if p not in yes]
        asked = [(p, "Yes") for p in yes] + [(p, "No") for p in rng.sample(no, min(len(no), max(len(yes), 1)))]
        premise = " ".join(f"{u} causes {v}." for u, v in rng.sample(edges, len(edges)))
        for k, ((x, y), label) in enumerate(asked):
            out.append({
                "premise": premise, "question": f"Do {x} and {y} have a common cause?", "label": label,
                "task": "confounding", "split": "train", "nodes": nodes, "edges": [list(e) for e in edges],
                "atom": f"confounded({x},{y})", "group": f"confounding-g{g:03d}", "id": f"confounding-{g:03d}-{k:02d}",
            })
    return out


if __name__ == "__main__":
    path = Path(__file__).with_name("confounding.jsonl")
    rows = records()
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"{path}: {len(rows)} records, {len({r['group'] for r in rows})} graphs")
