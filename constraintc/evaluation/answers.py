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
                  progress: bool = True, templates: tuple[str, ...] = ()) -> list[dict]:
    """``{"id", "prediction", "p_yes"}`` (with traces: the written output, its parsed answer and
    that answer's ``p_yes``) for every
    record, in order; with ``out_dir``, checkpointed to ``out_dir/predictions.jsonl`` and resumed
    from it. ``data`` is the file the records came from (its digest is part of the fingerprint).
    ``templates``: the question templates of the rules the records were made for, beside the
    library tasks' (:func:`model_views`)."""
    from tqdm.auto import tqdm

    from constraintc.evaluation.generation import generate_traces
    from constraintc.lm import load_model, score_prompts
    from constraintc.tasks.corpus import task_text
    from constraintc.tasks.io import read_jsonl
    from constraintc.tasks.prompts import format_prompts, reasoning_prompt
    from constraintc.tasks.rename import rename_words

    # records whose node names read as words are asked with stand-ins (:func:`model_views`), found
    # by these templates: predictions made otherwise (before stand-ins) are not resumed
    fingerprint = {**how.fingerprint(Path(data)), "stand_in_names": list(templates)}
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
        views, backs = model_views(todo, tokenizer, templates)
        chunk = max(how.batch_size * 8, 64)
        bar = tqdm(total=len(todo), desc="eval", unit="prompt", disable=not progress, file=sys.stderr)
        try:
            for start in range(0, len(todo), chunk):
                part, seen = todo[start : start + chunk], views[start : start + chunk]
                if how.traces is not None:
                    prompts = [reasoning_prompt(r, how.prompt_style, tokenizer) for r in seen]
                    generated = generate_traces(model, tokenizer, prompts, how.traces, how.batch_size,
                                                yes=how.yes, no=how.no)
                    rows = [{"id": r["id"], **g, "output": rename_words(g["output"], back)}
                            for r, g, back in zip(part, generated, backs[start : start + chunk])]
                else:
                    prompts = format_prompts(seen, how.prompt_style, tokenizer)
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


def model_views(records: list[dict], tokenizer, templates: tuple[str, ...] = ()) \
        -> tuple[list[dict], list[dict[str, str]]]:
    """The records as ``tokenizer``'s model is asked them, and per record the way back from the
    names in the model's text to the record's.

    A tokenizer that reads its task's words as words and every other word as a name (the
    embedded default's, :class:`constraintc.lm.tokenizer.NameSlotTokenizer`) would read a node
    named ``a`` or ``d`` as the word; such names get stand-ins
    (:func:`constraintc.tasks.rename.names_apart_from_words`, which finds them by the question
    ``templates`` and the library tasks'). Other tokenizers read the text as
    it is. A note on stderr counts the records whose names may be words but whose text is not in
    the generated format, so that nothing could be renamed.
    """
    from constraintc.tasks.rename import names_apart_from_words

    words = getattr(tokenizer, "name_words", None)
    if not words:
        return list(records), [{} for _ in records]
    views, backs, stuck, renamed = [], [], [], 0
    for r in records:
        found = names_apart_from_words(r, words, templates)
        if found is None:
            stuck.append(r)
            found = (r, {})
        views.append(found[0])
        backs.append(found[1])
        renamed += bool(found[1])
    if renamed:
        print(f"note: {renamed} of {len(records)} records name nodes like words of the model's tokenizer "
              f"(e.g. 'a', 'd'); the model is asked them with stand-in names (a_1), which read as names",
              file=sys.stderr)
    if stuck:
        clash = sorted({str(n) for r in stuck for n in r.get("nodes") or () if n in words})
        print(f"note: {len(stuck)} records name nodes like words of the model's tokenizer ({', '.join(clash[:8])}) "
              f"but their premise or question is not in the generated format (\"U causes V.\" statements, the "
              f"question of --rules or of a library task), so those names are read as words: rename them in the data",
              file=sys.stderr)
    return views, backs
