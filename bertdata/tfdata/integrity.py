"""Reading TFRecord files in chunks while checking that each one was read whole.

TensorFlow's own read error does not say which file failed, and a file cut at a record
boundary reads without any error at all. So each file is read with its errors caught, and
at its end the reader checks, naming the file:
  * a TFRecord file consumed exactly its size in bytes (records plus 16 bytes of framing
    each);
  * a GZIP file gave the uncompressed size its gzip trailer records (the last 4 bytes,
    mod 2**32). A file of several concatenated gzip streams disagrees with its trailer
    without being damaged, so a disagreement is confirmed by decompressing the whole file
    in Python before it counts as corrupt;
  * when metadata.json gives the shard's record count, exactly that many records were read.
"""

from __future__ import annotations

import gzip
import re
import sys
import zlib

import numpy as np
import tensorflow as tf

# Records are read from each file in chunks of this many, so per-file bookkeeping (and the
# checks above) costs one op per chunk, not per record.
READ_CHUNK = 256
_TFRECORD_FRAMING_BYTES = 16  # length (8) + length crc (4) + data crc (4)


def read_checked_chunks(path, size, expected_records, file_index, compression: str,
                        skip_corrupt: bool) -> tf.data.Dataset:
    """One file's records as (chunk of up to READ_CHUNK records, file_index) elements.

    Args:
      path, size: the file and its size in bytes (scalar tensors).
      expected_records: its record count from metadata.json, or -1 when unknown.
      file_index: carried with every chunk so later stages can name the file.
      compression: "" or "GZIP" (TensorFlow's spelling).
      skip_corrupt: log and skip the unreadable rest of a damaged file instead of failing.
    """
    records = tf.data.TFRecordDataset(path, compression_type=compression or None,
                                      buffer_size=1 << 20)
    chunks = records.ignore_errors().batch(READ_CHUNK)
    # An empty chunk never comes from batch(); it marks the end of the file.
    chunks = chunks.concatenate(tf.data.Dataset.from_tensors(tf.zeros([0], tf.string)))
    bytes_complete = _bytes_check(path, size, compression)
    what = "GZIP TFRecord file " if compression == "GZIP" else "TFRecord file "

    def check(state, chunk):
        consumed, count = state
        n = tf.size(chunk, out_type=tf.int64)
        consumed += (tf.reduce_sum(tf.cast(tf.strings.length(chunk), tf.int64))
                     + _TFRECORD_FRAMING_BYTES * n)
        count += n
        at_end = tf.equal(n, 0)
        whole = tf.cond(at_end, lambda: bytes_complete(consumed), lambda: tf.constant(True))
        counted = tf.logical_or(tf.logical_not(at_end), tf.logical_or(
            expected_records < 0, tf.equal(count, expected_records)))
        message = tf.cond(whole, lambda: _count_message(path, count, expected_records),
                          lambda: _truncation_message(what, path, consumed, size))
        ok = tf.logical_and(whole, counted)
        if skip_corrupt:
            def warn():
                op = tf.print("bertdata: skipped the unreadable rest of", message,
                              output_stream=sys.stderr)
                with tf.control_dependencies([op]):
                    return tf.constant(False)

            flag = tf.cond(ok, lambda: tf.constant(True), warn)
            deps = [flag]
        else:
            deps = [tf.debugging.Assert(ok, [message])]
        with tf.control_dependencies(deps):
            return (consumed, count), (tf.identity(chunk), file_index)

    start = (tf.constant(0, tf.int64), tf.constant(0, tf.int64))
    return chunks.scan(start, check)


def _truncation_message(what, path, consumed, size):
    return tf.strings.join([
        "corrupt or truncated ", what, path, ": read ", tf.strings.as_string(consumed),
        " bytes of records (framing included) before it failed; its size is ",
        tf.strings.as_string(size), " bytes"])


def _count_message(path, count, expected):
    return tf.strings.join([
        "TFRecord file ", path, " holds ", tf.strings.as_string(count), " records but "
        "metadata.json says ", tf.strings.as_string(expected), " (a truncated or replaced "
        "shard)"])


def _bytes_check(path, size, compression: str):
    """A function of the bytes consumed: True when the whole file was read."""
    if compression != "GZIP":
        return lambda consumed: tf.equal(consumed, size)
    trailer = _gzip_trailer_size(path, size)

    def complete(consumed):
        fast = tf.equal(consumed % (1 << 32), trailer)
        return tf.cond(fast, lambda: tf.constant(True), lambda: tf.numpy_function(
            _gzip_length_is, [path, consumed], tf.bool, stateful=False))

    return complete


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


def read_error_message(error: BaseException) -> str | None:
    """One line for a dataset integrity failure met while reading (the checks above and the
    input function's record checks fail as a TensorFlow assertion naming the file; TFRecord
    and gzip readers raise DataLossError), or None for any other error."""
    text = getattr(error, "message", None)
    if not isinstance(error, tf.errors.OpError) or not text:
        return None
    found = re.search(r"assertion failed: \[(.+?)\]", text)
    if found:
        return found.group(1)
    if isinstance(error, tf.errors.DataLossError):
        # TensorFlow's reader names no file: "{{function_node ...}} truncated record at N'
        # failed with ... [Op:...]" keeps only its own words.
        line = re.sub(r"\{\{.*?\}\}|\[Op:.*", "", text.strip().splitlines()[0])
        return f"a damaged TFRecord file: {line.strip()}"
    return None
