import json

import pytest

from bertdata import schema
from bertdata.schema import Compression


def test_metadata_validation_names_the_problem():
    good = {"metadata_version": 1, "record_format": "compact", "masking": "static",
            "compression": "", "max_seq_length": 128, "max_predictions_per_seq": 20,
            "vocab_size": 100, "special_ids": {}, "tokenizer": {"sha256": "x"},
            "splits": {}, "seed": 1, "next_sentence_labels": schema.NSP_LABEL_CONVENTION}
    assert schema.validate_metadata(dict(good)) == good
    with pytest.raises(ValueError, match="m.json: invalid metadata: missing 'seed'"):
        schema.validate_metadata({k: v for k, v in good.items() if k != "seed"}, "m.json")
    with pytest.raises(ValueError, match="record_format 'other'"):
        schema.validate_metadata({**good, "record_format": "other"})




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


def test_dataset_metadata_finds_the_files_and_their_shard_counts(tmp_path):
    names = [schema.shard_name(s, i, 2, Compression.NONE) for s in schema.SPLITS
             for i in range(2)]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    meta = {"metadata_version": 1, "record_format": "compact", "masking": "static",
            "compression": "", "max_seq_length": 16, "max_predictions_per_seq": 2,
            "vocab_size": 10, "special_ids": {}, "tokenizer": {"sha256": "x"}, "seed": 1,
            "next_sentence_labels": schema.NSP_LABEL_CONVENTION,
            "splits": {"train": {"num_examples": 5, "shards": {names[0]: 2, names[1]: 3}}}}
    (tmp_path / schema.METADATA_FILE).write_text(json.dumps(meta))
    files, got = schema.dataset_metadata(str(tmp_path))  # a directory means its train shards
    assert [f.rsplit("/", 1)[1] for f in files] == names[:2]
    assert got == meta
    assert [schema.expected_records(got, f) for f in files] == [2, 3]
    eval_files, _ = schema.dataset_metadata(str(tmp_path / "eval-*"))
    assert len(eval_files) == 2 and schema.expected_records(got, eval_files[0]) is None
    with pytest.raises(ValueError, match="matches no file"):
        schema.dataset_metadata(str(tmp_path / "nothing-*"))
