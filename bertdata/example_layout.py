"""Laying pairs out as examples: [CLS] A [SEP] B [SEP] rows, trimmed as the reference trims
them, in padded arrays (`ExampleBatch`) that masking and serializing work on."""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Sequence

import numpy as np

from bertdata.example_settings import (
    EXAMPLES,
    EXAMPLES_NO_MASK,
    EXAMPLES_NOT_NEXT,
    EXAMPLES_TRUNCATED,
)
from bertdata.vocabulary import SpecialIds


@dataclasses.dataclass
class Instance:
    """One example before serialization."""

    input_ids: np.ndarray  # int32 (seq,), [CLS] A [SEP] B [SEP], masked when static
    segment_ids: np.ndarray  # int32 (seq,)
    masked_lm_positions: np.ndarray  # int32 (num_masked,), ascending
    masked_lm_ids: np.ndarray  # int32 (num_masked,), the original pieces
    next_sentence_label: int  # 1 = B is not A's continuation
    truncated: bool = False


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
    def from_rows(cls, rows: Sequence[np.ndarray], sep_id: int) -> ExampleBatch:
        """Packs finished [CLS] A [SEP] B [SEP] rows (used for single examples and tests);
        SEP_ID: the tokenizer's [SEP]."""
        n = len(rows)
        lengths = np.array([len(r) for r in rows], dtype=np.int32)
        ids = np.zeros((n, int(lengths.max(initial=0))), dtype=np.int32)
        a_lengths = np.zeros(n, dtype=np.int32)
        for i, r in enumerate(rows):
            ids[i, :len(r)] = r
            seps = np.flatnonzero(r == sep_id)
            a_lengths[i] = seps[0] - 1 if len(seps) else len(r)
        return cls(ids, lengths, a_lengths, np.zeros(n, np.int32), np.zeros(n, bool))

    @classmethod
    def from_pairs(cls, pairs: Sequence[tuple[np.ndarray, np.ndarray, int]],
                   max_seq_length: int, special: SpecialIds) -> ExampleBatch:
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
        ids[:, 0] = special.cls
        rows = np.arange(n)
        ids[rows, a_lengths + 1] = special.sep
        ids[rows, lengths - 1] = special.sep
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


def count_examples(batch: ExampleBatch, counts: collections.Counter) -> None:
    counts[EXAMPLES] += len(batch)
    counts[EXAMPLES_NOT_NEXT] += int(batch.next_sentence_labels.sum())
    counts[EXAMPLES_TRUNCATED] += int(batch.truncated.sum())
    if batch.num_masked is not None:
        counts[EXAMPLES_NO_MASK] += int(np.count_nonzero(batch.num_masked == 0))
