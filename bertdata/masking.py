"""Whole-word masking of a batch of examples, vectorized: which pieces form words, how many
words each example masks, and what each masked piece becomes (80/10/10)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from bertdata.example_layout import ExampleBatch
from bertdata.random_streams import RandomStream, generator_of
from bertdata.vocabulary import SpecialIds

# What a piece is to whole-word masking (VocabTables.kind).
PIECE_SPECIAL, PIECE_WORD_START, PIECE_CONTINUATION = 0, 1, 2


@dataclasses.dataclass(frozen=True)
class VocabTables:
    """The vocabulary facts masking needs, as arrays (built from a `Tokenizer`)."""

    word_start: np.ndarray  # bool (vocab,)
    is_special: np.ndarray  # bool (vocab,)
    replacement_ids: np.ndarray  # int32, ids a random replacement may draw
    special: SpecialIds
    # uint8 (vocab,): PIECE_SPECIAL, PIECE_WORD_START or PIECE_CONTINUATION (derived).
    kind: np.ndarray = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self):
        kind = np.where(self.is_special, PIECE_SPECIAL,
                        np.where(self.word_start, PIECE_WORD_START, PIECE_CONTINUATION))
        object.__setattr__(self, "kind", kind.astype(np.uint8))

    @classmethod
    def from_tokenizer(cls, tok) -> VocabTables:
        return cls(tok.word_start, tok.is_special, tok.replacement_ids, tok.special)


@dataclasses.dataclass
class _Words:
    """Where the words of a batch are, flat over its (n, width) rows."""

    of_piece: np.ndarray  # word number of every flat position (meaningful on candidates)
    row: np.ndarray  # the row of each word
    length: np.ndarray  # pieces per word
    candidates: np.ndarray  # flat positions that may be masked, ascending


def _words_of(ids: np.ndarray, vocab: VocabTables) -> _Words | None:
    """A piece the tokenizer marks as a word's start (SentencePiece's '▁', a WordPiece
    piece without '##') begins a word, any other piece continues the word before it;
    special pieces (and padding) are never candidates and end any word."""
    width = ids.shape[1]
    kind = vocab.kind[ids]
    cand = kind != PIECE_SPECIAL
    prev = np.zeros_like(cand)
    prev[:, 1:] = cand[:, :-1]
    start = (cand & ((kind == PIECE_WORD_START) | ~prev)).ravel()
    of_piece = np.cumsum(start) - 1
    first = np.flatnonzero(start)
    if len(first) == 0:
        return None
    candidates = np.flatnonzero(cand.ravel())
    length = np.bincount(of_piece[candidates], minlength=len(first))
    return _Words(of_piece, first // width, length, candidates)


def _group_draws(words: _Words, rngs, group_rows: np.ndarray, replacements: int):
    """Every word's visiting-order key and outcome, and a replacement pick for every
    candidate piece, drawn in one go from its document's stream (rngs[g] for group g)."""
    num_words = len(words.row)
    group_words = np.searchsorted(words.row, group_rows)
    piece_starts = np.concatenate([[0], np.cumsum(words.length)])
    keys = np.empty(num_words)
    outcome = np.empty(num_words)
    picks = np.empty(int(piece_starts[-1]), dtype=np.int64)  # in candidate order
    for rng, lo, hi in zip(rngs, group_words[:-1], group_words[1:], strict=True):
        if hi > lo:
            first, last = piece_starts[lo], piece_starts[hi]
            u = generator_of(rng).random(2 * (hi - lo) + last - first)
            keys[lo:hi] = u[:hi - lo]
            outcome[lo:hi] = u[hi - lo:2 * (hi - lo)]
            picks[first:last] = u[2 * (hi - lo):] * replacements  # floor, in [0, R)
    return keys, outcome, picks


