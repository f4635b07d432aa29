"""Word-level tokenizers trained locally on the task vocabulary (for the embedded and tiny models).

A pretrained BPE vocabulary of 50k+ tokens would dwarf a 0.6M-parameter model; the task text uses a
few dozen words, so the embedded model gets one token per word, trained here with ``tokenizers``.
"""

from __future__ import annotations

from collections.abc import Iterable

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
