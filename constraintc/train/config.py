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
from constraintc.train.schedules import SCHEDULES


class ConfigError(ConstraintcError):
    """One or more invalid configuration values (all of them in the message)."""

    exit_code = 2


@dataclass
class FinetuneConfig:
    """Every knob of ``constraintc finetune`` (see ``constraintc finetune --help``)."""

    # what to train
    model: str = "embedded"
    rules: str = "transitivity"
    params: dict = field(default_factory=dict)
    finetune: str = "auto"  # auto | full | lora (auto: full for the embedded model, LoRA otherwise)
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_targets: list = field(default_factory=lambda: ["q_proj", "v_proj"])
    dtype: str = "float32"
    # data
    data: str = ""  # JSONL of task records; empty: generate `train_records` records of `task`
    eval_data: str = ""  # JSONL records for the held-out checks and final evaluation; empty: a share of `data`
    task: str = "transitivity"
    train_split: str = "mix"  # the generated split to train on (held-out slice: the same split, another seed)
    train_records: int = 4000
    questions_per_graph: int = 4  # generated questions per training graph (half Yes, half No)
    eval_records: int = 200
    eval_splits: list = field(
        default_factory=lambda: ["mix", "chains_long", "chains_reversed", "chains_shuffled", "branching_large", "unseen_names"]
    )
    prompt_style: str = "plain"
    trace: str = "keep"  # none | keep | mask: reasoning-trace sequences for labelled questions (see data.py)
    trace_tokens: int = 0  # with a trace mode: tokens the final evaluation lets the model reason for; 0: no generation
    label_yes_rate: float = 0.75  # keep Yes labels, drop No labels until this share is Yes; 0: keep all
    name_pool: int = 0  # rename each graph's nodes from the first N short names; 0: keep names
    max_nodes: int = 0  # train only on graphs with at most this many nodes; 0: all
    atoms_per_graph: int = 12  # query atoms asked per graph (0: all); unasked atoms are fair coins
    # optimisation
    steps: int = 1600
    batch_groups: int = 16
    grad_accum: int = 1
    lr: float = 3e-3
    warmup_steps: int = 50
    lr_schedule: str = "cosine"  # constant | cosine (to a tenth of lr at the last step), after the warm-up
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    seed: int = 0
    # semantic loss
    lambda_schedule: str = "adaptive"
    lambda_start: float = 0.05
    lambda_end: float = 0.30
    lambda_up: float = 1.5
    lambda_down: float = 0.8
    lambda_max: float = 1.0
    # bookkeeping
    output_dir: str = "runs/finetune"
    eval_every: int = 100
    checkpoint_every: int = 100
    keep_checkpoints: int = 2
    plots: bool = True
    final_eval: bool = True
    threads: int = 0  # torch threads per process; 0: two for the embedded model (one under torchrun), else torch's default

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_CHOICES = {
    "finetune": ("auto", "full", "lora"),
    "dtype": ("float32", "bfloat16", "float64"),
    "task": ("transitivity", "dsep"),
    "prompt_style": ("plain", "chat"),
    "trace": ("none", "keep", "mask"),
    "lr_schedule": ("constant", "cosine"),
    "lambda_schedule": SCHEDULES,
}
_POSITIVE = ("questions_per_graph", "steps", "batch_groups", "grad_accum", "eval_every", "checkpoint_every", "train_records", "lora_r", "lora_alpha")
_NON_NEGATIVE = (
    "warmup_steps", "weight_decay", "max_grad_norm", "lambda_start", "lambda_end", "lambda_max",
    "eval_records", "trace_tokens", "name_pool", "max_nodes", "atoms_per_graph", "threads", "keep_checkpoints", "lora_dropout",
)


def _type_ok(value, default) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, type(default))


