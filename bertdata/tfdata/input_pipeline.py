"""`make_dataset`: stream pretraining TFRecords into `(features, labels)` batches.

Usage (with any Keras model whose inputs are the feature names below):
    ds = bertdata.make_dataset("runs/data/train-*", batch_size=64, seed=1)
    model.fit(ds, steps_per_epoch=1000, epochs=3)

Element spec, B = per-replica batch, L = padded length (see `pad_to`), P = max predictions:
    features = {"input_ids": int32 (B, L), "input_mask": int32 (B, L),
                "segment_ids": int32 (B, L), "masked_lm_positions": int32 (B, P)}
    labels = {"masked_lm_ids": int32 (B, P), "masked_lm_weights": float32 (B, P),
              "next_sentence_labels": int32 (B,)}
With output_format="keras_hub", elements are keras-hub's `BertMaskedLM` inputs instead:
    ({"token_ids", "padding_mask", "segment_ids", "mask_positions"}, masked_lm_ids,
     masked_lm_weights) as (x, y, sample_weight).

The pipeline: list files -> (shard) -> shuffle file order -> repeat -> read files in
parallel in chunks of 256 records -> shuffle the chunks in a bounded buffer -> gather a few
chunks and permute their records -> parse them all at once -> cut into batches -> pad each
batch on the fly -> prefetch. Nothing holds more than the shuffle buffer in memory.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Sequence

import tensorflow as tf

from bertdata import schema
from bertdata.schema import PAD_MODES, Compression
from bertdata.tfdata import dataset_files
from bertdata.tfdata import dynamic_masking as dm
from bertdata.tfdata.integrity import READ_CHUNK, read_checked_chunks

OUTPUT_FORMATS = ("bert", "keras_hub")
_PARSE_GROUP = 2048  # records parsed per call (see make_dataset)


@dataclasses.dataclass(frozen=True)
class RecordFormat:
    """What the records are, from metadata.json and the caller's arguments (reconciled)."""

    record_format: str
    max_seq_length: int
    max_predictions_per_seq: int
    masking: str
    compression: Compression
    metadata: schema.DatasetMetadata | None
    vocab_size: int | None = None


def resolve_format(files, *, record_format=None, max_seq_length=None,
                   max_predictions_per_seq=None, compression=None, tokenizer_sha256=None,
                   masking=None, meta=None) -> RecordFormat:
    """Reconciles the caller's arguments with metadata.json (`meta`, when present).

    A disagreement is an error that names both values.
    """
    given = {"record_format": record_format, "max_seq_length": max_seq_length,
             "max_predictions_per_seq": max_predictions_per_seq, "masking": masking}
    if meta is None:
        missing = [k for k in ("record_format", "max_seq_length", "max_predictions_per_seq")
                   if given[k] is None]
        if missing:
            raise ValueError(f"no {schema.METADATA_FILE} beside {files[0]}: pass "
                             + ", ".join(missing) + " (plain google-research/bert records "
                             "are record_format='padded')")
        given["masking"] = masking or "static"
        if compression is None:
            compression = Compression.of_path(files[0]).tensorflow or "NONE"
        vocab_size = None
    else:
        where = schema.metadata_path(files)
        for key, value in given.items():
            recorded = getattr(meta, key)
            if value is not None and value != recorded:
                raise ValueError(f"{key}={value!r} was asked for, but {where} says "
                                 f"{key}={recorded!r}")
            given[key] = recorded
        if compression is None:
            compression = meta.compression.tensorflow or "NONE"
        if tokenizer_sha256 is not None and tokenizer_sha256 != meta.tokenizer.sha256:
            raise ValueError(f"tokenizer checksum {tokenizer_sha256} was given, but {where} "
                             f"says the records were made with {meta.tokenizer.sha256}")
        vocab_size = meta.vocab_size
    if given["record_format"] not in schema.RECORD_FORMATS:
        raise ValueError(f"record_format must be one of {schema.RECORD_FORMATS}, got "
                         f"{given['record_format']!r}")
    if given["record_format"] == "compact" and meta is None:
        # Segment ids are derived from the first [SEP], whose id metadata.json records.
        raise ValueError(f"no {schema.METADATA_FILE} beside {files[0]}: compact records are "
                         "read with their dataset's metadata (it gives the [SEP] id)")
    compression = Compression.GZIP if str(compression).upper() == "GZIP" else Compression.NONE
    return RecordFormat(compression=compression, metadata=meta, vocab_size=vocab_size,
                        **given)


