"""The fine-tuning recipe: setup, train, save_checkpoint, cleanup — readable top to bottom.

One optimizer step takes a global batch of ``batch_groups`` graphs (drawn statelessly from the
seed and the step), splits it into ``grad_accum`` micro-batches and, under ``torchrun`` /
``accelerate launch``, each micro-batch across the processes. Every loss term is a *sum* divided
by a count over the whole global batch, and gradients are summed across processes, so any number
of processes and micro-batches computes the gradient of the same function: the one-process run.

    loss = CE(labelled answers) / #labelled  +  lambda(t) * sum_graphs SL(graph) / #graphs
           [+ sum_labelled trace CE / #labelled  with --trace keep|mask]
    SL(graph) = -log P(the rules hold | the model's answers, the graph's edges clamped)

With ``--trace keep`` or ``mask`` every labelled question is also asked as a reasoning prompt
followed by its record's trace, ``Answer:`` and the label, packed into the same row; its CE is
the mean over its target tokens: the trace, ``Answer:``, the answer and EOS (keep) or the answer
alone, the trace being context (mask). The atoms' probabilities for the semantic loss, the
held-out checks and the evaluation stay at the direct answer positions.

The loss of a micro-batch is :func:`constraintc.train.loss.loss_step` (a pure function of the
model's outputs); checkpoints are :mod:`constraintc.train.checkpoint` (safetensors and JSON, no
pickle); which run an output directory holds, and where a resume starts, is
:mod:`constraintc.train.rundir`; the records come from :mod:`constraintc.train.records`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import random
import shlex
import time
from pathlib import Path

import torch

from constraintc.errors import ConstraintcError
from constraintc.train.config import FinetuneConfig, pretrain_stretch
from constraintc.train.records import TRAIN_DATA_SEED
from constraintc.train.rundir import RULES_COPY, TRACES_MODEL
from constraintc.train.schedules import LambdaSchedule


# traces-only steps over which the trace CE is averaged: --pretrain-stretch-after compares that
# mean with its threshold, and the first stage's report with LOOKUPS_CAME
LOOKUP_WINDOW = 50
# below this windowed trace CE a traces-only stage's lookups have come (docs/finetune.md: of 24
# plain first stages on one GPU, the 9 that stayed above it wrote 0.50-0.81 on long chains (mean
# 0.59), the 15 that fell below it 0.63-0.96 (mean 0.82))
LOOKUPS_CAME = 0.1


def lr_factor(cfg: FinetuneConfig):
    """The learning-rate multiplier (of ``cfg.lr``) at global step ``s``. The main recipe's steps:
    a linear warm-up over ``warmup_steps``, then constant, or a half cosine from 1 to 0.1 at the
    last step (``lr_schedule = "cosine"``). A traces-only stage (``pretrain_steps``) comes first,
    with its own warm-up to ``pretrain_lr``, then constant, its last ``pretrain_decay_steps`` a half
    cosine down to a tenth of ``pretrain_lr``.

    >>> from constraintc.train.config import validate
    >>> f = lr_factor(validate({"steps": 100, "warmup_steps": 10, "lr_schedule": "cosine"}))
    >>> round(f(4), 2), f(9), round(f(99), 2)
    (0.5, 1.0, 0.1)
    >>> g = lr_factor(validate({"steps": 100, "warmup_steps": 10, "lr_schedule": "cosine", "trace": "keep",
    ...                         "pretrain_steps": 50, "pretrain_lr": 0.012, "lr": 0.006}))
    >>> g(4), g(49), round(g(54), 2), round(g(149), 2)
    (1.0, 2.0, 0.5, 0.1)
    >>> h = lr_factor(validate({"steps": 100, "warmup_steps": 0, "trace": "keep", "pretrain_steps": 50,
    ...                         "pretrain_decay_steps": 21, "pretrain_lr": 0.012, "lr": 0.006}))
    >>> h(28), h(29), round(h(39), 2), round(h(49), 2), h(50)
    (2.0, 2.0, 1.1, 0.2, 1.0)
    """
    warmup, steps, cosine = cfg.warmup_steps, cfg.steps, cfg.lr_schedule == "cosine"
    first, ratio = cfg.pretrain_steps, cfg.pretrain_lr / cfg.lr
    decay = cfg.pretrain_decay_steps

    def ramp(s: int) -> float:
        return (s + 1) / warmup if warmup and s < warmup else 1.0

    def factor(s: int) -> float:
        if s < first:
            if decay and s >= first - decay:  # the stage's last `decay` steps: 1 at the first, 0.1 at the last
                t = (s - (first - decay)) / max(decay - 1, 1)
                return ratio * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * t)))
            return ratio * ramp(s)
        s -= first
        if not cosine or (warmup and s < warmup):
            return ramp(s)
        t = (s - warmup) / max(steps - 1 - warmup, 1)
        return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0)))

    return factor


def favoured_answer(constraint, graphs, sample: int = 64) -> str | None:
    """The answer the semantic loss alone pulls the training graphs' atoms toward: the mean of
    ``P(atom | rules, edges)`` with every answer a fair coin (the gradient of ``log WMC`` with
    respect to ``log p``) over the atoms only the semantic loss supervises (the unlabelled ones;
    every asked atom when none is), on the first ``sample`` graphs. ``None`` when that mean is
    within 0.05 of 1/2.

    >>> from constraintc import SemanticLoss
    >>> from constraintc.train.data import Graph
    >>> g = Graph("g", ["B", "C", "D"], [["B", "C"]], atoms=["causes(B,D)", "causes(D,B)", "causes(C,D)", "causes(D,C)"])
    >>> g.labels = [None] * 4
    >>> favoured_answer(SemanticLoss("transitivity"), [g])
    'No'
    """
    # a sum over node subsets counts an atom once per subset: its gradient is no marginal
    graphs = [g for g in graphs if g.atoms and constraint.strategy(g.nodes, g.edges) != "subsets"][:sample]
    if not graphs:
        return None
    keys = [(g.nodes, g.edges, g.atoms) for g in graphs]
    log_p = [torch.full((len(g.atoms),), math.log(0.5), dtype=torch.float64, requires_grad=True) for g in graphs]
    log_q = [torch.full((len(g.atoms),), math.log(0.5), dtype=torch.float64) for g in graphs]
    log_w = constraint.log_wmc(keys, log_p, log_q)
    finite = torch.isfinite(log_w)
    if not finite.any():
        return None
    log_w[finite].sum().backward()
    marginals, unlabelled = [], []
    for g, lp, ok in zip(graphs, log_p, finite.tolist()):
        if ok:
            marginals.append(lp.grad)
            labels = list(g.labels) + [None] * (len(g.atoms) - len(g.labels))
            unlabelled.append(torch.tensor([lab is None for lab in labels]))
    marginals, unlabelled = torch.cat(marginals), torch.cat(unlabelled)
    pulled = marginals[unlabelled] if unlabelled.any() else marginals
    mean = float(pulled.mean())
    if abs(mean - 0.5) <= 0.05:
        return None
    return constraint.yes if mean > 0.5 else constraint.no


def _dist():
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def watch_window(window: list[float], came: int | None, step: int, trace_ce: float,
                 size: int | None = None, below: float | None = None) -> tuple[list[float], int | None]:
    """The last ``size`` (:data:`LOOKUP_WINDOW`) traces-only steps' trace CE after step ``step``
    (counted from 1), and the step at which their mean first fell below ``below``
    (:data:`LOOKUPS_CAME`; ``came`` until then).

    >>> w, came = [], None
    >>> for i, ce in enumerate([0.5] * LOOKUP_WINDOW + [0.0] * LOOKUP_WINDOW, 1):
    ...     w, came = watch_window(w, came, i, ce)
    >>> came  # 50 steps at 0.5, then 0: the mean of the last 50 falls below 0.1 at the 41st 0
    91
    """
    size = LOOKUP_WINDOW if size is None else size  # the module's values when called (tests patch them)
    below = LOOKUPS_CAME if below is None else below
    window = (window + [trace_ce])[-size:]
    if came is None and len(window) == size and math.fsum(window) / size < below:
        came = step
    return window, came


def replay_lookups(metrics: Path, upto: int) -> tuple[list[float], int | None]:
    """:func:`watch_window` over the traces-only rows of ``metrics`` (a run's metrics.jsonl) up to
    step ``upto``: what a checkpoint at ``upto`` would hold had it kept the window."""
    rows = {}
    if metrics.is_file():
        for line in metrics.read_text().splitlines():
            try:
                r = json.loads(line)
            except ValueError:
                continue
            if isinstance(r, dict) and r.get("stage") == "traces" and isinstance(r.get("trace_ce"), (int, float)) \
                    and isinstance(r.get("step"), int) and r["step"] <= upto:
                rows[r["step"]] = float(r["trace_ce"])
    window, came = [], None
    for step in sorted(rows):
        window, came = watch_window(window, came, step, rows[step])
    return window, came


def _log(msg: str) -> None:
    import sys

    print(msg, file=sys.stderr, flush=True)


class FinetuneRecipe:
    """``FinetuneRecipe(cfg).run()`` trains, checkpoints, evaluates; see the module docstring.

    >>> from constraintc.train.config import validate
    >>> recipe = FinetuneRecipe(validate({"steps": 2, "output_dir": "/tmp/ft"}))   # doctest: +SKIP
    >>> summary = recipe.run()                                                      # doctest: +SKIP
    """

    def __init__(self, cfg: FinetuneConfig, resume=None, progress: bool = True, quiet: bool = False,
                 overwrite: bool = False, allow_config_change: bool = False):
        """``resume``: None (a new run), ``"latest"``, an output or checkpoint directory, or a
        :class:`~constraintc.train.rundir.ResumePoint`. ``overwrite`` lets a new run replace
        the run in ``cfg.output_dir``; ``allow_config_change`` lets a resumed run train with
        settings that differ from its checkpoint's."""
        self.cfg = cfg
        self.resume = resume
        self.progress = progress
        self.quiet = quiet
        self.overwrite = overwrite
        self.allow_config_change = allow_config_change
        self.out = Path(cfg.output_dir)
        self.step = 0
        self.run_id: str | None = None
        self.saved_step: int | None = None  # the newest checkpoint of this run
        self.before: dict | None = None
        self.after: dict | None = None
        # --pretrain-stretch-after: the traces-only steps' trace CE over the last LOOKUP_WINDOW
        # steps, and the step from which that stage's positions are stretched (None: not yet)
        self.recent_trace_ce: list[float] = []
        self.stretch_from: int | None = None
        self.lookups_step: int | None = None  # the first step whose windowed trace CE was below LOOKUPS_CAME
        self._pack_cache: dict = {}  # the training and held-out graphs' token ids (pack_groups)

    # ------------------------------------------------------------------------------ setup
    def setup(self) -> None:
        cfg = self.cfg
        self._setup_distributed()
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        elif self.from_scratch:
            # a step of the default run took 0.36 s on two threads and 0.51 s on one (2-core machine
            # under load); several processes (torchrun) share the cores, one thread each
            torch.set_num_threads(1 if self.world > 1 else max(1, min(2, os.cpu_count() or 1)))
        self.device = self._setup_device()
        point = self._setup_output()
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        self._setup_model()
        if self.rank == 0 and not self.quiet:
            where = (f"{self.device} ({torch.cuda.get_device_name(self.device)})" if self.device.type == "cuda"
                     else f"the CPU, {torch.get_num_threads()} thread(s)")
            _log(f"training on {where}")
        self._setup_data()
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=(0.9, cfg.adam_beta2), weight_decay=cfg.weight_decay)
        self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_factor(cfg))
        self.schedule = LambdaSchedule(
            cfg.lambda_schedule, cfg.steps, cfg.lambda_start, cfg.lambda_end,
            cfg.lambda_up, cfg.lambda_down, cfg.lambda_max,
        )
        if point is not None:
            self._restore(point)
        elif self.rank == 0:
            (self.out / "metrics.jsonl").write_text("")
        if self.rank == 0:
            (self.out / RULES_COPY).write_text(self.constraint.program.source, encoding="utf-8")
        before_path = self.out / "eval_before.json"
        if cfg.final_eval and self.step == 0:
            # a model built from scratch writes noise before training: its written reasoning is
            # not generated then (up to 160 tokens for each of 1200 questions: minutes on a CPU)
            self.before = self.evaluate(written=not self.from_scratch)
            if self.rank == 0:
                before_path.write_text(json.dumps(self.before, indent=1) + "\n")
        elif cfg.final_eval and self.rank == 0 and before_path.is_file():
            self.before = json.loads(before_path.read_text())

    def _setup_output(self):
        """Claim the output directory: a new run (refusing another run's directory unless
        ``overwrite``) or the resume point of its own run (config checked against the saved
        one). Returns the :class:`ResumePoint` or None. Runs before the model is built, so a
        refusal costs nothing."""
        from constraintc.train import rundir
        from constraintc.train.checkpoint import remove_partial_writes

        cfg = self.cfg
        if self.resume is not None and self.overwrite:
            raise rundir.RunDirError("error: --overwrite and --resume contradict each other: give one")
        if self.rank == 0:
            rundir.check_writable(self.out)
            rundir.lock(self.out)
        point = None
        if self.resume is None:
            if self.rank == 0:
                self.run_id = rundir.start_new_run(self.out, self.overwrite)
        else:
            point = self.resume
            if not isinstance(point, rundir.ResumePoint):
                point = rundir.find_resume(str(point), self.out)
            self.run_id, self.saved_step = point.run_id, point.step
            dist = _dist()
            if dist:  # every process must continue from the same checkpoint
                chosen = torch.tensor([point.step])
                dist.broadcast(chosen, 0)
                if int(chosen) != point.step:
                    raise rundir.RunDirError(
                        f"error: --resume: process {self.rank} found step {point.step}, process 0 step "
                        f"{int(chosen)} (was {self.out} changing?); run the command again"
                    )
            for path, why in point.skipped if self.rank == 0 else []:
                _log(f"warning: skipping checkpoint {path}: {why}")
            diffs = rundir.config_differences(point.config, cfg.to_dict())
            if diffs:
                listing = "\n  ".join(f"{k}: {saved!r} in the checkpoint, {now!r} now" for k, saved, now in diffs)
                if not self.allow_config_change:
                    raise rundir.RunDirError(
                        f"error: --resume: these settings differ from the run's checkpoint ({point.checkpoint}):\n"
                        f"  {listing}\nresume without them (the checkpoint's settings are used), or pass "
                        "--allow-config-change to continue with the new values"
                    )
                if self.rank == 0:
                    _log(f"warning: --allow-config-change: resuming with settings that differ from the checkpoint:\n  {listing}")
            run = rundir.read_run(self.out) or {}
            if point.step >= self.total_steps and run.get("finished"):
                raise rundir.RunDirError(
                    f"error: --resume: the run in {str(self.out)!r} already finished (step {point.step} of "
                    f"{self.total_steps}); nothing to resume. Raise --steps (with --allow-config-change) to train on, "
                    "or start a new run with --overwrite or another --output-dir"
                )
            if self.rank == 0:
                remove_partial_writes(self.out)
                rundir.mark_unfinished(self.out)
        if self.rank == 0:
            (self.out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
        return point

    def resume_hint(self) -> str:
        """How to go on after an interruption (what Ctrl-C prints)."""
        if self.run_id is None:
            return "interrupted before the run started: run the same command again"
        out = shlex.quote(str(self.out))
        if self.saved_step is None:
            return (f"interrupted at step {self.step}, before the first checkpoint (every "
                    f"{self.cfg.checkpoint_every} steps): nothing to resume; to start again, run the same "
                    f"command with --overwrite (it replaces the run in {out})")
        step = max(self.step, self.saved_step)  # a resumed run interrupted during its set-up is at its checkpoint
        redo = step - self.saved_step
        return (f"interrupted at step {step}; the last checkpoint is step {self.saved_step}"
                f"{f' ({redo} steps will be redone)' if redo > 0 else ''}. Continue with:\n"
                f"  constraintc finetune --resume --output-dir {out}")

    def _setup_distributed(self) -> None:
        import torch.distributed as dist

        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world > 1 and not dist.is_initialized():
            dist.init_process_group("gloo")
        self.rank = dist.get_rank() if _dist() else 0
        self.world = dist.get_world_size() if _dist() else 1

    @property
    def from_scratch(self) -> bool:
        """Is the model the embedded one (or another architecture file), built and trained from scratch?"""
        from constraintc.lm.models import EMBEDDED, is_architecture_file

        return self.cfg.model == EMBEDDED or is_architecture_file(self.cfg.model)

    def _setup_device(self) -> torch.device:
        """``cfg.device`` as a torch device (under torchrun, the GPU of the local rank)."""
        from constraintc.lm.models import resolve_device

        rank = int(os.environ.get("LOCAL_RANK", "0")) if self.world > 1 else None
        device = resolve_device(self.cfg.device, "device", rank)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        return device

    def _setup_model(self) -> None:
        cfg = self.cfg
        from constraintc.lm.models import build_embedded_model, load_model
        from constraintc.tasks.corpus import task_text

        dtype = getattr(torch, cfg.dtype)
        if self.from_scratch:
            corpus = task_text
            if cfg.data:  # the wording of the user's records is read as words, their node names as names
                from constraintc.tasks.corpus import with_records
                from constraintc.train.records import user_records

                corpus = with_records(task_text, [r for part in user_records(cfg) for r in part])
            model, tokenizer = build_embedded_model(
                corpus, None if cfg.model == "embedded" else cfg.model, dtype=dtype, seed=cfg.seed,
                traces=cfg.trace != "none",
            )
        else:
            model, tokenizer = load_model(cfg.model, dtype=dtype)
        model = model.to(self.device)
        self.full = cfg.finetune == "full" or (cfg.finetune == "auto" and self.from_scratch)
        if not self.full:
            from peft import LoraConfig, get_peft_model

            present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
            missing = [t for t in cfg.lora_targets if t not in present]
            if missing:
                raise ConstraintcError(
                    f"error: lora_targets={cfg.lora_targets!r}: the model has no module named {', '.join(missing)}"
                )
            lora = LoraConfig(
                r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                target_modules=list(cfg.lora_targets), task_type="CAUSAL_LM",
            )
            model = get_peft_model(model, lora)
        self.model, self.tokenizer = model.train(), tokenizer

    def _setup_data(self) -> None:
        cfg = self.cfg
        from constraintc.tasks.prompts import format_prompt, reasoning_prompt
        from constraintc.semantic import SemanticLoss
        from constraintc.train.data import build_graphs
        from constraintc.train.records import check_rules_fit, heldout_records, training_records

        self.constraint = SemanticLoss(cfg.rules, cfg.params).to(self.device)
        # the rules as this run read them: checked again on --resume, kept in the run directory,
        # and used (not the file, which may change meanwhile) by the final evaluation
        source = self.constraint.program.source
        self.rules_sha256 = hashlib.sha256(source.encode("utf-8")).hexdigest()
        self.semantic = cfg.lambda_schedule != "none"
        self.traced = cfg.trace != "none"
        self.prompt_fn = lambda rec: format_prompt(rec, cfg.prompt_style, self.tokenizer)
        self.reasoning_fn = lambda rec: reasoning_prompt(rec, cfg.prompt_style, self.tokenizer)
        gold: list[dict] = []
        records = training_records(cfg, log=_log if self.rank == 0 else None, gold=gold)
        records, gold[:] = self._apart(records, "training"), self._apart(gold, None)
        from constraintc.train.data import trace_groups

        self.pretrain_groups = []
        if cfg.pretrain_steps:
            self.pretrain_groups = trace_groups(gold, self.reasoning_fn, cfg.trace)
            if not self.pretrain_groups:
                raise ConstraintcError(
                    f"error: pretrain_steps={cfg.pretrain_steps}: no labelled training record to take a trace from"
                )
        self.pretrain_then_groups = []
        if cfg.pretrain_steps and cfg.pretrain_then_steps:
            then: list[dict] = []
            training_records(dataclasses.replace(cfg, train_split=cfg.pretrain_then_split), gold=then)
            self.pretrain_then_groups = trace_groups(self._apart(then, None), self.reasoning_fn, cfg.trace)
            if not self.pretrain_then_groups:
                raise ConstraintcError(
                    f"error: pretrain_then_split={cfg.pretrain_then_split!r}: no labelled record to take a trace from"
                )
        check_rules_fit(cfg, records, self.constraint.queries)
        self.train_graphs = build_graphs(
            records, self.constraint, self.prompt_fn,
            all_atoms=self.semantic, atoms_per_graph=cfg.atoms_per_graph, seed=TRAIN_DATA_SEED,
            trace=cfg.trace, reasoning_fn=self.reasoning_fn, atom_focus=cfg.atom_focus,
        )
        # CE-only training never needs an unlabelled question: drop graphs with none labelled
        if not self.semantic:
            self.train_graphs = [g for g in self.train_graphs if any(lab is not None for lab in g.labels)]
        if not self.train_graphs:
            raise ConstraintcError("error: no training graph left (no labels and no semantic loss?)")
        self.train_sizes = [len(g.nodes) for g in self.train_graphs]  # for the size curriculum
        self.heldout = build_graphs(self._apart(heldout_records(cfg), "held-out"), self.constraint, self.prompt_fn,
                                    all_atoms=False)
        self.favoured = favoured_answer(self.constraint, self.train_graphs) if self.semantic else None
        if self.favoured and self.rank == 0 and cfg.lambda_schedule == "adaptive":
            _log(
                f"the semantic loss favours {self.favoured} on the training graphs: a held-out collapse to "
                f"{self.favoured} lowers lambda, a collapse to the other answer raises it"
            )

    # ------------------------------------------------------------------------------ train
    @property
    def total_steps(self) -> int:
        """Every optimizer step of the run: the traces-only stage's, then the main recipe's."""
        return self.cfg.pretrain_steps + self.cfg.steps

    def train(self, stop_at: int | None = None) -> None:
        """Run optimizer steps up to ``total_steps`` (or ``stop_at``: a simulated interruption)."""
        from tqdm.auto import tqdm

        cfg = self.cfg
        total, first = self.total_steps, cfg.pretrain_steps
        last = total if stop_at is None else min(stop_at, total)
        bar = tqdm(
            total=total, initial=self.step, desc="traces only" if self.step < first else "finetune", unit="step",
            disable=not self.progress or self.rank != 0, dynamic_ncols=True,
        )
        while self.step < last:
            if self.step == first and first:
                bar.set_description("finetune")
            t0 = time.perf_counter()
            row = self.train_step(self.step)
            row["seconds"] = time.perf_counter() - t0
            self.step += 1
            # held-out checks (and the adaptive lambda they steer) belong to the main recipe
            if self.step > first and (self.step % cfg.eval_every == 0 or self.step == total):
                row.update(self.heldout_metrics())
                toward = self.constraint.yes if row.get("heldout_yes_rate", 0.0) >= 0.5 else self.constraint.no
                self.schedule.observe(bool(row.get("heldout_collapsed")), toward_favoured=toward == self.favoured)
            if self.rank == 0:
                with open(self.out / "metrics.jsonl", "a") as fh:
                    fh.write(json.dumps(row) + "\n")
                if self.step <= first:
                    bar.set_postfix(trace_ce=f"{row['trace_ce']:.3f}")
                else:
                    bar.set_postfix(loss=f"{row['loss']:.3f}", lam=f"{row['lambda']:.2f}", yes=f"{row['yes_rate']:.2f}")
            bar.update(1)
            if first and self.step == first and self.rank == 0:
                # the traces-only model as a model directory: `constraintc eval --traces N` reads
                # it, `constraintc finetune --model DIR --finetune full` starts other recipes from it
                self.save_model(self.out / TRACES_MODEL)
                if not self.quiet:
                    _log(self.first_stage_note())
            if self.step % cfg.checkpoint_every == 0 or self.step in (first, total):
                self.save_checkpoint()
        bar.close()

    def _forward(self, graphs, step: int | None = None):
        """Answer logits of the graphs' questions, (log p, log(1-p)) per question, and the mean
        token CE of each trace completion (None without a trace mode). ``step``: a main-recipe step,
        whose ``--position-stretch`` factors are drawn (see :meth:`_stretch`)."""
        from constraintc.lm.binding import completion_losses, pack_groups, packed_logits, yes_no_log_probs

        dtype = next(self.model.parameters()).dtype
        # a name-slot tokenizer gives each training graph its own assignment of names to name
        # tokens: the same at every visit (name_salt "graph", so a graph repeats as it does with
        # spelled names) or drawn per visit ("visit", seeded by the run, the graph and the step)
        visit = step if step is not None and self.cfg.name_salt == "visit" else None
        batch = pack_groups(
            self.tokenizer, [g.prompts for g in graphs], self.constraint.yes, self.constraint.no, dtype=dtype,
            completions=[g.completions for g in graphs] if self.traced else None,
            name_salts=[self._name_salt(g.group, visit) for g in graphs],
            # one name assignment per graph: its token ids are the same at every visit
            cache=self._pack_cache if visit is None else None,
        )
        if step is not None:
            batch = self._stretch(batch, [g.group for g in graphs], step)
        batch = batch.to(self.device)
        logits, target_logits = packed_logits(self.model, batch)
        log_p, log_q = yes_no_log_probs(logits.double(), batch)
        trace_ce = completion_losses(target_logits, batch) if self.traced else None
        return batch, logits, log_p, log_q, trace_ce

    def _stretch(self, batch, groups: list[str], step: int, stage: tuple = ()):
        """``batch`` with its rows' position ids stretched by ``--position-stretch`` factors (the
        traces-only stage: ``--pretrain-position-stretch``, unless 0), one per graph, seeded by the
        run, the stage, the step and the graph: the same on resume and however the batch is split
        over processes; ``batch`` itself when the stage's option is off."""
        from constraintc.lm.binding import stretch_positions
        from constraintc.tasks.generate import stable_seed

        top = pretrain_stretch(self.cfg) if stage else self.cfg.position_stretch
        if stage and not self.stretching(step):
            top = 1.0
        if top <= 1:
            return batch
        u = [random.Random(stable_seed("positions", self.cfg.seed, *stage, step, g)).random() for g in groups]
        return stretch_positions(batch, 1 + (top - 1) * torch.tensor(u, dtype=torch.float64))

    def stretching(self, step: int) -> bool:
        """Whether traces-only step ``step`` may read stretched positions: always, unless
        ``--pretrain-stretch-after`` waits for the lookups (then from :attr:`stretch_from` on)."""
        if not self.cfg.pretrain_stretch_after:
            return True
        return self.stretch_from is not None and step >= self.stretch_from

    def _watch_lookups(self, step: int, trace_ce: float) -> None:
        """Keep the last :data:`LOOKUP_WINDOW` traces-only steps' trace CE; with
        ``--pretrain-stretch-after T``, the first time their mean is below T the stretch starts
        at the next step (the same on every process: the trace CE is summed over all of them)."""
        self.recent_trace_ce, self.lookups_step = watch_window(self.recent_trace_ce, self.lookups_step, step + 1, trace_ce)
        if len(self.recent_trace_ce) < LOOKUP_WINDOW:
            return
        mean = math.fsum(self.recent_trace_ce) / LOOKUP_WINDOW
        threshold = self.cfg.pretrain_stretch_after
        if threshold and self.stretch_from is None and mean < threshold:
            self.stretch_from = step + 1
            if self.rank == 0 and not self.quiet:
                _log(f"step {step + 1}: mean trace CE {mean:.3f} over the last {LOOKUP_WINDOW} steps, below "
                     f"{threshold:g}: positions stretched by [1, {pretrain_stretch(self.cfg):g}] from here")

    def train_step(self, step: int) -> dict:
        """One optimizer step on global batch ``step`` (counted over the whole run: the traces-only
        stage's steps first); returns its metrics row."""
        from constraintc.train.data import batch_indices, curriculum_indices
        from constraintc.train.loss import loss_step

        cfg = self.cfg
        if step < cfg.pretrain_steps:
            return self._pretrain_step(step)
        if step == cfg.pretrain_steps and step:
            # the main recipe starts with fresh AdamW moments (on resume too: the checkpoint at
            # the stage boundary still holds the traces-only stage's)
            self.optimizer.state.clear()
        row_step, step = step, step - cfg.pretrain_steps
        if cfg.curriculum_steps:
            chosen = curriculum_indices(self.train_sizes, cfg.batch_groups, step, cfg.seed, cfg.curriculum_steps)
        else:
            chosen = batch_indices(len(self.train_graphs), cfg.batch_groups, step, cfg.seed)
        graphs = [self.train_graphs[i] for i in chosen]
        if cfg.grad_accum > 1:
            # shortest first: each micro-batch is padded to its own longest row (every loss term
            # is a sum over the global batch, so the split does not change the loss)
            graphs.sort(key=lambda g: g.length)
        n_labelled = sum(lab is not None for g in graphs for lab in g.labels)
        n_graphs = len(graphs)
        lam = self.schedule.value(step)
        micro = cfg.batch_groups // cfg.grad_accum
        # sums over this process's share: ce, sl, questions, yes answers, violated graphs, trace ce
        stats = torch.zeros(6, dtype=torch.float64)
        self.model.train()
        for start in range(0, n_graphs, micro):
            mine = graphs[start : start + micro][self.rank :: self.world]
            if not mine:
                continue
            batch, logits, log_p, log_q, trace_ce = self._forward(mine, step=step)
            loss, part = loss_step(
                mine, batch, logits, log_p, log_q, trace_ce, self.constraint,
                lam=lam if self.semantic else None, n_labelled=n_labelled, n_graphs=n_graphs,
            )
            stats += part
            loss.backward()
        grad_norm, lr = self._apply_gradients(stats)
        ce = stats[0].item() / max(n_labelled, 1)
        sl = stats[1].item() / n_graphs
        trace = stats[5].item() / max(n_labelled, 1)
        return {
            "step": row_step + 1,
            "loss": ce + trace + (lam * sl if self.semantic else 0.0),
            "ce": ce,
            "semantic": sl if self.semantic else None,
            "lambda": lam,
            "lr": lr,
            "grad_norm": grad_norm,
            "yes_rate": stats[3].item() / max(stats[2].item(), 1),
            "violation_rate": stats[4].item() / n_graphs,
            "labelled": n_labelled,
            "questions": int(stats[2].item()),
            **({"trace_ce": trace} if self.traced else {}),
        }

    def _apply_gradients(self, stats: torch.Tensor) -> tuple[float, float]:
        """Sum the gradients (and ``stats``) over the processes, clip, step the optimizer and the
        learning rate; returns (the gradient norm before clipping, the learning rate used)."""
        dist = _dist()
        if dist:
            for p in self.model.parameters():
                if p.requires_grad:
                    if p.grad is None:
                        p.grad = torch.zeros_like(p)
                    dist.all_reduce(p.grad)
            dist.all_reduce(stats)
        params = [p for p in self.model.parameters() if p.requires_grad]
        max_norm = self.cfg.max_grad_norm if self.cfg.max_grad_norm > 0 else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        self.lr_scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(grad_norm), lr

    def _name_salt(self, group: str, visit: int | None = None) -> int:
        """The salt of a training graph's name-token assignment: one per graph for the run, or,
        given ``visit`` (a step), one for that visit."""
        from constraintc.tasks.generate import stable_seed

        return stable_seed("names", self.cfg.seed, group, *(("visit", visit) if visit is not None else ()))

    def _pretrain_step(self, step: int) -> dict:
        """One step of the traces-only stage: the token-mean CE of the gold traces (and answers) of
        ``pretrain_batch`` graphs, each reading its names through an assignment of name tokens
        drawn for this visit (seeded by the run, the graph and the step), in ``pretrain_accum``
        micro-batches of graphs of similar length. The stage's last ``pretrain_then_steps`` steps
        draw from ``pretrain_then_split``'s graphs."""
        import torch.nn.functional as F

        from constraintc.lm.binding import pack_groups, packed_logits
        from constraintc.train.data import batch_indices

        cfg = self.cfg
        groups = self.pretrain_groups
        if cfg.pretrain_then_steps and step >= cfg.pretrain_steps - cfg.pretrain_then_steps:
            groups = self.pretrain_then_groups
        chosen = batch_indices(len(groups), cfg.pretrain_batch, step, cfg.seed)
        # shortest first: each micro-batch is padded to its own longest row
        items = sorted((groups[i] for i in chosen), key=lambda g: g.length)
        micro = cfg.pretrain_batch // cfg.pretrain_accum
        dtype = next(self.model.parameters()).dtype
        batches = []
        for start in range(0, len(items), micro):
            mine = items[start : start + micro][self.rank :: self.world]
            if mine:
                # (the one prompt per row is the shared prefix; its answer position goes unused)
                batch = pack_groups(
                    self.tokenizer, [[g.completions[0].prompt] for g in mine], self.constraint.yes,
                    self.constraint.no, dtype=dtype, completions=[g.completions for g in mine],
                    name_salts=[self._name_salt(g.group, step) for g in mine],
                )
                batches.append(self._stretch(batch, [g.group for g in mine], step, stage=("traces",)))
        # the loss is a sum over every target token of the global batch over their count
        tokens = torch.tensor([float(sum(b.target_ids.numel() for b in batches))], dtype=torch.float64)
        dist = _dist()
        if dist:
            dist.all_reduce(tokens)
        total = max(tokens.item(), 1.0)
        stats = torch.zeros(1, dtype=torch.float64)  # the CE summed over this process's tokens
        self.model.train()
        for batch in batches:
            batch = batch.to(self.device)
            _, target_logits = packed_logits(self.model, batch)
            ce_sum = F.cross_entropy(target_logits.float(), batch.target_ids, reduction="sum")
            (ce_sum / total).backward()
            stats += ce_sum.detach().double().cpu()
        grad_norm, lr = self._apply_gradients(stats)
        trace = stats.item() / total
        stretch = pretrain_stretch(cfg) if self.stretching(step) else 1.0
        self._watch_lookups(step, trace)
        return {
            "step": step + 1,
            "stage": "traces",
            "loss": trace,
            "ce": None,
            "semantic": None,
            "lambda": 0.0,
            "lr": lr,
            "grad_norm": grad_norm,
            "yes_rate": None,
            "violation_rate": None,
            "graphs": len(items),
            "trace_tokens": int(total),
            "trace_ce": trace,
            "position_stretch": stretch,
        }

    def _apart(self, records: list[dict], what: str | None) -> list[dict]:
        """``--data`` records as this run's model must read them: a saved embedded model's tokenizer
        reads the words of the task text as words, so a node named like one (``a``, ``d``, ``at``)
        gets a stand-in name (``a_1``) everywhere in its graph's records, as ``constraintc eval``
        asks them (:func:`constraintc.tasks.rename.records_apart_from_words`). A model built for
        this run reads the data's names as names already; generated data names no node so.
        ``what`` names the stream in the note on stderr (None: no note)."""
        words = getattr(self.tokenizer, "name_words", None)
        if not (self.cfg.data and words and records):
            return records
        from constraintc.tasks.rename import records_apart_from_words

        templates = tuple(q.template for q in self.constraint.program.queries.values() if q.template)
        out, left = records_apart_from_words(records, words, templates)
        if what and self.rank == 0:
            renamed = sum(a is not b for a, b in zip(out, records))
            if renamed:
                _log(f"note: {renamed} {what} records of --data name nodes like words of {self.cfg.model}'s text; "
                     f"they are read with stand-in names (a_1) in place of those")
            if left:
                _log(f"warning: --data names nodes {', '.join(left[:8])} like words of {self.cfg.model}'s text in "
                     f"records that cannot be respelled (text in no known format, or a trace that uses the name "
                     f"as a word): those are read as words, not as names; rename them in the data")
        return out

    # ------------------------------------------------------------------------------ metrics
    @torch.no_grad()
    def heldout_metrics(self) -> dict:
        """Balanced accuracy, yes-rate, collapse flag and rule violations on the held-out slice."""
        if not self.heldout:
            return {}
        from constraintc.evaluation.metrics import Thresholds, classification_metrics, collapse_check
        from constraintc.lm.binding import score_groups

        result = torch.zeros(4, dtype=torch.float64)
        row: dict = {}
        if self.rank == 0:
            probs = score_groups(self.model, self.tokenizer, [g.prompts for g in self.heldout], self.constraint.yes, self.constraint.no)
            labels, preds, pv = [], [], []
            for g, p in zip(self.heldout, probs):
                labels += g.labels
                preds += ["Yes" if x >= 0.5 else "No" for x in p.tolist()]
                pv += p.tolist()
            m = classification_metrics(labels, preds)
            c = collapse_check(m, pv, Thresholds())
            keys = [(g.nodes, g.edges, g.atoms) for g in self.heldout]
            viol = self.constraint.violated(keys, [p >= 0.5 for p in probs]).double().mean().item()
            result = torch.tensor([m["balanced_accuracy"] or 0.0, m["yes_rate"] or 0.0, float(c["collapsed"]), viol], dtype=torch.float64)
        dist = _dist()
        if dist:  # every process needs the same collapse flag (the adaptive lambda depends on it)
            dist.broadcast(result, 0)
        row["heldout_balanced_accuracy"] = result[0].item()
        row["heldout_yes_rate"] = result[1].item()
        row["heldout_collapsed"] = bool(result[2].item())
        row["heldout_violation_rate"] = result[3].item()
        return row

    @torch.no_grad()
    def evaluate(self, written: bool = True) -> dict | None:
        """The evaluation suite's report (``compute_report``) on fresh graphs of each eval split;
        with ``written`` and ``trace_tokens``, also the model's written reasoning graded."""
        if self.rank != 0:
            return None
        cfg = self.cfg
        from constraintc.evaluation.metrics import compute_report
        from constraintc.lm.binding import score_groups
        from constraintc.train.data import build_graphs
        from constraintc.train.records import evaluation_records

        records = self._apart(evaluation_records(cfg), "evaluation")
        graphs = build_graphs(records, self.constraint, self.prompt_fn, all_atoms=False, check_feasible=False)
        probs = score_groups(self.model, self.tokenizer, [g.prompts for g in graphs], self.constraint.yes, self.constraint.no)
        preds = [
            {"id": rid, "p_yes": p, "prediction": "Yes" if p >= 0.5 else "No"}
            for g, ps in zip(graphs, probs)
            for rid, p in zip(g.record_ids, ps.tolist())
        ]
        kept = {p["id"] for p in preds}
        records = [r for r in records if r["id"] in kept]
        report = compute_report(records, preds, rules=self.constraint, rules_max_nodes=None)
        if written and self.traced and cfg.trace_tokens:
            report["reasoning"] = self.reasoning_report(records)
        return report

    @torch.no_grad()
    def reasoning_report(self, records: list[dict]) -> dict:
        """Let the model reason (greedy, ``trace_tokens`` tokens at most) after the reasoning prompt,
        then grade its final answers, their rule violations (an answer never reached counts as
        unasked) and its traces (valid / sound, step precision) per split; under ``consistent``,
        the written answers' probabilities conditioned on the rules (marginal and MPE answers, as
        ``constraintc eval --traces N --consistent`` gives them)."""
        from constraintc.evaluation.consistent import consistent_report
        from constraintc.evaluation.generation import generate_traces
        from constraintc.evaluation.metrics import Thresholds, compute_report

        prompts = [self.reasoning_fn(r) for r in records]
        rows = generate_traces(
            self.model, self.tokenizer, prompts, self.cfg.trace_tokens, batch_size=32, progress=self.progress,
            yes=self.constraint.yes, no=self.constraint.no,
        )
        preds = [{"id": r["id"], **row} for r, row in zip(records, rows)]
        report = compute_report(records, preds, rules=self.constraint, rules_max_nodes=None)
        if any(p["p_yes"] is not None for p in preds):
            # the run's own copy of the rules: what it trained with, whatever the file says now
            report["consistent"] = consistent_report(
                records, preds, str(self.out / RULES_COPY), self.cfg.params, Thresholds(), rules_max_nodes=None,
            )
        return report

    # ------------------------------------------------------------------------------ checkpoints
    def _trainable_state(self) -> dict:
        return {n: p.detach().clone() for n, p in self.model.named_parameters() if p.requires_grad}

    def save_checkpoint(self) -> Path | None:
        """Write ``checkpoints/step-NNNNNN`` (weights being trained, optimizer, schedules, RNG)."""
        if self.rank != 0:
            return None
        from constraintc.train.checkpoint import save_checkpoint

        state = {
            "step": self.step,
            "model": self._trainable_state(),
            "optimizer": self.optimizer.state_dict(),
            "lr_scheduler": self.lr_scheduler.state_dict(),
            "lambda_schedule": self.schedule.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "python_rng": random.getstate(),
            "config": self.cfg.to_dict(),
            "rules_sha256": self.rules_sha256,
            "lookups": {"recent_trace_ce": list(self.recent_trace_ce), "stretch_from": self.stretch_from,
                        "came": self.lookups_step},
        }
        try:
            # the traces-only stage's last checkpoint stays: other main recipes can start from it
            path = save_checkpoint(self.out, self.step, state, self.cfg.keep_checkpoints, self.run_id,
                                   keep_steps=(self.cfg.pretrain_steps,) if self.cfg.pretrain_steps else ())
        except BaseException:
            # Ctrl-C after the checkpoint's directory was renamed into place (while syncing or
            # pruning): it is complete, and what Ctrl-C prints must name it
            if self._checkpoint_complete(self.step):
                self.saved_step = self.step
            raise
        self.saved_step = self.step
        return path

    def _checkpoint_complete(self, step: int) -> bool:
        from constraintc.train.checkpoint import CheckpointError, read_manifest

        try:
            manifest = read_manifest(self.out / "checkpoints" / f"step-{step:06d}")
        except (CheckpointError, OSError):
            return False
        return manifest.get("run_id") == self.run_id and manifest.get("step") == step

    def _restore(self, point) -> None:
        """Load a :class:`~constraintc.train.rundir.ResumePoint`'s state into the model,
        optimizer, schedules and RNGs; a state that does not fit is a ``CheckpointError``."""
        from constraintc.train.checkpoint import CheckpointError, truncate_metrics

        state, path = point.state, point.checkpoint
        needed = ("step", "model", "optimizer", "lr_scheduler", "lambda_schedule", "torch_rng", "python_rng")
        missing = [k for k in needed if k not in state]
        if missing:
            raise CheckpointError(f"error: {path}: the checkpoint lacks {', '.join(missing)}")
        saved_rules = state.get("rules_sha256")
        if saved_rules and saved_rules != self.rules_sha256 and not self.allow_config_change:
            from constraintc.train.rundir import RunDirError

            raise RunDirError(
                f"error: --resume: the rules {self.cfg.rules!r} changed since the checkpoint ({path}): "
                f"sha256 {saved_rules[:12]}... then, {self.rules_sha256[:12]}... now (the run's copy is "
                f"{self.out / RULES_COPY}); restore them, or pass --allow-config-change to go on with the new rules"
            )
        params = dict(self.model.named_parameters())
        unknown = [n for n in state["model"] if n not in params]
        if unknown:
            raise CheckpointError(f"error: {path}: checkpoint does not fit this model ({unknown[0]})")
        try:
            with torch.no_grad():
                for n, t in state["model"].items():
                    params[n].copy_(t)
            self.optimizer.load_state_dict(state["optimizer"])
            self.lr_scheduler.load_state_dict(state["lr_scheduler"])
            self.schedule.load_state_dict(state["lambda_schedule"])
            torch.set_rng_state(state["torch_rng"])
            random.setstate(state["python_rng"])
        except (RuntimeError, ValueError, TypeError, KeyError) as exc:
            raise CheckpointError(f"error: {path}: checkpoint does not fit this run ({exc})") from None
        self.step = self.saved_step = int(state["step"])
        # the learning rate from here on is this run's (--allow-config-change may have changed --lr
        # or the schedule): the checkpoint's optimizer holds the rate its own schedule set for this step
        factor = lr_factor(self.cfg)(self.step)
        self.lr_scheduler.base_lrs = [self.cfg.lr for _ in self.optimizer.param_groups]
        for group in self.optimizer.param_groups:
            group["initial_lr"], group["lr"] = self.cfg.lr, self.cfg.lr * factor
        self.lr_scheduler._last_lr = [group["lr"] for group in self.optimizer.param_groups]
        lookups = state.get("lookups")
        if lookups is None:
            # checkpoints from before the window was kept: rebuilt from the run's metrics.jsonl,
            # whose traces-only rows carry the same trace CE, so the stage note stays true
            self.recent_trace_ce, self.lookups_step = replay_lookups(self.out / "metrics.jsonl", self.step)
            self.stretch_from = None
        else:
            self.recent_trace_ce = [float(x) for x in lookups.get("recent_trace_ce", [])][-LOOKUP_WINDOW:]
            start, came = lookups.get("stretch_from"), lookups.get("came")
            self.stretch_from = int(start) if start is not None else None
            self.lookups_step = int(came) if came is not None else None
        if self.rank == 0:  # drop metrics written after the checkpoint by the interrupted run
            truncate_metrics(self.out / "metrics.jsonl", self.step)
            _log(f"resumed from {path} at step {self.step}")

    # ------------------------------------------------------------------------------ cleanup
    def cleanup(self) -> None:
        """Save the final model, evaluate it, plot the metrics, close the process group."""
        if self.rank == 0:
            self.save_model(self.out / "model")
            if self.cfg.final_eval:
                self.after = self.evaluate()
                (self.out / "eval_after.json").write_text(json.dumps(self.after, indent=1) + "\n")
            if self.cfg.plots:
                from constraintc.train.plots import plot_metrics

                plot_metrics(self.out / "metrics.jsonl", self.out / "training.png")
            from constraintc.train import rundir

            rundir.mark_finished(self.out, self.step)
            rundir.unlock(self.out)
        dist = _dist()
        if dist:
            dist.barrier()
            dist.destroy_process_group()

    def save_model(self, path: Path) -> None:
        """A plain model directory ``load_model`` reads (LoRA weights merged into the base)."""
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # one bar (ours) is enough on stderr
        model = self.model
        if not self.full:
            import copy

            model = copy.deepcopy(model).merge_and_unload()
        model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)

    def run(self) -> dict:
        """setup -> train -> cleanup; returns the before/after reports and the last metrics row."""
        self.setup()
        self.train()
        self.cleanup()
        return {"before": self.before, "after": self.after, "output_dir": str(self.out),
                "first_stage": self.first_stage_report()}

    def first_stage_report(self) -> dict | None:
        """The traces-only stage as it ended: its steps, the mean trace CE of its last
        :data:`LOOKUP_WINDOW` steps and the step at which that mean first fell below
        :data:`LOOKUPS_CAME` (None: the lookups did not come); None without the stage or before its end."""
        first = self.cfg.pretrain_steps
        if not first or self.step < first:
            return None
        window = self.recent_trace_ce
        return {
            "steps": first,
            "trace_ce_last_steps": math.fsum(window) / len(window) if window else None,
            "window": len(window),
            "lookups_came_at": self.lookups_step,
            "threshold": LOOKUPS_CAME,
        }

    def first_stage_note(self) -> str:
        """One line on the traces-only stage: when its lookups came, or that they did not and how
        to train the stage longer from its end."""
        report = self.first_stage_report()
        if report is None:
            return ""
        ce = report["trace_ce_last_steps"]
        mean = "" if ce is None else f"the mean trace CE of its last {report['window']} steps is {ce:.3f}; "
        if report["lookups_came_at"] is not None:
            came = (f"traces-only stage: {mean}its lookups came at step {report['lookups_came_at']} "
                    f"(that mean first below {LOOKUPS_CAME:g})")
            if self.cfg.task == "transitivity" and self.cfg.pretrain_then_split not in ("mix_wide", "mix_large"):
                # measured: docs/finetune.md, "Ending the search on wider graphs"
                came += (f"; for graphs larger and denser than its training graphs, 400 more traces-only "
                         f"steps on mix_wide from {shlex.quote(str(self.out / 'model-traces'))} lift the "
                         f"written search (docs/finetune.md, \"Ending the search on wider graphs\")")
            return came
        first = report["steps"]
        boundary = self.out / "checkpoints" / f"step-{first:06d}"
        # a stage that ends on --pretrain-then-split goes on reading it (the steps it took stay its last)
        then = f" --pretrain-then-steps {self.cfg.pretrain_then_steps + 500}" if self.cfg.pretrain_then_steps else ""
        return (f"warning: traces-only stage: {mean}its lookups have not come (that mean never fell below "
                f"{LOOKUPS_CAME:g}), so its written reasoning will follow long searches "
                f"(long chains, large graphs) poorly "
                f"(docs/finetune.md); to train the stage longer from its end: constraintc finetune --resume "
                f"{shlex.quote(str(boundary))} --pretrain-steps {first + 500}{then} --allow-config-change")
