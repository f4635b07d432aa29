"""Embedded-model architecture files (``--model arch.toml``), NoPE, and the finetune device option."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from constraintc.errors import ConstraintcError
from constraintc.lm.models import build_embedded_model, embedded_config_path, load_model
from constraintc.resources import configs_dir
from constraintc.tasks.corpus import task_text
from constraintc.train.config import validate
from constraintc.train.recipe import FinetuneRecipe

TINY = """
[architecture]
hidden_size = 32
intermediate_size = 64
num_hidden_layers = 2
num_attention_heads = 2
num_key_value_heads = 1
head_dim = 16
{extra}

[tokenizer]
kind = "names"
corpus_records_per_task = 20
"""


def _arch(tmp_path: Path, extra: str = "", name: str = "arch.toml") -> Path:
    path = tmp_path / name
    path.write_text(TINY.format(extra=extra))
    return path


def _logits(model, ids, positions):
    with torch.no_grad():
        return model(input_ids=ids, position_ids=positions).logits


@pytest.mark.parametrize("encoding", ["none", "rope"])
def test_nope_ignores_positions_and_rope_does_not(tmp_path, encoding):
    model, tok = build_embedded_model(task_text, _arch(tmp_path, f'position_encoding = "{encoding}"'))
    ids = torch.tensor([tok("B causes C. C causes D. Does B cause D?")["input_ids"]])
    n = ids.shape[1]
    plain = _logits(model, ids, torch.arange(n)[None])
    scrambled = _logits(model, ids, torch.randperm(5 * n, generator=torch.Generator().manual_seed(0))[:n][None])
    same = torch.allclose(plain, scrambled, atol=1e-5)
    # NoPE: attention sees order only through the causal mask, so position ids change nothing
    assert same == (encoding == "none"), (encoding, (plain - scrambled).abs().max().item())


def test_shipped_nope_config_saves_and_loads_as_nope(tmp_path):
    nope = configs_dir() / "embedded_nope.toml"
    assert nope.is_file()
    model, tok = load_model(str(nope), corpus=task_text)
    base, _ = load_model("embedded", corpus=task_text)
    # the same sizes as the default, only the position encoding differs
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in base.parameters())
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    again, _ = load_model(str(tmp_path / "m"))
    ids = torch.tensor([tok("Does B cause D?")["input_ids"]])
    n = ids.shape[1]
    a = _logits(again, ids, torch.arange(n)[None])
    b = _logits(again, ids, torch.arange(n)[None] + 300)
    assert torch.allclose(a, b, atol=1e-5)
    assert torch.allclose(a, _logits(model, ids, torch.arange(n)[None]), atol=1e-6)


@pytest.mark.parametrize("extra, words", [
    ('position_encoding = "alibi"', "position_encoding='alibi'"),
    ("rope_theta = 0.5", "rope_theta=0.5"),
    ("hidden_sise = 64", "unknown key 'hidden_sise'"),
    ('rope_theta = "big"', "rope_theta='big'"),
])
def test_bad_architecture_files_name_the_file_and_the_key(tmp_path, extra, words):
    path = _arch(tmp_path, extra)
    with pytest.raises(ConstraintcError) as err:
        build_embedded_model(task_text, path)
    assert words in str(err.value) and str(path) in str(err.value)


def test_missing_keys_and_bad_toml(tmp_path):
    lacking = tmp_path / "lacking.toml"
    lacking.write_text("[architecture]\nhidden_size = 32\n")
    with pytest.raises(ConstraintcError, match=r"lacks intermediate_size, num_hidden_layers"):
        build_embedded_model(task_text, lacking)
    broken = tmp_path / "broken.toml"
    broken.write_text("[architecture\n")
    with pytest.raises(ConstraintcError, match=r"broken.toml: not valid TOML"):
        build_embedded_model(task_text, broken)
    with pytest.raises(ConstraintcError, match=r"cannot read"):
        build_embedded_model(task_text, tmp_path / "absent.toml")


def test_the_default_architecture_is_rope():
    model, _ = build_embedded_model(task_text, embedded_config_path())
    rope = model.config.to_dict().get("rope_parameters") or {}
    assert all(p.get("rope_type") == "default" for p in rope.values())


def test_finetune_trains_an_architecture_file_from_scratch(tmp_path):
    arch = _arch(tmp_path, 'position_encoding = "none"')
    cfg = validate(dict(model=str(arch), train_records=48, eval_records=0, final_eval=False, plots=False,
                        batch_groups=4, steps=3, threads=1, trace="none", output_dir=str(tmp_path / "run")))
    recipe = FinetuneRecipe(cfg, progress=False)
    summary = recipe.run()
    assert recipe.full and recipe.device == torch.device("cpu")
    saved = json.loads((Path(summary["output_dir"]) / "model" / "config.json").read_text())
    assert saved["hidden_size"] == 32
    assert {p["rope_type"] for p in saved["rope_parameters"].values()} == {"linear"}


@pytest.mark.parametrize("device, words", [
    ("tpu", "expected auto, cpu, cuda or cuda:N"),
    ("gpu:0", "expected auto, cpu, cuda or cuda:N"),
    ("cuda", "torch sees no CUDA GPU here"),
])
def test_device_option_errors(tmp_path, device, words):
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("a GPU is present: device=cuda is valid here")
    cfg = validate(dict(device=device, output_dir=str(tmp_path / "run"), final_eval=False, plots=False))
    with pytest.raises(ConstraintcError, match=words) as err:
        FinetuneRecipe(cfg, progress=False).setup()
    assert f"device={device!r}" in str(err.value)
    assert not (tmp_path / "run").exists()  # refused before the run directory is made


def test_eval_device_option(tmp_path, capsys):
    from constraintc.cli import main

    data = tmp_path / "d.jsonl"
    main(["data", "transitivity", "--n", "4", "-o", str(data)])
    code = main(["eval", "--data", str(data), "--model", "embedded", "--device", "tpu", "--no-progress"])
    err = capsys.readouterr().err
    assert code != 0 and "--device='tpu': expected auto, cpu, cuda or cuda:N" in err and "Traceback" not in err
    assert main(["eval", "--data", str(data), "--model", "embedded", "--device", "cpu", "--no-progress",
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["overall"]["n"] == 4
