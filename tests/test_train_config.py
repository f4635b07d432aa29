"""Config validation reports every problem at once; files and flags override defaults."""

from __future__ import annotations

import dataclasses

import pytest

from constraintc.cli import main
from constraintc.train.config import ConfigError, load_config, validate


def test_every_error_is_reported_together():
    with pytest.raises(ConfigError) as err:
        validate({"steps": 0, "lr": "fast", "lambda_schedule": "steep", "colour": 3, "batch_groups": 6, "grad_accum": 4, "label_yes_rate": 1.5})
    msg = str(err.value)
    assert "6 invalid settings" in msg
    for piece in ("steps=0", "lr='fast'", "lambda_schedule='steep'", "colour=3: unknown", "grad_accum=4", "label_yes_rate=1.5"):
        assert piece in msg, piece
    assert "linear" in msg  # says what was expected


def test_the_traces_only_stage_needs_traces_and_whole_micro_batches():
    with pytest.raises(ConfigError) as err:
        validate({"pretrain_steps": 10, "trace": "none"})
    assert "pretrain_steps=10: the traces-only stage needs trace = 'keep' or 'mask'" in str(err.value)
    with pytest.raises(ConfigError, match=r"pretrain_accum=3: must divide pretrain_batch=32"):
        validate({"pretrain_steps": 10, "pretrain_accum": 3})
    # without the stage its batch size is not checked
    assert validate({"pretrain_accum": 3}).pretrain_steps == 0
    with pytest.raises(ConfigError, match=r"pretrain_position_stretch=0.5: expected 0 \(as --position-stretch\) or a factor >= 1"):
        validate({"pretrain_position_stretch": 0.5})
    assert validate({"pretrain_position_stretch": 0}).pretrain_position_stretch == 0.0
    assert validate({"pretrain_position_stretch": 1}).pretrain_position_stretch == 1.0
    # waiting for the lookups needs a traces-only stage whose positions are stretched at all
    stage = {"pretrain_steps": 10, "trace": "keep"}
    for off in ({**stage, "pretrain_position_stretch": 1}, {**stage}, {"pretrain_position_stretch": 3}):
        with pytest.raises(ConfigError, match=r"pretrain_stretch_after=0.1: needs a traces-only stage"):
            validate({**off, "pretrain_stretch_after": 0.1})
    assert validate({**stage, "pretrain_position_stretch": 3, "pretrain_stretch_after": 0.1}).pretrain_stretch_after == 0.1
    assert validate({**stage, "position_stretch": 3, "pretrain_stretch_after": 0.1}).pretrain_stretch_after == 0.1
    # the decay is a part of the stage, at most all of it
    with pytest.raises(ConfigError, match=r"pretrain_decay_steps=11: the decay is part of the traces-only stage: "
                                          r"expected at most pretrain_steps=10"):
        validate({**stage, "pretrain_decay_steps": 11})
    assert validate({**stage, "pretrain_decay_steps": 10}).pretrain_decay_steps == 10
    # a stage that ends on another split: both settings or neither, within the stage, generated data
    with pytest.raises(ConfigError, match=r"pretrain_then_steps=4: expected together with pretrain_then_split"):
        validate({**stage, "pretrain_then_steps": 4})
    with pytest.raises(ConfigError, match=r"pretrain_then_steps=0: expected together with pretrain_then_split"):
        validate({**stage, "pretrain_then_split": "mix_large"})
    with pytest.raises(ConfigError, match=r"pretrain_then_steps=11: the steps are part of the traces-only stage"):
        validate({**stage, "pretrain_then_split": "mix_large", "pretrain_then_steps": 11})
    with pytest.raises(ConfigError, match=r"pretrain_then_split='mix_large': a generated split; with --data"):
        validate({**stage, "pretrain_then_split": "mix_large", "pretrain_then_steps": 4, "data": "x.jsonl"})
    with pytest.raises(ConfigError, match=r"pretrain_then_split='adversarial'"):
        validate({**stage, "pretrain_then_split": "adversarial", "pretrain_then_steps": 4})
    assert validate({**stage, "pretrain_then_split": "mix_large", "pretrain_then_steps": 4}).pretrain_then_steps == 4


