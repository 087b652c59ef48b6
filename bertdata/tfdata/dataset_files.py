"""A dataset's files as TensorFlow reads them: the parse spec of each record format, the
shards a pattern names and their checked metadata.json, local or on any tf.io.gfile
filesystem (gs://, ...)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import tensorflow as tf

from bertcommon.files import read_json
from bertdata import schema


def parse_spec(record_format: str, *, max_seq_length: int | None = None,
               max_predictions_per_seq: int | None = None, masked: bool = True) -> dict:
    """The `tf.io.parse_example` spec for a format; the input function uses exactly this."""
    if record_format == "compact":
        names = schema.COMPACT_FEATURES if masked else schema.COMPACT_UNMASKED_FEATURES
        spec = {n: tf.io.RaggedFeature(tf.int64, row_splits_dtype=tf.int32) for n in names}
        spec[schema.NEXT_SENTENCE_LABELS] = tf.io.FixedLenFeature([1], tf.int64)
        return spec
    if record_format == "padded":
        if not max_seq_length or not max_predictions_per_seq:
            raise ValueError("padded records need max_seq_length and max_predictions_per_seq")
        seq, predictions = max_seq_length, max_predictions_per_seq
        lengths = {schema.INPUT_IDS: seq, schema.INPUT_MASK: seq, schema.SEGMENT_IDS: seq,
                   schema.MASKED_LM_POSITIONS: predictions, schema.MASKED_LM_IDS: predictions,
                   schema.MASKED_LM_WEIGHTS: predictions, schema.NEXT_SENTENCE_LABELS: 1}
        return {name: tf.io.FixedLenFeature(
            [n], tf.float32 if name == schema.MASKED_LM_WEIGHTS else tf.int64)
            for name, n in lengths.items()}
    raise ValueError(f"record_format must be one of {schema.RECORD_FORMATS}, got {record_format!r}")



def read_metadata(directory: str) -> schema.DatasetMetadata | None:
    """Reads and checks DIR/metadata.json; None when there is none (plain TFRecords)."""
    path = os.path.join(directory, schema.METADATA_FILE)
    if not tf.io.gfile.exists(path):
        return None
    return schema.DatasetMetadata.from_json(read_json(path, opener=tf.io.gfile.GFile), path)


def list_files(file_pattern: str | Sequence[str]) -> list[str]:
    """Expands globs (or a dataset directory, meaning its train shards) into sorted files."""
    patterns = [file_pattern] if isinstance(file_pattern, str) else list(file_pattern)
    files = []
    for pattern in patterns:
        if tf.io.gfile.isdir(pattern):
            pattern = os.path.join(pattern, schema.shard_glob(schema.TRAIN))
        matched = [f for f in tf.io.gfile.glob(pattern)
                   if os.path.basename(f) not in (schema.METADATA_FILE, schema.STATS_FILE)]
        if not matched:
            raise ValueError(f"file pattern {pattern!r} matches no file")
        files.extend(matched)
    return sorted(set(files))


def dataset_metadata(
        files_or_pattern: str | Sequence[str]) -> tuple[list[str], schema.DatasetMetadata | None]:
    """The files a pattern (glob, list of globs or dataset directory) names, and the
    validated metadata.json of their directory (None when there is none, or when the files
    come from several directories)."""
    files = list_files(files_or_pattern)
    directories = {os.path.dirname(f) for f in files}
    meta = read_metadata(directories.pop()) if len(directories) == 1 else None
    return files, meta