def _take_words(words: _Words, keys, budget: np.ndarray, n: int, width: int) -> np.ndarray:
    """Greedy selection in each row's random word order, vectorized over rows.

    Words are laid out in (row, word-in-row) matrices; sorting each row by its keys gives
    the visiting order, and column j of `length_by_rank` holds every row's j-th visited
    word. A word is taken when it fits what is left of its row's budget. Returns a bool per
    word.
    """
    slot = np.arange(len(words.row)) - np.searchsorted(words.row, words.row)
    shape = (n, int(slot.max()) + 1)
    key_grid = np.full(shape, 2.0)  # empty slots sort last
    key_grid[words.row, slot] = keys
    length_grid = np.full(shape, width + 1, dtype=np.int64)  # and never fit a budget
    length_grid[words.row, slot] = words.length
    visit = np.argsort(key_grid, axis=1)
    length_by_rank = np.ascontiguousarray(np.take_along_axis(length_grid, visit, axis=1).T)
    remaining = np.maximum(budget, 0)
    taken = np.zeros(length_by_rank.shape, dtype=bool)
    for j, lengths in enumerate(length_by_rank):
        take = lengths <= remaining
        taken[j] = take
        np.subtract(remaining, lengths, out=remaining, where=take)
        if j % 8 == 7 and not remaining.any():
            break
    taken_grid = np.zeros(shape, dtype=bool)
    np.put_along_axis(taken_grid, visit, taken.T, axis=1)
    return taken_grid[words.row, slot]


def mask_whole_words(
    batch: ExampleBatch,
    rngs: Sequence[RandomStream | np.random.Generator],
    group_sizes: Sequence[int],
    vocab: VocabTables,
    *,
    masked_lm_prob: float,
    max_predictions: int,
    mask_token_rate: float = 0.8,
    random_token_rate: float = 0.1,
) -> None:
    """Whole-word masking on the tokenizer's word starts, as in the reference, for a batch at once.

    Each example's words are visited in a random order and taken unless they would
    overflow its budget of min(max_predictions, int((length - 3) * masked_lm_prob)) pieces.
    Each taken word draws once: [MASK] for all its pieces, or unchanged, or a random
    ordinary piece for each.

    The rows come in consecutive groups (one per document) of `group_sizes`, and group g
    draws all its randomness from `rngs[g]`: the result for a document does not depend on
    which other documents share its batch. Each group draws once, everything it may need
    (see _group_draws); all the work apart from those draws is vectorized over the batch.

    Fills batch.masked_lm_positions / masked_lm_ids / num_masked and masks input_ids.
    """
    n, width = batch.input_ids.shape
    batch.masked_lm_positions = np.zeros((n, max_predictions), dtype=np.int32)
    batch.masked_lm_ids = np.zeros((n, max_predictions), dtype=np.int32)
    batch.num_masked = np.zeros(n, dtype=np.int32)
    words = _words_of(batch.input_ids, vocab) if n and width else None
    if words is None:
        return
    group_rows = np.concatenate([[0], np.cumsum(group_sizes)])
    keys, outcome, picks = _group_draws(words, rngs, group_rows, len(vocab.replacement_ids))
    # Ordinary pieces: the length less [CLS] and one [SEP], less the second [SEP] of a pair.
    ordinary = batch.lengths - 2 - (batch.lengths > batch.a_lengths + 2)
    budget = np.minimum(max_predictions, (ordinary * masked_lm_prob).astype(np.int64))
    chosen_word = _take_words(words, keys, budget, n, width)
    piece = words.candidates[chosen_word[words.of_piece[words.candidates]]]  # row-major
    draw = outcome[words.of_piece[piece]]
    flat = batch.input_ids.reshape(-1)
    original = flat[piece].copy()
    flat[piece[draw < mask_token_rate]] = vocab.special.mask
    replaced = (draw >= mask_token_rate) & (draw < mask_token_rate + random_token_rate)
    if replaced.any():
        # A replaced piece takes the pick drawn for its place among the candidates.
        rank = np.searchsorted(words.candidates, piece[replaced])
        flat[piece[replaced]] = vocab.replacement_ids[picks[rank]]
    row = piece // width
    counts = np.bincount(row, minlength=n)
    column = np.arange(len(piece)) - (np.cumsum(counts) - counts)[row]  # i-th of its row
    batch.masked_lm_positions[row, column] = piece - row * width
    batch.masked_lm_ids[row, column] = original
    batch.num_masked[:] = counts
