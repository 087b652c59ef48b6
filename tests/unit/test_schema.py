import json

import pytest

from bertdata import schema
from bertdata.schema import Compression
from bertdata.tfdata import dataset_files
from tests.example_helpers import metadata, write_metadata


def test_metadata_reads_back_what_it_wrote():
    meta = metadata(splits={"train": {"train-00000-of-00001.tfrecord": 7}}, nsp_mode="none")
    assert schema.DatasetMetadata.from_json(json.loads(json.dumps(meta.to_json()))) == meta


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("seed"), "m.json: invalid metadata: missing 'seed'"),
    (lambda d: d.update(record_format="other"), "record_format 'other'"),
    (lambda d: d.update(max_seq_length="128"), "'max_seq_length' should be int"),
    (lambda d: d.update(next_sentence_labels="0 = swapped"), "convention differs"),
    (lambda d: d.update(splits={"train": {"shards": {}}}), "splits"),
])
def test_metadata_validation_names_the_problem(change, message):
    data = metadata().to_json()
    change(data)
    with pytest.raises(ValueError, match=message):
        schema.DatasetMetadata.from_json(data, "m.json")


@pytest.mark.parametrize("compression,flag,tensorflow,suffix", [
    (Compression.NONE, "none", "", ".tfrecord"),
    (Compression.GZIP, "gzip", "GZIP", ".tfrecord.gz"),
])
def test_compression_spellings_come_from_one_enum(compression, flag, tensorflow, suffix):
    assert Compression(flag) is compression and compression.flag == flag
    assert compression.tensorflow == compression.metadata == tensorflow
    assert Compression.from_metadata(tensorflow) is compression
    name = schema.shard_name(schema.EVAL, 3, 12, compression)
    assert name == f"eval-00003-of-00012{suffix}"
    assert Compression.of_path(name) is compression and schema.split_of(name) == "eval"
    with pytest.raises(ValueError, match="'ZLIB' is not one of"):
        Compression.from_metadata("ZLIB")


def test_dataset_metadata_finds_each_shard_with_its_count(tmp_path):
    names = [schema.shard_name(s, i, 2, Compression.NONE) for s in schema.SPLITS
             for i in range(2)]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    meta = metadata(splits={"train": {names[0]: 2, names[1]: 3}})
    write_metadata(tmp_path, meta)
    files, got = dataset_files.dataset_metadata(str(tmp_path))  # a directory means its train shards
    assert [f.rsplit("/", 1)[1] for f in files] == names[:2]
    assert got == meta
    assert [got.records_in(f) for f in files] == [2, 3]
    eval_files, _ = dataset_files.dataset_metadata(str(tmp_path / "eval-*"))
    assert len(eval_files) == 2 and got.records_in(eval_files[0]) is None
    with pytest.raises(ValueError, match="matches no file"):
        dataset_files.dataset_metadata(str(tmp_path / "nothing-*"))