@dataclasses.dataclass(frozen=True)
class InputSettings:
    """How `make_dataset` reads, checks, shuffles and pads: every setting but the files and
    the batch size. Each can also be passed to make_dataset as a keyword."""

    # Shuffle and repeat (the defaults of `repeat` and `drop_remainder` follow it).
    is_training: bool = True
    # From `strategy.distribute_datasets_from_function`: files are sharded over input
    # pipelines when there are at least as many files, records otherwise.
    input_context: tf.distribute.InputContext | None = None
    # Makes file order, shuffling and dynamic masks reproducible.
    seed: int | None = None
    # record_format, max_seq_length, max_predictions_per_seq and compression are read from
    # metadata.json beside the files; if given too they must agree with it. Without metadata
    # (google-research/bert's own records) the first three are required.
    record_format: str | None = None
    max_seq_length: int | None = None
    max_predictions_per_seq: int | None = None
    compression: str | None = None
    # 'longest' pads each batch to its longest example rounded up to pad_multiple; 'buckets'
    # to the smallest of bucket_lengths that fits (few shapes for XLA); 'max' to
    # max_seq_length with fully static shapes (TPU).
    pad_to: str = "longest"
    pad_multiple: int = 8
    bucket_lengths: Sequence[int] | None = None
    # Records held for shuffling (memory bound). They are shuffled in chunks of 256
    # consecutive records of a file, and each group of 2,048 read together is then permuted.
    shuffle_buffer: int = 10_000
    repeat: bool | None = None
    drop_remainder: bool | None = None
    # When given, must match the tokenizer recorded in metadata.json.
    tokenizer_sha256: str | None = None
    # For records written with --masking=dynamic: the dict of
    # `bertdata.tfdata.dynamic_masking.masking_options(...)`; masks are drawn anew every epoch.
    dynamic_masking: dict | None = None
    # Skip the unreadable rest of a corrupt or truncated file (logged) instead of failing.
    skip_corrupt: bool = False
    # Files read in parallel (default: up to 8).
    cycle_length: int | None = None
    # 'bert' (this package's feature names) or 'keras_hub' (keras-hub's BertMaskedLM inputs).
    output_format: str = "bert"

    def __post_init__(self):
        if self.pad_to not in PAD_MODES:
            raise ValueError(f"pad_to must be one of {PAD_MODES}, got {self.pad_to!r}")
        if self.output_format not in OUTPUT_FORMATS:
            raise ValueError(f"output_format must be one of {OUTPUT_FORMATS}, got "
                             f"{self.output_format!r}")


