"""A tokenizer's ids inside the TensorFlow graph (tensorflow-text), for the preprocessor of
fine-tuning and of the SavedModels.

Two kinds run in the graph:
  - this project's SentencePiece model (tensorflow-text's SentencepieceTokenizer on the
    model's bytes gives bertdata.tokenizer's ids);
  - a WordPiece tokenizer.json with BERT's own normalizer and pre-tokenizer, as published
    BERTs ship it (klue/bert-base, multilingual BERT, KcBERT): tensorflow-text's
    FastBertTokenizer, with the special tokens written in the text split out first, as the
    `tokenizers` library matches them, and the characters its text cleaning drops (format
    and private-use characters) dropped first.

The WordPiece ids equal the `tokenizers` library's on the Korean stress set, singles and
pairs (tests/integration/test_graph_tokenizer.py), except for one class of input, pinned by
a test there: a word longer than the tokenizer's max_input_chars_per_word (100) characters
but at most 4 bytes a character of that (the library gives [UNK], tensorflow-text cuts it
into pieces).
Any other tokenizer.json (BPE, Unigram, another normalizer) has no graph counterpart here:
`graph_tokenizer` raises bertdata.tokenizer_files.NotInGraph, and the exports then write
the `serve` signature on feature tensors only.
"""

from __future__ import annotations

import re

import tensorflow as tf

from bertdata.tokenizer_files import (
    SENTENCEPIECE,
    TokenizerSource,
    WordPieceGraphSettings,
)

# What BERT's text cleaning drops and tensorflow-text's does not: NUL, U+FFFD, control
# characters other than white space, format characters (the zero-width joiner of emoji
# sequences), private use and surrogates.
_DROPPED = r"[\x{0}\x{FFFD}\p{Cf}\p{Co}\p{Cs}]|[^\P{Cc}\t\n\r]"


class WordPieceGraphTokenizer(tf.Module):
    """Strings -> WordPiece ids (ragged), as the `tokenizers` library gives them."""

    def __init__(self, settings: WordPieceGraphSettings, name: str = "wordpiece"):
        super().__init__(name=name)
        import tensorflow_text as text

        self._text = text
        self._pieces = tf.constant(settings.pieces)
        self._fast = text.FastBertTokenizer(
            vocab=list(settings.pieces), suffix_indicator=settings.continuation_prefix,
            unknown_token=settings.unk_token, token_out_type=tf.int32,
            lower_case_nfd_strip_accents=settings.lowercase,
            # The library counts characters, tensorflow-text bytes: at 4 bytes a character,
            # no word the library splits is [UNK] here (see the module's doc).
            max_bytes_per_word=4 * settings.max_chars_per_word)
        added = sorted(settings.added_tokens, key=lambda t: -len(t[0]))
        self._added_pattern = "(" + "|".join(re.escape(t) for t, _ in added) + ")" \
            if added else ""
        self._added = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
            tf.constant([t for t, _ in added] or [""], tf.string),
            tf.constant([i for _, i in added] or [-1], tf.int32)), default_value=-1)

    def tokenize(self, strings) -> tf.RaggedTensor:
        strings = tf.strings.regex_replace(tf.convert_to_tensor(strings, tf.string),
                                           _DROPPED, "")
        if not self._added_pattern:
            return self._fast.tokenize(strings)
        # Each string in parts: the added tokens written in it, and the text between them.
        parts = self._text.regex_split(strings, self._added_pattern, self._added_pattern)
        added = self._added.lookup(parts.flat_values)
        is_added = added >= 0
        words = self._fast.tokenize(tf.where(is_added, "", parts.flat_values))
        tokens = tf.ragged.boolean_mask(added[:, None], is_added[:, None])
        per_part = tf.concat([tokens, words], axis=1)  # one of the two is empty
        return tf.RaggedTensor.from_row_splits(per_part, parts.row_splits).merge_dims(1, 2)

    def id_to_string(self, ids) -> tf.Tensor:
        return tf.gather(self._pieces, ids)


def graph_tokenizer(source: TokenizerSource):
    """A module with tokenize(strings) -> ragged int32 ids and id_to_string(ids). Raises
    NotInGraph (naming the file and why) when the tokenizer has no graph counterpart."""
    import tensorflow_text as text

    if source.kind == SENTENCEPIECE:
        return text.SentencepieceTokenizer(model=source.content, out_type=tf.int32)
    return WordPieceGraphTokenizer(source.wordpiece_graph_settings())
