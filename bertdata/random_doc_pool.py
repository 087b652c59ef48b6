"""The corpus-wide sample of documents that --nsp_mode=random_doc draws random B segments
from."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence

import numpy as np

from bertdata.random_streams import UniformDraws


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
