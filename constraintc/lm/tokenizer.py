"""Word-level tokenizers trained locally on the task vocabulary (for the embedded and tiny models).

A pretrained BPE vocabulary of 50k+ tokens would dwarf a 0.6M-parameter model; the task text uses a
few dozen words, so the embedded model gets one token per word, trained here with ``tokenizers``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[BOS]", "[EOS]"]


def build_word_tokenizer(
    texts: Iterable[str], words: Iterable[str] = (), padding_side: str = "left", whole_arrows: bool = False
):
    """Train a word-level tokenizer on ``texts`` (plus ``words``) and wrap it for transformers.

    Words are maximal runs of letters/digits/underscore; every other non-space character is its
    own token, so ``"{a, b}"`` is ``{ a , b }``. ``whole_arrows`` keeps ``->`` and ``<-`` (the
    arrows of d-separation trails) one token each, so that generated trails decode whole. Unknown words map to ``[UNK]``; ``[BOS]`` starts
    every encoded text; ids are deterministic (specials, then words by frequency, then alphabet).

    >>> tok = build_word_tokenizer(["a causes b.", "Does a cause b?"], words=["Yes", "No"])
    >>> tok.convert_ids_to_tokens(tok("Does a cause b?")["input_ids"])
    ['[BOS]', 'Does', 'a', 'cause', 'b', '?']
    """
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers

    corpus = list(texts) + [" ".join(words)]
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    # one token per word and per punctuation character: "{}" splits the same way everywhere
    pattern = r"->|<-|\w+|[^\w\s]" if whole_arrows else r"\w+|[^\w\s]"
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex(pattern), behavior="isolated")]
    )
    trainer = trainers.WordLevelTrainer(special_tokens=SPECIAL_TOKENS, min_frequency=1, show_progress=False)
    tok.train_from_iterator(corpus, trainer=trainer)
    return _wrap(tok, padding_side)


def build_name_tokenizer(
    words: Iterable[str], alphabet: str, padding_side: str = "left", whole_arrows: bool = True
):
    """A tokenizer that reads any node name: known ``words`` are one token each, every other word
    is spelled out character by character (WordPiece over single characters: ``R0R`` is
    ``R ##0 ##R``), so names never seen in training, and never seen by the tokenizer, are read
    exactly instead of becoming ``[UNK]``.

    ``alphabet`` lists the characters a name may use; the vocabulary is the special tokens, the
    words, each character and each character as a continuation (``##c``). Punctuation is one
    token per character (``->`` and ``<-`` whole with ``whole_arrows``). The vocabulary depends
    only on its arguments, so the same call gives the same ids on every machine.

    >>> tok = build_name_tokenizer(["Does", "cause", "?"], "abcR01")
    >>> tok.convert_ids_to_tokens(tok("Does R0R cause 1a?")["input_ids"])
    ['[BOS]', 'Does', 'R', '##0', '##R', 'cause', '1', '##a', '?']
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    vocab: dict[str, int] = {}
    for piece in [*SPECIAL_TOKENS, *words, *alphabet, *(f"##{c}" for c in alphabet)]:
        vocab.setdefault(piece, len(vocab))
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", continuing_subword_prefix="##", max_input_chars_per_word=64))
    pattern = r"->|<-|\w+|[^\w\s]" if whole_arrows else r"\w+|[^\w\s]"
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex(pattern), behavior="isolated")]
    )
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    return _wrap(tok, padding_side)