def make_dataset(file_pattern: str | Sequence[str], batch_size: int,
                 options: InputSettings | None = None, **settings) -> tf.data.Dataset:
    """Builds the pretraining input pipeline.

    Args:
      file_pattern: glob, list of globs, or a dataset directory (its train-* shards).
      batch_size: the GLOBAL batch size; with an input_context each pipeline batches
        input_context.get_per_replica_batch_size(batch_size).
      options: an `InputSettings`; SETTINGS (its field names as keywords) replace its
        fields, so `make_dataset(files, 64, seed=1, pad_to="buckets")` works too.

    Returns:
      A `tf.data.Dataset`; see the module docstring for its elements.

    Raises:
      ValueError: no files, a dataset without records, or settings that contradict
        metadata.json. A record longer than max_seq_length, with more predictions than
        max_predictions_per_seq or with ids beyond the vocabulary, and a shard whose
        record count differs from metadata.json, fail when read (InvalidArgumentError
        naming the file).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    o = dataclasses.replace(options or InputSettings(), **settings)
    files, meta = dataset_files.dataset_metadata(file_pattern)
    fmt = resolve_format(files, record_format=o.record_format,
                         max_seq_length=o.max_seq_length,
                         max_predictions_per_seq=o.max_predictions_per_seq,
                         compression=o.compression, tokenizer_sha256=o.tokenizer_sha256,
                         masking="dynamic" if o.dynamic_masking else None, meta=meta)
    if fmt.masking == "dynamic" and not o.dynamic_masking:
        raise ValueError("these records are unmasked (--masking=dynamic): pass "
                         "dynamic_masking=bertdata.tfdata.dynamic_masking.masking_options(...)")
    if o.dynamic_masking:
        dm.check_masking_tokenizer(o.dynamic_masking, meta, schema.metadata_path(files))
    sizes = [tf.io.gfile.stat(f).length for f in files]
    check_not_empty(files, sizes, meta)
    return _pipeline(files, sizes, fmt, batch_size, o)


def _pipeline(files, sizes, fmt: RecordFormat, batch_size: int,
              o: InputSettings) -> tf.data.Dataset:
    lengths = _pad_lengths(o.pad_to, fmt.max_seq_length, o.pad_multiple, o.bucket_lengths)
    repeat = o.is_training if o.repeat is None else o.repeat
    drop_remainder = o.is_training if o.drop_remainder is None else o.drop_remainder
    per_replica_batch, num_pipelines, pipeline_id = batch_size, 1, 0
    if o.input_context is not None:
        per_replica_batch = o.input_context.get_per_replica_batch_size(batch_size)
        num_pipelines = o.input_context.num_input_pipelines
        pipeline_id = o.input_context.input_pipeline_id
    deterministic = o.seed is not None or not o.is_training

    ds = _file_chunks(files, sizes, fmt, num_pipelines, pipeline_id,
                      is_training=o.is_training, repeat=repeat, seed=o.seed,
                      skip_corrupt=o.skip_corrupt, cycle_length=o.cycle_length,
                      deterministic=deterministic)
    ds = _parse_groups(ds, shuffle=o.is_training and o.shuffle_buffer > 1,
                       shuffle_buffer=o.shuffle_buffer, seed=o.seed)
    decode = _make_decode_fn(fmt, files)
    ds = ds.map(_as_graph(decode), num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=deterministic)
    ds = ds.rebatch(per_replica_batch, drop_remainder=drop_remainder)
    if o.dynamic_masking and o.seed is not None:
        # One seed pair per batch from a seeded stream: reproducible, new masks every epoch.
        ds = tf.data.Dataset.zip((ds, tf.data.Dataset.random(seed=o.seed).batch(2)))
    shape = _make_shape_fn(lengths, fmt.max_seq_length, fmt.max_predictions_per_seq,
                           static=o.pad_to == "max",
                           batch=per_replica_batch if drop_remainder else None,
                           dynamic_masking=o.dynamic_masking, output_format=o.output_format)
    ds = ds.map(_as_graph(shape), num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=deterministic)
    return ds.prefetch(tf.data.AUTOTUNE)


def check_not_empty(files: Sequence[str], sizes: Sequence[int],
                    meta: schema.DatasetMetadata | None) -> None:
    """A dataset with no record is an error here, not an empty reduction during training."""
    splits = {schema.split_of(f) for f in files}
    counted = [meta.num_examples(s or "") for s in splits] if meta else []
    if sum(sizes) == 0 or (counted and all(c == 0 for c in counted)):
        where = schema.metadata_path(files) if meta else files[0]
        raise ValueError(f"the dataset holds no records ({len(files)} file(s), "
                         f"{sum(sizes)} bytes; {where})")


def _file_chunks(files, sizes, fmt: RecordFormat, num_pipelines, pipeline_id, *,
                 is_training, repeat, seed, skip_corrupt, cycle_length, deterministic):
    """Files -> (shard) -> shuffled order -> repeat -> (chunk of records, file index)."""
    expected = [fmt.metadata.records_in(f) if fmt.metadata else None for f in files]
    ds = tf.data.Dataset.from_tensor_slices((
        tf.constant(files), tf.constant(sizes, tf.int64),
        tf.constant([-1 if n is None else n for n in expected], tf.int64),
        tf.range(len(files), dtype=tf.int32)))
    shard_by_file = num_pipelines > 1 and len(files) >= num_pipelines
    if shard_by_file:
        ds = ds.shard(num_pipelines, pipeline_id)
    if is_training:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    compression = fmt.compression.tensorflow
    ds = ds.interleave(
        _as_graph(lambda path, size, count, index: read_checked_chunks(
            path, size, count, index, compression, skip_corrupt)),
        cycle_length=cycle_length or min(8, len(files)),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=deterministic,
    )
    if num_pipelines > 1 and not shard_by_file:
        ds = ds.map(_as_graph(lambda chunk, index: (chunk, tf.fill(tf.shape(chunk), index))))
        ds = ds.unbatch().shard(num_pipelines, pipeline_id).batch(READ_CHUNK)
        ds = ds.map(_as_graph(lambda chunk, index: (chunk, index[0])))
    return ds


def _parse_groups(ds, *, shuffle: bool, shuffle_buffer: int, seed):
    """(chunk, file index) elements -> (records, per-record file index), parse-group sized.

    Records travel in chunks: per-record tf.data work (unbatch, a shuffle buffer, batch)
    would cost more than parsing them. Shuffling is two-level instead: chunks (from up to 8
    files at once) are shuffled in a buffer of `shuffle_buffer` records, and then the
    records of each parse group (several chunks) are permuted.
    """
    if shuffle:
        ds = ds.shuffle(max(2, shuffle_buffer // READ_CHUNK), seed=seed,
                        reshuffle_each_iteration=True)
    ds = ds.ragged_batch(max(1, _PARSE_GROUP // READ_CHUNK))

    def flatten(chunks, index):
        return chunks.flat_values, tf.repeat(index, chunks.row_lengths())

    def permuted(chunks, index, pair=None):
        records, file_index = flatten(chunks, index)
        order = tf.range(tf.size(records))
        if pair is None:
            order = tf.random.shuffle(order)
        else:
            order = tf.random.experimental.stateless_shuffle(order, seed=pair)
        return tf.gather(records, order), tf.gather(file_index, order)

    if shuffle and seed is not None:
        # Its own stream, apart from the one dynamic masking draws its seeds from.
        seeds = tf.data.Dataset.random(seed=_derived_seed(seed, "group_shuffle")).batch(2)
        return tf.data.Dataset.zip((ds, seeds)).map(
            _as_graph(lambda group, pair: permuted(*group, pair)))
    return ds.map(_as_graph(permuted if shuffle else flatten))


def _as_graph(fn):
    """FN traced as written, without autograph's rewrite: the functions this module maps
    branch and loop on Python values only (settings), never on tensors, and converting them
    cost about 3 s each time a dataset was made (half of a short training run's start)."""
    return tf.autograph.experimental.do_not_convert(fn)


def _derived_seed(seed: int, purpose: str) -> int:
    digest = hashlib.blake2b(f"{seed}/{purpose}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1  # a non-negative int64


def _pad_lengths(pad_to, seq_len, multiple, buckets):
    if pad_to == "max":
        return [seq_len]
    if pad_to == "buckets":
        if buckets is None:
            buckets = sorted({min(seq_len, max(8, int(math.ceil(seq_len * f / 8)) * 8))
                              for f in (0.25, 0.5, 0.75, 1.0)})
        buckets = sorted(int(b) for b in buckets)
        if buckets[-1] < seq_len:
            buckets.append(seq_len)
        return buckets
    if multiple < 1:
        raise ValueError(f"pad_multiple must be positive, got {multiple}")
    return [multiple]


def _record_check(all_ok, per_record_ok, what, file_index, files):
    """Fails, naming the file of the first bad record, unless `all_ok` (a scalar) holds.

    `per_record_ok` is a function giving the per-record verdict; it only runs on failure,
    so the happy path costs one reduction.
    """
    def fail():
        ok = per_record_ok()
        first_bad = tf.argmin(tf.cast(ok, tf.int32), output_type=tf.int32)
        path = tf.gather(files, tf.gather(file_index, first_bad))
        message = tf.strings.join(["a record in ", path, " ", what])
        with tf.control_dependencies([tf.debugging.Assert(False, [message])]):
            return tf.constant(False)

    return tf.cond(all_ok, lambda: tf.constant(True), fail)


def _make_decode_fn(fmt: RecordFormat, files):
    """(serialized records, file index) -> a flat dict of dense tensors (decode only)."""
    seq_len, num_preds = fmt.max_seq_length, fmt.max_predictions_per_seq
    masked = fmt.masking == "static"
    spec = dataset_files.parse_spec(fmt.record_format, max_seq_length=seq_len,
                             max_predictions_per_seq=num_preds, masked=masked)
    file_names = tf.constant(list(files))
    limits = f"(metadata: max_seq_length={seq_len}, max_predictions_per_seq={num_preds}" + (
        f", vocab_size={fmt.vocab_size})" if fmt.vocab_size else ")")

    def decode(serialized, file_index):
        parsed = tf.io.parse_example(serialized, spec)
        ids = parsed[schema.INPUT_IDS]
        checks = []

        def check(all_ok, per_record_ok, what):
            checks.append(_record_check(all_ok, per_record_ok, what, file_index, file_names))

        if fmt.record_format == "compact":
            rows = ids.row_lengths()
            # A missing list parses as an empty one; a record without input_ids is not ours.
            names = ", ".join(schema.features_for("compact", fmt.masking))
            check(tf.reduce_min(rows) > 0, lambda: rows > 0,
                  f"has no 'input_ids' feature (or an empty one); compact records hold {names}")
            check(tf.reduce_max(rows) <= seq_len, lambda: rows <= seq_len,
                  f"is longer than max_seq_length {limits}")
            if masked:
                preds = parsed[schema.MASKED_LM_POSITIONS].row_lengths()
                check(tf.reduce_max(preds) <= num_preds, lambda: preds <= num_preds,
                      f"has more predictions than max_predictions_per_seq {limits}")
        if fmt.vocab_size:
            # Out-of-range ids would be gathered as zeros on a GPU, silently.
            values = ids.flat_values if isinstance(ids, tf.RaggedTensor) else ids
            check(tf.logical_and(tf.reduce_min(values) >= 0,
                                 tf.reduce_max(values) < fmt.vocab_size),
                  lambda: tf.reduce_all(tf.logical_and(ids >= 0, ids < fmt.vocab_size), axis=1),
                  f"holds ids beyond the vocabulary {limits}")
        with tf.control_dependencies(checks):
            if fmt.record_format == "compact":
                return _decode_compact(parsed, num_preds, masked,
                                       fmt.metadata.special_ids.sep)
            return _decode_padded(parsed)

    return decode


def _decode_compact(parsed, num_preds, masked, sep_id):
    # int64 is the only integer type tf.train.Example stores; the model and TPUs want int32,
    # so every list is cast once here (the values before padding: half the bytes to move).
    ids = parsed[schema.INPUT_IDS]
    row_lengths = ids.row_lengths()
    ids = ids.with_flat_values(tf.cast(ids.flat_values, tf.int32)).to_tensor(default_value=0)
    positions = tf.range(tf.shape(ids)[1], dtype=tf.int32)[tf.newaxis]
    lengths = tf.cast(row_lengths, tf.int32)[:, tf.newaxis]
    mask = tf.cast(positions < lengths, tf.int32)
    # Segment 0 up to and including the first [SEP], 1 after it, 0 on padding.
    is_sep = tf.cast(ids == sep_id, tf.int8)
    first_sep = tf.argmax(is_sep, axis=1, output_type=tf.int32)
    # A row without [SEP] (not this package's layout) is all segment 0.
    first_sep = tf.where(tf.reduce_max(is_sep, axis=1) > 0, first_sep,
                         tf.shape(ids)[1])[:, tf.newaxis]
    segments = tf.cast((positions > first_sep) & (positions < lengths), tf.int32)
    out = {schema.INPUT_IDS: ids, schema.INPUT_MASK: mask, schema.SEGMENT_IDS: segments,
           schema.NEXT_SENTENCE_LABELS: _labels(parsed)}
    if masked:
        pos = parsed[schema.MASKED_LM_POSITIONS]
        out[schema.MASKED_LM_WEIGHTS] = tf.sequence_mask(pos.row_lengths(), num_preds,
                                                         dtype=tf.float32)
        shape = tf.stack([pos.nrows(), num_preds])
        out[schema.MASKED_LM_POSITIONS] = tf.cast(
            pos.to_tensor(default_value=0, shape=shape), tf.int32)
        out[schema.MASKED_LM_IDS] = tf.cast(parsed[schema.MASKED_LM_IDS].to_tensor(
            default_value=0, shape=shape), tf.int32)
    return out


def _decode_padded(parsed):
    out = {name: tf.cast(parsed[name], tf.int32)
           for name in (schema.INPUT_IDS, schema.INPUT_MASK, schema.SEGMENT_IDS,
                        schema.MASKED_LM_POSITIONS, schema.MASKED_LM_IDS)}
    out[schema.MASKED_LM_WEIGHTS] = parsed[schema.MASKED_LM_WEIGHTS]
    out[schema.NEXT_SENTENCE_LABELS] = _labels(parsed)
    return out


def _labels(parsed):
    return tf.cast(tf.reshape(parsed[schema.NEXT_SENTENCE_LABELS], [-1]), tf.int32)


def _make_shape_fn(lengths, seq_len, num_preds, *, static, batch, dynamic_masking,
                   output_format="bert"):
    """A decoded batch -> (features, labels) padded or trimmed to the batch's length."""

    def target_length(max_len):
        if len(lengths) == 1:  # round up to a multiple
            m = lengths[0]
            return tf.minimum(((max_len + m - 1) // m) * m, seq_len)
        buckets = tf.constant(lengths, tf.int32)
        return tf.gather(buckets, tf.reduce_sum(tf.cast(buckets < max_len, tf.int32)))

    def fit(x, length):
        x = x[:, :length]
        return tf.pad(x, [[0, 0], [0, length - tf.shape(x)[1]]])

    def shape(d, seeds=None):
        mask = d[schema.INPUT_MASK]
        longest = tf.reduce_max(tf.reduce_sum(mask, axis=1))
        length = seq_len if static else target_length(longest)
        ids = fit(d[schema.INPUT_IDS], length)
        mask = fit(mask, length)
        segments = fit(d[schema.SEGMENT_IDS], length)
        if dynamic_masking:
            ids, pos, lm_ids, weights = dm.mask_padded_batch(
                ids, mask, num_preds=num_preds, seeds=seeds,
                **{k: v for k, v in dynamic_masking.items() if k != "tokenizer_sha256"})
        else:
            pos, lm_ids = d[schema.MASKED_LM_POSITIONS], d[schema.MASKED_LM_IDS]
            weights = d[schema.MASKED_LM_WEIGHTS]
        features = {schema.INPUT_IDS: ids, schema.INPUT_MASK: mask,
                    schema.SEGMENT_IDS: segments, schema.MASKED_LM_POSITIONS: pos}
        labels = {schema.MASKED_LM_IDS: lm_ids, schema.MASKED_LM_WEIGHTS: weights,
                  schema.NEXT_SENTENCE_LABELS: d[schema.NEXT_SENTENCE_LABELS]}
        if static:
            features = {k: tf.ensure_shape(v, [batch, num_preds if k == schema.MASKED_LM_POSITIONS
                                               else seq_len]) for k, v in features.items()}
            labels = {k: tf.ensure_shape(v, [batch] if k == schema.NEXT_SENTENCE_LABELS
                                         else [batch, num_preds]) for k, v in labels.items()}
        if output_format == "keras_hub":
            return to_keras_hub(features, labels)
        return features, labels

    return shape


# keras-hub's BertMaskedLM input names for this package's features.
KERAS_HUB_NAMES = {schema.INPUT_IDS: "token_ids", schema.INPUT_MASK: "padding_mask",
                   schema.SEGMENT_IDS: "segment_ids",
                   schema.MASKED_LM_POSITIONS: "mask_positions"}


def to_keras_hub(features, labels):
    """(features, labels) -> keras-hub BertMaskedLM's (x, y, sample_weight); MLM only."""
    x = {KERAS_HUB_NAMES[k]: v for k, v in features.items()}
    return x, labels[schema.MASKED_LM_IDS], labels[schema.MASKED_LM_WEIGHTS]
