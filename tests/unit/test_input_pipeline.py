import dataclasses
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

import bertdata
from bertdata import schema, wire_format
from bertdata.tfdata import dynamic_masking as dm
from bertmodel.training.devices import mirrored_strategy
from tests.example_helpers import metadata, write_metadata


def split(num_examples, shards=None):
    return schema.SplitInfo(num_examples=num_examples, num_shards=len(shards or {}),
                            shards=dict(shards or {}))


def write(directory, records, name="train-00000-of-00001.tfrecord", meta=None, splits=None,
          **fields):
    """Records in DIRECTORY/NAME and, unless META is False, a metadata.json saying they have
    32 pieces and 4 predictions at most (FIELDS replace metadata fields)."""
    os.makedirs(directory, exist_ok=True)
    with tf.io.TFRecordWriter(os.path.join(directory, name)) as w:
        for r in records:
            w.write(r)
    if meta is not False:
        m = metadata(max_seq_length=32, max_predictions_per_seq=4, **fields)
        m = dataclasses.replace(m, splits=splits or {"train": split(len(records))})
        write_metadata(directory, m)
    return str(directory)


def hand_records():
    a = wire_format.serialize_compact([5, 10, 11, 4, 12, 4], [2], [11], 1)  # 6 tokens
    b = wire_format.serialize_compact([5, 13, 14, 15, 16, 4, 17, 18, 19, 20, 4], [1, 7], [13, 18],
                                 0)  # 11 tokens
    return [a, b]


def test_batches_hold_exactly_the_records_padded(tmp_path):
    d = write(tmp_path / "d", hand_records())
    features, labels = next(iter(bertdata.make_dataset(d, 2, is_training=False)))
    assert features["input_ids"].shape == (2, 16)  # longest 11 rounded up to 8
    assert features["input_ids"][0].numpy().tolist() == [5, 10, 11, 4, 12, 4] + [0] * 10
    assert features["input_mask"].numpy().sum(1).tolist() == [6, 11]
    assert features["segment_ids"][0].numpy().tolist() == [0, 0, 0, 0, 1, 1] + [0] * 10
    assert features["segment_ids"][1].numpy().tolist() == [0] * 6 + [1] * 5 + [0] * 5
    assert features["masked_lm_positions"].numpy().tolist() == [[2, 0, 0, 0], [1, 7, 0, 0]]
    assert labels["masked_lm_ids"].numpy().tolist() == [[11, 0, 0, 0], [13, 18, 0, 0]]
    assert labels["masked_lm_weights"].numpy().tolist() == [[1, 0, 0, 0], [1, 1, 0, 0]]
    assert labels["next_sentence_labels"].numpy().tolist() == [1, 0]
    for t in list(features.values()) + [labels["masked_lm_ids"]]:
        assert t.dtype == tf.int32


def test_buckets_pad_a_batch_to_the_bucket_of_its_longest(tmp_path):
    d = write(tmp_path / "d", hand_records())
    ds = bertdata.make_dataset(d, 2, is_training=False, pad_to="buckets",
                               bucket_lengths=[8, 24])
    assert next(iter(ds))[0]["input_ids"].shape == (2, 24)
    one = bertdata.make_dataset(d, 1, is_training=False, pad_to="buckets",
                                bucket_lengths=[8, 24])
    assert [f["input_ids"].shape[1] for f, _ in one] == [8, 24]


def test_pad_to_max_gives_static_shapes(tmp_path):
    d = write(tmp_path / "d", hand_records())
    static = bertdata.make_dataset(d, 2, is_training=True, pad_to="max", seed=1)
    spec = static.element_spec
    assert spec[0]["input_ids"].shape == (2, 32)
    assert spec[0]["masked_lm_positions"].shape == (2, 4)
    assert spec[1]["next_sentence_labels"].shape == (2,)
    assert spec[1]["masked_lm_weights"].dtype == tf.float32


def test_element_spec_without_static_shapes(tmp_path):
    d = write(tmp_path / "d", hand_records())
    f, y = bertdata.make_dataset(d, 2, is_training=False).element_spec
    assert {k: (v.shape.as_list(), v.dtype) for k, v in f.items()} == {
        "input_ids": ([None, None], tf.int32), "input_mask": ([None, None], tf.int32),
        "segment_ids": ([None, None], tf.int32), "masked_lm_positions": ([None, 4], tf.int32)}
    assert sorted(y) == ["masked_lm_ids", "masked_lm_weights", "next_sentence_labels"]


