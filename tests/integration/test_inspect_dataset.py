"""bertdata.tfdata.inspect_dataset on the shared pretraining run's dataset."""

import json
import shutil

from bertdata import schema
from bertdata.tfdata import dataset_files, inspect_dataset


def test_inspect_counts_each_shard_against_the_metadata(pipeline_run, tmp_path, capsys):
    work, _ = pipeline_run
    assert inspect_dataset.main([str(work / "data"), "--num_examples=2"]) == 0
    out = capsys.readouterr().out
    meta = dataset_files.read_metadata(str(work / "data"))
    for split in schema.SPLITS:
        for name, count in meta.splits[split].shards.items():
            assert f"{name}: {count} records (metadata.json: {count})\n" in out
    stats = json.loads((work / "data" / "stats.json").read_text())
    assert f"total: {stats['examples']} records" in out
    assert out.count("\nexample ") == 2 and "[MASK]:" in out
    # A shard cut at a record boundary reads cleanly; only the count tells.
    copy = tmp_path / "data"
    shutil.copytree(work / "data", copy)
    shard = sorted(copy.glob("train-*"))[0]
    from bertdata.wire_format import frame_records, unframe_records

    records = unframe_records(shard.read_bytes())
    shard.write_bytes(frame_records(records[:10]))
    assert inspect_dataset.main([str(copy), "--num_examples=0"]) == 1
    captured = capsys.readouterr()
    assert f"{shard.name}: 10 records (metadata.json: {len(records)}) MISMATCH" in captured.out
    assert captured.err.startswith("error: 1 shard(s) hold another record count")


def test_a_spm_model_that_did_not_make_the_records_is_one_line(sample_dataset, tmp_path,
                                                                capsys):
    from bertdata.tokenizer import train_tokenizer

    data, _ = sample_dataset
    (tmp_path / "other.txt").write_text("다른 말뭉치의 문장입니다.\n전혀 다른 글.\n" * 40,
                                        encoding="utf-8")
    other = train_tokenizer([str(tmp_path / "other.txt")], str(tmp_path / "other"), 40)
    folder = str(tmp_path)  # a folder is a tokenizer path too, when it holds one
    for model, why in ((other, f"{other}: not the tokenizer the records were made with"),
                       (f"{tmp_path}/missing.model", f"{tmp_path}/missing.model: no such file"),
                       (folder, f"{folder}: neither a .model file, a tokenizer.json, nor a "
                                "folder holding tokenizer.model or tokenizer.json")):
        assert inspect_dataset.main([data, f"--spm_model={model}", "--num_examples=1"]) == 2
        assert capsys.readouterr().err == f"error: --spm_model {why}\n"
