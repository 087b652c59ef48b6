"""The corpus-wide sample of documents that --nsp_mode=random_doc draws random B segments
from."""

from __future__ import annotations

import array
from collections.abc import Callable, Sequence

import numpy as np

from bertdata.random_streams import UniformDraws

# A line -> its piece ids (Tokenizer.encode_line: one line per call, since SentencePiece's
# call for a list of lines costs about 60 us more than one for a string).
LineEncoder = Callable[[str], Sequence[int]]


class RandomDocumentPool:
    """Documents that 'random_doc' mode draws its random B segments from.

    The Beam job fills it with a seeded, content-hashed sample of the whole corpus, so every
    worker draws from the same pool whatever its own share of the input. It holds the text
    of each sampled document's first lines and tokenizes a line the first time a segment
    reaches it: a segment uses a few lines of one document, so most of the pool is never
    tokenized at all. Tokenized lines are kept (as int32 bytes), so the pool's memory is
    bounded by its text and its ids.
    """

    def __init__(self, keys: Sequence[bytes], lines: Sequence[str], doc_lines: Sequence[int],
                 encode_line: LineEncoder):
        """keys[d] identifies document d, whose lines are lines[doc_lines[d]:doc_lines[d+1]];
        `encode_line` tokenizes one line."""
        self.keys = list(keys)
        self.lines = list(lines)
        self.doc_lines = [int(x) for x in doc_lines]
        self._encode_line = encode_line
        self._ids: dict[int, bytes] = {}  # line index -> its ids as int32 bytes

    @classmethod
    def from_documents(cls, documents: Sequence[tuple[bytes, Sequence[str]]],
                       encode_line: LineEncoder) -> RandomDocumentPool:
        """From (key, lines) pairs; documents without lines are left out."""
        documents = [(k, list(lines)) for k, lines in documents if len(lines)]
        bounds = np.cumsum([0, *(len(lines) for _, lines in documents)])
        return cls([k for k, _ in documents], [x for _, lines in documents for x in lines],
                   bounds, encode_line)

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
        last = self.doc_lines[d + 1]
        start = draws.integer(self.doc_lines[d], last)
        # Lines from the start line until target_len pieces are reached (at least one line,
        # at most to the document's end).
        parts, total, line = [], 0, start
        while line < last and (line == start or total < target_len):
            ids = self._ids.get(line)
            if ids is None:
                ids = self._ids[line] = array.array(
                    "i", self._encode_line(self.lines[line])).tobytes()
            parts.append(ids)
            total += len(ids) // 4
            line += 1
        return np.frombuffer(b"".join(parts), np.int32)