def test_file_then_flags(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[finetune]\nsteps = 7\nlambda_schedule = "cosine"\nlr = 1\n')
    cfg = load_config(path, {"steps": 9, "seed": None})
    assert cfg.steps == 9 and cfg.lambda_schedule == "cosine" and cfg.lr == 1.0 and cfg.seed == 0
    bad = tmp_path / "bad.toml"
    bad.write_text("steps = 'ten'\nlambda_end = -1\n")
    with pytest.raises(ConfigError, match=r"(?s)bad\.toml: 2 invalid.*steps='ten'.*lambda_end=-1"):
        load_config(bad)
    broken = tmp_path / "broken.toml"
    broken.write_text("steps = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(broken)


def test_shipped_configs_validate():
    from constraintc.resources import configs_dir

    files = sorted(configs_dir().glob("finetune_*.toml"))
    assert files
    for f in files:
        load_config(f)


def test_cli_reports_bad_options_without_traceback(capsys):
    code = main(["finetune", "--steps", "0", "--lambda-schedule", "zigzag", "--output-dir", "/nonexistent/x"])
    err = capsys.readouterr().err
    assert code == 2
    assert "steps=0" in err and "zigzag" in err and "Traceback" not in err
    # each problem names the flag that gave the value, as it was typed
    assert "--steps=0: expected a positive number" in err
    assert "--lambda-schedule='zigzag': expected one of" in err


def test_problems_name_the_file_key_or_the_flag_that_gave_the_value(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text("steps = -1\nbatch_groups = 16\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, {"grad_accum": 5, "lr": -1.0, "seed": None})
    msg = str(err.value)
    assert msg.startswith(f"{path}: 3 invalid settings")
    assert f"{path}: steps=-1: expected a positive number" in msg
    assert "--lr=-1.0: expected a positive learning rate" in msg
    assert "--grad-accum=5: must divide batch_groups=16" in msg  # a check across fields names the flag too
    with pytest.raises(ConfigError, match=r"^error: 1 invalid setting:\n  --steps=0: expected a positive number$"):
        load_config(None, {"steps": 0})


def test_help_documents_the_flags(capsys):
    with pytest.raises(SystemExit):
        main(["finetune", "--help"])
    out = capsys.readouterr().out
    for flag in ("--model", "--rules", "--data", "--steps", "--lambda-schedule", "--output-dir", "--resume", "--seed", "torchrun", "--trace"):
        assert flag in out


def test_the_written_out_default_config_is_the_default():
    """examples/configs/finetune_transitivity.toml spells out every option with its default value
    (the docs point readers to it), so it must not drift from FinetuneConfig."""
    import dataclasses

    from constraintc.resources import configs_dir
    from constraintc.train.config import FinetuneConfig, read_config_file

    written = read_config_file(configs_dir() / "finetune_transitivity.toml")
    default = FinetuneConfig().to_dict()
    assert sorted(written) == sorted(f.name for f in dataclasses.fields(FinetuneConfig))
    assert {k: v for k, v in written.items() if v != default[k]} == {}


# ---------------------------------------------------------------- one definition, flags derived
def _finetune_parser():
    from constraintc.cli import build_parser

    return build_parser("finetune")


def _non_default(name, field, opt):
    """A valid value other than the field's default, as a flag argument and as the config value."""
    from constraintc.train.config import default_of

    default = default_of(field)
    if opt.choices is not None:
        value = next(c for c in opt.choices if c != default)
        return [str(value)], value
    if isinstance(default, bool):
        return [], not default
    if isinstance(default, dict):
        return ["k=3"], {"k": 3}
    if isinstance(default, list):
        return ["a,b"], ["a", "b"]
    if isinstance(default, int):
        return [str(default + 2)], default + 2
    if isinstance(default, float):
        value = default / 2 if default else 0.5
        return [repr(value)], value
    return ["x/y"], "x/y"


def test_every_config_field_has_a_flag_whose_help_shows_the_real_default():
    from constraintc.cli.finetune import _shown, flag_of
    from constraintc.train.config import FinetuneConfig, default_of, options

    actions = {a.dest: a for a in _finetune_parser()._actions}
    config = FinetuneConfig()
    assert set(options()) == {f.name for f in dataclasses.fields(FinetuneConfig)}
    for name, (field, opt) in options().items():
        assert name in actions, f"config field {name} has no flag"
        action = actions[name]
        assert flag_of(name) in action.option_strings
        assert getattr(config, name) == default_of(field)
        assert action.help.endswith(f"(default: {_shown(default_of(field))})".replace("%", "%%")), name
        assert opt.help, name


def test_every_flag_sets_its_field():
    from constraintc.cli.finetune import flag_of, overrides_from_args
    from constraintc.train.config import options

    argv, expected = [], {}
    for name, (field, opt) in options().items():
        words, value = _non_default(name, field, opt)
        if isinstance(value, bool):
            argv.append(flag_of(name) if value else "--no-" + flag_of(name)[2:])
        else:
            argv += [flag_of(name), *words]
        expected[name] = value
    overrides = overrides_from_args(_finetune_parser().parse_args(argv))
    assert overrides == expected
    # and nothing given, nothing overridden: the config file's values stand
    assert set(overrides_from_args(_finetune_parser().parse_args([])).values()) == {None}


def test_old_flag_spellings_and_repeated_params():
    from constraintc.cli.finetune import overrides_from_args

    args = _finetune_parser().parse_args(["--no-plots", "--no-final-eval", "--param", "cond_size=1",
                                          "--param", "k=02", "--eval-splits", "mix, chains_long"])
    over = overrides_from_args(args)
    assert over["plots"] is False and over["final_eval"] is False
    assert over["params"] == {"cond_size": 1, "k": 2}
    assert over["eval_splits"] == ["mix", "chains_long"]


def test_bad_param_flag_names_the_flag(capsys):
    assert main(["finetune", "--param", "cond_size=-1", "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert "--param='cond_size=-1'" in err and "whole-number" in err and "Traceback" not in err


def test_every_bound_is_enforced_and_reported_at_once():
    """A value just outside each field's bounds or choices is refused, all in one error."""
    from constraintc.train.config import default_of, options

    bad = {}
    for name, (field, opt) in options().items():
        default = default_of(field)
        if opt.choices is not None:
            bad[name] = "no-such-choice"
        elif opt.minimum is not None:
            bad[name] = type(default)(opt.minimum - 1)
        elif opt.above is not None:
            bad[name] = type(default)(opt.above)
    assert len(bad) > 20
    with pytest.raises(ConfigError) as err:
        validate(bad)
    msg = str(err.value)
    assert f"{len(bad)} invalid settings" in msg
    for name, value in bad.items():
        assert f"{name}={value!r}: expected" in msg, name
    # the edges of a range: the bound itself is allowed where it is inclusive
    assert validate({"label_yes_rate": 0.0, "questions_per_graph": 2, "weight_decay": 0.0}).questions_per_graph == 2
    with pytest.raises(ConfigError, match="label_yes_rate=1.0: expected 0 .keep all labels. or a share"):
        validate({"label_yes_rate": 1.0})


def test_params_table_in_a_config_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('rules = "dsep"\n[params]\ncond_size = 1\n')
    assert load_config(path).params == {"cond_size": 1}
    path.write_text('[params]\ncond_size = "one"\n')
    with pytest.raises(ConfigError, match="params=.*expected a table of NAME = whole number"):
        load_config(path)
