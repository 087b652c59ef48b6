"""The record schema: the one place that names every feature of a pretraining example.

Two record formats:
  compact (default): the variable-length lists stored unpadded; `input_mask`,
    `masked_lm_weights` and `segment_ids` are left out because the input function derives
    them (the mask and weights from the list lengths, the segments from the first [SEP]:
    0 up to and including it, 1 after). Parsing is the input function's main cost, and
    segment ids would be half of the values to parse.
  padded: google-research/bert's exact fixed-length layout (every list padded with 0 to
    max_seq_length or max_predictions_per_seq, plus input_mask and masked_lm_weights), for
    models built on that format.

Serialization writes the tf.train.Example protobuf wire format directly with numpy (no
TensorFlow, no per-value Python work), which is what lets the Beam job write tens of
thousands of records per second per core. The parse specs are built lazily with TensorFlow.
"""

from __future__ import annotations

import json
import os
import struct

import google_crc32c
import numpy as np

INPUT_IDS = "input_ids"
INPUT_MASK = "input_mask"
SEGMENT_IDS = "segment_ids"
MASKED_LM_POSITIONS = "masked_lm_positions"
MASKED_LM_IDS = "masked_lm_ids"
MASKED_LM_WEIGHTS = "masked_lm_weights"
NEXT_SENTENCE_LABELS = "next_sentence_labels"

RECORD_FORMATS = ("compact", "padded")
METADATA_FILE = "metadata.json"
STATS_FILE = "stats.json"
METADATA_VERSION = 1

# 1 = "B is NOT the true continuation of A", as in google-research/bert.
NSP_LABEL_CONVENTION = "1 = B is not the continuation of A (swapped or random); 0 = B follows A"

# Features stored per format (and per masking mode for compact records).
COMPACT_FEATURES = (INPUT_IDS, MASKED_LM_POSITIONS, MASKED_LM_IDS, NEXT_SENTENCE_LABELS)
COMPACT_UNMASKED_FEATURES = (INPUT_IDS, NEXT_SENTENCE_LABELS)
PADDED_FEATURES = (INPUT_IDS, INPUT_MASK, SEGMENT_IDS, MASKED_LM_POSITIONS, MASKED_LM_IDS,
                   MASKED_LM_WEIGHTS, NEXT_SENTENCE_LABELS)


# ---- protobuf wire format ------------------------------------------------------------------

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


_VARINT_TABLE_SIZE = 1 << 16
_varint_table: dict[int, bytes] = {}


def _filled_varint_table() -> dict[int, bytes]:
    """The varint table, built on first use (keeps importing this module cheap)."""
    if not _varint_table:
        _varint_table.update((i, _varint(i)) for i in range(_VARINT_TABLE_SIZE))
    return _varint_table


def _packed_varints(values) -> bytes:
    """Protobuf varint encoding of non-negative integers.

    Ids, positions and labels are almost always below 65,536, so their encodings come from a
    precomputed table: one dict lookup per value is several times faster than building the
    bytes with numpy or with protobuf message objects. A value outside the table (negative,
    or large) raises KeyError and takes the checked slow path.
    """
    table = _filled_varint_table()
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
    return tag + (_varint_table[n] if n < _VARINT_TABLE_SIZE and _varint_table
                  else _varint(n)) + payload


def _int64_feature(values) -> bytes:
    # Feature{int64_list(3): Int64List{value(1): packed}}
    return _length_delimited(b"\x1a", _length_delimited(b"\x0a", _packed_varints(values)))


def _float_feature(values) -> bytes:
    # Feature{float_list(2): FloatList{value(1): packed fixed32}}
    payload = np.asarray(values, dtype="<f4").tobytes()
    return _length_delimited(b"\x12", _length_delimited(b"\x0a", payload))


_MAP_KEYS = {}


