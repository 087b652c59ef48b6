"""BERT's WordPiece pipeline in Python, for the words where that is exact and cheap.

A tokenizer.json of BERT's pipeline (BertNormalizer, BertPreTokenizer, WordPiece) that does
not lowercase leaves a word of Hangul syllables, Hangul compatibility jamo, ASCII letters
and digits as it is, cuts it at ASCII punctuation (each mark a part of its own), and splits
each part greedily into the longest pieces of its vocabulary. For such a word,
`WordPieceWords.encode` gives the `tokenizers` library's ids at a fraction of the library's
cost per word, which is mostly per call and per text (benchmarks/beam_throughput.py
--wordpiece). Any other word is not `simple` and goes to the library: other characters
(what the normalizer changes, CJK ideographs it spaces out, Unicode punctuation), any
character an added token begins with (the library matches those before anything else),
and every word of a lowercasing tokenizer (its normalizer decomposes Hangul).
"""

from __future__ import annotations

import dataclasses
import re
import string

_PUNCTUATION = re.escape(string.punctuation)  # Rust's is_ascii_punctuation: the same 32
_SIMPLE = re.compile(f"[\uac00-\ud7a3\u3131-\u318e0-9A-Za-z{_PUNCTUATION}]*")
_PARTS = re.compile(f"[{_PUNCTUATION}]|[^{_PUNCTUATION}]+")


@dataclasses.dataclass(frozen=True)
class WordPieceSettings:
    """A WordPiece tokenizer.json of BERT's pipeline, as its Python and tensorflow-text
    counterparts need it: the pieces by id, BERT's normalizer's one switch, the added
    tokens matched in the text before anything else ((content, id) pairs)."""

    pieces: tuple[str, ...]
    unk_token: str
    continuation_prefix: str
    max_chars_per_word: int
    lowercase: bool
    added_tokens: tuple[tuple[str, int], ...]


class WordPieceWords:
    """The ids of `simple` words, exactly as the `tokenizers` library gives them."""

    def __init__(self, settings: WordPieceSettings):
        prefix = settings.continuation_prefix
        self._starts = {piece: i for i, piece in enumerate(settings.pieces)}
        self._continues = {piece[len(prefix):]: i for i, piece in enumerate(settings.pieces)
                           if piece.startswith(prefix)}
        self._unk = self._starts.get(settings.unk_token)
        self._longest = settings.max_chars_per_word
        added = [token for token, _ in settings.added_tokens if token]
        self._added_starts = frozenset(token[0] for token in added)
        # An added token that looks like a continuation could be looked up as one.
        self.enabled = not settings.lowercase and self._unk is not None and \
            not any(token.startswith(prefix) for token in added)

    def simple(self, word: str) -> bool:
        return self.enabled and _SIMPLE.fullmatch(word) is not None and \
            self._added_starts.isdisjoint(word)

    def encode(self, word: str) -> list[int]:
        """The ids of a `simple` WORD."""
        ids = []
        for part in _PARTS.findall(word):
            ids += self._part_ids(part)
        return ids

    def _part_ids(self, part: str) -> list[int]:
        """Longest pieces first, left to right; one [UNK] for a part too long or with a
        stretch no piece covers."""
        if len(part) > self._longest:
            return [self._unk]
        ids, start, table = [], 0, self._starts
        while start < len(part):
            for end in range(len(part), start, -1):
                found = table.get(part[start:end])
                if found is not None:
                    break
            else:
                return [self._unk]
            ids.append(found)
            start, table = end, self._continues
        return ids
