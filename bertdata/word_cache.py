"""The tokenizers' word cache, the switch that decides when the cache is worth using, and
the encoding of documents through them (`CachedWords`, for a backend whose pieces never
cross the words it splits lines into)."""

from __future__ import annotations

import array
from collections.abc import Callable, Sequence
from itertools import chain, filterfalse

import numpy as np

# Distinct words a tokenizer's cache remembers (about 40 MB per worker at most).
DEFAULT_WORD_CACHE_SIZE = 262_144


class WordCache(dict):
    """word -> its piece ids as int32 bytes, filled by ENCODE_WORD on first sight.

    Bytes rather than a tuple of ints: about half the memory per word, and a line's ids are
    then one bytes join.
    """

    def __init__(self, encode_word: Callable[[str], list[int]]):
        super().__init__()
        self._encode_word = encode_word
        self.misses = 0

    def __missing__(self, word):
        self.misses += 1
        ids = self[word] = array.array("i", self._encode_word(word)).tobytes()
        return ids


class CacheSwitch:
    """Sends each document to the word cache or straight to the encoder.

    A new word costs the cache about three times what the encoder spends per word on whole
    lines, so when most words are new the cache loses. Once the cache holds `warm_words`
    words, if the share of new words, averaged over recent documents, passes
    MISS_RATE_LIMIT (measured on Korean text with benchmarks/tokenize_throughput.py),
    documents go to the encoder, and one in PROBE_EVERY still goes through the cache to see
    whether the share has fallen again.
    """

    MISS_RATE_LIMIT = 0.15
    PROBE_EVERY = 32
    WARM_WORDS = 16_384

    def __init__(self, enabled: bool, cache_size: int,
                 miss_rate_limit: float = MISS_RATE_LIMIT):
        self.enabled = enabled
        self.miss_rate_limit = miss_rate_limit
        # While the cache is young, new words are an investment, not a verdict.
        self.warm_words = min(self.WARM_WORDS, cache_size)
        self._miss_rate = 0.0
        self._bypass = 0  # documents still to send to the encoder
        self._probe = False  # the next cached document is a probe

    def use_cache(self) -> bool:
        """Whether the next document goes through the cache (call once per document)."""
        if self.enabled and self._bypass == 0:
            return True
        self._bypass = max(self._bypass - 1, 0)
        self._probe = self._bypass == 0
        return False

    def record(self, new_words: int, words: int, cached_words: int) -> None:
        """What a cached document cost: NEW_WORDS of its WORDS were not in the cache, which
        now holds CACHED_WORDS."""
        rate = new_words / max(words, 1)
        # A probe's own rate replaces the average that sent documents to the encoder.
        self._miss_rate = rate if self._probe else 0.8 * self._miss_rate + 0.2 * rate
        self._probe = False
        if cached_words >= self.warm_words and self._miss_rate > self.miss_rate_limit:
            self._bypass = self.PROBE_EVERY - 1


class CachedWords:
    """`Tokenizer.encode_documents` through a word cache, for a backend (listed before
    bertdata.vocabulary.Tokenizer among its bases) whose pieces of a line are the
    concatenation of the pieces of the words `split_words` cuts it into.

    Each distinct word is encoded once and then looked up: natural text repeats most of its
    words, and a dict lookup is several times cheaper than an encoder. The cache holds at
    most `word_cache_size` words and is emptied when full, so memory stays bounded on any
    corpus. When most words are new the cache loses; `cache_switch` (a CacheSwitch) then
    sends documents straight to the encoder, in one call: its cost per call is a third of
    its work on short lines.
    """

    def _start_word_cache(self, encode_word: Callable[[str], list[int]], size: int,
                          usable: bool, encode_words=None) -> None:
        """USABLE: whether word-by-word encoding gives the encoder's ids for this model.
        ENCODE_WORDS (a list of words -> the int32 bytes of each one's ids, in one call),
        where given, encodes the new words of each batch of documents at once, before they
        are looked up; new words then cost no more than the encoder, so documents never
        bypass the cache."""
        self.word_cache_size = size
        self.words_bypassed = 0
        self._word_cache = WordCache(encode_word)
        self._encode_words = encode_words
        self.cache_switch = CacheSwitch(size > 0 and usable, size,
                                        float("inf") if encode_words else
                                        CacheSwitch.MISS_RATE_LIMIT)

    def split_words(self, line: str) -> list[str]:
        return line.split(" ")

    def encode_documents(self, documents: Sequence[Sequence[str]]
                         ) -> list[tuple[np.ndarray, list[int]]]:
        if self._encode_words is not None and self.cache_switch.enabled:
            split = self._split_adding_new_words(documents)
            return [self._join_cached(lines) for lines in split]
        out: list = [None] * len(documents)
        encoder = []
        for i, lines in enumerate(documents):
            if self.cache_switch.use_cache():
                out[i] = self._join_cached([self.split_words(line) for line in lines])
            else:
                encoder.append(i)
        if encoder:
            before = self.words_encoded
            encoded = super().encode_documents([documents[i] for i in encoder])
            self.words_bypassed += self.words_encoded - before
            for i, doc in zip(encoder, encoded, strict=True):
                out[i] = doc
        return out

    def _split_adding_new_words(self, documents: Sequence[Sequence[str]]
                                ) -> list[list[list[str]]]:
        """DOCUMENTS' lines split into words, once; the words not in the cache encoded in
        one call and cached (the cache emptied first when they would fill it)."""
        cache, split = self._word_cache, self.split_words
        documents = [[split(line) for line in lines] for lines in documents]
        # set() and filterfalse walk the words in C, not in a Python loop per word.
        words = set(chain.from_iterable(chain.from_iterable(documents)))
        new = list(filterfalse(cache.__contains__, words))
        if len(cache) + len(new) >= self.word_cache_size:
            cache.clear()
            new = list(words)
        cache.update(zip(new, self._encode_words(new) if new else [], strict=True))
        cache.misses += len(new)
        return documents

    def _join_cached(self, lines: Sequence[list[str]]) -> tuple[np.ndarray, list[int]]:
        """The ids of LINES (each a list of words) from the cache."""
        cache = self._word_cache
        if len(cache) >= self.word_cache_size:
            cache.clear()
        misses = cache.misses
        get = cache.__getitem__
        words = 0
        per_line = []
        for parts in lines:
            words += len(parts)
            per_line.append(b"".join(map(get, parts)))  # int32 ids, native byte order
        self.words_encoded += words
        self.cache_switch.record(cache.misses - misses, words, len(cache))
        flat = np.frombuffer(b"".join(per_line), dtype=np.int32)
        return flat, [len(b) // 4 for b in per_line]

    @property
    def word_cache_misses(self) -> int:
        """Words not served from the cache (new words, and words sent to the encoder)."""
        return self._word_cache.misses + self.words_bypassed
