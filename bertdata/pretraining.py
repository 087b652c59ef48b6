"""Masked-LM + next-sentence-prediction example building: pure, seeded, no global state.

Everything here takes token ids (numpy int32 arrays, one per line of a document) and
explicit random streams. `document_stream` derives a document's streams from the user's seed
and the document's content, so the examples of a document do not depend on which worker
builds them, in which order, or how the corpus was split.
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
import hashlib
import itertools
import threading
from collections.abc import Sequence

import numpy as np

from bertcommon import cli
from bertdata.schema import MASKING_MODES
from bertdata.tokenizer import SPECIAL_IDS

NSP_MODES = ("swap", "random_doc", "none")

# Counter keys for stats.json, one per reason.
DOCUMENTS_SINGLE_LINE = "documents_single_line"
LINES_TRAILING_DROPPED = "lines_trailing_dropped"
EXAMPLES = "examples"
EXAMPLES_TRUNCATED = "examples_truncated"
EXAMPLES_NO_MASK = "examples_without_masked_tokens"
EXAMPLES_NOT_NEXT = "examples_not_next"
RANDOM_DOC_UNAVAILABLE = "random_next_unavailable"


@dataclasses.dataclass(frozen=True)
class ExampleConfig(cli.Settings):
    """How examples are cut from documents and masked (the data job's flags)."""

    max_seq_length: int = cli.flag(
        128, check=cli.at_least(5), help="pieces per example, [CLS] and [SEP]s included")
    max_predictions_per_seq: int = cli.flag(
        20, check=cli.non_negative, help="upper bound on masked pieces per example")
    masked_lm_prob: float = cli.flag(
        0.15, check=cli.between(0.0, 1.0, high_included=True),
        help="share of the non-special pieces to mask (budget: int((length - 3) * prob))")
    short_seq_prob: float = cli.flag(
        0.0, check=cli.between(0.0, 1.0, high_included=True),
        help="probability that a document's target length is drawn uniformly from [2, max]")
    dupe_factor: int = cli.flag(
        1, check=cli.positive,
        help="passes over each document, each with a fresh random stream")
    nsp_mode: str = cli.flag(
        "swap", choices=NSP_MODES,
        help="swap: B is A's continuation, swapped half the time (the reference; ALBERT's "
             "SOP); random_doc: half the time B comes from another document (original BERT); "
             "none: MLM only, each example one contiguous span of a document")
    masking: str = cli.flag(
        "static", choices=MASKING_MODES,
        help="static: masks drawn here and stored; dynamic: records keep the unmasked ids "
             "and make_dataset masks anew every epoch")
    # Of the masked words: this share becomes [MASK], random_token_rate random pieces, the
    # rest stays unchanged (80/10/10).
    mask_token_rate: float = cli.flag(0.8, check=cli.non_negative,
                                      help="share of masked words shown as [MASK]")
    random_token_rate: float = cli.flag(0.1, check=cli.non_negative,
                                        help="share of masked words shown as a random piece")
    seed: int = cli.flag(12345, help="each document's random stream derives from this seed "
                                      "and the document's content")

    def problems(self):
        if self.mask_token_rate + self.random_token_rate > 1.0:
            yield "--mask_token_rate and --random_token_rate must sum to <= 1"


@dataclasses.dataclass
class Instance:
    """One example before serialization."""

    input_ids: np.ndarray  # int32 (seq,), [CLS] A [SEP] B [SEP], masked when static
    segment_ids: np.ndarray  # int32 (seq,)
    masked_lm_positions: np.ndarray  # int32 (num_masked,), ascending
    masked_lm_ids: np.ndarray  # int32 (num_masked,), the original pieces
    next_sentence_label: int  # 1 = B is not A's continuation
    truncated: bool = False


# What a piece is to whole-word masking (VocabTables.kind).
PIECE_SPECIAL, PIECE_WORD_START, PIECE_CONTINUATION = 0, 1, 2


@dataclasses.dataclass(frozen=True)
class VocabTables:
    """The vocabulary facts masking needs, as arrays (built from a `Tokenizer`)."""

    word_start: np.ndarray  # bool (vocab,)
    is_special: np.ndarray  # bool (vocab,)
    replacement_ids: np.ndarray  # int32, ids a random replacement may draw
    # uint8 (vocab,): PIECE_SPECIAL, PIECE_WORD_START or PIECE_CONTINUATION (derived).
    kind: np.ndarray = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self):
        kind = np.where(self.is_special, PIECE_SPECIAL,
                        np.where(self.word_start, PIECE_WORD_START, PIECE_CONTINUATION))
        object.__setattr__(self, "kind", kind.astype(np.uint8))

    @classmethod
    def from_tokenizer(cls, tok) -> VocabTables:
        return cls(tok.word_start, tok.is_special, tok.replacement_ids)


