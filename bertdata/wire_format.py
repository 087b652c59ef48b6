"""The bytes of a record: tf.train.Example's protobuf wire format and TFRecord framing.

Written with numpy and byte joins (no TensorFlow, no protobuf objects, no per-value Python
work in the batch path), which is what lets the data job serialize tens of thousands of
records per second per core. `bertdata.schema` says what the records hold; tests check these
bytes against TensorFlow's own parser and writer.
"""

from __future__ import annotations

import functools
import struct

import google_crc32c
import numpy as np

from bertdata.schema import (
    INPUT_IDS,
    INPUT_MASK,
    MASKED_LM_IDS,
    MASKED_LM_POSITIONS,
    MASKED_LM_WEIGHTS,
    NEXT_SENTENCE_LABELS,
    RECORD_FORMATS,
    SEGMENT_IDS,
)

# Ids, positions, labels and most lengths are below this; their varints come from a table.
_VARINT_TABLE_SIZE = 1 << 16


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


@functools.cache
def _varint_table() -> dict[int, bytes]:
    """Varints of 0 .. 65,535, built on first use (keeps importing this module cheap).

    A dict rather than a list: a negative value must miss (KeyError), not wrap around.
    """
    return {i: _varint(i) for i in range(_VARINT_TABLE_SIZE)}


def _packed_varints(values) -> bytes:
    """Protobuf varint encoding of non-negative integers.

    One dict lookup per value is several times faster than building the bytes with numpy or
    with protobuf message objects. A value outside the table (negative, or large) takes the
    checked slow path.
    """
    table = _varint_table()
    vals = values.tolist() if isinstance(values, np.ndarray) else list(values)
    try:
        return b"".join([table[v] for v in vals])
    except KeyError:
        pass
    if vals and min(vals) < 0:
        raise ValueError(f"negative value {min(vals)} is not a valid id, position or label")
    return b"".join([_varint(int(v)) for v in vals])


def _length_delimited(tag: bytes, payload: bytes) -> bytes:
    n = len(payload)
    return tag + (_varint_table()[n] if n < _VARINT_TABLE_SIZE else _varint(n)) + payload


def _int64_feature_packed(packed: bytes) -> bytes:
    # Feature{int64_list(3): Int64List{value(1): packed}}
    return _length_delimited(b"\x1a", _length_delimited(b"\x0a", packed))


def _float_feature(values) -> bytes:
    # Feature{float_list(2): FloatList{value(1): packed fixed32}}
    payload = np.asarray(values, dtype="<f4").tobytes()
    return _length_delimited(b"\x12", _length_delimited(b"\x0a", payload))


@functools.cache
def _map_key(name: str) -> bytes:
    return _length_delimited(b"\x0a", name.encode())


def _map_entry(name: str, feature: bytes) -> bytes:
    # Features.feature(1) map entry {key(1): name, value(2): Feature}
    return _length_delimited(b"\x0a", _map_key(name) + _length_delimited(b"\x12", feature))


def encode_example(int_features: dict, float_features: dict | None = None) -> bytes:
    """Serializes a tf.train.Example; features are written in the order given."""
    entries = [_map_entry(k, _int64_feature_packed(_packed_varints(v)))
               for k, v in int_features.items()]
    for k, v in (float_features or {}).items():
        entries.append(_map_entry(k, _float_feature(v)))
    return _length_delimited(b"\x0a", b"".join(entries))


# ---- the two record formats ----------------------------------------------------------------

def serialize_compact(input_ids, masked_lm_positions, masked_lm_ids,
                      next_sentence_label: int, *, masked: bool = True) -> bytes:
    """A compact record: lists unpadded; mask, weights and segments are derived on reading.

    input_ids must be laid out as [CLS] A [SEP] B [SEP] with no other [SEP] (masking never
    inserts one). With masked=False (dynamic masking) the masked_lm_* features are left out.
    """
    feats = {INPUT_IDS: input_ids}
    if masked:
        feats[MASKED_LM_POSITIONS] = masked_lm_positions
        feats[MASKED_LM_IDS] = masked_lm_ids
    feats[NEXT_SENTENCE_LABELS] = (next_sentence_label,)
    return encode_example(feats)


