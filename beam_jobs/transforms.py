"""The stages of the pretraining-data job, as composite transforms and DoFns.

They live in a package module (not in `__main__`) so remote workers can unpickle them, and
the SentencePiece processor is built in `DoFn.setup()` from the model's bytes, never pickled.
"""

from __future__ import annotations

import collections
import hashlib

import apache_beam as beam
import numpy as np
from apache_beam import coders
from apache_beam.io import filebasedsink
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import GlobalWindows

from bertdata import corpus, pretraining, wire_format
from bertdata.tokenizer import DEFAULT_WORD_CACHE_SIZE, SPECIAL_IDS, Tokenizer

METRICS_NAMESPACE = "bertpipe"
TRAIN, EVAL, STATS = "train", "eval", "stats"

# Counter keys added by the job on top of those of bertdata.corpus / bertdata.pretraining.
DOCUMENTS_READ = "documents_read"
LINES_READ = "lines_read"
TOKENS = "tokens"
UNK_TOKENS = "unk_tokens"
MASKED_TOKENS = "masked_tokens"
WORDS = "tokenizer_words"
WORD_CACHE_MISSES = "tokenizer_word_cache_misses"
EVAL_EXAMPLES = "eval_examples"
LENGTH_BUCKET = 16  # histogram bucket width, in tokens


