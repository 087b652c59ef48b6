"""The job's central stage: file ranges -> blobs of finished, framed TFRecord records.

It lives in a package module (not in `__main__`) so remote workers can unpickle it, and the
tokenizer is built in `DoFn.setup()` from its files' bytes (a TokenizerSource), never pickled.
"""

from __future__ import annotations

import hashlib

import apache_beam as beam
import numpy as np

from beam_jobs import stats
from beam_jobs.inputs import CountingDoFn, read_range
from beam_jobs.random_docs import SharedPool
from beam_jobs.settings import JobSettings
from bertdata import pretraining, schema, wire_format
from bertdata.tokenizer_files import TokenizerSource


def eval_share(key: bytes) -> float:
    """Where a document falls in [0, 1) for the eval split; fixed by its content alone."""
    h = hashlib.blake2b(key, digest_size=8, person=b"bertpipe-eval")
    return int.from_bytes(h.digest(), "little") / 2.0**64


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


def serialize_batch(batch: pretraining.ExampleBatch, options: JobSettings) -> list[bytes]:
    """The records of a batch in the job's format (see bertdata.wire_format)."""
    masked = batch.num_masked is not None
    if options.record_format == "compact":
        return wire_format.serialize_compact_batch(
            batch.input_ids, batch.lengths, batch.masked_lm_positions, batch.masked_lm_ids,
            batch.num_masked, batch.next_sentence_labels, masked=masked)
    cfg = options.example
    return [wire_format.serialize_instance(
        inst, options.record_format, masked=masked, max_seq_length=cfg.max_seq_length,
        max_predictions_per_seq=cfg.max_predictions_per_seq) for inst in batch.instances()]


class BuildRecordBlobsFn(CountingDoFn):
    """File range -> (number of records, blob of framed records), tagged by split.

    Reading, tokenizing, building and serializing happen in this one DoFn, for speed, and its
    outputs are not single records but blobs of about BATCH_EXAMPLES records already in the
    TFRecord file format, which the writer appends to its shard as they are: Beam's cost per
    element is paid once per blob, and masking and serializing run vectorized over the batch.
    Which documents share a batch changes no bytes: every document is masked with its own
    random stream.
    """

    BATCH_EXAMPLES = 1024
    TOKENIZE_LINES = 2048  # documents are tokenized in groups of about this many lines

    def __init__(self, options: JobSettings, source: TokenizerSource, progress=None):
        self.options = options
        self.source = source
        self.progress = progress
        self._pool = SharedPool()

    def setup(self):
        self.tokenizer = self.source.load(word_cache_size=self.options.word_cache_size)
        self.vocab = pretraining.VocabTables.from_tokenizer(self.tokenizer)

    def process(self, element, pool_path=None):
        """ELEMENT: a file range, or with --dedup (file range, the duplicates to skip)."""
        file_range, skip = element if self.options.dedup != "none" else (element, ())
        counts = self.counts
        opts = self.options
        pool = self._pool.get(pool_path, self.tokenizer.encode_line)
        pending = {split: _PendingExamples() for split in opts.splits}
        words, misses = self.tokenizer.words_encoded, self.tokenizer.word_cache_misses
        built = 0
        for group in self._document_groups(file_range, skip):
            for lines, doc in zip(group, self.tokenizer.encode_documents(group), strict=True):
                key = pretraining.document_key(lines)
                split = schema.TRAIN
                if opts.eval_fraction > 0 and eval_share(key) < opts.eval_fraction:
                    split = schema.EVAL
                for pairs, mask_stream in pretraining.document_passes(
                        doc, opts.example, key=key, pool=pool, counts=counts):
                    pending[split].add(pairs, mask_stream)
                if len(pending[split]) >= self.BATCH_EXAMPLES:
                    built += len(pending[split])
                    yield self._flush(split, pending[split])
                    pending[split] = _PendingExamples()
        for split, batch in pending.items():
            if len(batch):
                built += len(batch)
                yield self._flush(split, batch)
        counts[stats.WORDS] += self.tokenizer.words_encoded - words
        counts[stats.WORD_CACHE_MISSES] += self.tokenizer.word_cache_misses - misses
        if self.progress is not None:
            self.progress.add(read_bytes=file_range[3], examples=built)

    def _document_groups(self, file_range, skip=()):
        """The range's documents in groups of about TOKENIZE_LINES lines (counted as read),
        less the duplicates in SKIP: document offsets, or (offset, line index) pairs."""
        group, lines_in_group = [], 0
        for offset, lines in read_range(file_range, self.counts, self.options.max_line_bytes):
            self.counts[stats.DOCUMENTS_READ] += 1
            self.counts[stats.LINES_READ] += len(lines)
            if offset in skip:
                self.counts[stats.DOCUMENTS_DUPLICATE] += 1
                continue
            if skip and self.options.dedup == "lines":
                kept = [line for i, line in enumerate(lines) if (offset, i) not in skip]
                self.counts[stats.LINES_DUPLICATE] += len(lines) - len(kept)
                lines = kept
                if not lines:
                    continue
            group.append(lines)
            lines_in_group += len(lines)
            if lines_in_group >= self.TOKENIZE_LINES:
                yield group
                group, lines_in_group = [], 0
        if group:
            yield group

    def _flush(self, split, pending):
        counts = self.counts
        batch = pretraining.build_batch(pending.pairs, pending.rngs, pending.group_sizes,
                                        self.options.example, self.vocab, counts)
        counts[stats.TOKENS] += int(batch.lengths.sum())
        counts[stats.UNK_TOKENS] += int(np.count_nonzero(batch.input_ids == self.vocab.special.unk))
        if batch.num_masked is not None:
            counts[stats.MASKED_TOKENS] += int(batch.num_masked.sum())
        for bucket, n in enumerate(np.bincount(batch.lengths // stats.LENGTH_BUCKET).tolist()):
            if n:
                counts[stats.length_bucket_key(bucket * stats.LENGTH_BUCKET)] += n
        if split == schema.EVAL:
            counts[stats.EVAL_EXAMPLES] += len(batch)
        blob = (len(batch), wire_format.frame_records(serialize_batch(batch, self.options)))
        return blob if split == schema.TRAIN else beam.pvalue.TaggedOutput(split, blob)

    def teardown(self):
        if self.progress is not None:
            self.progress.flush()


class CreateRecordBlobs(beam.PTransform):
    """File ranges -> {'train', 'eval': (count, framed-records blob), 'stats': count dicts}.

    Write the blobs with `beam_jobs.shards.WriteShardPieces`, or read their records with
    `bertdata.wire_format.unframe_records`. `pool_path` is the singleton PCollection of
    random_doc's pool file (see beam_jobs.random_docs), or None.
    """

    def __init__(self, options: JobSettings, source: TokenizerSource, pool_path=None,
                 progress=None):
        super().__init__()
        self.options = options
        self.source = source
        self.pool_path = pool_path
        self.progress = progress

    def expand(self, ranges):
        side_inputs = [beam.pvalue.AsSingleton(self.pool_path)] if self.pool_path else []
        fn = BuildRecordBlobsFn(self.options, self.source, self.progress)
        outputs = ranges | "BuildRecords" >> beam.ParDo(fn, *side_inputs).with_outputs(
            schema.EVAL, CountingDoFn.STATS, main=schema.TRAIN)
        return {schema.TRAIN: outputs[schema.TRAIN], schema.EVAL: outputs[schema.EVAL],
                CountingDoFn.STATS: outputs[CountingDoFn.STATS]}
