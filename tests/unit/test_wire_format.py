import numpy as np
import pytest
import tensorflow as tf

from bertdata import schema, wire_format
from bertdata.tfdata import dataset_files


def parse_one(record, fmt, **kw):
    spec = dataset_files.parse_spec(fmt, **kw)
    return tf.io.parse_example(tf.constant([record]), spec)


def test_compact_round_trip_with_the_input_functions_spec():
    ids = np.array([5, 70000, 3000, 6, 4, 127, 128, 4], np.int32)  # 1-, 2- and 3-byte varints
    rec = wire_format.serialize_compact(ids, [3], [31], 1)
    parsed = parse_one(rec, "compact")
    assert parsed["input_ids"].to_list() == [ids.tolist()]
    assert parsed["masked_lm_positions"].to_list() == [[3]]
    assert parsed["masked_lm_ids"].to_list() == [[31]]
    assert parsed["next_sentence_labels"].numpy().tolist() == [[1]]
    assert "segment_ids" not in parsed  # derived on reading
    # The hand-written wire format is a valid tf.train.Example with exactly these features.
    ex = tf.train.Example.FromString(rec)
    assert sorted(ex.features.feature) == sorted(schema.COMPACT_FEATURES)
    assert list(ex.features.feature["input_ids"].int64_list.value) == ids.tolist()


def test_unmasked_compact_record_has_no_masked_lm_features():
    rec = wire_format.serialize_compact(np.array([5, 9, 4, 4]), [], [], 0, masked=False)
    ex = tf.train.Example.FromString(rec)
    assert sorted(ex.features.feature) == sorted(schema.COMPACT_UNMASKED_FEATURES)


def test_padded_record_is_google_research_bert_layout():
    rec = wire_format.serialize_padded([5, 9, 4, 11, 4], [0, 0, 0, 1, 1], [1, 3], [9, 11], 0,
                                  max_seq_length=8, max_predictions_per_seq=4)
    p = parse_one(rec, "padded", max_seq_length=8, max_predictions_per_seq=4)
    assert p["input_ids"].numpy().tolist() == [[5, 9, 4, 11, 4, 0, 0, 0]]
    assert p["input_mask"].numpy().tolist() == [[1, 1, 1, 1, 1, 0, 0, 0]]
    assert p["segment_ids"].numpy().tolist() == [[0, 0, 0, 1, 1, 0, 0, 0]]
    assert p["masked_lm_positions"].numpy().tolist() == [[1, 3, 0, 0]]
    assert p["masked_lm_ids"].numpy().tolist() == [[9, 11, 0, 0]]
    assert p["masked_lm_weights"].numpy().tolist() == [[1.0, 1.0, 0.0, 0.0]]
    assert p["next_sentence_labels"].numpy().tolist() == [[0]]
    with pytest.raises(ValueError, match="exceeds"):
        wire_format.serialize_padded(list(range(9)), [0] * 9, [], [], 0, max_seq_length=8,
                                max_predictions_per_seq=4)


def test_negative_values_are_refused():
    with pytest.raises(ValueError, match="negative"):
        wire_format.serialize_compact([5, -1, 4], [], [], 0)


def random_batch(rng, n=40, width=128, preds=20):
    ids = rng.integers(0, 70_000, (n, width)).astype(np.int32)  # 1- to 3-byte varints
    lengths = rng.integers(0, width + 1, n)
    positions = rng.integers(0, width, (n, preds)).astype(np.int32)
    labels = rng.integers(0, 300_000, (n, preds)).astype(np.int32)
    counts = rng.integers(0, preds + 1, n)
    nsp = rng.integers(0, 2, n)
    return ids, lengths, positions, labels, counts, nsp


@pytest.mark.parametrize("masked", [True, False])
def test_batch_serialization_is_byte_identical_to_one_at_a_time(masked):
    ids, lengths, positions, labels, counts, nsp = random_batch(np.random.default_rng(4))
    got = wire_format.serialize_compact_batch(ids, lengths, positions, labels, counts, nsp,
                                         masked=masked)
    want = [wire_format.serialize_compact(ids[i, :lengths[i]], positions[i, :counts[i]],
                                     labels[i, :counts[i]], int(nsp[i]), masked=masked)
            for i in range(len(ids))]
    assert got == want
    with pytest.raises(ValueError, match="negative"):
        ids[3, 0] = -2
        wire_format.serialize_compact_batch(ids, np.maximum(lengths, 1), positions, labels, counts,
                                       nsp)


FRAMED = [b"", b"x", b"\x00" * 300, bytes(range(256)) * 40]


def test_framed_records_are_a_tfrecord_file(tmp_path):
    records = FRAMED
    blob = wire_format.frame_records(records)
    path = tmp_path / "f.tfrecord"
    path.write_bytes(blob + wire_format.frame_records(records[::-1]))  # blobs simply concatenate
    read = [r.numpy() for r in tf.data.TFRecordDataset(str(path))]
    assert read == records + records[::-1]
    assert wire_format.unframe_records(blob) == records


def test_corrupt_or_truncated_frames_are_caught():
    blob = wire_format.frame_records(FRAMED)
    broken = bytearray(blob)
    broken[30] ^= 1
    with pytest.raises(ValueError, match="corrupt"):
        wire_format.unframe_records(bytes(broken))
    with pytest.raises(ValueError, match="truncated"):
        wire_format.unframe_records(blob[:-3])