def length_bucket_key(length: int) -> str:
    lo = (length // LENGTH_BUCKET) * LENGTH_BUCKET
    return f"length_{lo:04d}_{lo + LENGTH_BUCKET - 1:04d}"


def is_compressed(path: str) -> bool:
    return CompressionTypes.detect_compression_type(path) != CompressionTypes.UNCOMPRESSED


def eval_share(key: bytes) -> float:
    """Where a document falls in [0, 1) for the eval split; fixed by its content alone."""
    h = hashlib.blake2b(key, digest_size=8, person=b"bertpipe-eval")
    return int.from_bytes(h.digest(), "little") / 2.0**64


class _CountingDoFn(beam.DoFn):
    """Accumulates counts over a bundle and flushes them as metrics and as a stats element.

    Counting in a plain Counter and flushing once per bundle keeps the per-record cost to a
    dict increment; the emitted dicts are summed into stats.json, and the same totals appear
    as Beam counters in the runner's UI.
    """

    def start_bundle(self):
        self.counts = collections.Counter()

    def finish_bundle(self):
        counts = {k: int(v) for k, v in self.counts.items() if v}
        for key, value in counts.items():
            Metrics.counter(METRICS_NAMESPACE, key).inc(value)
        if counts:
            yield beam.pvalue.TaggedOutput(STATS, GlobalWindows.windowed_value(counts))
        self.counts = collections.Counter()


def read_range(path: str, start: int, end: int | None, counts, max_line_bytes: int):
    """Yields the documents of one byte range of one file (see bertdata.corpus)."""
    if is_compressed(path):
        # A compressed stream cannot be entered in the middle: the whole file is one range.
        f = FileSystems.open(path, compression_type=CompressionTypes.AUTO)
        start, end = 0, None
    else:
        f = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    with f:
        for _, lines in corpus.read_documents(f, start, end, counts=counts,
                                              max_line_bytes=max_line_bytes):
            yield lines


class _PendingExamples:
    """Pairs of several documents waiting to be masked and serialized as one batch."""

    def __init__(self):
        self.pairs = []
        self.rngs = []
        self.group_sizes = []

    def add(self, pairs, rng):
        self.pairs.extend(pairs)
        self.rngs.append(rng)
        self.group_sizes.append(len(pairs))

    def __len__(self):
        return len(self.pairs)


class BuildExamplesFn(_CountingDoFn):
    """File range -> blobs of TFRecord-framed examples, tagged 'train' or 'eval'.

    Reading, tokenizing, building and serializing happen in one DoFn, and its outputs are
    not single records but blobs of about BATCH_EXAMPLES records already in the TFRecord
    file format, which the writer appends to its shard as they are. Beam's cost per element
    is then paid once per blob, and masking and serializing run vectorized over the batch.
    Which documents share a batch changes no bytes: every document is masked with its own
    random stream.
    """

    BATCH_EXAMPLES = 1024

    def __init__(self, model_proto: bytes, config: pretraining.ExampleConfig, *,
                 record_format: str, eval_fraction: float, max_line_bytes: int,
                 word_cache_size: int = DEFAULT_WORD_CACHE_SIZE):
        self.model_proto = model_proto
        self.config = config
        self.record_format = record_format
        self.eval_fraction = eval_fraction
        self.max_line_bytes = max_line_bytes
        self.word_cache_size = word_cache_size
        self._pool = None

    def setup(self):
        self.tokenizer = Tokenizer(self.model_proto, name="spm_model",
                                   word_cache_size=self.word_cache_size)
        self.vocab = pretraining.VocabTables.from_tokenizer(self.tokenizer)

    def _random_doc_pool(self, pool_docs):
        # The side input is the same for every bundle (one global window): tokenize it once.
        if self._pool is None and pool_docs is not None:
            self._pool = pretraining.RandomDocumentPool(
                [(key, [np.asarray(x, dtype=np.int32) for x in self.tokenizer.encode(lines)])
                 for key, lines in pool_docs])
        return self._pool

    def process(self, file_range, pool_docs=None):
        path, start, end = file_range
        counts = self.counts
        cfg = self.config
        pool = self._random_doc_pool(pool_docs)
        pending = {TRAIN: _PendingExamples(), EVAL: _PendingExamples()}
        words, misses = self.tokenizer.words_encoded, self.tokenizer.word_cache_misses
        for lines in read_range(path, start, end, counts, self.max_line_bytes):
            counts[DOCUMENTS_READ] += 1
            counts[LINES_READ] += len(lines)
            key = pretraining.document_key(lines)
            tag = TRAIN
            if self.eval_fraction > 0 and eval_share(key) < self.eval_fraction:
                tag = EVAL
            doc = self.tokenizer.encode_flat(lines)
            for pairs, mask_rng in pretraining.document_passes(doc, cfg, key=key, pool=pool,
                                                               counts=counts):
                pending[tag].add(pairs, mask_rng)
            if len(pending[tag]) >= self.BATCH_EXAMPLES:
                yield self._flush(tag, pending[tag])
                pending[tag] = _PendingExamples()
        for tag, batch in pending.items():
            if len(batch):
                yield self._flush(tag, batch)
        counts[WORDS] += self.tokenizer.words_encoded - words
        counts[WORD_CACHE_MISSES] += self.tokenizer.word_cache_misses - misses

    def _flush(self, tag, pending):
        cfg = self.config
        counts = self.counts
        batch = pretraining.build_batch(pending.pairs, pending.rngs, pending.group_sizes, cfg,
                                        self.vocab, counts)
        lengths = batch.lengths
        counts[TOKENS] += int(lengths.sum())
        counts[UNK_TOKENS] += int(np.count_nonzero(batch.input_ids == SPECIAL_IDS.unk))
        if batch.num_masked is not None:
            counts[MASKED_TOKENS] += int(batch.num_masked.sum())
        for bucket, n in enumerate(np.bincount(lengths // LENGTH_BUCKET).tolist()):
            if n:
                counts[length_bucket_key(bucket * LENGTH_BUCKET)] += n
        if tag == EVAL:
            counts[EVAL_EXAMPLES] += len(batch)
        blob = wire_format.frame_records(serialize_batch(batch, self.record_format, cfg))
        return blob if tag == TRAIN else beam.pvalue.TaggedOutput(tag, blob)


def serialize_batch(batch: pretraining.ExampleBatch, record_format: str,
                    config: pretraining.ExampleConfig) -> list[bytes]:
    """The records of a batch in the job's format (see bertdata.wire_format)."""
    if record_format == "compact":
        masked = batch.num_masked is not None
        return wire_format.serialize_compact_batch(
            batch.input_ids, batch.lengths, batch.masked_lm_positions, batch.masked_lm_ids,
            batch.num_masked, batch.next_sentence_labels, masked=masked)
    masked = batch.num_masked is not None
    return [wire_format.serialize_instance(inst, record_format, masked=masked,
                                      max_seq_length=config.max_seq_length,
                                      max_predictions_per_seq=config.max_predictions_per_seq)
            for inst in batch.instances()]


class _FramedRecordSink(filebasedsink.FileBasedSink):
    """A TFRecord sink whose elements are already framed: it appends them as they are."""

    def __init__(self, file_path_prefix: str, file_name_suffix: str, num_shards: int,
                 compression_type: str):
        super().__init__(file_path_prefix, coder=coders.BytesCoder(),
                         file_name_suffix=file_name_suffix, num_shards=num_shards,
                         mime_type="application/octet-stream",
                         compression_type=compression_type)

    def write_encoded_record(self, file_handle, encoded_value):
        file_handle.write(encoded_value)


class WriteFramedTFRecords(beam.PTransform):
    """Writes blobs of `wire_format.frame_records` to sharded TFRecord files (optionally GZIP)."""

    def __init__(self, file_path_prefix: str, *, file_name_suffix: str = ".tfrecord",
                 num_shards: int = 0, compression_type: str = CompressionTypes.UNCOMPRESSED):
        super().__init__()
        self._sink = _FramedRecordSink(file_path_prefix, file_name_suffix, num_shards,
                                       compression_type)

    def expand(self, blobs):
        return blobs | beam.io.iobase.Write(self._sink)


class SampleDocumentsFn(beam.DoFn):
    """File range -> (seeded content hash, first lines) for the random-document pool."""

    MAX_LINES = 64  # a random B never needs more than max_seq_length tokens

    def __init__(self, seed: int, max_line_bytes: int):
        self.seed = seed
        self.max_line_bytes = max_line_bytes

    def process(self, file_range):
        path, start, end = file_range
        counts = collections.Counter()  # already counted by BuildExamplesFn
        for lines in read_range(path, start, end, counts, self.max_line_bytes):
            key = pretraining.document_key(lines)
            rank = hashlib.blake2b(key + self.seed.to_bytes(8, "little", signed=True),
                                   digest_size=8).digest()
            yield rank, key, lines[:self.MAX_LINES]


class RandomDocumentSample(beam.PTransform):
    """A seeded uniform sample of `size` documents of the whole corpus (bottom-k by hash).

    Bottom-k keeps memory at k documents per combiner and gives the same sample whatever the
    number of workers, so 'random_doc' B segments come from every part of the corpus.
    """

    def __init__(self, size: int, seed: int, max_line_bytes: int):
        super().__init__()
        self.size = size
        self.seed = seed
        self.max_line_bytes = max_line_bytes

    def expand(self, ranges):
        return (
            ranges
            | "Sample" >> beam.ParDo(SampleDocumentsFn(self.seed, self.max_line_bytes))
            | "BottomK" >> beam.combiners.Top.Smallest(self.size)
            | "KeyAndLines" >> beam.Map(lambda top: [(key, lines) for _, key, lines in top])
        )


def merge_counts(dicts) -> dict:
    total = collections.Counter()
    for d in dicts:
        total.update(d)
    return dict(total)


class CreateExamples(beam.PTransform):
    """File ranges -> {'train': blobs, 'eval': blobs, 'stats': per-bundle count dicts}.

    'train' and 'eval' hold blobs of TFRecord-framed records (`wire_format.frame_records`); write
    them with `WriteFramedTFRecords`, or read the records with `wire_format.unframe_records`.
    """

    def __init__(self, model_proto: bytes, config: pretraining.ExampleConfig, *,
                 record_format: str = "compact", eval_fraction: float = 0.0,
                 max_line_bytes: int = corpus.DEFAULT_MAX_LINE_BYTES,
                 random_doc_pool_size: int = 10_000,
                 word_cache_size: int = DEFAULT_WORD_CACHE_SIZE):
        super().__init__()
        self.word_cache_size = word_cache_size
        self.model_proto = model_proto
        self.config = config
        self.record_format = record_format
        self.eval_fraction = eval_fraction
        self.max_line_bytes = max_line_bytes
        self.random_doc_pool_size = random_doc_pool_size

    def expand(self, ranges):
        side_inputs = []
        if self.config.nsp_mode == "random_doc":
            pool = ranges | "RandomDocumentSample" >> RandomDocumentSample(
                self.random_doc_pool_size, self.config.seed, self.max_line_bytes)
            side_inputs.append(beam.pvalue.AsSingleton(pool))
        fn = BuildExamplesFn(self.model_proto, self.config, record_format=self.record_format,
                             eval_fraction=self.eval_fraction,
                             max_line_bytes=self.max_line_bytes,
                             word_cache_size=self.word_cache_size)
        outputs = ranges | "BuildExamples" >> beam.ParDo(fn, *side_inputs).with_outputs(
            EVAL, STATS, main=TRAIN)
        return {TRAIN: outputs[TRAIN], EVAL: outputs[EVAL], STATS: outputs[STATS]}