def document_key(lines: Sequence[str]) -> bytes:
    """A stable 16-byte identity of a document, from its content alone."""
    h = hashlib.blake2b(digest_size=16)
    for line in lines:
        h.update(line.encode("utf-8"))
        h.update(b"\n")
    return h.digest()


@dataclasses.dataclass(frozen=True)
class RandomStream:
    """The start of one random stream: a PCG64 state derived from a seed and a document.

    `generator()` sets the calling thread's generator to this start and returns it; it is
    valid until the thread's next `generator()` call. Setting the state of one reused
    generator costs about a microsecond, where constructing a seeded one costs ten, and a
    document needs two streams per pass.
    """

    state: int
    increment: int

    def generator(self) -> np.random.Generator:
        generator = getattr(_threads, "generator", None)
        if generator is None:
            generator = _threads.generator = np.random.Generator(np.random.PCG64(0))
        generator.bit_generator.state = {
            "bit_generator": "PCG64", "state": {"state": self.state, "inc": self.increment},
            "has_uint32": 0, "uinteger": 0}
        return generator


_threads = threading.local()


def document_streams(seed: int, key: bytes, dupe: int = 0) -> tuple[RandomStream, RandomStream]:
    """The two random streams of one pass (dupe) over one document: the first cuts the
    pairs, the second draws the masks. Separate streams keep the pairs the same whatever the
    masking settings (static, dynamic, another masked_lm_prob)."""
    h = hashlib.blake2b(key, digest_size=64, person=b"bertpipe-doc")
    h.update(int(seed).to_bytes(8, "little", signed=True))
    h.update(int(dupe).to_bytes(4, "little"))
    d = h.digest()
    # PCG64 takes any 128-bit state and an odd increment; the digest is already well mixed.
    return tuple(RandomStream(int.from_bytes(d[at:at + 16], "little"),
                              int.from_bytes(d[at + 16:at + 32], "little") | 1)
                 for at in (0, 32))


def document_stream(seed: int, key: bytes, dupe: int = 0, purpose: int = 0) -> RandomStream:
    """One of `document_streams`: purpose 0 cuts the pairs, 1 draws the masks."""
    return document_streams(seed, key, dupe)[purpose]


class UniformDraws:
    """Uniform numbers in [0, 1) from a generator, fetched a block at a time.

    Cutting a document's pairs takes a few numbers per chunk; one numpy call per number
    would cost a microsecond each, so they come from a block of 32 drawn in one call.
    """

    __slots__ = ("_generator", "_block")

    def __init__(self, generator: np.random.Generator):
        self._generator = generator
        self._block: list[float] = []

    def uniform(self) -> float:
        if not self._block:
            self._block = self._generator.random(32).tolist()[::-1]
        return self._block.pop()

    def integer(self, low: int, high: int) -> int:
        """An integer in [low, high)."""
        return low + int(self.uniform() * (high - low))


def _generator(rng) -> np.random.Generator:
    """A Generator as it is, or a RandomStream's generator (set to its start)."""
    return rng.generator() if isinstance(rng, RandomStream) else rng


def truncated_lengths(len_a: int, len_b: int, max_tokens: int) -> tuple[int, int]:
    """Lengths after the reference trim, in closed form.

    The reference loop: while len(A) + len(B) > max_tokens, drop the first piece of A if A is
    longer, else the last piece of B. That first shortens the longer side to the other's
    length, then alternates starting with B.
    """
    excess = len_a + len_b - max_tokens
    if excess <= 0:
        return len_a, len_b
    if len_a > len_b:
        d = min(len_a - len_b, excess)
        len_a -= d
        excess -= d
    elif len_b > len_a:
        d = min(len_b - len_a, excess)
        len_b -= d
        excess -= d
    return len_a - excess // 2, len_b - (excess + 1) // 2