def test_per_replica_batches_under_mirrored_strategy(tmp_path):
    if len(tf.config.list_logical_devices("CPU")) < 2:
        pytest.skip("needs two logical CPU devices (set up in conftest)")
    records = [wire_format.serialize_compact([5, 7 + i % 30, 4, 9, 4], [1], [7], i % 2)
               for i in range(64)]
    d = write(tmp_path / "d", records)
    strategy = mirrored_strategy(["/cpu:0", "/cpu:1"])
    dist = strategy.distribute_datasets_from_function(
        lambda ctx: bertdata.make_dataset(d, 16, input_context=ctx, seed=3))
    batch = next(iter(dist))
    per_replica = strategy.experimental_local_results(batch[0]["input_ids"])
    assert [t.shape[0] for t in per_replica] == [8, 8]


def test_input_context_shards_files_into_disjoint_complete_halves(tmp_path):
    d = tmp_path / "d"
    for shard in range(4):
        recs = [wire_format.serialize_compact([5, 7, 4, 100 * shard + i, 4], [], [], 0)
                for i in range(10)]
        write(d, recs, name=f"train-{shard:05d}-of-00004.tfrecord", meta=shard == 0)
    seen = []
    for pipeline in range(2):
        ctx = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline,
                                         num_replicas_in_sync=2)
        ds = bertdata.make_dataset(str(d), 8, is_training=False, input_context=ctx)
        seen.append(sorted(int(x) for f, _ in ds for x in f["input_ids"][:, 3].numpy()))
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == sorted(100 * s + i for s in range(4) for i in range(10))
    # Fewer files than pipelines: records are sharded instead.
    one = tmp_path / "one"
    write(one, [wire_format.serialize_compact([5, 7, 4, i, 4], [], [], 0) for i in range(10)])
    got = []
    for pipeline in range(2):
        ctx = tf.distribute.InputContext(2, pipeline, 2)
        ds = bertdata.make_dataset(str(one), 2, is_training=False, input_context=ctx)
        got.append([int(x) for f, _ in ds for x in f["input_ids"][:, 3].numpy()])
    assert sorted(got[0] + got[1]) == list(range(10)) and not set(got[0]) & set(got[1])


def test_seeded_order_is_deterministic(tmp_path):
    d = write(tmp_path / "d", [wire_format.serialize_compact([5, 7, 4, i, 4], [], [], 0)
                               for i in range(200)])

    def order(seed):
        ds = bertdata.make_dataset(d, 10, seed=seed, shuffle_buffer=50).take(10)
        return [int(x) for f, _ in ds for x in f["input_ids"][:, 3].numpy()]

    assert order(1) == order(1)
    assert order(1) != order(2)


