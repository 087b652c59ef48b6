"""random_doc mode's pool: a seeded sample of the whole corpus, tokenized once.

Sampling works on small keys: every document of the corpus is reduced to (rank, path,
offset, key), where the key is a hash of its content and the rank a hash of the key and the
seed, and the `pool_size` smallest
ranks are kept by a combine that fans out (no single hot key gathers the corpus). Only those
documents are then read again, grouped by file, and tokenized, once, on the workers. The pool
is written to one .npz file in the staging folder, and each worker process loads it once
(`apache_beam.utils.shared.Shared`) and shares it between its threads. It holds each sampled
document's first lines (at most MAX_LINES), up to the line that reaches POOL_TOKENS_PER_SEQ
times max_seq_length pieces: a random B never needs more than max_seq_length pieces from its
start line.
"""

from __future__ import annotations

import hashlib
import io

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms.combiners import TopCombineFn
from apache_beam.utils import shared

from beam_jobs.inputs import read_documents_at, read_range
from beam_jobs.options import JobOptions
from bertdata import pretraining
from bertdata.tokenizer import Tokenizer

POOL_FILE = "random_documents.npz"
POOL_TOKENS_PER_SEQ = 4
MAX_LINES = 64  # lines of a sampled document that are tokenized
_FANOUT = 16


def document_rank(key: bytes, seed: int) -> bytes:
    return hashlib.blake2b(key + int(seed).to_bytes(8, "little", signed=True),
                           digest_size=8).digest()


class RankDocumentsFn(beam.DoFn):
    """Range -> (rank, path, offset, key) of each document it owns; no text leaves the
    worker (the key is the document's identity, which the pool needs to exclude it)."""

    def __init__(self, options: JobOptions):
        self.options = options

    def process(self, file_range):
        counts = {}  # these documents are counted when the examples are built
        for offset, lines in read_range(file_range, counts, self.options.max_line_bytes):
            key = pretraining.document_key(lines)
            yield document_rank(key, self.options.example.seed), file_range[0], offset, key


class TokenizeSampledFn(beam.DoFn):
    """(path, [(rank, offset, key)]) -> (rank, key, ids, line lengths) of each sampled
    document."""

    def __init__(self, options: JobOptions, model_proto: bytes):
        self.options = options
        self.model_proto = model_proto

    def setup(self):
        self.tokenizer = Tokenizer(self.model_proto, name=self.options.spm_model,
                                   word_cache_size=self.options.word_cache_size)

    def process(self, path_and_sample):
        path, sample = path_and_sample
        sampled = {offset: (rank, key) for rank, offset, key in sample}
        found = sorted(read_documents_at(path, sampled, self.options.max_line_bytes,
                                         MAX_LINES).items())
        budget = POOL_TOKENS_PER_SEQ * self.options.example.max_seq_length
        # Only the first lines can be kept: up to MAX_LINES, stopping at the line that brings
        # a document to 8 characters per kept piece (a piece covers one character or more,
        # real text 1.5 to 4).
        heads = [_head(lines, 8 * budget) for _, lines in found]
        for (offset, _), (ids, lengths) in zip(
                found, self.tokenizer.encode_documents(heads), strict=True):
            kept = np.searchsorted(np.cumsum(lengths), budget) + 1  # lines up to the budget
            # Bytes rather than arrays: Beam's coder encodes them without pickling.
            yield (*sampled[offset], ids[:sum(lengths[:kept])].astype(np.int32).tobytes(),
                   np.array(lengths[:kept], np.int64).tobytes())


def _head(lines, characters: int) -> list[str]:
    total = 0
    for n, line in enumerate(lines, 1):
        total += len(line)
        if total >= characters:
            return lines[:n]
    return lines


def write_pool(documents, path: str) -> str:
    """Writes the sampled documents, in rank order, as one .npz file; returns its path."""
    documents = sorted(documents, key=lambda d: d[0])
    lengths = [np.frombuffer(d[3], np.int64) for d in documents]
    buffer = io.BytesIO()
    np.savez(buffer,
             keys=np.array([np.frombuffer(d[1], np.uint8) for d in documents],
                           np.uint8).reshape(-1, 16),
             ids=np.frombuffer(b"".join(d[2] for d in documents), np.int32),
             line_bounds=np.concatenate([[0], np.cumsum(np.concatenate(lengths))]) if
             documents else np.zeros(1, np.int64),
             doc_lines=np.concatenate([[0], np.cumsum([len(x) for x in lengths],
                                                      dtype=np.int64)]).astype(np.int64))
    with FileSystems.create(path) as f:
        f.write(buffer.getvalue())
    return path


def load_pool(path: str) -> pretraining.RandomDocumentPool:
    with FileSystems.open(path) as f:
        arrays = np.load(io.BytesIO(f.read()))
        return pretraining.RandomDocumentPool(
            [bytes(k) for k in arrays["keys"]], arrays["ids"], arrays["line_bounds"],
            arrays["doc_lines"])


class SharedPool:
    """The pool, loaded once per worker process and shared by its DoFn instances."""

    def __init__(self):
        self._handle = shared.Shared()

    def get(self, path: str | None) -> pretraining.RandomDocumentPool | None:
        if path is None:
            return None
        return self._handle.acquire(lambda: load_pool(path), tag=path)


class SampleRandomDocuments(beam.PTransform):
    """Ranges -> the path of the pool file (a singleton), written into staging_dir."""

    def __init__(self, options: JobOptions, model_proto: bytes, staging_dir: str):
        super().__init__()
        self.options = options
        self.model_proto = model_proto
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
            | "Tokenize" >> beam.ParDo(TokenizeSampledFn(self.options, self.model_proto))
            | "Gather" >> beam.combiners.ToList()
            | "WritePool" >> beam.Map(write_pool, self.pool_path)
        )
