"""Masked-LM + next-sentence-prediction example building: pure, seeded, no global state.

Everything here takes token ids (numpy int32 arrays, one per line of a document) and
explicit random streams. The parts, each in its own module:
  example_settings  ExampleSettings (the data job's example flags) and the stats it counts;
  random_streams    a document's streams, from the user's seed and the document's content;
  pair_cutting      one pass over a document -> (A, B, label) pairs;
  random_doc_pool   the corpus sample random_doc's B segments come from;
  example_layout    pairs -> [CLS] A [SEP] B [SEP] rows in padded arrays;
  masking           whole-word masking of those rows.
This module puts them together (`document_passes`, `build_batch`) and is where callers
import them from.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence

import numpy as np

from bertdata.example_layout import ExampleBatch, Instance, count_examples, truncated_lengths
from bertdata.example_settings import (
    DOCUMENTS_SINGLE_LINE,
    EXAMPLES,
    EXAMPLES_NO_MASK,
    EXAMPLES_NOT_NEXT,
    EXAMPLES_TRUNCATED,
    LINES_TRAILING_DROPPED,
    NSP_MODES,
    RANDOM_DOC_UNAVAILABLE,
    ExampleSettings,
)
from bertdata.masking import VocabTables, mask_whole_words
from bertdata.pair_cutting import document_pairs
from bertdata.random_doc_pool import RandomDocumentPool
from bertdata.random_streams import (
    RandomStream,
    UniformDraws,
    document_key,
    document_stream,
    document_streams,
)

__all__ = [
    "DOCUMENTS_SINGLE_LINE", "EXAMPLES", "EXAMPLES_NOT_NEXT", "EXAMPLES_NO_MASK",
    "EXAMPLES_TRUNCATED", "LINES_TRAILING_DROPPED", "NSP_MODES", "RANDOM_DOC_UNAVAILABLE",
    "ExampleBatch", "ExampleSettings", "Instance", "RandomDocumentPool", "RandomStream",
    "UniformDraws", "VocabTables", "build_batch", "count_examples", "document_key",
    "document_pairs", "document_passes", "document_stream", "document_streams",
    "mask_whole_words", "truncated_lengths",
]


def build_batch(
    pairs: Sequence[tuple[np.ndarray, np.ndarray, int]],
    rngs: Sequence[RandomStream | np.random.Generator],
    group_sizes: Sequence[int],
    config: ExampleSettings,
    vocab: VocabTables,
    counts: collections.Counter | None = None,
) -> ExampleBatch:
    """Lays out pairs of one or more documents and masks them (unless masking is dynamic).

    Pairs come in consecutive groups of `group_sizes`, one per (document, dupe) pass, and
    group g is masked with `rngs[g]`.
    """
    batch = ExampleBatch.from_pairs(pairs, config.max_seq_length, vocab.special)
    if config.masking == "static":
        mask_whole_words(batch, rngs, group_sizes, vocab, masked_lm_prob=config.masked_lm_prob,
                   max_predictions=config.max_predictions_per_seq,
                   mask_token_rate=config.mask_token_rate,
                   random_token_rate=config.random_token_rate)
    if counts is not None:
        count_examples(batch, counts)
    return batch


def document_passes(
    doc: Sequence[np.ndarray] | tuple[np.ndarray, Sequence[int]],
    config: ExampleSettings,
    *,
    key: bytes,
    pool: RandomDocumentPool | None = None,
    counts: collections.Counter | None = None,
):
    """Yields (pairs, mask stream) for each of a document's `dupe_factor` passes.

    Each pass has its own two streams: one cuts the pairs, the other draws their masks, so
    the pairs are the same whatever the masking settings (static, dynamic, another rate).
    """
    for dupe in range(config.dupe_factor):
        pair_stream, mask_stream = document_streams(config.seed, key, dupe)
        pairs = document_pairs(doc, pair_stream, config, key=key, pool=pool, counts=counts)
        if pairs:
            yield pairs, mask_stream