def test_one_shuffled_epoch_is_a_permutation_that_mixes_files(tmp_path):
    d = tmp_path / "m"
    for shard in range(4):  # 4 files of 600 records, ids 1000 * shard + i
        write(d, [wire_format.serialize_compact([5, 7, 4, 1000 * shard + i, 4], [], [], 0)
                  for i in range(600)], name=f"train-{shard:05d}-of-00004.tfrecord",
              meta=shard == 0)
    ds = bertdata.make_dataset(str(d), 64, seed=3, repeat=False, drop_remainder=False)
    got = [int(x) for f, _ in ds for x in f["input_ids"][:, 3].numpy()]
    want = [1000 * shard + i for shard in range(4) for i in range(600)]
    assert sorted(got) == want  # every record once
    first = np.array(got[:64])
    assert len(set(first // 1000)) >= 2, "the first batch holds one file only"
    # Within a batch, neighbours in a file are no longer neighbours.
    assert np.mean(np.abs(np.diff(first)) == 1) < 0.2


def test_google_research_bert_records_without_metadata(tmp_path):
    recs = [wire_format.serialize_padded([5, 9, 4, 11, 4], [0, 0, 0, 1, 1], [1], [9], 1,
                                    max_seq_length=16, max_predictions_per_seq=3)] * 3
    d = write(tmp_path / "g", recs, meta=False)
    with pytest.raises(ValueError, match="record_format, max_seq_length"):
        bertdata.make_dataset(os.path.join(d, "*.tfrecord"), 3)
    ds = bertdata.make_dataset(os.path.join(d, "*.tfrecord"), 3, is_training=False,
                               record_format="padded", max_seq_length=16,
                               max_predictions_per_seq=3)
    f, y = next(iter(ds))
    assert f["input_ids"].shape == (3, 8)  # trimmed to the longest (5) rounded up to 8
    assert f["segment_ids"][0].numpy().tolist() == [0, 0, 0, 1, 1, 0, 0, 0]
    assert y["masked_lm_weights"][0].numpy().tolist() == [1, 0, 0]


def test_metadata_mismatch_names_both_values(tmp_path):
    d = write(tmp_path / "d", hand_records())
    with pytest.raises(ValueError, match="max_seq_length=64 was asked for.*max_seq_length=32"):
        bertdata.make_dataset(d, 2, max_seq_length=64)
    with pytest.raises(ValueError, match="tokenizer checksum zzz.*abc"):
        bertdata.make_dataset(d, 2, tokenizer_sha256="zzz")


def test_a_pattern_that_matches_no_file_names_it(tmp_path):
    with pytest.raises(ValueError, match="nothing-\\*.*matches no file"):
        bertdata.make_dataset(str(tmp_path / "nothing-*"), 2)


def test_records_without_the_input_features_name_the_missing_feature(tmp_path):
    wrong = wire_format.encode_example({"token_ids": [5, 4, 4], "next_sentence_labels": [0]})
    d = write(tmp_path / "w", [wrong])
    with pytest.raises(tf.errors.InvalidArgumentError, match="input_ids"):
        next(iter(bertdata.make_dataset(d, 1, is_training=False)))


def write_gzip(path, records):
    with tf.io.TFRecordWriter(str(path), "GZIP") as w:
        for r in records:
            w.write(r)


def gzip_dataset(tmp_path):
    """A GZIP dataset of 300 records whose second shard is two gzip streams back to back."""
    recs = [wire_format.serialize_compact([5, 7, 4, i, 4], [], [], 0) for i in range(300)]
    d = tmp_path / "z"
    write(d, [], name="unused", compression=schema.Compression.GZIP, splits={"train": split(300)})
    os.remove(d / "unused")
    write_gzip(d / "train-00000-of-00002.tfrecord.gz", recs[:150])
    # Two gzip streams back to back: a valid file whose trailer counts only the second.
    write_gzip(tmp_path / "a.gz", recs[150:200])
    write_gzip(tmp_path / "b.gz", recs[200:])
    (d / "train-00001-of-00002.tfrecord.gz").write_bytes(
        (tmp_path / "a.gz").read_bytes() + (tmp_path / "b.gz").read_bytes())
    return d


def test_concatenated_gzip_streams_read_whole(tmp_path):
    ds = bertdata.make_dataset(str(gzip_dataset(tmp_path)), 10, is_training=False)
    got = sorted(int(x) for f, _ in ds for x in f["input_ids"][:, 3].numpy())
    assert got == list(range(300))


def test_a_corrupt_gzip_file_is_named_or_skipped(tmp_path):
    d = gzip_dataset(tmp_path)
    bad = d / "train-00001-of-00002.tfrecord.gz"
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 3])  # truncated inside the first stream
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match="GZIP TFRecord file .*train-00001-of-00002.tfrecord.gz"):
        for _ in bertdata.make_dataset(str(d), 10, is_training=False):
            pass
    ds = bertdata.make_dataset(str(d), 10, is_training=False, skip_corrupt=True)
    n = sum(int(f["input_ids"].shape[0]) for f, _ in ds)
    assert 150 <= n < 300  # the good file and what could be read of the bad one


def test_corrupt_file_names_the_file_or_is_skipped(tmp_path):
    recs = [wire_format.serialize_compact([5, 7, 4, i, 4], [], [], 0) for i in range(50)]
    d = tmp_path / "c"
    write(d, recs, name="train-00000-of-00002.tfrecord")
    write(d, recs, name="train-00001-of-00002.tfrecord", meta=False)
    bad = d / "train-00001-of-00002.tfrecord"
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2 + 3])  # truncated mid-record
    with pytest.raises(tf.errors.InvalidArgumentError, match="train-00001-of-00002.tfrecord"):
        for _ in bertdata.make_dataset(str(d), 10, is_training=False):
            pass
    ds = bertdata.make_dataset(str(d), 10, is_training=False, skip_corrupt=True)
    n = sum(int(f["input_ids"].shape[0]) for f, _ in ds)
    assert 50 < n < 100  # the good file and the readable half of the bad one
    # A flipped byte (checksum failure) is caught the same way.
    shutil.copy(d / "train-00000-of-00002.tfrecord", bad)
    flipped = bytearray(bad.read_bytes())
    flipped[200] ^= 0xFF
    bad.write_bytes(bytes(flipped))
    with pytest.raises(tf.errors.InvalidArgumentError, match="corrupt or truncated"):
        for _ in bertdata.make_dataset(str(d), 10, is_training=False):
            pass