def _wrap(tok, padding_side: str):
    """A trained ``tokenizers`` tokenizer for transformers: ``[BOS]`` starts every text."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    tok.post_processor = processors.TemplateProcessing(
        single="[BOS] $A", pair="[BOS] $A $B", special_tokens=[("[BOS]", tok.token_to_id("[BOS]"))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="[BOS]",
        eos_token="[EOS]",
        pad_token="[PAD]",
        unk_token="[UNK]",
        padding_side=padding_side,
    )


# a name's slot token; brackets keep a literal "N3" in the text from ever reading as a slot
SLOT_FORMAT = "[N{}]"
_SLOT_RE = re.compile(r"\[N(\d+)\]")
_WORD_RE = re.compile(r"\w+")
NAME_SLOTS_FILE = "constraintc_name_slots.json"


@lru_cache(maxsize=1 << 16)
def _slot_hash(salt: int, name: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{salt}\0{name}".encode()).digest()[:8], "big")


def name_slots(text: str, words: frozenset[str] | set[str], slots: int, salt: int = 0) -> dict[str, int]:
    """The slot of every node name in ``text``: each word (run of letters, digits, ``_``) that is
    not one of the task ``words`` is a name; the first ``slots`` distinct names get distinct slots.

    A name's slot is its salted SHA-256 hash modulo ``slots``, moved to the next free slot on a
    collision with an earlier name. So the assignment of a text's prefix is the prefix of the
    text's assignment (a prompt and the prompt with its answer agree), the same name gets the
    same slot in every text without collisions, and names beyond the first ``slots`` get none.

    >>> m = name_slots("R0R causes x. Does x cause R0R?", {"causes", "Does", "cause"}, 24)
    >>> sorted(m) == ["R0R", "x"], len(set(m.values())), all(0 <= s < 24 for s in m.values())
    (True, 2, True)
    """
    mapping: dict[str, int] = {}
    used: set[int] = set()
    for word in _WORD_RE.findall(text):
        if word in words or word in mapping or len(used) == slots:
            continue
        slot = _slot_hash(salt, word) % slots
        while slot in used:
            slot = (slot + 1) % slots
        used.add(slot)
        mapping[word] = slot
    return mapping


class NameSlotTokenizer(PreTrainedTokenizerFast):
    """A name tokenizer that reads every node name as one token: its slot.

    Names carry no meaning in these tasks, only identity. Each distinct name of a text becomes one
    of ``name_slots`` tokens ``[N0]``, ``[N1]``, ... (:func:`name_slots`), whatever its spelling,
    length or alphabet; the task's words are one token each as in
    :func:`build_name_tokenizer`, and a text with more distinct names than slots has the rest
    spelled out character by character. ``name_salt`` (0 unless set) changes which slot each
    name gets: training gives every graph its own salt (:func:`salted_names`; ``name_salts`` of
    :func:`constraintc.lm.binding.pack_groups`), so that no slot stands for a particular name,
    and every other use keeps 0.

    ``decode`` gives slot tokens back as ``[N3]``; :meth:`restore_names` puts the names of the
    prompt back into a generated continuation. The tokenizer saves as a plain
    ``PreTrainedTokenizerFast`` plus ``constraintc_name_slots.json``, which
    :func:`constraintc.lm.load_model` reads to restore this class (other loaders see the slot
    tokens, not the names).
    """

    def __init__(self, *args, name_words=(), name_slots: int = 24, **kwargs):
        super().__init__(*args, **kwargs)
        self.name_words = frozenset(name_words)
        self.name_slots = int(name_slots)
        self.name_salt = 0

    def slot_text(self, text: str) -> str:
        """``text`` with each name that has a slot replaced by its slot token."""
        mapping = name_slots(text, self.name_words, self.name_slots, self.name_salt)
        if not mapping:
            return text
        return _WORD_RE.sub(lambda m: SLOT_FORMAT.format(mapping[m[0]]) if m[0] in mapping else m[0], text)

    def _slotted(self, text):
        if isinstance(text, str):
            return self.slot_text(text)
        if isinstance(text, (list, tuple)) and all(isinstance(t, str) for t in text):
            return [self.slot_text(t) for t in text]
        return text

    def __call__(self, text=None, *args, **kwargs):
        return super().__call__(self._slotted(text), *args, **kwargs)

    def encode(self, text, *args, **kwargs):
        return super().encode(self._slotted(text), *args, **kwargs)

    def restore_names(self, prompt: str, text: str) -> str:
        """``text`` (decoded after ``prompt``) with the prompt's names in place of their slot
        tokens; a slot the prompt does not use stays ``[Nk]``.

        >>> tok = build_slot_tokenizer(["causes", "Does", "cause", "?", "."], "abcR01", slots=8)
        >>> p = "R0R causes b. Does b cause"
        >>> tok.restore_names(p, tok.decode(tok(p + " R0R?")["input_ids"][-2:]))
        'R0R?'
        """
        back = {slot: name for name, slot in name_slots(prompt, self.name_words, self.name_slots, self.name_salt).items()}
        return _SLOT_RE.sub(lambda m: back.get(int(m[1]), m[0]), text)

    def unused_slot_ids(self, prompt: str) -> list[int]:
        """Token ids of the slots ``prompt`` does not use: in a continuation of ``prompt`` they
        name nothing (:meth:`restore_names` cannot write a name for them), so generation bans them.

        >>> tok = build_slot_tokenizer(["causes", "."], "ab", slots=4)
        >>> len(tok.unused_slot_ids("a causes b.")), len(tok.unused_slot_ids("causes ."))
        (2, 4)
        """
        used = set(name_slots(prompt, self.name_words, self.name_slots, self.name_salt).values())
        return [self.convert_tokens_to_ids(SLOT_FORMAT.format(k)) for k in range(self.name_slots) if k not in used]

    def save_pretrained(self, save_directory, *args, **kwargs):
        out = super().save_pretrained(save_directory, *args, **kwargs)
        path = Path(save_directory)
        config = path / "tokenizer_config.json"
        if config.is_file():  # loadable by AutoTokenizer as the plain tokenizer it extends
            data = json.loads(config.read_text(encoding="utf-8"))
            data["tokenizer_class"] = "PreTrainedTokenizerFast"
            for key in ("name_words", "name_slots"):
                data.pop(key, None)
            config.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        spec = {"name_slots": self.name_slots, "name_words": sorted(self.name_words)}
        (path / NAME_SLOTS_FILE).write_text(json.dumps(spec, indent=1) + "\n", encoding="utf-8")
        return out

    @classmethod
    def load(cls, path: str | Path) -> "NameSlotTokenizer":
        """The tokenizer saved in ``path`` by :meth:`save_pretrained`."""
        path = Path(path)
        spec = json.loads((path / NAME_SLOTS_FILE).read_text(encoding="utf-8"))
        slots, words = spec.get("name_slots"), spec.get("name_words")
        if isinstance(slots, bool) or not isinstance(slots, int) or slots < 1 or not isinstance(words, list) \
                or not all(isinstance(w, str) for w in words):
            raise ValueError(f"{path / NAME_SLOTS_FILE}: expected name_slots (a number >= 1) and name_words (strings)")
        base = PreTrainedTokenizerFast.from_pretrained(path)
        return cls(tokenizer_object=base.backend_tokenizer, name_words=words, name_slots=slots,
                   bos_token=base.bos_token, eos_token=base.eos_token, pad_token=base.pad_token,
                   unk_token=base.unk_token, padding_side=base.padding_side)


@contextmanager
def salted_names(tokenizer, salt: int):
    """Within the block, ``tokenizer`` (if it reads names by slot) assigns slots with ``salt``."""
    if not isinstance(tokenizer, NameSlotTokenizer):
        yield
        return
    before, tokenizer.name_salt = tokenizer.name_salt, salt
    try:
        yield
    finally:
        tokenizer.name_salt = before


def build_slot_tokenizer(words: Iterable[str], alphabet: str, slots: int = 24, padding_side: str = "left"):
    """:class:`NameSlotTokenizer` over ``words`` with ``slots`` name slots; names beyond the slots
    are spelled out over ``alphabet`` as in :func:`build_name_tokenizer`.

    >>> tok = build_slot_tokenizer(["Does", "cause", "?"], "abcR01", slots=8)
    >>> toks = tok.convert_ids_to_tokens(tok("Does R0R cause 1a?")["input_ids"])
    >>> len(toks), toks[1], toks[3], toks[2].startswith("[N"), toks[4].startswith("[N"), toks[2] != toks[4]
    (6, 'Does', 'cause', True, True, True)
    """
    from tokenizers import AddedToken

    words = list(words)
    base = build_name_tokenizer(words, alphabet, padding_side=padding_side)
    tok = base.backend_tokenizer
    tok.add_tokens([AddedToken(SLOT_FORMAT.format(i), single_word=False, normalized=False) for i in range(slots)])
    return NameSlotTokenizer(
        tokenizer_object=tok, name_words=[w for w in words if _WORD_RE.fullmatch(w)], name_slots=slots,
        bos_token="[BOS]", eos_token="[EOS]", pad_token="[PAD]", unk_token="[UNK]", padding_side=padding_side,
    )