def _map_entry(name: str, feature: bytes) -> bytes:
    # Features.feature(1) map entry {key(1): name, value(2): Feature}
    key = _MAP_KEYS.get(name)
    if key is None:
        key = _MAP_KEYS[name] = _length_delimited(b"\x0a", name.encode())
    return _length_delimited(b"\x0a", key + _length_delimited(b"\x12", feature))


def encode_example(int_features: dict, float_features: dict | None = None) -> bytes:
    """Serializes a tf.train.Example; features are written in the order given."""
    entries = [_map_entry(k, _int64_feature(v)) for k, v in int_features.items()]
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
    n, width = matrix.shape
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


_ENTRY_HEADERS: dict[tuple[str, int], bytes] = {}


def _int64_entry_header(name: str, packed_len: int) -> bytes:
    """The bytes of an int64 feature's map entry that come before its packed values."""
    header = _ENTRY_HEADERS.get((name, packed_len))
    if header is None:
        entry = _map_entry(name, _int64_feature_packed(b"\0" * packed_len))
        header = _ENTRY_HEADERS[(name, packed_len)] = entry[:len(entry) - packed_len]
    return header


def _int64_feature_packed(packed: bytes) -> bytes:
    return _length_delimited(b"\x1a", _length_delimited(b"\x0a", packed))


_LABEL_ENTRIES: dict[int, bytes] = {}


def _label_entry(label: int) -> bytes:
    """The whole next_sentence_labels map entry for one label value."""
    entry = _LABEL_ENTRIES.get(label)
    if entry is None:
        entry = _LABEL_ENTRIES[label] = _map_entry(NEXT_SENTENCE_LABELS,
                                                   _int64_feature((label,)))
    return entry


def serialize_compact_batch(input_ids, lengths, masked_lm_positions, masked_lm_ids,
                            num_masked, next_sentence_labels, *, masked: bool = True
                            ) -> list[bytes]:
    """`serialize_compact` for many examples at once, from padded arrays.

    Row i holds input_ids[i, :lengths[i]], masked_lm_positions[i, :num_masked[i]] and so on.
    The varints of every value are built with a few numpy operations over the whole batch;
    what is left per record is joining a handful of byte strings. The bytes are identical to
    `serialize_compact`'s.
    """
    _filled_varint_table()  # the record and entry lengths below are looked up in it
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


_LENGTH_HEADERS: dict[int, bytes] = {}


def frame_records(records) -> bytes:
    """Records in the TFRecord file format (length, CRCs, data), back to back.

    Files are concatenations of such frames, so a writer can emit many records as one blob.
    """
    parts = []
    headers = _LENGTH_HEADERS
    for rec in records:
        n = len(rec)
        header = headers.get(n)
        if header is None:
            length = struct.pack("<Q", n)
            header = length + _masked_crc(length)
            if n < 1 << 16:
                headers[n] = header
        parts.append(header)
        parts.append(rec)
        parts.append(_masked_crc(rec))
    return b"".join(parts)


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


# ---- parse specs (TensorFlow) --------------------------------------------------------------

def parse_spec(record_format: str, *, max_seq_length: int | None = None,
               max_predictions_per_seq: int | None = None, masked: bool = True) -> dict:
    """The `tf.io.parse_example` spec for a format; the input function uses exactly this."""
    import tensorflow as tf

    if record_format == "compact":
        names = COMPACT_FEATURES if masked else COMPACT_UNMASKED_FEATURES
        spec = {n: tf.io.RaggedFeature(tf.int64, row_splits_dtype=tf.int32) for n in names}
        spec[NEXT_SENTENCE_LABELS] = tf.io.FixedLenFeature([1], tf.int64)
        return spec
    if record_format == "padded":
        if not max_seq_length or not max_predictions_per_seq:
            raise ValueError("padded records need max_seq_length and max_predictions_per_seq")
        s, p = max_seq_length, max_predictions_per_seq
        return {
            INPUT_IDS: tf.io.FixedLenFeature([s], tf.int64),
            INPUT_MASK: tf.io.FixedLenFeature([s], tf.int64),
            SEGMENT_IDS: tf.io.FixedLenFeature([s], tf.int64),
            MASKED_LM_POSITIONS: tf.io.FixedLenFeature([p], tf.int64),
            MASKED_LM_IDS: tf.io.FixedLenFeature([p], tf.int64),
            MASKED_LM_WEIGHTS: tf.io.FixedLenFeature([p], tf.float32),
            NEXT_SENTENCE_LABELS: tf.io.FixedLenFeature([1], tf.int64),
        }
    raise ValueError(f"record_format must be one of {RECORD_FORMATS}, got {record_format!r}")