@pytest.fixture(scope="module")
def dynamic_records(tmp_path_factory, sample_corpus, spm_model):
    """The sample written unmasked (--masking=dynamic), and the masking options."""
    from beam_jobs import create_pretraining_data as job

    out = str(tmp_path_factory.mktemp("dynamic") / "dyn")
    job.run_from_flags(
        [f"--input={sample_corpus}", f"--output_dir={out}", f"--spm_model={spm_model}",
         "--masking=dynamic", "--dupe_factor=4", "--runner=FnApiRunner"])
    return out, dm.masking_options(spm_model)


@pytest.fixture(scope="module")
def dynamic_rows(dynamic_records):
    """Every example masked once: (ids as masked, length, positions, original ids)."""
    out, opts = dynamic_records
    rows = []
    for f, y in bertdata.make_dataset(out, 64, is_training=False, dynamic_masking=opts,
                                      seed=5):
        weights = y["masked_lm_weights"].numpy() > 0
        for i in range(f["input_ids"].shape[0]):
            rows.append((f["input_ids"].numpy()[i], int(f["input_mask"].numpy()[i].sum()),
                         f["masked_lm_positions"].numpy()[i][weights[i]],
                         y["masked_lm_ids"].numpy()[i][weights[i]]))
    return rows


def test_unmasked_records_need_the_masking_options(dynamic_records):
    out, _ = dynamic_records
    with pytest.raises(ValueError, match="unmasked"):
        bertdata.make_dataset(out, 8)


def test_dynamic_masking_takes_its_budget_of_ordinary_pieces(dynamic_rows, tokenizer):
    for _, n, p, o in dynamic_rows:
        assert len(p) <= 20 and not np.any(tokenizer.is_special[o])
        assert np.all((p > 0) & (p < n - 1))
    masked = sum(len(p) for _, _, p, _ in dynamic_rows)
    assert 0.11 < masked / sum(n - 3 for _, n, _, _ in dynamic_rows) <= 0.15


def test_dynamic_masking_chooses_whole_words(dynamic_rows, tokenizer):
    for ids, n, p, o in dynamic_rows:
        restored = ids.copy()
        restored[p] = o
        chosen = set(p.tolist())
        for q in p:  # the piece after a chosen one, if it continues the word, is chosen
            nxt = q + 1
            if nxt < n and not tokenizer.word_start[restored[nxt]] \
                    and not tokenizer.is_special[restored[nxt]]:
                assert nxt in chosen


def test_dynamic_masking_shows_80_10_10(dynamic_rows, tokenizer):
    outcome = {"mask": 0, "keep": 0, "random": 0}
    for ids, _, p, o in dynamic_rows:
        for q, t in zip(p, o, strict=True):
            got = ids[q]
            outcome["mask" if got == 6 else "keep" if got == t else "random"] += 1
            assert got == 6 or not tokenizer.is_special[got]
    total = sum(outcome.values())
    assert abs(outcome["mask"] / total - 0.8) < 0.03
    assert abs(outcome["random"] / total - 0.1) < 0.03


def test_dynamic_masking_draws_new_masks_every_epoch(dynamic_records, dynamic_rows):
    out, opts = dynamic_records
    # One repeating pipeline, one batch per epoch (no shuffling, so both batches hold the
    # same examples in the same order).
    epochs = bertdata.make_dataset(out, len(dynamic_rows), is_training=False, repeat=True,
                                   seed=5, dynamic_masking=opts).take(2)
    (f1, y1), (f2, y2) = list(epochs)
    assert f1["input_ids"].shape == f2["input_ids"].shape
    assert not np.array_equal(f1["input_ids"].numpy(), f2["input_ids"].numpy())

    def unmasked(f, y):
        ids = f["input_ids"].numpy().copy()
        w = y["masked_lm_weights"].numpy() > 0
        rows = np.nonzero(w)[0]
        ids[rows, f["masked_lm_positions"].numpy()[w]] = y["masked_lm_ids"].numpy()[w]
        return ids

    np.testing.assert_array_equal(unmasked(f1, y1), unmasked(f2, y2))