def validate(values: dict, source: str = "config") -> FinetuneConfig:
    """A :class:`FinetuneConfig` from ``values``, or a :class:`ConfigError` listing every problem.

    >>> validate({"steps": 10}).steps
    10
    >>> validate({"steps": 0, "lambda_schedule": "steep", "colour": 1})   # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    constraintc.train.config.ConfigError: config: 3 invalid settings:...
    """
    defaults = FinetuneConfig()
    known = {f.name for f in dataclasses.fields(FinetuneConfig)}
    errors: list[str] = []
    clean: dict = {}
    for key, value in values.items():
        if key not in known:
            close = [k for k in known if k.replace("_", "") == key.replace("_", "").replace("-", "")]
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            errors.append(f"{source}: {key}={value!r}: unknown setting{hint}")
            continue
        default = getattr(defaults, key)
        if not _type_ok(value, default):
            errors.append(f"{source}: {key}={value!r}: expected {type(default).__name__}")
            continue
        if isinstance(default, float):
            value = float(value)
        if key in _CHOICES and value not in _CHOICES[key]:
            errors.append(f"{source}: {key}={value!r}: expected one of {', '.join(_CHOICES[key])}")
            continue
        if key in _POSITIVE and value <= 0:
            errors.append(f"{source}: {key}={value!r}: expected a positive number")
            continue
        if key in _NON_NEGATIVE and value < 0:
            errors.append(f"{source}: {key}={value!r}: expected a number >= 0")
            continue
        clean[key] = value
    cfg = dataclasses.replace(defaults, **clean)
    # cross-field checks, only on values that passed the checks above
    if "lr" in clean and not cfg.lr > 0:
        errors.append(f"{source}: lr={cfg.lr!r}: expected a positive learning rate")
    if not 0 <= cfg.label_yes_rate < 1:
        errors.append(f"{source}: label_yes_rate={cfg.label_yes_rate!r}: expected 0 (keep all labels) or a share in (0, 1)")
    if cfg.questions_per_graph < 2:
        errors.append(f"{source}: questions_per_graph={cfg.questions_per_graph!r}: expected at least 2 (one Yes, one No)")
    if cfg.batch_groups % cfg.grad_accum:
        errors.append(
            f"{source}: grad_accum={cfg.grad_accum!r}: must divide batch_groups={cfg.batch_groups!r} (micro-batches of equal size)"
        )
    if cfg.lambda_schedule == "adaptive" and not (cfg.lambda_up >= 1 and 0 < cfg.lambda_down <= 1):
        errors.append(f"{source}: lambda_up/lambda_down={cfg.lambda_up!r}/{cfg.lambda_down!r}: expected up >= 1 and 0 < down <= 1")
    if not all(isinstance(t, str) for t in cfg.lora_targets):
        errors.append(f"{source}: lora_targets={cfg.lora_targets!r}: expected a list of module names")
    from constraintc.tasks.generate import SPLITS

    if not all(isinstance(s, str) for s in cfg.eval_splits):
        errors.append(f"{source}: eval_splits={cfg.eval_splits!r}: expected a list of split names")
    else:
        unknown = [s for s in cfg.eval_splits if s not in SPLITS]
        if unknown:
            errors.append(f"{source}: eval_splits={cfg.eval_splits!r}: unknown split {unknown[0]!r}; expected names from {', '.join(SPLITS)}")
    if cfg.train_split not in SPLITS or cfg.train_split == "adversarial":
        errors.append(
            f"{source}: train_split={cfg.train_split!r}: expected a split to generate training graphs from: "
            f"{', '.join(s for s in SPLITS if s != 'adversarial')}"
        )
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
    ``path``, then ``overrides`` (None values ignored), validated.

    The file may put settings at the top level or under ``[finetune]``.
    """
    known = {f.name for f in dataclasses.fields(FinetuneConfig)}
    values: dict = {k: v for k, v in (base or {}).items() if k in known}
    source = "config"
    if path is not None:
        source = str(path)
        values.update(read_config_file(path))
    errors_first = {k: v for k, v in (overrides or {}).items() if v is not None}
    values.update(errors_first)
    return validate(values, source)
