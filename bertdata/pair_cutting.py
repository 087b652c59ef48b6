"""Cutting a tokenized document into (A, B, next-sentence label) pairs, one pass at a time,
as --nsp_mode says: swap, random_doc or none (MLM-only spans)."""

from __future__ import annotations

import collections
import itertools
from collections.abc import Sequence

import numpy as np

from bertdata.example_settings import (
    DOCUMENTS_SINGLE_LINE,
    LINES_TRAILING_DROPPED,
    RANDOM_DOC_UNAVAILABLE,
    ExampleSettings,
)
from bertdata.random_doc_pool import RandomDocumentPool
from bertdata.random_streams import RandomStream, UniformDraws, generator_of


def document_pairs(
    doc: Sequence[np.ndarray] | tuple[np.ndarray, Sequence[int]],
    rng: RandomStream | np.random.Generator,
    config: ExampleSettings,
    *,
    key: bytes = b"",
    pool: RandomDocumentPool | None = None,
    counts: collections.Counter | None = None,
) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """Cuts one tokenized document into (A, B, next_sentence_label) pairs (one pass).

    `doc` is a list of per-line id arrays, or (all ids as one array, line lengths) as
    `Tokenizer.encode_flat` returns it; A and B are then views of that array, not copies.

    Chunks: lines are gathered until the chunk holds more than one line and either the
    document ends or the chunk reaches the target length (max_seq_length - 3, or a random
    shorter one with probability short_seq_prob). We do not simply concatenate the whole
    document and cut it at fixed lengths: the pair must split at a line boundary, otherwise
    sentence-order prediction would often be decidable from a broken sentence alone.

    Single lines: in 'swap' mode a one-line document has no pair and is skipped, and a
    document's last line left alone in its chunk is dropped (the reference behaviour, kept so
    results stay comparable); both are counted. In 'random_doc' mode a lone line still makes
    an example with a random B, as in google-research/bert.
    """
    counts = counts if counts is not None else collections.Counter()
    draws = UniformDraws(generator_of(rng))
    flat, ends = _flat_document(doc)
    num_lines = len(ends) - 1
    max_tokens = config.max_seq_length - 3
    target = max_tokens
    if config.short_seq_prob > 0 and draws.uniform() < config.short_seq_prob:
        target = draws.integer(2, max_tokens + 1)
    if config.nsp_mode == "none":
        return _span_pairs(flat, max_tokens + 1 if target == max_tokens else target)
    random_doc = config.nsp_mode == "random_doc"
    if not random_doc and num_lines < 2:
        counts[DOCUMENTS_SINGLE_LINE] += 1
        return []
    min_lines = 1 if random_doc else 2
    pairs = []
    first = 0  # the first line of the next chunk
    while first < num_lines:
        last = _chunk_end(ends, first, target, min_lines)
        if last is None:
            counts[LINES_TRAILING_DROPPED] += num_lines - first
            break
        if random_doc:
            pair, first = _random_doc_pair(flat, ends, first, last, draws, target, key, pool,
                                           counts)
        else:
            pair, first = _swap_pair(flat, ends, first, last, draws), last + 1
        if pair is not None:
            pairs.append(pair)
    return pairs


def _span_pairs(flat: np.ndarray, target: int) -> list[tuple[np.ndarray, None, int]]:
    """MLM-only examples: the document's pieces cut into consecutive spans of `target`
    (max_seq_length - 2, or the short target), each laid out alone."""
    return [(flat[start:start + target], None, 0) for start in range(0, len(flat), target)]


def _flat_document(doc) -> tuple[np.ndarray, list[int]]:
    """(all ids as one int32 array, line boundaries: line i is ends[i]:ends[i + 1])."""
    if isinstance(doc, tuple):
        flat, line_lengths = doc
    else:
        line_lengths = [len(x) for x in doc]
        flat = (np.concatenate(doc).astype(np.int32, copy=False) if len(doc)
                else np.zeros(0, np.int32))
    return flat, list(itertools.accumulate(line_lengths, initial=0))


def _chunk_end(ends: list[int], first: int, target: int, min_lines: int) -> int | None:
    """The last line of the chunk starting at `first`: it holds at least min_lines lines and
    ends at the target length or at the document's end. None when too few lines are left."""
    num_lines = len(ends) - 1
    for last in range(first + min_lines - 1, num_lines):
        if last == num_lines - 1 or ends[last + 1] - ends[first] >= target:
            return last
    return None


def _swap_pair(flat, ends, first, last, draws):
    """A is the chunk's first lines, B the rest; swapped (label 1) half the time."""
    a_end = first + draws.integer(1, last - first + 1)
    a, b = flat[ends[first]:ends[a_end]], flat[ends[a_end]:ends[last + 1]]
    if draws.uniform() < 0.5:
        return b, a, 1
    return a, b, 0


def _random_doc_pair(flat, ends, first, last, draws, target, key, pool, counts):
    """Half the time (always for a lone line) B comes from another document; otherwise B is
    the rest of the chunk. Returns (pair or None, the first line of the next chunk): when B
    is random, the chunk's lines after A were not used and begin the next chunk."""
    chunk_lines = last - first + 1
    a_end = first + (draws.integer(1, chunk_lines) if chunk_lines > 1 else 1)
    a = flat[ends[first]:ends[a_end]]
    if chunk_lines == 1 or draws.uniform() < 0.5:
        b = pool.sample(draws, target - len(a), key) if pool is not None else None
        if b is not None:
            return (a, b, 1), a_end
        if chunk_lines == 1:
            counts[RANDOM_DOC_UNAVAILABLE] += 1
            return None, last + 1
    return (a, flat[ends[a_end]:ends[last + 1]], 0), last + 1
