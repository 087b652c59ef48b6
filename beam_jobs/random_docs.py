"""random_doc mode's pool: a seeded sample of the whole corpus, read once.

Sampling works on small keys: every document of the corpus is reduced to (rank, path,
offset, key), where the key is a hash of its content and the rank a hash of the key and the
seed, and the `pool_size` smallest
ranks are kept by a combine that fans out (no single hot key gathers the corpus). Only those
documents are then read again, grouped by file. The pool is written to one .npz file in the
staging folder, and each worker process loads it once (`apache_beam.utils.shared.Shared`)
and shares it between its threads. It holds the text of each sampled document's first lines
(at most MAX_LINES), up to the line that reaches POOL_CHARACTERS_PER_SEQ times
max_seq_length characters: a random B starts at one of these lines and takes fewer than
max_seq_length pieces, so a document's head gives it several start points. Lines are
tokenized on the workers when a B segment first reaches them
(bertdata.random_doc_pool), so the pool costs one read of the sampled heads, not a second
tokenization of the corpus.
"""

from __future__ import annotations

import collections
import hashlib
import io

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms.combiners import TopCombineFn
from apache_beam.utils import shared

from beam_jobs.inputs import read_documents_at, read_range
from beam_jobs.settings import JobSettings
from bertdata import pretraining
from bertdata.random_doc_pool import LineEncoder

POOL_FILE = "random_documents.npz"
# About four sequences of Korean pieces (1.5 to 3 characters each) from each document.
POOL_CHARACTERS_PER_SEQ = 8
MAX_LINES = 64  # lines of a sampled document that are kept
_FANOUT = 16


def document_rank(key: bytes, seed: int) -> bytes:
    return hashlib.blake2b(key + int(seed).to_bytes(8, "little", signed=True),
                           digest_size=8).digest()


class RankDocumentsFn(beam.DoFn):
    """Range -> (rank, path, offset, key) of each document it owns; no text leaves the
    worker (the key is the document's identity, which the pool needs to exclude it)."""

    def __init__(self, options: JobSettings):
        self.options = options

    def process(self, file_range):
        # Repaired lines are counted when the examples are built; these counts are dropped.
        counts = collections.Counter()
        for offset, lines in read_range(file_range, counts, self.options.max_line_bytes):
            key = pretraining.document_key(lines)
            yield document_rank(key, self.options.example.seed), file_range[0], offset, key


class ReadSampledFn(beam.DoFn):
    """(path, [(rank, offset, key)]) -> (rank, key, first lines as UTF-8 text joined by
    newlines, number of lines) of each sampled document."""

    def __init__(self, options: JobSettings):
        self.options = options

    def process(self, path_and_sample):
        path, sample = path_and_sample
        sampled = {offset: (rank, key) for rank, offset, key in sample}
        characters = POOL_CHARACTERS_PER_SEQ * self.options.example.max_seq_length
        for offset, lines in read_documents_at(path, sampled, self.options.max_line_bytes,
                                               MAX_LINES).items():
            head = _head(lines, characters)
            if head:  # (every document has a line; an empty one would shift the others')
                # Bytes rather than a list: Beam's coder encodes them without pickling.
                yield (*sampled[offset], "\n".join(head).encode("utf-8"), len(head))


def _head(lines, characters: int) -> list[str]:
    """The first lines, up to the one that brings them to CHARACTERS characters."""
    total = 0
    for n, line in enumerate(lines, 1):
        total += len(line)
        if total >= characters:
            return lines[:n]
    return lines


def write_pool(documents, path: str) -> str:
    """Writes the sampled documents, in rank order, as one .npz file; returns its path."""
    documents = sorted(documents, key=lambda d: d[0])
    buffer = io.BytesIO()
    np.savez(buffer,
             keys=np.array([np.frombuffer(d[1], np.uint8) for d in documents],
                           np.uint8).reshape(-1, 16),
             text=np.frombuffer(b"\n".join(d[2] for d in documents), np.uint8),
             doc_lines=np.cumsum([0, *(d[3] for d in documents)], dtype=np.int64))
    with FileSystems.create(path) as f:
        f.write(buffer.getvalue())
    return path


def load_pool(path: str, encode_line: LineEncoder) -> pretraining.RandomDocumentPool:
    """The pool written by write_pool; `encode_line` tokenizes its lines when drawn."""
    with FileSystems.open(path) as f:
        arrays = np.load(io.BytesIO(f.read()))
        doc_lines = arrays["doc_lines"]
        # Decoded from the array's own buffer: no second copy of the text's bytes.
        text = str(arrays["text"].data, "utf-8")
        lines = text.split("\n") if doc_lines[-1] else []
        return pretraining.RandomDocumentPool(
            [bytes(k) for k in arrays["keys"]], lines, doc_lines, encode_line)


class SharedPool:
    """The pool, loaded once per worker process and shared by its DoFn instances."""

    def __init__(self):
        self._handle = shared.Shared()

    def get(self, path: str | None, encode_line: LineEncoder
            ) -> pretraining.RandomDocumentPool | None:
        if path is None:
            return None
        return self._handle.acquire(lambda: load_pool(path, encode_line), tag=path)


class SampleRandomDocuments(beam.PTransform):
    """Ranges -> the path of the pool file (a singleton), written into staging_dir."""

    def __init__(self, options: JobSettings, staging_dir: str):
        super().__init__()
        self.options = options
        self.pool_path = FileSystems.join(staging_dir, POOL_FILE)

    def expand(self, ranges):
        size = self.options.random_doc_pool_size
        return (
            ranges
            | "Rank" >> beam.ParDo(RankDocumentsFn(self.options))
            | "SmallestRanks" >> beam.CombineGlobally(
                TopCombineFn(size, reverse=True)).with_fanout(_FANOUT)
            | "ByFile" >> beam.FlatMap(lambda top: [(path, (rank, offset, key))
                                                    for rank, path, offset, key in top])
            | "GroupByFile" >> beam.GroupByKey()
            | "ReadSampled" >> beam.ParDo(ReadSampledFn(self.options))
            | "Gather" >> beam.combiners.ToList()
            | "WritePool" >> beam.Map(write_pool, self.pool_path)
        )
