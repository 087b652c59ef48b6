"""Raw text -> BERT inputs inside the TensorFlow graph, with tensorflow-text.

The preprocessor of fine-tuning, of the served exports and of anyone feeding a pretrained
encoder strings. It lays text out as the data job does: `[CLS] A [SEP]` for one segment,
`[CLS] A [SEP] B [SEP]` for a pair, segment ids 0 up to and including the first [SEP] and
1 after it, ids and special ids from the same tokenizer (bertmodel.model.graph_tokenizer:
this project's SentencePiece model or a published BERT's WordPiece tokenizer.json).

Trimming rule: what does not fit max_seq_length is cut from the ends of the segments, round
robin (tensorflow-text's RoundRobinTrimmer): pieces are given out one at a time, A then B,
until the budget (max_seq_length minus the 2 or 3 special pieces) is spent, so each segment
keeps its first pieces and a short segment keeps all of them while the longer one gives way.
(The data job trims pairs differently, from the front of A and the back of B, as the
reference did; pretraining pairs are cut at line boundaries, while a classifier's inputs
matter most at their start.)

Batches are padded to their longest example, or to max_seq_length with pad_to_max (static
shapes, for TPUs).
"""

from __future__ import annotations

import tensorflow as tf

from bertdata.schema import INPUT_IDS, INPUT_MASK, SEGMENT_IDS
from bertdata.tokenizer_files import TokenizerSource
from bertmodel.model.graph_tokenizer import graph_tokenizer


class BertPreprocessor(tf.Module):
    """Strings (one or two segments) -> {input_ids, input_mask, segment_ids}, int32 (B, L).

    Build it from a tokenizer's files (bertdata.tokenizer_files.TokenizerSource; NotInGraph
    when that tokenizer has no graph counterpart); call it eagerly, in a tf.function, in a
    tf.data map or inside a SavedModel. `special` (SpecialIds) and `is_special` (a bool per
    id) describe its vocabulary.
    """

    def __init__(self, tokenizer: TokenizerSource, max_seq_length: int, *,
                 pad_to_max: bool = False, name: str = "bert_preprocessor"):
        super().__init__(name=name)
        import tensorflow_text as text

        if max_seq_length < 3:
            raise ValueError(f"max_seq_length must be at least 3, got {max_seq_length}")
        self.max_seq_length = int(max_seq_length)
        self.pad_to_max = pad_to_max
        loaded = tokenizer.load(word_cache_size=0)  # first: its errors name the file
        self.special, self.is_special = loaded.special, loaded.is_special
        self.tokenizer = graph_tokenizer(tokenizer)
        self._single = text.RoundRobinTrimmer(self.max_seq_length - 2)
        self._pair = text.RoundRobinTrimmer(self.max_seq_length - 3)
        self._text = text

    def tokenize(self, strings) -> tf.RaggedTensor:
        """Piece ids of each string (B, None), without special pieces."""
        return self.tokenizer.tokenize(tf.convert_to_tensor(strings, tf.string))

    def __call__(self, text, text_b=None) -> dict:
        text = tf.convert_to_tensor(text, tf.string)
        if text_b is not None:
            text_b = tf.convert_to_tensor(text_b, tf.string)
            # Unequal batches would pair texts with nothing (and crash tensorflow-text's
            # combine op): fail this call with a clear error instead.
            check = tf.debugging.assert_equal(
                tf.size(text), tf.size(text_b),
                message="text and text_b must hold the same number of strings")
            with tf.control_dependencies([check]):  # nothing runs before the check passes
                text, text_b = tf.identity(text), tf.identity(text_b)
        segments = [self.tokenize(text)]
        if text_b is not None:
            segments.append(self.tokenize(text_b))
        trimmer = self._pair if len(segments) == 2 else self._single
        trimmed = trimmer.trim(segments)
        ids, segment_ids = self._text.combine_segments(
            trimmed, start_of_sequence_id=self.special.cls, end_of_segment_id=self.special.sep)
        return self.pad(ids, segment_ids)

    def pad(self, ids: tf.RaggedTensor, segment_ids: tf.RaggedTensor) -> dict:
        length = self.max_seq_length if self.pad_to_max else None
        shape = None if length is None else [None, length]
        mask = tf.ones_like(ids, dtype=tf.int32)
        out = {INPUT_IDS: tf.cast(ids.to_tensor(0, shape=shape), tf.int32),
               INPUT_MASK: mask.to_tensor(0, shape=shape),
               SEGMENT_IDS: tf.cast(segment_ids.to_tensor(0, shape=shape), tf.int32)}
        if length is None:
            # An empty batch would have no [CLS] column for the pooler to read: give it the
            # width of the shortest real row ([CLS] [SEP]); a no-op for any other batch.
            extra = tf.maximum(0, 2 - tf.shape(out[INPUT_IDS])[1])
            out = {k: tf.pad(v, [[0, 0], [0, extra]]) for k, v in out.items()}
        return out

    def pieces(self, ids) -> tf.Tensor:
        """The pieces (strings) of ids."""
        return self.tokenizer.id_to_string(ids)
