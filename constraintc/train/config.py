"""The fine-tuning configuration: one dataclass, loaded from TOML, validated all at once.

Every field has a default (the README's short run of the embedded model); a TOML file overrides
some of them and command-line flags override the file. ``validate`` collects every problem
(unknown keys, wrong types, values out of range) and raises one :class:`ConfigError` listing them
all, each naming the key, the value and what was expected.
"""

from __future__ import annotations

import dataclasses
try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser as a package
    import tomli as tomllib
from dataclasses import dataclass, field
from pathlib import Path

from constraintc.errors import ConstraintcError
from constraintc.tasks.generate import SPLITS
from constraintc.tasks.traces import SEARCHES, searches_for
from constraintc.train.schedules import SCHEDULES


class ConfigError(ConstraintcError):
    """One or more invalid configuration values (all of them in the message)."""

    exit_code = 2


@dataclass(frozen=True)
class Option:
    """What a config field means and which values it takes: ``help`` (what it does; ``--help``
    adds the default from the field), ``choices``, and bounds: ``minimum`` (value >= minimum),
    ``above`` (value > above), ``below`` (value < below). ``expected`` replaces the generic
    out-of-range message; ``flag`` the derived ``--name-with-dashes``."""

    help: str
    choices: tuple | None = None
    minimum: float | None = None
    above: float | None = None
    below: float | None = None
    expected: str | None = None
    flag: str | None = None
    metavar: str | None = None

    def problem(self, value) -> str | None:
        """What is wrong with a value of the right type, or None.

        >>> Option("steps", above=0).problem(0), Option("rate", minimum=0, below=1).problem(1.0)
        ('expected a positive number', 'expected a number >= 0 and < 1')
        """
        if self.choices is not None and value not in self.choices:
            return f"expected one of {', '.join(map(str, self.choices))}"
        too_low = ((self.minimum is not None and value < self.minimum)
                   or (self.above is not None and not value > self.above))
        too_high = self.below is not None and not value < self.below
        if not (too_low or too_high):
            return None
        if self.expected:
            return f"expected {self.expected}"
        if self.above == 0 and self.minimum is None and self.below is None:
            return "expected a positive number"
        parts = ([f">= {_num(self.minimum)}"] if self.minimum is not None else []) + \
                ([f"> {_num(self.above)}"] if self.above is not None else []) + \
                ([f"< {_num(self.below)}"] if self.below is not None else [])
        return f"expected a number {' and '.join(parts)}"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def option(default, help: str, **bounds):
    """A dataclass field carrying its :class:`Option`."""
    meta = {"option": Option(help, **bounds)}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


_TRAIN_SPLITS = tuple(s for s in SPLITS if s != "adversarial")


