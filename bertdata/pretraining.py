"""Masked-LM + next-sentence-prediction example building: pure, seeded, no global state.

Everything here takes token ids (numpy int32 arrays, one per line of a document) and an
explicit `numpy.random.Generator`. `document_rng` derives that generator from the user's seed
and the document's content, so the examples of a document do not depend on which worker
builds them, in which order, or how the corpus was split.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
from collections.abc import Sequence

import numpy as np

from bertdata.tokenizer import SPECIAL_IDS

NSP_MODES = ("swap", "random_doc")
MASKING_MODES = ("static", "dynamic")

# Counter keys for stats.json, one per reason.
DOCUMENTS_SINGLE_LINE = "documents_single_line"
LINES_TRAILING_DROPPED = "lines_trailing_dropped"
EXAMPLES = "examples"
EXAMPLES_TRUNCATED = "examples_truncated"
EXAMPLES_NO_MASK = "examples_without_masked_tokens"
EXAMPLES_RANDOM_NEXT = "examples_not_next"
RANDOM_DOC_UNAVAILABLE = "random_next_unavailable"


@dataclasses.dataclass(frozen=True)
class ExampleConfig:
    """How examples are cut from documents and masked (the Beam job's flags)."""

    # Total tokens per example including [CLS] and two [SEP].
    max_seq_length: int = 128
    # Upper bound on masked pieces per example.
    max_predictions_per_seq: int = 20
    # Share of the non-special pieces to mask (the budget is int((len - 3) * prob)).
    masked_lm_prob: float = 0.15
    # Probability that a document's target length is drawn uniformly from [2, max].
    short_seq_prob: float = 0.0
    # How many times each document is turned into examples, each with a fresh random stream.
    dupe_factor: int = 1
    # 'swap': B is A's true continuation, swapped half the time (reference; ALBERT's SOP).
    # 'random_doc': half the time B comes from another document (original BERT).
    nsp_mode: str = "swap"
    # 'static': masks are drawn here and stored; 'dynamic': records keep the unmasked ids and
    # the input function masks anew every epoch.
    masking: str = "static"
    # Of the masked words: this share becomes [MASK], random_token_rate random pieces, the
    # rest stays unchanged (80/10/10).
    mask_token_rate: float = 0.8
    random_token_rate: float = 0.1
    # The user's seed; each document's stream is derived from it and the document's content.
    seed: int = 12345

    def __post_init__(self):
        problems = []
        if self.max_seq_length < 5:
            problems.append(f"max_seq_length must be at least 5, got {self.max_seq_length}")
        if self.max_predictions_per_seq < 0:
            problems.append("max_predictions_per_seq must be >= 0")
        if not 0.0 <= self.masked_lm_prob <= 1.0:
            problems.append(f"masked_lm_prob must be in [0, 1], got {self.masked_lm_prob}")
        if not 0.0 <= self.short_seq_prob <= 1.0:
            problems.append(f"short_seq_prob must be in [0, 1], got {self.short_seq_prob}")
        if self.dupe_factor < 1:
            problems.append(f"dupe_factor must be >= 1, got {self.dupe_factor}")
        if self.nsp_mode not in NSP_MODES:
            problems.append(f"nsp_mode must be one of {NSP_MODES}, got {self.nsp_mode!r}")
        if self.masking not in MASKING_MODES:
            problems.append(f"masking must be one of {MASKING_MODES}, got {self.masking!r}")
        if not (self.mask_token_rate >= 0 and self.random_token_rate >= 0
                and self.mask_token_rate + self.random_token_rate <= 1.0):
            problems.append("mask_token_rate and random_token_rate must be >= 0 and sum to <= 1")
        if problems:
            raise ValueError("; ".join(problems))


@dataclasses.dataclass
class Instance:
    """One example before serialization."""

    input_ids: np.ndarray  # int32 (seq,), [CLS] A [SEP] B [SEP], masked when static
    segment_ids: np.ndarray  # int32 (seq,)
    masked_lm_positions: np.ndarray  # int32 (num_masked,), ascending
    masked_lm_ids: np.ndarray  # int32 (num_masked,), the original pieces
    next_sentence_label: int  # 1 = B is not A's continuation
    truncated: bool = False


@dataclasses.dataclass(frozen=True)
class VocabTables:
    """The vocabulary facts masking needs, as arrays (built from a `Tokenizer`)."""

    word_start: np.ndarray  # bool (vocab,)
    is_special: np.ndarray  # bool (vocab,)
    replacement_ids: np.ndarray  # int32, ids a random replacement may draw

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


def document_rng(seed: int, key: bytes, dupe: int = 0, stream: int = 0) -> np.random.Generator:
    """A random stream for one pass (dupe) over one document.

    stream 0 cuts the pairs, stream 1 draws the masks: separate streams keep the pairs the
    same whatever the masking settings (static, dynamic, another masked_lm_prob).
    """
    h = hashlib.blake2b(key, digest_size=16, person=b"bertpipe-doc")
    h.update(int(seed).to_bytes(8, "little", signed=True))
    h.update(int(dupe).to_bytes(4, "little"))
    h.update(int(stream).to_bytes(4, "little"))
    return np.random.Generator(np.random.PCG64(int.from_bytes(h.digest(), "little")))


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


def pack_pair(a: np.ndarray, b: np.ndarray, max_seq_length: int):
    """Trims A from the front and B from the back, then lays out [CLS] A [SEP] B [SEP].

    Returns (input_ids, segment_ids, truncated).
    """
    la, lb = truncated_lengths(len(a), len(b), max_seq_length - 3)
    truncated = la < len(a) or lb < len(b)
    a = a[len(a) - la:]
    b = b[:lb]
    ids = np.empty(la + lb + 3, dtype=np.int32)
    ids[0] = SPECIAL_IDS.cls
    ids[1:la + 1] = a
    ids[la + 1] = SPECIAL_IDS.sep
    ids[la + 2:la + 2 + lb] = b
    ids[-1] = SPECIAL_IDS.sep
    segments = np.zeros(len(ids), dtype=np.int32)
    segments[la + 2:] = 1
    return ids, segments, truncated


def mask_whole_words(
    ids: np.ndarray,
    rng: np.random.Generator,
    vocab: VocabTables,
    *,
    masked_lm_prob: float,
    max_predictions: int,
    mask_token_rate: float = 0.8,
    random_token_rate: float = 0.1,
):
    """Whole-word masking on '▁' word starts, as in the reference.

    A piece starting with '▁' begins a word, any other piece continues the word before it;
    special pieces are never candidates and end any word. Words are visited in a random
    order and taken unless they would overflow the budget, until the budget of
    min(max_predictions, int((len(ids) - 3) * masked_lm_prob)) pieces is met. Each taken word
    draws once: [MASK] for all its pieces, or unchanged, or a random ordinary piece for each.

    Returns:
      (masked ids, sorted positions int32, original ids at those positions int32).
    """
    n = len(ids)
    budget = min(max_predictions, int((n - 3) * masked_lm_prob))
    empty = np.zeros(0, dtype=np.int32)
    if budget <= 0:
        return ids, empty, empty
    candidate = ~vocab.is_special[ids]
    cand_pos = np.flatnonzero(candidate)
    if len(cand_pos) == 0:
        return ids, empty, empty
    # A candidate starts a new word when it is a '▁' piece or follows a non-candidate.
    starts = vocab.word_start[ids[cand_pos]]
    starts[1:] |= np.diff(cand_pos) != 1
    starts[0] = True
    word_first = np.flatnonzero(starts)  # index into cand_pos of each word's first piece
    word_len = np.diff(np.append(word_first, len(cand_pos)))
    order = rng.permutation(len(word_first))
    chosen = []
    total = 0
    lengths = word_len.tolist()
    for w in order.tolist():
        length = lengths[w]
        if total + length > budget:
            continue
        chosen.append(w)
        total += length
        if total == budget:
            break
    if not chosen:
        return ids, empty, empty
    chosen_arr = np.array(chosen)
    # Positions of every piece of every chosen word, and which chosen word each belongs to.
    firsts = word_first[chosen_arr]
    lens = word_len[chosen_arr]
    piece_word = np.repeat(np.arange(len(chosen_arr)), lens)
    offsets = np.arange(total) - np.repeat(np.cumsum(lens) - lens, lens)
    positions = cand_pos[np.repeat(firsts, lens) + offsets].astype(np.int32)
    draw = rng.random(len(chosen_arr))[piece_word]
    out = ids.copy()
    to_mask = draw < mask_token_rate
    to_random = (draw >= mask_token_rate) & (draw < mask_token_rate + random_token_rate)
    out[positions[to_mask]] = SPECIAL_IDS.mask
    n_random = int(to_random.sum())
    if n_random:
        picks = rng.integers(0, len(vocab.replacement_ids), size=n_random)
        out[positions[to_random]] = vocab.replacement_ids[picks]
    order_pos = np.argsort(positions, kind="stable")
    positions = positions[order_pos]
    return out, positions, ids[positions].astype(np.int32)


class RandomDocumentPool:
    """Documents that 'random_doc' mode draws its random B segments from.

    The Beam job fills it with a seeded, content-hashed sample of the whole corpus, so every
    worker draws from the same pool whatever its own share of the input.
    """

    def __init__(self, documents: Sequence[tuple[bytes, Sequence[np.ndarray]]]):
        self.documents = [(k, list(lines)) for k, lines in documents if len(lines)]

    def sample(self, rng: np.random.Generator, target_len: int, exclude: bytes):
        """Returns pieces from a random start line of a random other document, or None."""
        if not self.documents:
            return None
        for _ in range(10):
            key, lines = self.documents[int(rng.integers(len(self.documents)))]
            if key != exclude:
                break
        else:
            return None
        start = int(rng.integers(len(lines)))
        out, n = [], 0
        for line in lines[start:]:
            out.append(line)
            n += len(line)
            if n >= target_len:
                break
        return np.concatenate(out)


def _concat(lines: Sequence[np.ndarray]) -> np.ndarray:
    return lines[0] if len(lines) == 1 else np.concatenate(lines)


def create_instances(
    doc: Sequence[np.ndarray],
    rng: np.random.Generator,
    config: ExampleConfig,
    vocab: VocabTables,
    *,
    key: bytes = b"",
    pool: RandomDocumentPool | None = None,
    counts: collections.Counter | None = None,
    mask_rng: np.random.Generator | None = None,
) -> list[Instance]:
    """Turns one tokenized document into examples (one pass; call once per dupe).

    `rng` cuts the pairs and `mask_rng` (default: `rng`) draws the masks.

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
    mask_rng = mask_rng if mask_rng is not None else rng
    max_tokens = config.max_seq_length - 3
    target = max_tokens
    if config.short_seq_prob > 0 and rng.random() < config.short_seq_prob:
        target = int(rng.integers(2, max_tokens + 1))
    random_doc = config.nsp_mode == "random_doc"
    if not random_doc and len(doc) < 2:
        counts[DOCUMENTS_SINGLE_LINE] += 1
        return []

    instances = []
    chunk: list[np.ndarray] = []
    chunk_len = 0
    i = 0
    while i < len(doc):
        chunk.append(doc[i])
        chunk_len += len(doc[i])
        last = i == len(doc) - 1
        ready = last or chunk_len >= target
        if ready and (len(chunk) > 1 or random_doc):
            a_end = int(rng.integers(1, len(chunk))) if len(chunk) > 1 else 1
            a = _concat(chunk[:a_end])
            label = 0
            if random_doc:
                b = None
                if len(chunk) == 1 or rng.random() < 0.5:
                    b = pool.sample(rng, target - len(a), key) if pool is not None else None
                    if b is not None:
                        label = 1
                        # The lines of the chunk after A were not used: put them back.
                        i -= len(chunk) - a_end
                    elif len(chunk) == 1:
                        counts[RANDOM_DOC_UNAVAILABLE] += 1
                if b is None and len(chunk) > 1:
                    b = _concat(chunk[a_end:])
            else:
                b = _concat(chunk[a_end:])
                if rng.random() < 0.5:
                    a, b = b, a
                    label = 1
            if b is not None:
                instances.append(_make_instance(a, b, label, mask_rng, config, vocab, counts))
            chunk, chunk_len = [], 0
        elif last and chunk:
            counts[LINES_TRAILING_DROPPED] += len(chunk)
        i += 1
    return instances


def _make_instance(a, b, label, rng, config, vocab, counts) -> Instance:
    ids, segments, truncated = pack_pair(a, b, config.max_seq_length)
    counts[EXAMPLES] += 1
    counts[EXAMPLES_RANDOM_NEXT] += label
    counts[EXAMPLES_TRUNCATED] += truncated
    if config.masking == "dynamic":
        empty = np.zeros(0, dtype=np.int32)
        return Instance(ids, segments, empty, empty, label, truncated)
    masked, positions, labels = mask_whole_words(
        ids,
        rng,
        vocab,
        masked_lm_prob=config.masked_lm_prob,
        max_predictions=config.max_predictions_per_seq,
        mask_token_rate=config.mask_token_rate,
        random_token_rate=config.random_token_rate,
    )
    if len(positions) == 0:
        counts[EXAMPLES_NO_MASK] += 1
    return Instance(masked, segments, positions, labels, label, truncated)


def create_document_instances(
    doc: Sequence[np.ndarray],
    config: ExampleConfig,
    vocab: VocabTables,
    *,
    key: bytes,
    pool: RandomDocumentPool | None = None,
    counts: collections.Counter | None = None,
) -> list[Instance]:
    """All examples of one document over `dupe_factor` passes, each with its own stream."""
    out = []
    for dupe in range(config.dupe_factor):
        out.extend(create_instances(
            doc, document_rng(config.seed, key, dupe), config, vocab, key=key, pool=pool,
            counts=counts, mask_rng=document_rng(config.seed, key, dupe, stream=1)))
    return out
