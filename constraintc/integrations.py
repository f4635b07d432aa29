"""The semantic loss in the training loops people already have: Hugging Face ``Trainer`` and
TRL's ``SFTTrainer``.

- :class:`GraphCollator` turns dataset rows (one graph each: ``nodes``, ``edges``, optionally
  ``premise``, ``atoms`` and per-atom ``labels``) into a packed batch (every question about a graph
  in one row, the premise encoded once) that still carries the graphs;
- :class:`SemanticLossMixin` gives any ``Trainer`` subclass a ``compute_loss`` of
  ``CE(labelled answers) + semantic_weight * SL(graphs)``;
- ``SemanticTrainer`` (``transformers.Trainer``) and ``SemanticSFTTrainer`` (``trl.SFTTrainer``,
  imported only when asked for: ``pip install 'constraintc[trl]'``) are that mixin on those
  classes.

>>> from constraintc import SemanticLoss
>>> from constraintc.lm import build_tiny_model
>>> model, tok = build_tiny_model()
>>> collate = GraphCollator(tok, SemanticLoss("transitivity"))
>>> batch = collate([{"nodes": ["a", "b", "c"], "edges": [["a", "b"]], "labels": {"causes(a,b)": "Yes"}}])
>>> batch["packed"].num_questions, batch["labels"].tolist()
(6, [1.0, -1.0, -1.0, -1.0, -1.0, -1.0])

See ``examples/hf_trainer.py`` for a run and docs/api.md for the row format.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from constraintc.errors import ConstraintcError


@dataclass(frozen=True)
class Graphs:
    """The graphs of a batch, ``(nodes, edges, atoms)`` each, in the order of the questions.

    A plain object on purpose: ``Trainer`` moves tensors, lists and dicts of a batch to the device
    and would walk into a list of graphs; this it passes through untouched."""

    items: tuple

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self):
        return iter(self.items)


def _premise(edges) -> str:
    from constraintc.tasks.generate import premise_text

    return premise_text([tuple(e) for e in edges])


class GraphCollator:
    """Collate graph rows for a ``Trainer``: ``collate(rows) -> batch``.

    A row is a dict with ``nodes`` and ``edges``, and optionally ``premise`` (default: the
    task generators' ``"X causes Y."`` sentences), ``atoms`` (default: every query atom of the
    rules over the nodes, with ``all_atoms``; else the labelled ones) and ``labels`` (a dict
    atom -> ``"Yes"``/``"No"``, or a list aligned with ``atoms``; missing: unlabelled).
    ``prompt(premise, question)`` builds each prompt (default: ``constraintc.tasks.prompts.
    plain_prompt``; for a chat model, e.g. ``lambda p, q: apply_chat(chat_content(p, q), tok)``).

    The batch: ``packed`` (a :class:`~constraintc.lm.binding.PackedBatch`), ``graphs``
    (:class:`Graphs`) and ``labels`` (``[Q]`` float: 1 Yes, 0 No, -1 unlabelled).
    """

    def __init__(self, tokenizer, loss, prompt=None, all_atoms: bool = True):
        from constraintc.tasks.prompts import plain_prompt

        self.tokenizer = tokenizer
        self.loss = loss
        self.prompt = prompt or plain_prompt
        self.all_atoms = all_atoms

    def __call__(self, rows: list[dict]) -> dict:
        from constraintc.lm.binding import pack_groups
        from constraintc.train.data import Graph

        graphs, groups, labels = [], [], []
        for i, row in enumerate(rows):
            try:
                nodes, edges = list(row["nodes"]), [tuple(e) for e in row["edges"]]
            except (KeyError, TypeError) as exc:
                raise ConstraintcError(f"error: GraphCollator: row {i} needs 'nodes' and 'edges' ({exc})") from None
            given = row.get("labels") or {}
            atoms = row.get("atoms")
            if atoms is None:
                atoms = self.loss.graph_atoms(nodes, edges).atoms if self.all_atoms else list(given)
            atoms = list(atoms)
            if not isinstance(given, dict):
                if len(given) != len(atoms):
                    raise ConstraintcError(f"error: GraphCollator: row {i} has {len(given)} labels for {len(atoms)} atoms")
                given = dict(zip(atoms, given))
            for atom, lab in given.items():
                if lab is not None and lab not in (self.loss.yes, self.loss.no):
                    raise ConstraintcError(f"error: GraphCollator: row {i}: label {lab!r} of {atom}: expected "
                                           f"{self.loss.yes!r}, {self.loss.no!r} or None")
            if not atoms:
                raise ConstraintcError(f"error: GraphCollator: row {i} asks no question")
            premise = row.get("premise") or _premise(edges)
            prompts = [self.prompt(premise, self.loss.question(a)) for a in atoms]
            labels += [-1.0 if given.get(a) is None else float(given[a] == self.loss.yes) for a in atoms]
            graphs.append(Graph(str(row.get("group", i)), nodes, [list(e) for e in edges], atoms, prompts,
                                [given.get(a) for a in atoms]))
        self.loss.prepare(graphs)  # bad atoms fail here, in the data loader, with their names
        packed = pack_groups(self.tokenizer, [g.prompts for g in graphs], self.loss.yes, self.loss.no)
        return {"packed": packed, "graphs": Graphs(tuple(graphs)), "labels": torch.tensor(labels)}


class SemanticLossMixin:
    """``compute_loss`` for a ``transformers.Trainer`` subclass, on :class:`GraphCollator` batches:

        loss = CE(labelled answers, mean)  +  semantic_weight * mean over graphs of SL(graph)

    the loss step of ``constraintc finetune`` (``constraintc.train.loss.loss_step``: the CE of
    the answer token over the vocabulary, the semantic loss from the Yes/No logits).

    Pass ``semantic_loss=SemanticLoss(...)`` and ``semantic_weight=...`` to the constructor (the
    rest goes to the trainer). ``remove_unused_columns`` is switched off (the rows are graphs, not
    model inputs). The two terms are logged as ``ce_loss`` and ``semantic_loss``.
    """

    def __init__(self, *args, semantic_loss=None, semantic_weight: float = 1.0, **kwargs):
        if semantic_loss is None:
            raise ConstraintcError("error: semantic_loss=None: pass a constraintc.SemanticLoss")
        args_obj = kwargs.get("args", args[1] if len(args) > 1 else None)
        if args_obj is not None and getattr(args_obj, "remove_unused_columns", False):
            args_obj.remove_unused_columns = False
        super().__init__(*args, **kwargs)
        self.semantic_loss = semantic_loss
        self.semantic_weight = float(semantic_weight)
        self._terms: dict[str, list[float]] = {"ce_loss": [], "semantic_loss": []}

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        from constraintc.lm.binding import packed_logits, yes_no_log_probs
        from constraintc.train.loss import loss_step

        if "packed" not in inputs or "graphs" not in inputs:
            raise ConstraintcError("error: SemanticLossMixin.compute_loss needs batches from "
                                   "constraintc.integrations.GraphCollator (data_collator=...)")
        device = next(model.parameters()).device
        batch = inputs["packed"].to(device)
        graphs = list(inputs["graphs"])
        logits, _ = packed_logits(model, batch)
        log_p, log_q = yes_no_log_probs(logits.double(), batch)
        labelled = sum(lab is not None for g in graphs for lab in g.labels)
        loss, stats = loss_step(graphs, batch, logits, log_p, log_q, None, self.semantic_loss.to(device),
                                lam=self.semantic_weight, n_labelled=max(labelled, 1), n_graphs=len(graphs))
        self._terms["ce_loss"].append(stats[0].item() / max(labelled, 1))
        self._terms["semantic_loss"].append(stats[1].item() / len(graphs))
        if return_outputs:
            q = torch.arange(logits.shape[0], device=logits.device)
            return loss, {"logits": torch.stack([logits[q, batch.yes_ids], logits[q, batch.no_ids]], 1)}
        return loss

    @torch.no_grad()
    def semantic_loss_of(self, rows: list[dict]) -> float:
        """The model's mean semantic loss on ``rows`` (collated by this trainer's collator),
        without gradients: a held-out check of what the rules say about its answers."""
        from constraintc.lm.binding import packed_atom_logits

        batch = self.data_collator(rows)
        was_training = self.model.training
        self.model.eval()
        try:
            out = packed_atom_logits(self.model, batch["packed"])
        finally:
            self.model.train(was_training)
        return float(self.semantic_loss.to(out.yes.device)(list(batch["graphs"]), out.yes, out.no))

    def log(self, logs, *args, **kwargs):
        for key, values in self._terms.items():
            if values:
                logs[key] = sum(values) / len(values)
                values.clear()
        return super().log(logs, *args, **kwargs)


def _semantic_trainer():
    from transformers import Trainer

    class SemanticTrainer(SemanticLossMixin, Trainer):
        """``transformers.Trainer`` with the semantic loss (see :class:`SemanticLossMixin`)."""

    return SemanticTrainer


def _semantic_sft_trainer():
    try:
        from trl import SFTTrainer
    except ImportError:
        raise ConstraintcError(
            "error: SemanticSFTTrainer needs TRL, an optional extra: pip install 'constraintc[trl]' "
            "(or pip install trl)"
        ) from None

    class SemanticSFTTrainer(SemanticLossMixin, SFTTrainer):
        """``trl.SFTTrainer`` with the semantic loss (see :class:`SemanticLossMixin`)."""

    return SemanticSFTTrainer


_LAZY = {"SemanticTrainer": _semantic_trainer, "SemanticSFTTrainer": _semantic_sft_trainer}
_BUILT: dict = {}

__all__ = ["Graphs", "GraphCollator", "SemanticLossMixin", "SemanticTrainer", "SemanticSFTTrainer"]


def __getattr__(name: str):
    if name in _LAZY:
        if name not in _BUILT:
            _BUILT[name] = _LAZY[name]()
        return _BUILT[name]
    raise AttributeError(f"module 'constraintc.integrations' has no attribute {name!r}")