@pytest.mark.parametrize("record,message", [
    (wire_format.serialize_compact([5] + [9] * 38 + [4, 4], [1], [9], 0),
     "is longer than max_seq_length"),
    (wire_format.serialize_compact([5, 9, 9, 9, 9, 9, 4, 9, 4], [1, 2, 3, 4, 5], [9] * 5, 0),
     "has more predictions than max_predictions_per_seq"),
    (wire_format.serialize_compact([5, 9, 4, 6000, 4], [1], [9], 0),
     "holds ids beyond the vocabulary"),
])
def test_a_record_that_breaks_the_metadata_is_an_error_naming_its_file(tmp_path, record,
                                                                       message):
    good = [wire_format.serialize_compact([5, 7, 4, 8, 4], [1], [7], 0)] * 20
    d = tmp_path / "d"
    write(d, good, name="train-00000-of-00002.tfrecord",
          splits={"train": split(40)})
    write(d, good[:19] + [record], name="train-00001-of-00002.tfrecord", meta=False)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=f"train-00001-of-00002.tfrecord {message}"):
        for _ in bertdata.make_dataset(str(d), 8, is_training=False):
            pass


def test_a_shard_with_fewer_records_than_its_metadata_count_is_an_error(tmp_path):
    records = [wire_format.serialize_compact([5, 7, 4, i, 4], [], [], 0) for i in range(30)]
    d = tmp_path / "d"
    names = ["train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord"]
    write(d, records[:10], name=names[0], meta=False)
    # Cut at a record boundary: the file reads without any error of its own.
    write(d, records[10:20], name=names[1], splits={"train": split(
        30, {names[0]: 10, names[1]: 20})})
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=f"{names[1]} holds 10 records but metadata.json says 20"):
        for _ in bertdata.make_dataset(str(d), 4, is_training=False):
            pass
    write(d, records[10:30], name=names[1], meta=False)
    got = [int(x) for f, _ in bertdata.make_dataset(str(d), 4, is_training=False)
           for x in f["input_ids"][:, 3].numpy()]
    assert sorted(got) == list(range(30))


def test_a_dataset_without_records_is_an_error(tmp_path):
    d = write(tmp_path / "d", [], splits={"train": split(0)})
    with pytest.raises(ValueError, match="the dataset holds no records"):
        bertdata.make_dataset(d, 8)


def test_dynamic_masking_with_another_tokenizer_is_refused(tmp_path, sample_corpus, spm_model):
    from beam_jobs import create_pretraining_data as job
    from bertdata.tokenizer import train_tokenizer

    out = str(tmp_path / "dyn")
    job.run_from_flags(
        [f"--input={sample_corpus}", f"--output_dir={out}", f"--spm_model={spm_model}",
         "--masking=dynamic", "--max_seq_length=64", "--runner=FnApiRunner"])
    larger = train_tokenizer([sample_corpus], str(tmp_path / "larger"), 1200, num_threads=1)
    with pytest.raises(ValueError, match="has 1207 pieces, but .*metadata.json says"):
        bertdata.make_dataset(out, 8, dynamic_masking=dm.masking_options(larger))
    same_size = train_tokenizer([sample_corpus], str(tmp_path / "other"), 1000, num_threads=1,
                                normalization="identity")
    with pytest.raises(ValueError, match="not the one the records were made with"):
        bertdata.make_dataset(out, 8, dynamic_masking=dm.masking_options(same_size))


def test_keywords_give_an_options_objects_batches_or_override_it(tmp_path):
    d = write(tmp_path / "d", [wire_format.serialize_compact([5, 7, 4, i, 4], [1], [7], 0)
                               for i in range(20)])
    options = bertdata.InputSettings(is_training=False, pad_to="max")

    def batches(ds):
        return [f["input_ids"].numpy().tolist() for f, _ in ds]

    by_object = batches(bertdata.make_dataset(d, 8, options))
    assert by_object == batches(bertdata.make_dataset(d, 8, is_training=False, pad_to="max"))
    assert {len(row) for batch in by_object for row in batch} == {32}  # pad_to="max" held
    # A keyword replaces the object's field.
    first = batches(bertdata.make_dataset(d, 8, options, pad_to="longest"))[0][0]
    assert first == [5, 7, 4, 0, 4, 0, 0, 0]  # padded to 8, the multiple, not to 32