@dataclass
class FinetuneConfig:
    """Every knob of ``constraintc finetune``: each field's default, meaning and bounds are here;
    the TOML keys, the flags (``--name-with-dashes``) and ``--help`` are derived from them."""

    # what to train
    model: str = option("embedded", "hub id, local directory, .gguf file, 'smollm2', 'embedded' (the "
                                    "built-in small Gemma, trained from scratch) or an architecture "
                                    ".toml like embedded_model.toml (trained from scratch too)")
    rules: str = option("transitivity", "rules file or library name")
    params: dict = option({}, "override a 'param' of the rules file (repeatable; TOML: a table of "
                              "NAME = VALUE)", flag="--param", metavar="NAME=VALUE")
    finetune: str = option("auto", "full fine-tuning or LoRA adapters; auto: full for the embedded model, "
                                   "LoRA otherwise", choices=("auto", "full", "lora"))
    lora_r: int = option(8, "LoRA rank", above=0)
    lora_alpha: int = option(16, "LoRA scaling numerator (the adapters are scaled by alpha / r)", above=0)
    lora_dropout: float = option(0.0, "dropout on the LoRA adapters' inputs", minimum=0)
    lora_targets: list = option(["q_proj", "v_proj"], "module names that get LoRA adapters "
                                                      "(comma-separated)", metavar="NAMES")
    dtype: str = option("float32", "the weights' dtype", choices=("float32", "bfloat16", "float64"))
    device: str = option("auto", "where the model trains and is evaluated: auto (the GPU when torch sees "
                                 "one, else the CPU), cpu, cuda or cuda:N", metavar="DEVICE")
    # data
    data: str = option("", "JSONL task records to train on; empty: generate --train-records records of "
                           "--task", metavar="JSONL")
    eval_data: str = option("", "JSONL records for the held-out checks and the final evaluation; empty "
                                "with --data: 20% of its graphs, held out of training", metavar="JSONL")
    task: str = option("transitivity", "the task to generate when --data is not given",
                       choices=("transitivity", "dsep"))
    train_split: str = option("mix", "the generated split to train on (mix: random DAGs, chains, dense "
                                     "DAGs, every statement order, letters and open names); the held-out "
                                     "slice is the same split with another seed", choices=_TRAIN_SPLITS)
    train_records: int = option(4000, "generated training questions", above=0)
    questions_per_graph: int = option(4, "generated questions per training graph, half Yes and half No",
                                      minimum=2, expected="at least 2 (one Yes, one No)")
    eval_records: int = option(200, "questions per held-out and per evaluation split", minimum=0)
    eval_splits: list = option(["mix", "chains_long", "chains_reversed", "chains_shuffled",
                                "branching_large", "unseen_names"],
                               "splits of the final evaluation (comma-separated)", metavar="SPLITS")
    prompt_style: str = option("plain", "the prompt format", choices=("plain", "chat"))
    trace: str = option("keep", "also train each labelled question as reasoning prompt -> the record's "
                                "trace -> 'Answer:' -> answer, with the CE on the trace tokens and the "
                                "answer (keep) or on the answer only (mask); none: answers only",
                        choices=("none", "keep", "mask"))
    trace_search: str = option("until_found", "transitivity traces: a breadth-first search from X that stops at "
                                              "the edge reaching Y (until_found) or writes every edge of the "
                                              "search tree before concluding (exhaustive: the steps do not "
                                              "depend on Y) or expands every reached node, each with all its "
                                              "statements or 'N causes nothing.', breadth first (expand) or "
                                              "depth first (depth_first); d-separation traces: the trails "
                                              "between X and Y (until_found) or a reachability search from X "
                                              "over node and direction, depth first (bayes_ball)",
                               choices=SEARCHES)
    trace_tokens: int = option(0, "with --trace keep or mask: tokens the final evaluation lets the model "
                                  "reason for before answering; 0: no written reasoning", minimum=0)
    label_yes_rate: float = option(0.75, "drop No labels until this share of labels is Yes; 0 keeps all",
                                   minimum=0, below=1, expected="0 (keep all labels) or a share in (0, 1)")
    name_salt: str = option("graph", "how a name-token tokenizer assigns each training graph's names to name "
                                     "tokens in the main recipe: one assignment per graph for the whole run "
                                     "(graph), or a new one at every visit (visit: a graph cannot be memorised, "
                                     "only read; the traces-only stage always does this)",
                            choices=("graph", "visit"))
    name_pool: int = option(0, "rename each graph's nodes from the first N short names; 0 keeps the names",
                            minimum=0, metavar="N")
    max_nodes: int = option(0, "train only on graphs of at most N nodes; 0: all", minimum=0, metavar="N")
    curriculum_steps: int = option(400, "for the first N steps draw batches only from the smallest training "
                                      "graphs, the size limit rising evenly to the largest; 0: no curriculum",
                                   minimum=0, metavar="N")
    atoms_per_graph: int = option(12, "query atoms asked per graph (unasked atoms are fair coins); 0: all",
                                  minimum=0, metavar="N")
    atom_focus: str = option("uniform", "which unlabelled atoms fill a graph's --atoms-per-graph: uniform (a "
                                        "seeded sample of all), interior (atoms whose nodes all have a "
                                        "parent and a child in the graph first, then the rest) or balanced "
                                        "(as many atoms the rules make true given the graph as false, "
                                        "then free ones; uniform where the graph decides no atom)",
                             choices=("uniform", "interior", "balanced"))
    position_stretch: float = option(1.0, "training only: each packed row's position ids are multiplied by a "
                                          "factor drawn uniformly from [1, X] (floored), so short training "
                                          "prompts span the distances of longer ones (in both stages, unless "
                                          "--pretrain-position-stretch sets the traces-only stage's own); 1: off",
                                     minimum=1, metavar="X")
    # optimisation
    pretrain_steps: int = option(0, "a first stage of N steps on the gold reasoning traces alone (needs --trace "
                                    "keep or mask): every training question's trace, its answer included, is the "
                                    "target (all labels, before --label-yes-rate drops any), each graph reads its "
                                    "names through a fresh assignment of name tokens at every visit, no direct "
                                    "answers and no semantic loss; the --steps of the main recipe follow, with "
                                    "the optimizer's moments reset; 0: none", minimum=0, metavar="N")
    pretrain_batch: int = option(32, "graphs per step of the traces-only stage, over all processes", above=0)
    pretrain_accum: int = option(4, "micro-batches per traces-only step (must divide --pretrain-batch): the step's "
                                    "graphs in order of length, each micro-batch padded to its own longest (4: a "
                                    "third less time than one padded batch on a CPU thread)", above=0)
    pretrain_lr: float = option(6e-3, "the traces-only stage's AdamW learning rate (after --warmup-steps, "
                                      "constant until --pretrain-decay-steps)", above=0,
                                expected="a positive learning rate")
    pretrain_decay_steps: int = option(0, "the traces-only stage's last N steps lower its learning rate along a "
                                          "half cosine from --pretrain-lr to a tenth of it (the last step's); "
                                          "0: constant to the end of the stage", minimum=0, metavar="N")
    pretrain_then_split: str = option("", "the traces-only stage's last --pretrain-then-steps steps draw their "
                                          "graphs from this generated split instead of --train-split (as many "
                                          "records, the same seed and trace search): a stage that ends on larger "
                                          "graphs (mix_large); the main recipe trains on --train-split; '': none",
                                      choices=("",) + _TRAIN_SPLITS)
    pretrain_then_steps: int = option(0, "how many of the traces-only stage's last steps read "
                                         "--pretrain-then-split", minimum=0, metavar="N")
    pretrain_position_stretch: float = option(0.0, "the traces-only stage's --position-stretch (its rows' "
                                                   "position ids times a factor drawn from [1, X]): 1 off, "
                                                   "0 the same as --position-stretch",
                                              minimum=0, metavar="X")
    pretrain_stretch_after: float = option(0.0, "the traces-only stage's position stretch starts only once the mean "
                                                "trace CE of its last 50 steps is below this value (the lookups "
                                                "have come: plain positions until then, stretched after); 0: "
                                                "stretched from the first step", minimum=0, metavar="CE")
    steps: int = option(1600, "optimizer steps (of the main recipe, after any --pretrain-steps)", above=0)
    batch_groups: int = option(16, "graphs per optimizer step, over all processes", above=0)
    grad_accum: int = option(1, "micro-batches per step (must divide --batch-groups): the step's graphs in "
                                "order of length, each micro-batch padded to its own longest; the same loss",
                             above=0)
    lr: float = option(6e-3, "AdamW learning rate", above=0, expected="a positive learning rate")
    warmup_steps: int = option(50, "linear learning-rate warm-up steps", minimum=0)
    lr_schedule: str = option("cosine", "after the warm-up: constant, or a half cosine down to lr/10 at "
                                        "the last step", choices=("constant", "cosine"))
    weight_decay: float = option(0.0, "AdamW weight decay", minimum=0)
    adam_beta2: float = option(0.999, "AdamW's second-moment decay (beta2; 0.95-0.98 adapts faster to "
                                      "changing gradient scales)", minimum=0, below=1)
    max_grad_norm: float = option(1.0, "gradient clipping norm; 0: off", minimum=0)
    seed: int = option(0, "seed of the initialisation, the generated data and the batch order")
    # semantic loss
    lambda_schedule: str = option("adaptive", "the semantic loss's weight over the run: none (CE only), "
                                              "constant (--lambda-start), linear or cosine (start -> end), "
                                              "adaptive (x lambda-up after each held-out check that flags "
                                              "collapse, x lambda-down otherwise, within [start, "
                                              "lambda-max])", choices=SCHEDULES)
    lambda_start: float = option(0.05, "lambda at the start", minimum=0)
    lambda_end: float = option(0.30, "lambda at the end (linear, cosine)", minimum=0)
    lambda_up: float = option(1.5, "adaptive: the factor after a check that flags collapse (>= 1)",
                              minimum=0)
    lambda_down: float = option(0.8, "adaptive: the factor after a check that does not (in (0, 1])",
                                minimum=0)
    lambda_max: float = option(1.0, "adaptive: the largest lambda", minimum=0)
    # bookkeeping
    output_dir: str = option("runs/finetune", "where metrics, checkpoints, model and plots go",
                             metavar="DIR")
    eval_every: int = option(100, "a held-out check every N steps", above=0, metavar="N")
    checkpoint_every: int = option(100, "a checkpoint every N steps", above=0, metavar="N")
    keep_checkpoints: int = option(2, "the newest N checkpoints of the run are kept; 0: all",
                                   minimum=0, metavar="N")
    plots: bool = option(True, "draw training.png")
    final_eval: bool = option(True, "evaluate the model before and after training")
    threads: int = option(0, "torch threads per process; 0: two for the embedded model (one under "
                             "torchrun), torch's default otherwise", minimum=0)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def options() -> dict[str, tuple[dataclasses.Field, Option]]:
    """``name -> (field, option)`` of every config field, in declaration order."""
    return {f.name: (f, f.metadata["option"]) for f in dataclasses.fields(FinetuneConfig)}


