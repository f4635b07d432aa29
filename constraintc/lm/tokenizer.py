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
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = list(texts) + [" ".join(words)]
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    # one token per word and per punctuation character: "{}" splits the same way everywhere
    pattern = r"->|<-|\w+|[^\w\s]" if whole_arrows else r"\w+|[^\w\s]"
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex(pattern), behavior="isolated")]
    )
    trainer = trainers.WordLevelTrainer(special_tokens=SPECIAL_TOKENS, min_frequency=1, show_progress=False)
    tok.train_from_iterator(corpus, trainer=trainer)
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
