"""What every tokenizer gives the rest of the project, whichever library runs it.

A `Tokenizer` is a vocabulary (pieces by id), the ids of its special tokens (`SpecialIds`),
the tables example building and masking need (which pieces begin a word, which are special,
which may replace a masked piece) and an encoder of plain text lines into ids without any
special token. Two backends implement it: `bertdata.tokenizer.SentencePieceTokenizer` (this
project's own models) and `bertdata.fast_tokenizer.FastTokenizer` (any Hugging Face
`tokenizer.json`: WordPiece, BPE, Unigram). `bertdata.tokenizer_files.load_tokenizer(path)`
picks one from a path. Nothing outside the project's tokenizer trainer may assume an id:
consumers take them from the tokenizer, or from metadata.json, which records them.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence

import numpy as np

# The roles every BERT tokenizer must fill; bos and eos are this project's SentencePiece
# models' own (never placed in an example).
ROLES = ("pad", "unk", "cls", "sep", "mask")
OPTIONAL_ROLES = ("bos", "eos")


@dataclasses.dataclass(frozen=True)
class SpecialIds:
    """Ids of the special tokens of one tokenizer."""

    pad: int
    unk: int
    cls: int
    sep: int
    mask: int
    bos: int | None = None
    eos: int | None = None

    def as_dict(self) -> dict[str, int]:
        """metadata.json's "special_ids": every role the tokenizer has."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, data, source: str) -> SpecialIds:
        """The ids of metadata.json's "special_ids"; ValueError names SOURCE and the role."""
        if not isinstance(data, dict):
            raise ValueError(f"{source}: special_ids must be an object, got {data!r}")
        unknown = sorted(set(data) - set(ROLES) - set(OPTIONAL_ROLES))
        if unknown:
            raise ValueError(f"{source}: special_ids has an unknown role {unknown[0]!r}")
        for role in ROLES:
            if role not in data:
                raise ValueError(f"{source}: special_ids has no {role!r}")
        for role, value in data.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{source}: special_ids.{role} must be an id (an integer "
                                 f">= 0), got {value!r}")
        return cls(**data)


class Tokenizer:
    """The interface of both backends; a subclass calls `_set_vocabulary` and implements
    `encode`, `decode` and `encode_line`.

    Attributes:
      name: where it was read from, for messages.
      sha256: checksum of its file (the SentencePiece model, or tokenizer.json), recorded in
        metadata.json; records are only ever read with the tokenizer of this checksum.
      vocab_size: total number of pieces, special pieces included.
      pieces: the piece of every id.
      special: the SpecialIds.
      word_start: bool array over the vocabulary, True where a piece begins a word (the
        backend's word boundary: '▁' for SentencePiece, no '##' for WordPiece).
      is_special: bool array, True for every special token (never masked or predicted).
      replacement_ids: ids a masked piece may be replaced with: every ordinary piece, never a
        special piece, [UNK] or a reserved placeholder.
    """

    name: str
    sha256: str
    vocab_size: int
    pieces: list[str]
    special: SpecialIds
    word_start: np.ndarray
    is_special: np.ndarray
    replacement_ids: np.ndarray
    # Words tokenized so far and those not served from a word cache (for the job's stats).
    words_encoded: int = 0

    def _set_vocabulary(self, pieces: list[str], special: SpecialIds, is_special: np.ndarray,
                        word_start: np.ndarray, ordinary: np.ndarray) -> None:
        self.pieces = pieces
        self.vocab_size = len(pieces)
        self.special = special
        is_special = is_special.copy()
        is_special[[v for v in special.as_dict().values()]] = True
        self.is_special = is_special
        self.word_start = word_start & ~is_special
        self.replacement_ids = np.flatnonzero(ordinary & ~is_special).astype(np.int32)

    @property
    def word_cache_misses(self) -> int:
        """Words not served from a word cache (all of them for a backend without one)."""
        return self.words_encoded

    def encode(self, lines: Sequence[str]) -> list[list[int]]:
        """The ids of each line, without special tokens."""
        raise NotImplementedError

    def encode_line(self, line: str) -> list[int]:
        return self.encode([line])[0]

    def encode_documents(self, documents: Sequence[Sequence[str]]
                         ) -> list[tuple[np.ndarray, list[int]]]:
        """For each document (its lines), one int32 array of its ids and each line's length;
        the ids equal those of `encode`."""
        lines = [line for doc in documents for line in doc]
        self.words_encoded += sum(line.count(" ") + 1 for line in lines)
        per_line = self.encode(lines)
        flat = np.fromiter(itertools.chain.from_iterable(per_line), np.int32)
        lengths = [len(x) for x in per_line]
        out = []
        line = at = 0
        for doc in documents:
            doc_lengths = lengths[line:line + len(doc)]
            line += len(doc)
            size = sum(doc_lengths)
            out.append((flat[at:at + size], doc_lengths))
            at += size
        return out

    def encode_flat(self, lines: Sequence[str]) -> tuple[np.ndarray, list[int]]:
        """`encode_documents` of one document."""
        return self.encode_documents([lines])[0]

    def decode(self, ids) -> str:
        raise NotImplementedError

    def id_to_piece(self, i: int) -> str:
        return self.pieces[int(i)]