def flag_of(name: str) -> str:
    """The command-line flag of a config field: ``lambda_start`` -> ``--lambda-start``."""
    opt = options().get(name)
    return (opt[1].flag if opt else None) or "--" + name.replace("_", "-")


def default_of(f: dataclasses.Field):
    """A field's default value (a fresh copy for lists and tables)."""
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def pretrain_stretch(cfg: FinetuneConfig) -> float:
    """The traces-only stage's position-stretch factor: ``pretrain_position_stretch``, or
    ``position_stretch`` when that is 0."""
    return cfg.pretrain_position_stretch or cfg.position_stretch


def _type_ok(value, default) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, type(default))


def validate(values: dict, source: str = "config", flags=()) -> FinetuneConfig:
    """A :class:`FinetuneConfig` from ``values``, or a :class:`ConfigError` listing every problem.
    A problem with a key in ``flags`` (given on the command line) names its flag (``--steps=0``),
    any other its ``source`` and key (``run.toml: steps=0``).

    >>> validate({"steps": 10}).steps
    10
    >>> validate({"steps": 0, "lambda_schedule": "steep", "colour": 1})   # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    constraintc.train.config.ConfigError: config: 3 invalid settings:...
    """
    defaults = FinetuneConfig()
    known = options()
    errors: list[str] = []
    clean: dict = {}

    def at(key: str, value) -> str:
        if key in flags:
            return f"{flag_of(key)}={value!r}"
        return f"{source}: {key}={value!r}"

    for key, value in values.items():
        if key not in known:
            close = [k for k in known if k.replace("_", "") == key.replace("_", "").replace("-", "")]
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            errors.append(f"{at(key, value)}: unknown setting{hint}")
            continue
        default = getattr(defaults, key)
        if not _type_ok(value, default):
            errors.append(f"{at(key, value)}: expected {type(default).__name__}")
            continue
        if isinstance(default, float):
            value = float(value)
        problem = None if isinstance(value, (list, dict)) else known[key][1].problem(value)
        if problem:
            errors.append(f"{at(key, value)}: {problem}")
            continue
        clean[key] = value
    cfg = dataclasses.replace(defaults, **clean)
    # lists, tables and checks across fields, on values that passed the checks above
    if cfg.batch_groups % cfg.grad_accum:
        errors.append(
            f"{at('grad_accum', cfg.grad_accum)}: must divide batch_groups={cfg.batch_groups!r} (micro-batches of equal size)"
        )
    if cfg.pretrain_steps and cfg.trace == "none":
        errors.append(f"{at('pretrain_steps', cfg.pretrain_steps)}: the traces-only stage needs trace = 'keep' or 'mask' (trace='none')")
    if cfg.pretrain_steps and cfg.pretrain_batch % cfg.pretrain_accum:
        errors.append(
            f"{at('pretrain_accum', cfg.pretrain_accum)}: must divide pretrain_batch={cfg.pretrain_batch!r} (micro-batches of equal size)"
        )
    if cfg.pretrain_decay_steps > cfg.pretrain_steps:
        errors.append(f"{at('pretrain_decay_steps', cfg.pretrain_decay_steps)}: the decay is part of the traces-only "
                      f"stage: expected at most pretrain_steps={cfg.pretrain_steps!r}")
    if bool(cfg.pretrain_then_split) != bool(cfg.pretrain_then_steps):
        errors.append(f"{at('pretrain_then_steps', cfg.pretrain_then_steps)}: expected together with "
                      f"pretrain_then_split (now {cfg.pretrain_then_split!r}): both or neither")
    elif cfg.pretrain_then_steps > cfg.pretrain_steps:
        errors.append(f"{at('pretrain_then_steps', cfg.pretrain_then_steps)}: the steps are part of the traces-only "
                      f"stage: expected at most pretrain_steps={cfg.pretrain_steps!r}")
    elif cfg.pretrain_then_split and cfg.data:
        errors.append(f"{at('pretrain_then_split', cfg.pretrain_then_split)}: a generated split; with --data "
                      "the records are yours (leave it out)")
    if 0 < cfg.pretrain_position_stretch < 1:
        errors.append(f"{at('pretrain_position_stretch', cfg.pretrain_position_stretch)}: expected 0 (as "
                      f"--position-stretch) or a factor >= 1 (1: off)")
    if cfg.pretrain_stretch_after and not (cfg.pretrain_steps and pretrain_stretch(cfg) > 1):
        errors.append(f"{at('pretrain_stretch_after', cfg.pretrain_stretch_after)}: needs a traces-only stage "
                      f"(pretrain_steps) with a position stretch above 1 (pretrain_position_stretch, or "
                      f"position_stretch when that is 0)")
    if cfg.lambda_schedule == "adaptive" and not (cfg.lambda_up >= 1 and 0 < cfg.lambda_down <= 1):
        errors.append(f"{source}: lambda_up/lambda_down={cfg.lambda_up!r}/{cfg.lambda_down!r}: expected up >= 1 and 0 < down <= 1")
    if cfg.trace_search not in searches_for(cfg.task):
        errors.append(f"{at('trace_search', cfg.trace_search)}: a {cfg.task} trace searches as one of "
                      f"{', '.join(searches_for(cfg.task))}")
    if not all(isinstance(t, str) for t in cfg.lora_targets):
        errors.append(f"{at('lora_targets', cfg.lora_targets)}: expected a list of module names")
    if not all(isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v >= 0
               for k, v in cfg.params.items()):
        errors.append(f"{at('params', cfg.params)}: expected a table of NAME = whole number")
    if not all(isinstance(s, str) for s in cfg.eval_splits):
        errors.append(f"{at('eval_splits', cfg.eval_splits)}: expected a list of split names")
    else:
        unknown = [s for s in cfg.eval_splits if s not in SPLITS]
        if unknown:
            errors.append(f"{at('eval_splits', cfg.eval_splits)}: unknown split {unknown[0]!r}; expected names from {', '.join(SPLITS)}")
    if errors:
        n = len(errors)
        raise ConfigError(f"{source}: {n} invalid setting{'s' if n > 1 else ''}:\n  " + "\n  ".join(errors))
    return cfg


def read_config_file(path: str | Path) -> dict:
    """The settings of a TOML config file (top level or under ``[finetune]``), unvalidated."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"error: --config={str(path)!r}: no such file") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: error: not valid TOML: {err}") from None
    values = dict(data.pop("finetune", {}))
    values.update(data)
    return values


def load_config(path: str | Path | None = None, overrides: dict | None = None, base: dict | None = None) -> FinetuneConfig:
    """Defaults (or ``base``, e.g. a resumed run's saved config), then the TOML file at
    ``path``, then ``overrides`` (None values ignored; the command line's flags), validated: a
    problem names the file and key of a value from the file, the flag of a value from ``overrides``.

    The file may put settings at the top level or under ``[finetune]``.
    """
    known = {f.name for f in dataclasses.fields(FinetuneConfig)}
    values: dict = {k: v for k, v in (base or {}).items() if k in known}
    source = "error"  # the header of a report of flags' problems alone
    if path is not None:
        source = str(path)
        values.update(read_config_file(path))
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    values.update(given)
    return validate(values, source, flags=set(given))