def serialize_padded(input_ids, segment_ids, masked_lm_positions, masked_lm_ids,
                     next_sentence_label: int, *, max_seq_length: int,
                     max_predictions_per_seq: int) -> bytes:
    """google-research/bert's layout: every list zero-padded to its fixed length."""
    n, p = len(input_ids), len(masked_lm_positions)
    if n > max_seq_length or p > max_predictions_per_seq:
        raise ValueError(f"example of {n} tokens / {p} predictions exceeds "
                         f"{max_seq_length} / {max_predictions_per_seq}")

    def pad(x, size):
        out = np.zeros(size, dtype=np.int64)
        out[:len(x)] = x
        return out

    weights = np.zeros(max_predictions_per_seq, dtype=np.float32)
    weights[:p] = 1.0
    mask = np.zeros(max_seq_length, dtype=np.int64)
    mask[:n] = 1
    return encode_example(
        {
            INPUT_IDS: pad(input_ids, max_seq_length),
            INPUT_MASK: mask,
            SEGMENT_IDS: pad(segment_ids, max_seq_length),
            MASKED_LM_POSITIONS: pad(masked_lm_positions, max_predictions_per_seq),
            MASKED_LM_IDS: pad(masked_lm_ids, max_predictions_per_seq),
            NEXT_SENTENCE_LABELS: (next_sentence_label,),
        },
        {MASKED_LM_WEIGHTS: weights},
    )


def serialize_instance(instance, record_format: str, *, masked: bool, max_seq_length: int,
                       max_predictions_per_seq: int) -> bytes:
    """Serializes a `bertdata.pretraining.Instance` in the given format."""
    if record_format == "compact":
        return serialize_compact(instance.input_ids, instance.masked_lm_positions,
                                 instance.masked_lm_ids, instance.next_sentence_label,
                                 masked=masked)
    if record_format == "padded":
        return serialize_padded(instance.input_ids, instance.segment_ids,
                                instance.masked_lm_positions, instance.masked_lm_ids,
                                instance.next_sentence_label, max_seq_length=max_seq_length,
                                max_predictions_per_seq=max_predictions_per_seq)
    raise ValueError(f"record_format must be one of {RECORD_FORMATS}, got {record_format!r}")


def _varint_rows(matrix: np.ndarray, counts: np.ndarray) -> tuple[bytes, list[int]]:
    """Packed varints of the first counts[i] values of each row, for all rows at once.

    Returns the bytes of every row back to back and the n + 1 offsets of the rows in them.
    """
    width = matrix.shape[1]
    vals = matrix[np.arange(width) < counts[:, None]].astype(np.int64)
    if len(vals) and vals.min() < 0:
        raise ValueError(f"negative value {vals.min()} is not a valid id, position or label")
    if len(vals) and vals.max() >= 1 << 35:
        raise ValueError(f"value {vals.max()} is too large for a token id or position")
    nbytes = np.ones(len(vals), dtype=np.int64)
    for bits in (7, 14, 21, 28):
        nbytes += vals >= 1 << bits
    ends = np.cumsum(nbytes)
    out = np.empty(int(ends[-1]) if len(ends) else 0, dtype=np.uint8)
    at = ends - nbytes
    for k in range(int(nbytes.max(initial=0))):
        sel = nbytes > k
        more = (nbytes[sel] > k + 1).astype(np.int64) << 7
        out[at[sel] + k] = ((vals[sel] >> (7 * k)) & 0x7F) | more
    value_ends = np.concatenate([[0], ends])
    row_ends = np.concatenate([[0], np.cumsum(counts)])
    return out.tobytes(), value_ends[row_ends].tolist()


@functools.cache
def _int64_entry_header(name: str, packed_len: int) -> bytes:
    """The bytes of an int64 feature's map entry that come before its packed values."""
    entry = _map_entry(name, _int64_feature_packed(b"\0" * packed_len))
    return entry[:len(entry) - packed_len]