@dataclasses.dataclass
class ExampleBatch:
    """Examples of one or more documents as padded arrays: what masking and serializing use.

    Row i holds example i as [CLS] A [SEP] B [SEP] followed by zeros ([PAD]).
    """

    input_ids: np.ndarray  # int32 (n, width); masked in place by `mask_whole_words`
    lengths: np.ndarray  # int32 (n,)
    a_lengths: np.ndarray  # int32 (n,): pieces of A, so the first [SEP] is at a_length + 1
    next_sentence_labels: np.ndarray  # int32 (n,)
    truncated: np.ndarray  # bool (n,)
    masked_lm_positions: np.ndarray | None = None  # int32 (n, max_predictions), ascending
    masked_lm_ids: np.ndarray | None = None  # int32 (n, max_predictions)
    num_masked: np.ndarray | None = None  # int32 (n,)

    def __len__(self) -> int:
        return len(self.lengths)

    @classmethod
    def from_rows(cls, rows: Sequence[np.ndarray]) -> ExampleBatch:
        """Packs finished [CLS] A [SEP] B [SEP] rows (used for single examples and tests)."""
        n = len(rows)
        lengths = np.array([len(r) for r in rows], dtype=np.int32)
        ids = np.zeros((n, int(lengths.max(initial=0))), dtype=np.int32)
        a_lengths = np.zeros(n, dtype=np.int32)
        for i, r in enumerate(rows):
            ids[i, :len(r)] = r
            seps = np.flatnonzero(r == SPECIAL_IDS.sep)
            a_lengths[i] = seps[0] - 1 if len(seps) else len(r)
        return cls(ids, lengths, a_lengths, np.zeros(n, np.int32), np.zeros(n, bool))

    @classmethod
    def from_pairs(cls, pairs: Sequence[tuple[np.ndarray, np.ndarray, int]],
                   max_seq_length: int) -> ExampleBatch:
        """Trims each (A, B, label) pair as the reference does and lays it out in a row; a
        pair whose B is None is one segment, [CLS] A [SEP], its end cut to fit."""
        n = len(pairs)
        ids = np.zeros((n, max_seq_length), dtype=np.int32)
        lengths = np.empty(n, dtype=np.int32)
        a_lengths = np.empty(n, dtype=np.int32)
        labels = np.empty(n, dtype=np.int32)
        truncated = np.empty(n, dtype=bool)
        max_tokens = max_seq_length - 3
        for i, (a, b, label) in enumerate(pairs):
            row = ids[i]
            if b is None:
                na = nb = lb = 0
                la = min(len(a), max_tokens + 1)
                row[1:la + 1] = a[:la]
                truncated[i] = la < len(a)
                lengths[i], a_lengths[i], labels[i] = la + 2, la, label
                continue
            na, nb = len(a), len(b)
            la, lb = truncated_lengths(na, nb, max_tokens)
            row[1:la + 1] = a[na - la:]
            row[la + 2:la + 2 + lb] = b[:lb]
            lengths[i] = la + lb + 3
            a_lengths[i] = la
            labels[i] = label
            truncated[i] = la < na or lb < nb
        ids[:, 0] = SPECIAL_IDS.cls
        rows = np.arange(n)
        ids[rows, a_lengths + 1] = SPECIAL_IDS.sep
        ids[rows, lengths - 1] = SPECIAL_IDS.sep
        return cls(ids, lengths, a_lengths, labels, truncated)

    def segment_ids(self, i: int) -> np.ndarray:
        seg = np.zeros(self.lengths[i], dtype=np.int32)
        seg[self.a_lengths[i] + 2:] = 1
        return seg

    def instances(self) -> list[Instance]:
        out = []
        empty = np.zeros(0, dtype=np.int32)
        for i in range(len(self)):
            n = int(self.lengths[i])
            if self.num_masked is None:
                pos = ids = empty
            else:
                k = int(self.num_masked[i])
                pos = self.masked_lm_positions[i, :k].copy()
                ids = self.masked_lm_ids[i, :k].copy()
            out.append(Instance(self.input_ids[i, :n].copy(), self.segment_ids(i), pos, ids,
                                int(self.next_sentence_labels[i]), bool(self.truncated[i])))
        return out


@dataclasses.dataclass
class _Words:
    """Where the words of a batch are, flat over its (n, width) rows."""

    of_piece: np.ndarray  # word number of every flat position (meaningful on candidates)
    row: np.ndarray  # the row of each word
    length: np.ndarray  # pieces per word
    candidates: np.ndarray  # flat positions that may be masked, ascending


