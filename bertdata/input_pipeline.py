"""`make_dataset`: stream pretraining TFRecords into `(features, labels)` batches.

Usage (with any Keras model whose inputs are the feature names below):
    ds = bertdata.make_dataset("runs/data/train-*", batch_size=64, seed=1)
    model.fit(ds, steps_per_epoch=1000, epochs=3)

Element spec, B = per-replica batch, L = padded length (see `pad_to`), P = max predictions:
    features = {"input_ids": int32 (B, L), "input_mask": int32 (B, L),
                "segment_ids": int32 (B, L), "masked_lm_positions": int32 (B, P)}
    labels = {"masked_lm_ids": int32 (B, P), "masked_lm_weights": float32 (B, P),
              "next_sentence_labels": int32 (B,)}

The pipeline: list files -> (shard) -> shuffle file order -> repeat -> read files in
parallel in chunks of 256 records -> shuffle the chunks in a bounded buffer -> gather a few
chunks and permute their records -> parse them all at once -> cut into batches -> pad each
batch on the fly -> prefetch. Nothing holds more than the shuffle buffer in memory.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import sys
import zlib
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from bertdata import schema
from bertdata.tokenizer import SPECIAL_IDS

PAD_MODES = ("longest", "buckets", "max")
# Records are read from each file in chunks of this many, so per-file bookkeeping (and the
# corrupt-file check) costs one op per chunk, not per record.
_READ_CHUNK = 256
_PARSE_GROUP = 2048  # records parsed per call (see make_dataset)
_TFRECORD_FRAMING_BYTES = 16  # length (8) + length crc (4) + data crc (4)


def list_files(file_pattern: str | Sequence[str]) -> list[str]:
    """Expands globs (or a dataset directory, meaning its train shards) into sorted files."""
    patterns = [file_pattern] if isinstance(file_pattern, str) else list(file_pattern)
    files = []
    for pattern in patterns:
        if tf.io.gfile.isdir(pattern):
            pattern = os.path.join(pattern, "train-*-of-*")
        matched = [f for f in tf.io.gfile.glob(pattern)
                   if os.path.basename(f) not in (schema.METADATA_FILE, schema.STATS_FILE)]
        if not matched:
            raise ValueError(f"file pattern {pattern!r} matches no file")
        files.extend(matched)
    return sorted(set(files))


def _dataset_dir(files: Sequence[str]) -> str | None:
    dirs = {os.path.dirname(f) for f in files}
    return dirs.pop() if len(dirs) == 1 else None


def resolve_format(files, *, record_format, max_seq_length, max_predictions_per_seq,
                   compression, tokenizer_sha256, masking):
    """Reconciles the caller's arguments with metadata.json (when present).

    Returns a dict with record_format, max_seq_length, max_predictions_per_seq, compression,
    masking and metadata. A disagreement is an error that names both values.
    """
    directory = _dataset_dir(files)
    meta = schema.read_metadata(directory) if directory is not None else None
    where = os.path.join(directory, schema.METADATA_FILE) if directory else ""
    resolved = {"record_format": record_format, "max_seq_length": max_seq_length,
                "max_predictions_per_seq": max_predictions_per_seq,
                "compression": compression, "masking": masking, "metadata": meta}
    if meta is not None:
        for key in ("record_format", "max_seq_length", "max_predictions_per_seq", "masking"):
            given = resolved[key]
            if given is not None and given != meta[key]:
                raise ValueError(f"{key}={given!r} was asked for, but {where} says "
                                 f"{key}={meta[key]!r}")
            resolved[key] = meta[key]
        meta_compression = "GZIP" if meta["compression"] == "GZIP" else "NONE"
        if compression is None:
            resolved["compression"] = meta_compression
        if tokenizer_sha256 is not None and tokenizer_sha256 != meta["tokenizer"]["sha256"]:
            raise ValueError(f"tokenizer checksum {tokenizer_sha256} was given, but {where} "
                             f"says the records were made with {meta['tokenizer']['sha256']}")
    else:
        missing = [k for k in ("record_format", "max_seq_length", "max_predictions_per_seq")
                   if resolved[k] is None]
        if missing:
            raise ValueError(f"no {schema.METADATA_FILE} beside {files[0]}: pass "
                             + ", ".join(missing) + " (plain google-research/bert records "
                             "are record_format='padded')")
        resolved["masking"] = masking or "static"
    if resolved["compression"] is None:
        resolved["compression"] = "GZIP" if files[0].endswith(".gz") else "NONE"
    if resolved["record_format"] not in schema.RECORD_FORMATS:
        raise ValueError(f"record_format must be one of {schema.RECORD_FORMATS}, got "
                         f"{resolved['record_format']!r}")
    return resolved


def _read_file_chunks(path, size, compression: str, skip_corrupt: bool):
    """One file's records in chunks, checked for truncation or corruption.

    TensorFlow's own read error does not say which file failed, so read errors are caught
    per file and replaced by a check at the file's end that names it:
      * a TFRecord file read to its end consumed exactly its size in bytes (records plus 16
        bytes of framing each);
      * a GZIP file's last 4 bytes hold its uncompressed size (mod 2**32), read here when
        the file is opened. A file of several concatenated gzip streams disagrees with that
        without being damaged, so a disagreement is confirmed by decompressing the whole
        file in Python before it counts as corrupt.
    """
    records = tf.data.TFRecordDataset(path, compression_type=compression or None,
                                      buffer_size=1 << 20)
    chunks = records.ignore_errors().batch(_READ_CHUNK)
    # An empty chunk never comes from batch(); it marks the end of the file.
    chunks = chunks.concatenate(tf.data.Dataset.from_tensors(tf.zeros([0], tf.string)))
    if compression == "GZIP":
        trailer = _gzip_trailer_size(path, size)

        def complete(consumed):
            fast = tf.equal(consumed % (1 << 32), trailer)
            return tf.cond(fast, lambda: tf.constant(True), lambda: tf.numpy_function(
                _gzip_length_is, [path, consumed], tf.bool, stateful=False))

        what = "GZIP TFRecord file "
    else:
        def complete(consumed):
            return tf.equal(consumed, size)

        what = "TFRecord file "

    def check(consumed, chunk):
        n = tf.size(chunk, out_type=tf.int64)
        consumed += (tf.reduce_sum(tf.cast(tf.strings.length(chunk), tf.int64))
                     + _TFRECORD_FRAMING_BYTES * n)
        at_end = tf.equal(n, 0)
        ok = tf.cond(at_end, lambda: complete(consumed), lambda: tf.constant(True))
        message = tf.strings.join([
            "corrupt or truncated ", what, path, ": read ", tf.strings.as_string(consumed),
            " bytes of records (framing included) before it failed; its size is ",
            tf.strings.as_string(size), " bytes"])
        if skip_corrupt:
            def warn():
                op = tf.print("bertdata: skipped the unreadable rest of", message,
                              output_stream=sys.stderr)
                with tf.control_dependencies([op]):
                    return tf.constant(False)

            flag = tf.cond(ok, lambda: tf.constant(True), warn)
            with tf.control_dependencies([flag]):
                return consumed, tf.identity(chunk)
        with tf.control_dependencies([tf.debugging.Assert(ok, [message])]):
            return consumed, tf.identity(chunk)

    return chunks.scan(tf.constant(0, tf.int64), check)


def _gzip_trailer_size(path, size):
    """The ISIZE field of a gzip file (its last 4 bytes, little-endian) as int64; -1 if none."""
    last = tf.data.FixedLengthRecordDataset(path, 4, header_bytes=tf.maximum(size - 4, 0))
    weights = tf.constant([1, 1 << 8, 1 << 16, 1 << 24], tf.int64)
    return last.take(1).reduce(tf.constant(-1, tf.int64), lambda _, raw: tf.reduce_sum(
        tf.cast(tf.io.decode_raw(raw, tf.uint8), tf.int64) * weights))


def _gzip_length_is(path, consumed) -> np.bool_:
    """True when the whole gzip file decompresses to exactly `consumed` bytes."""
    total = 0
    try:
        with tf.io.gfile.GFile(path.decode(), "rb") as raw, gzip.GzipFile(fileobj=raw) as f:
            while block := f.read(1 << 20):
                total += len(block)
    except (OSError, EOFError, zlib.error, tf.errors.OpError):
        return np.bool_(False)
    return np.bool_(total == consumed)


def make_dataset(
    file_pattern: str | Sequence[str],
    batch_size: int,
    *,
    is_training: bool = True,
    input_context: tf.distribute.InputContext | None = None,
    seed: int | None = None,
    record_format: str | None = None,
    max_seq_length: int | None = None,
    max_predictions_per_seq: int | None = None,
    compression: str | None = None,
    pad_to: str = "longest",
    pad_multiple: int = 8,
    bucket_lengths: Sequence[int] | None = None,
    shuffle_buffer: int = 10_000,
    repeat: bool | None = None,
    drop_remainder: bool | None = None,
    tokenizer_sha256: str | None = None,
    dynamic_masking: dict | None = None,
    skip_corrupt: bool = False,
    cycle_length: int | None = None,
) -> tf.data.Dataset:
    """Builds the pretraining input pipeline.

    Args:
      file_pattern: glob, list of globs, or a dataset directory (its train-* shards).
      batch_size: the GLOBAL batch size; with an input_context each pipeline batches
        input_context.get_per_replica_batch_size(batch_size).
      is_training: shuffle and repeat (defaults of `repeat` / `drop_remainder` follow it).
      input_context: from `strategy.distribute_datasets_from_function`; files are sharded
        over input pipelines when there are at least as many files, records otherwise.
      seed: makes file order, shuffling and dynamic masks reproducible.
      record_format, max_seq_length, max_predictions_per_seq, compression: read from
        metadata.json beside the files; if given too they must agree with it. Without
        metadata (e.g. google-research/bert's own records) the first three are required.
      pad_to: 'longest' pads each batch to its longest example rounded up to pad_multiple;
        'buckets' to the smallest of bucket_lengths that fits (few shapes for XLA); 'max' to
        max_seq_length with fully static shapes (TPU).
      shuffle_buffer: records held for shuffling (memory bound). They are shuffled in
        chunks of 256 consecutive records of a file, and each group of 2,048 read together
        is then permuted record by record.
      tokenizer_sha256: when given, must match the tokenizer recorded in metadata.json.
      dynamic_masking: for records written with --masking=dynamic: a dict of
        `bertdata.dynamic_masking.masking_options(...)`; masks are drawn anew every epoch.
      skip_corrupt: skip the unreadable rest of a corrupt/truncated file (logged) instead
        of failing.
      cycle_length: files read in parallel (default: up to 8).

    Returns:
      A `tf.data.Dataset` of `(features, labels)`; see the module docstring for the spec.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if pad_to not in PAD_MODES:
        raise ValueError(f"pad_to must be one of {PAD_MODES}, got {pad_to!r}")
    files = list_files(file_pattern)
    fmt = resolve_format(files, record_format=record_format, max_seq_length=max_seq_length,
                         max_predictions_per_seq=max_predictions_per_seq,
                         compression=compression, tokenizer_sha256=tokenizer_sha256,
                         masking="dynamic" if dynamic_masking else None)
    seq_len, num_preds = fmt["max_seq_length"], fmt["max_predictions_per_seq"]
    masked = fmt["masking"] == "static"
    if not masked and not dynamic_masking:
        raise ValueError("these records are unmasked (--masking=dynamic): pass "
                         "dynamic_masking=bertdata.dynamic_masking.masking_options(...)")
    lengths = _pad_lengths(pad_to, seq_len, pad_multiple, bucket_lengths)
    repeat = is_training if repeat is None else repeat
    drop_remainder = is_training if drop_remainder is None else drop_remainder

    per_replica_batch = batch_size
    num_pipelines, pipeline_id = 1, 0
    if input_context is not None:
        per_replica_batch = input_context.get_per_replica_batch_size(batch_size)
        num_pipelines, pipeline_id = (input_context.num_input_pipelines,
                                      input_context.input_pipeline_id)

    sizes = [tf.io.gfile.stat(f).length for f in files]
    ds = tf.data.Dataset.from_tensor_slices((files, tf.constant(sizes, tf.int64)))
    shard_by_file = num_pipelines > 1 and len(files) >= num_pipelines
    if shard_by_file:
        ds = ds.shard(num_pipelines, pipeline_id)
    if is_training:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    compression_type = "" if fmt["compression"] == "NONE" else fmt["compression"]
    deterministic = seed is not None or not is_training
    ds = ds.interleave(
        lambda path, size: _read_file_chunks(path, size, compression_type, skip_corrupt),
        cycle_length=cycle_length or min(8, len(files)),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=deterministic,
    )
    if num_pipelines > 1 and not shard_by_file:
        ds = ds.unbatch().shard(num_pipelines, pipeline_id).batch(_READ_CHUNK)
    # Records travel in chunks: per-record tf.data work (unbatch, a shuffle buffer, batch)
    # would cost more than parsing them. Shuffling is two-level instead: chunks (from up to
    # 8 files at once) are shuffled in a buffer of `shuffle_buffer` records, and then the
    # records of each parse group (several chunks) are permuted.
    shuffle = is_training and shuffle_buffer > 1
    if shuffle:
        ds = ds.shuffle(max(2, shuffle_buffer // _READ_CHUNK), seed=seed,
                        reshuffle_each_iteration=True)
    # Parsing has a high fixed cost per call, so records are parsed a few batches at a time
    # and the parsed tensors are cut into batches (rebatch slices, it does not copy per
    # example); each batch is then trimmed to its own longest example.
    ds = ds.ragged_batch(max(1, _PARSE_GROUP // _READ_CHUNK))
    if shuffle and seed is not None:
        # Its own stream, apart from the one dynamic masking draws its seeds from.
        seeds = tf.data.Dataset.random(seed=_derived_seed(seed, "group_shuffle")).batch(2)
        ds = tf.data.Dataset.zip((ds, seeds)).map(
            lambda chunks, pair: tf.random.experimental.stateless_shuffle(
                chunks.flat_values, seed=pair))
    elif shuffle:
        ds = ds.map(lambda chunks: tf.random.shuffle(chunks.flat_values))
    else:
        ds = ds.map(lambda chunks: chunks.flat_values)
    decode = _make_decode_fn(fmt["record_format"], seq_len, num_preds, masked)
    ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    ds = ds.rebatch(per_replica_batch, drop_remainder=drop_remainder)
    if dynamic_masking and seed is not None:
        # One seed pair per batch from a seeded stream: reproducible, new masks every epoch.
        ds = tf.data.Dataset.zip((ds, tf.data.Dataset.random(seed=seed).batch(2)))
    shape = _make_shape_fn(lengths, seq_len, num_preds, static=pad_to == "max",
                           batch=per_replica_batch if drop_remainder else None,
                           dynamic_masking=dynamic_masking)
    ds = ds.map(shape, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    return ds.prefetch(tf.data.AUTOTUNE)


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


def _make_decode_fn(record_format, seq_len, num_preds, masked):
    """Serialized records (a batch) -> a flat dict of dense tensors (decode only)."""
    spec = schema.parse_spec(record_format, max_seq_length=seq_len,
                             max_predictions_per_seq=num_preds, masked=masked)

    def decode(serialized):
        parsed = tf.io.parse_example(serialized, spec)
        # int64 is the only integer type tf.train.Example stores; the model and TPUs want
        # int32, so every list is cast once here.
        out = {schema.NEXT_SENTENCE_LABELS: tf.cast(
            tf.reshape(parsed[schema.NEXT_SENTENCE_LABELS], [-1]), tf.int32)}
        if record_format == "compact":
            ids = parsed[schema.INPUT_IDS]
            row_lengths = ids.row_lengths()
            # A missing list parses as an empty one; a record without input_ids is not ours.
            names = schema.COMPACT_FEATURES if masked else schema.COMPACT_UNMASKED_FEATURES
            check = tf.debugging.Assert(tf.reduce_all(row_lengths > 0), [
                "a record has no 'input_ids' feature (or an empty one); compact records "
                f"hold {', '.join(names)}"])
            with tf.control_dependencies([check]):
                # Cast the values before padding: half the bytes to move.
                ids = ids.with_flat_values(tf.cast(ids.flat_values, tf.int32))
                ids = ids.to_tensor(default_value=0)
            positions = tf.range(tf.shape(ids)[1], dtype=tf.int32)[tf.newaxis]
            lengths = tf.cast(row_lengths, tf.int32)[:, tf.newaxis]
            mask = tf.cast(positions < lengths, tf.int32)
            # Segment 0 up to and including the first [SEP], 1 after it, 0 on padding.
            is_sep = tf.cast(ids == SPECIAL_IDS.sep, tf.int8)
            first_sep = tf.argmax(is_sep, axis=1, output_type=tf.int32)
            # A row without [SEP] (not this package's layout) is all segment 0.
            first_sep = tf.where(tf.reduce_max(is_sep, axis=1) > 0, first_sep,
                                 tf.shape(ids)[1])[:, tf.newaxis]
            segments = tf.cast((positions > first_sep) & (positions < lengths), tf.int32)
            out.update({schema.INPUT_IDS: ids, schema.INPUT_MASK: mask,
                        schema.SEGMENT_IDS: segments})
            if masked:
                pos = parsed[schema.MASKED_LM_POSITIONS]
                out[schema.MASKED_LM_WEIGHTS] = tf.sequence_mask(
                    pos.row_lengths(), num_preds, dtype=tf.float32)
                shape = tf.stack([pos.nrows(), num_preds])
                out[schema.MASKED_LM_POSITIONS] = tf.cast(
                    pos.to_tensor(default_value=0, shape=shape), tf.int32)
                out[schema.MASKED_LM_IDS] = tf.cast(parsed[schema.MASKED_LM_IDS].to_tensor(
                    default_value=0, shape=shape), tf.int32)
        else:
            for name in (schema.INPUT_IDS, schema.INPUT_MASK, schema.SEGMENT_IDS,
                         schema.MASKED_LM_POSITIONS, schema.MASKED_LM_IDS):
                out[name] = tf.cast(parsed[name], tf.int32)
            out[schema.MASKED_LM_WEIGHTS] = parsed[schema.MASKED_LM_WEIGHTS]
        return out

    return decode


def _make_shape_fn(lengths, seq_len, num_preds, *, static, batch, dynamic_masking):
    """A decoded batch -> (features, labels) padded or trimmed to the batch's length."""
    from bertdata import dynamic_masking as dm

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
                ids, mask, num_preds=num_preds, seeds=seeds, **dynamic_masking)
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
        return features, labels

    return shape