@functools.cache
def _label_entry(label: int) -> bytes:
    """The whole next_sentence_labels map entry for one label value."""
    return _map_entry(NEXT_SENTENCE_LABELS, _int64_feature_packed(_packed_varints((label,))))


def serialize_compact_batch(input_ids, lengths, masked_lm_positions, masked_lm_ids,
                            num_masked, next_sentence_labels, *, masked: bool = True
                            ) -> list[bytes]:
    """`serialize_compact` for many examples at once, from padded arrays.

    Row i holds input_ids[i, :lengths[i]], masked_lm_positions[i, :num_masked[i]] and so on.
    The varints of every value are built with a few numpy operations over the whole batch;
    what is left per record is joining a handful of byte strings. The bytes are identical to
    `serialize_compact`'s.
    """
    ids_bytes, ids_at = _varint_rows(np.asarray(input_ids), np.asarray(lengths))
    features = [(INPUT_IDS, ids_bytes, ids_at)]
    if masked:
        counts = np.asarray(num_masked)
        pos_bytes, pos_at = _varint_rows(np.asarray(masked_lm_positions), counts)
        lab_bytes, lab_at = _varint_rows(np.asarray(masked_lm_ids), counts)
        features += [(MASKED_LM_POSITIONS, pos_bytes, pos_at),
                     (MASKED_LM_IDS, lab_bytes, lab_at)]
    out = []
    for i, label in enumerate(np.asarray(next_sentence_labels).tolist()):
        parts = []
        for name, data, at in features:
            values = data[at[i]:at[i + 1]]
            parts.append(_int64_entry_header(name, len(values)))
            parts.append(values)
        parts.append(_label_entry(label))
        out.append(_length_delimited(b"\x0a", b"".join(parts)))
    return out


# ---- TFRecord framing ----------------------------------------------------------------------

def _masked_crc(data: bytes) -> bytes:
    crc = google_crc32c.value(data)
    return struct.pack("<I", (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF)


@functools.lru_cache(maxsize=1 << 16)
def _frame_header(n: int) -> bytes:
    """A record's length and the length's CRC: the 12 bytes before its data."""
    length = struct.pack("<Q", n)
    return length + _masked_crc(length)


def frame_records(records) -> bytes:
    """Records in the TFRecord file format (length, CRCs, data), back to back.

    Files are concatenations of such frames, so a writer can emit many records as one blob.
    """
    parts = []
    for rec in records:
        parts.append(_frame_header(len(rec)))
        parts.append(rec)
        parts.append(_masked_crc(rec))
    return b"".join(parts)


def count_framed_records(blob: bytes) -> int:
    """How many records a `frame_records` blob holds (reads the lengths only)."""
    count = at = 0
    while at < len(blob):
        at += 16 + struct.unpack_from("<Q", blob, at)[0]
        count += 1
    if at != len(blob):
        raise ValueError("truncated TFRecord blob")
    return count


def split_framed(blob: bytes) -> list[bytes]:
    """A `frame_records` blob cut into its framed records (each still a valid blob)."""
    out = []
    at = 0
    while at < len(blob):
        end = at + 16 + struct.unpack_from("<Q", blob, at)[0]
        out.append(blob[at:end])
        at = end
    if at != len(blob):
        raise ValueError("truncated TFRecord blob")
    return out


def unframe_records(blob: bytes) -> list[bytes]:
    """The records of a `frame_records` blob; raises ValueError on a bad length or CRC."""
    out = []
    at = 0
    while at < len(blob):
        if at + 12 > len(blob):
            raise ValueError(f"truncated TFRecord header at byte {at}")
        length = blob[at:at + 8]
        if _masked_crc(length) != blob[at + 8:at + 12]:
            raise ValueError(f"bad length CRC at byte {at}")
        n = struct.unpack("<Q", length)[0]
        data = blob[at + 12:at + 12 + n]
        if len(data) != n or _masked_crc(data) != blob[at + 12 + n:at + 16 + n]:
            raise ValueError(f"truncated or corrupt TFRecord at byte {at}")
        out.append(data)
        at += 16 + n
    return out