# ---- metadata.json -------------------------------------------------------------------------

def build_metadata(*, record_format: str, masking: str, compression: str, example_config,
                   tokenizer_sha256: str, tokenizer_path: str, vocab_size: int,
                   special_ids: dict, splits: dict, package_version: str) -> dict:
    """The description of a finished dataset that readers check before training on it."""
    cfg = example_config
    return {
        "metadata_version": METADATA_VERSION,
        "package_version": package_version,
        "record_format": record_format,
        "masking": masking,
        "compression": compression,
        "max_seq_length": cfg.max_seq_length,
        "max_predictions_per_seq": cfg.max_predictions_per_seq,
        "masked_lm_prob": cfg.masked_lm_prob,
        "short_seq_prob": cfg.short_seq_prob,
        "dupe_factor": cfg.dupe_factor,
        "nsp_mode": cfg.nsp_mode,
        "seed": cfg.seed,
        "next_sentence_labels": NSP_LABEL_CONVENTION,
        "vocab_size": vocab_size,
        "special_ids": special_ids,
        "tokenizer": {"path": tokenizer_path, "sha256": tokenizer_sha256},
        "features": list(_features_for(record_format, masking)),
        "splits": splits,
    }


def _features_for(record_format: str, masking: str):
    if record_format == "padded":
        return PADDED_FEATURES
    return COMPACT_FEATURES if masking == "static" else COMPACT_UNMASKED_FEATURES


_REQUIRED = {
    "metadata_version": int, "record_format": str, "masking": str, "compression": str,
    "max_seq_length": int, "max_predictions_per_seq": int, "vocab_size": int,
    "special_ids": dict, "tokenizer": dict, "splits": dict, "seed": int,
    "next_sentence_labels": str,
}


def validate_metadata(meta: dict, source: str = METADATA_FILE) -> dict:
    """Checks a metadata dict; raises ValueError naming the file and every problem."""
    problems = []
    for key, typ in _REQUIRED.items():
        if key not in meta:
            problems.append(f"missing {key!r}")
        elif not isinstance(meta[key], typ):
            problems.append(f"{key!r} should be {typ.__name__}, got {meta[key]!r}")
    if not problems:
        if meta["metadata_version"] != METADATA_VERSION:
            problems.append(f"metadata_version {meta['metadata_version']} is not "
                            f"{METADATA_VERSION}")
        if meta["record_format"] not in RECORD_FORMATS:
            problems.append(f"record_format {meta['record_format']!r} not in {RECORD_FORMATS}")
        if meta["masking"] not in ("static", "dynamic"):
            problems.append(f"masking {meta['masking']!r} not 'static' or 'dynamic'")
        if meta["compression"] not in ("", "GZIP"):
            problems.append(f"compression {meta['compression']!r} not '' or 'GZIP'")
        if meta["next_sentence_labels"] != NSP_LABEL_CONVENTION:
            problems.append("next_sentence_labels convention differs from this package's")
        if "sha256" not in meta["tokenizer"]:
            problems.append("tokenizer.sha256 missing")
    if problems:
        raise ValueError(f"{source}: invalid metadata: " + "; ".join(problems))
    return meta


def read_metadata(directory: str) -> dict | None:
    """Reads and validates DIR/metadata.json; None when there is none (plain TFRecords)."""
    import tensorflow as tf

    path = os.path.join(directory, METADATA_FILE)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path, "r") as f:
        try:
            meta = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from None
    return validate_metadata(meta, path)
