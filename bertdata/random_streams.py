"""Seeded random streams keyed by a document's content, so that the examples of a document
do not depend on which worker builds them, in which order, or how the corpus was split."""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from collections.abc import Sequence

import numpy as np


def document_key(lines: Sequence[str]) -> bytes:
    """A stable 16-byte identity of a document, from its content alone."""
    # Each line followed by a newline, hashed in one call.
    text = "\n".join(lines) + "\n" if lines else ""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


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


def generator_of(rng) -> np.random.Generator:
    """A Generator as it is, or a RandomStream's generator (set to its start)."""
    return rng.generator() if isinstance(rng, RandomStream) else rng
