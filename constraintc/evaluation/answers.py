"""A model's answers to task records, checkpointed to a file so that an interrupted run resumes.

Each record is answered either by P(Yes) against P(No) at the answer position (batched), or,
with a reasoning budget, by the answer the model writes after its own reasoning (greedy). The
answers go to ``predictions.jsonl`` every chunk, beside ``predictions.meta.json``, the settings
that produced them: a rerun with the same settings and data resumes; any other starts afresh.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Answering:
    """How a model is asked: ``model`` (a :func:`constraintc.lm.load_model` spec), the prompt
    style, the Yes/No verbalizers, ``traces`` (a reasoning budget in tokens, or None: no
    reasoning), ``name_pool`` (the records were renamed into the first N short names first),
    ``batch_size``, ``device`` (auto, cpu, cuda or cuda:N)."""

    model: str
    prompt_style: str = "plain"
    yes: str = "Yes"
    no: str = "No"
    traces: int | None = None
    name_pool: int = 0
    batch_size: int = 16
    device: str = "auto"

    def fingerprint(self, data: Path) -> dict:
        """What makes two runs' answers interchangeable (the batch size and device do not)."""
        out = {k: v for k, v in asdict(self).items() if k not in ("batch_size", "device")}
        out["data_sha256"] = hashlib.sha256(Path(data).read_bytes()).hexdigest()
        if self.traces is not None:  # written answers carry p_yes (predictions saved before did not)
            out["written_p_yes"] = True
        return out


def model_answers(records: list[dict], how: Answering, data: str | Path, out_dir: Path | None = None,
                  progress: bool = True) -> list[dict]:
    """``{"id", "prediction", "p_yes"}`` (with traces: the written output, its parsed answer and
    that answer's ``p_yes``) for every
    record, in order; with ``out_dir``, checkpointed to ``out_dir/predictions.jsonl`` and resumed
    from it. ``data`` is the file the records came from (its digest is part of the fingerprint)."""
    from tqdm.auto import tqdm

    from constraintc.evaluation.generation import generate_traces
    from constraintc.lm import load_model, score_prompts
    from constraintc.tasks.corpus import task_text
    from constraintc.tasks.io import read_jsonl
    from constraintc.tasks.prompts import format_prompts, reasoning_prompt

    fingerprint = how.fingerprint(Path(data))
    done: dict[str, dict] = {}
    pred_path = None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        pred_path, meta_path = out_dir / "predictions.jsonl", out_dir / "predictions.meta.json"
        if pred_path.exists() and meta_path.exists() and json.loads(meta_path.read_text()) == fingerprint:
            done = {p["id"]: p for p in read_jsonl(pred_path, "--output-dir")}
            print(f"resuming: {len(done)} predictions already in {pred_path}", file=sys.stderr)
        else:
            pred_path.write_text("")
            meta_path.write_text(json.dumps(fingerprint, indent=1))
    todo = [r for r in records if r["id"] not in done]
    if todo:
        from constraintc.lm.models import resolve_device

        device = resolve_device(how.device)
        model, tokenizer = load_model(how.model, corpus=task_text)
        model = model.to(device)
        chunk = max(how.batch_size * 8, 64)
        bar = tqdm(total=len(todo), desc="eval", unit="prompt", disable=not progress, file=sys.stderr)
        try:
            for start in range(0, len(todo), chunk):
                part = todo[start : start + chunk]
                if how.traces is not None:
                    prompts = [reasoning_prompt(r, how.prompt_style, tokenizer) for r in part]
                    generated = generate_traces(model, tokenizer, prompts, how.traces, how.batch_size,
                                                yes=how.yes, no=how.no)
                    rows = [{"id": r["id"], **g} for r, g in zip(part, generated)]
                else:
                    prompts = format_prompts(part, how.prompt_style, tokenizer)
                    p_yes = score_prompts(model, tokenizer, prompts, how.yes, how.no, batch_size=how.batch_size)
                    rows = [
                        {"id": r["id"], "prediction": "Yes" if p >= 0.5 else "No", "p_yes": float(p)}
                        for r, p in zip(part, p_yes.tolist())
                    ]
                for row in rows:
                    done[row["id"]] = row
                if pred_path is not None:
                    with pred_path.open("a", encoding="utf-8") as handle:
                        for row in rows:
                            handle.write(json.dumps(row) + "\n")
                bar.update(len(part))
        finally:
            bar.close()
        del model
    return [done[r["id"]] for r in records]