def _words_of(ids: np.ndarray, vocab: VocabTables) -> _Words | None:
    """A piece starting with '▁' begins a word, any other piece continues the word before
    it; special pieces (and padding) are never candidates and end any word."""
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
            u = _generator(rng).random(2 * (hi - lo) + last - first)
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
    """Whole-word masking on '▁' word starts, as in the reference, for a batch at once.

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
    flat[piece[draw < mask_token_rate]] = SPECIAL_IDS.mask
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


class RandomDocumentPool:
    """Documents that 'random_doc' mode draws its random B segments from.

    The Beam job fills it with a seeded, content-hashed sample of the whole corpus, so every
    worker draws from the same pool whatever its own share of the input. It is held as flat
    arrays (one array of ids, the bounds of every line, each document's span of lines), so a
    sampled segment is a view and 10,000 documents cost a few MB.
    """

    def __init__(self, keys: Sequence[bytes], ids: np.ndarray, line_bounds: np.ndarray,
                 doc_lines: np.ndarray):
        """keys[d] identifies document d, whose lines are doc_lines[d]:doc_lines[d + 1];
        line i holds ids[line_bounds[i]:line_bounds[i + 1]]."""
        self.keys = list(keys)
        self.ids = ids
        # Python lists: sampling looks up a few values at a time, where numpy's per-call
        # cost would dominate.
        self.line_bounds = [int(x) for x in line_bounds]
        self.doc_lines = [int(x) for x in doc_lines]

    @classmethod
    def from_documents(cls, documents: Sequence[tuple[bytes, Sequence[np.ndarray]]]
                       ) -> RandomDocumentPool:
        """From (key, per-line id arrays) pairs; documents without lines are left out."""
        documents = [(k, list(lines)) for k, lines in documents if len(lines)]
        lines = [line for _, doc in documents for line in doc]
        lengths = [len(line) for line in lines]
        ids = np.concatenate(lines).astype(np.int32) if lines else np.zeros(0, np.int32)
        return cls([k for k, _ in documents], ids,
                   np.array(list(itertools.accumulate(lengths, initial=0)), np.int64),
                   np.array(list(itertools.accumulate((len(d) for _, d in documents),
                                                      initial=0)), np.int64))

    def __len__(self) -> int:
        return len(self.keys)

    def sample(self, draws: UniformDraws, target_len: int, exclude: bytes):
        """Returns pieces from a random start line of a random other document, or None."""
        if not self.keys:
            return None
        for _ in range(10):
            d = draws.integer(0, len(self.keys))
            if self.keys[d] != exclude:
                break
        else:
            return None
        first, last = self.doc_lines[d], self.doc_lines[d + 1]
        start = draws.integer(first, last)
        bounds = self.line_bounds
        begin = bounds[start]
        # Lines from the start line until target_len pieces are reached (or the document ends).
        end = bounds[min(bisect.bisect_left(bounds, begin + target_len, start + 1, last + 1),
                         last)]
        return self.ids[begin:end]


def document_pairs(
    doc: Sequence[np.ndarray] | tuple[np.ndarray, Sequence[int]],
    rng: RandomStream | np.random.Generator,
    config: ExampleConfig,
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
    draws = UniformDraws(_generator(rng))
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


def count_examples(batch: ExampleBatch, counts: collections.Counter) -> None:
    counts[EXAMPLES] += len(batch)
    counts[EXAMPLES_NOT_NEXT] += int(batch.next_sentence_labels.sum())
    counts[EXAMPLES_TRUNCATED] += int(batch.truncated.sum())
    if batch.num_masked is not None:
        counts[EXAMPLES_NO_MASK] += int(np.count_nonzero(batch.num_masked == 0))


def build_batch(
    pairs: Sequence[tuple[np.ndarray, np.ndarray, int]],
    rngs: Sequence[RandomStream | np.random.Generator],
    group_sizes: Sequence[int],
    config: ExampleConfig,
    vocab: VocabTables,
    counts: collections.Counter | None = None,
) -> ExampleBatch:
    """Lays out pairs of one or more documents and masks them (unless masking is dynamic).

    Pairs come in consecutive groups of `group_sizes`, one per (document, dupe) pass, and
    group g is masked with `rngs[g]`.
    """
    batch = ExampleBatch.from_pairs(pairs, config.max_seq_length)
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
    config: ExampleConfig,
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
