"""Config validation reports every problem at once; files and flags override defaults."""

from __future__ import annotations

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

