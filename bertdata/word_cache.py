"""The tokenizer's word cache, and the switch that decides when the cache is worth using."""

from __future__ import annotations

import array


class WordCache(dict):
    """word -> its piece ids as int32 bytes, filled by the encoder on first sight.

    Bytes rather than a tuple of ints: about half the memory per word, and a line's ids are
    then one bytes join.
    """

    def __init__(self, sp):
        super().__init__()
        self._sp = sp
        self.misses = 0

    def __missing__(self, word):
        self.misses += 1
        ids = self[word] = array.array("i", self._sp.encode(word, out_type=int)).tobytes()
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

    def __init__(self, enabled: bool, cache_size: int):
        self.enabled = enabled
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
        if cached_words >= self.warm_words and self._miss_rate > self.MISS_RATE_LIMIT:
            self._bypass = self.PROBE_EVERY - 1
