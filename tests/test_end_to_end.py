"""The README's main command at a small size, the inspect and fill-mask commands, and
training on two workers."""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from bertdata import inspect_dataset, schema
from bertpipe import end_to_end
from tests.conftest import REPO


def test_the_main_command_trains_a_model_that_beats_the_baselines(pipeline_run):
    work, summary = pipeline_run
    for key in ("model", "encoder", "export", "plots", "tokenizer", "huggingface"):
        assert os.path.exists(summary[key]), key
    assert os.listdir(summary["tensorboard_logs"])
    assert summary["eval_examples"] > 100
    # Three short epochs already predict masked pieces better than always answering the
    # most frequent one (a model stuck on unigram frequencies would not).
    baseline = summary["mlm_accuracy_most_frequent_piece_baseline"]
    assert 0.0 < baseline < 0.2 and summary["mlm_accuracy"] > baseline + 0.015
    meta = schema.read_metadata(str(work / "data"))
    assert meta.max_seq_length == 64 and meta.vocab_size == 607
    assert json.loads((work / "summary.json").read_text()) == summary


def test_the_main_command_exports_the_run_with_its_facts_for_transformers(pipeline_run):
    work, summary = pipeline_run
    hf = pathlib.Path(summary["huggingface"])
    settings = json.loads((work / "model" / "config.json").read_text())["training"]
    card = (hf / "README.md").read_text()
    assert f"{settings['total_steps']:,} steps of {settings['effective_batch_size']}" in card
    assert json.loads((hf / "config.json").read_text())["architectures"] == [
        "BertForPreTraining"]
    assert (hf / "tokenizer.model").read_bytes() == (
        work / "model" / "tokenizer.model").read_bytes()


def test_the_main_command_reports_a_missing_corpus_in_one_line(tmp_path, capsys):
    code = end_to_end.main([f"--corpus={tmp_path / 'nope.txt'}", f"--workdir={tmp_path}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == f"error: --corpus {tmp_path / 'nope.txt'}: no such file"


def test_the_sample_task_splits_each_source_by_position(tmp_path, sample_lines):
    from bertpipe import sample_task

    train, dev = sample_task.write_source_task(str(tmp_path), per_class=40)
    rows = {name: [line.split("\t") for line in
                   pathlib.Path(path).read_text(encoding="utf-8").splitlines()]
            for name, path in (("train", train), ("dev", dev))}
    labels = sorted({label for label, _ in rows["train"]})
    assert len(labels) == 8 and sorted({label for label, _ in rows["dev"]}) == labels
    index = {}  # where each line first occurs
    for i, line in enumerate(sample_lines):
        index.setdefault(line.strip(), i)
    for label in labels:
        train_at = [index[text] for lab, text in rows["train"] if lab == label]
        dev_at = [index[text] for lab, text in rows["dev"] if lab == label]
        assert 0 < len(train_at) <= 40 and 0 < len(dev_at) <= 16
        assert max(train_at) < min(dev_at)  # evaluation lines come after training lines
    assert not {text for _, text in rows["train"]} & {text for _, text in rows["dev"]}


def test_the_sample_task_refuses_another_corpus(tmp_path, capsys):
    from bertpipe import sample_task

    other = tmp_path / "other.txt"
    other.write_text("한 문장.\n\n두 문장.\n", encoding="utf-8")
    assert sample_task.main([f"--output_dir={tmp_path}", f"--corpus={other}"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: --corpus {other}: expected the bundled sample's 18 documents, found 2")
    missing = tmp_path / "missing.txt"
    assert sample_task.main([f"--output_dir={tmp_path}", f"--corpus={missing}"]) == 2
    assert capsys.readouterr().err.strip() == f"error: {missing}: No such file or directory"


def test_inspect_counts_each_shard_against_the_metadata(pipeline_run, tmp_path, capsys):
    work, _ = pipeline_run
    assert inspect_dataset.main([str(work / "data"), "--num_examples=2"]) == 0
    out = capsys.readouterr().out
    meta = schema.read_metadata(str(work / "data"))
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


def test_fill_mask_refuses_a_bad_top_k_and_a_damaged_model(pipeline_run, tmp_path, capsys):
    from bertmodel import fill_mask

    work, _ = pipeline_run
    model_dir = str(work / "model")
    assert fill_mask.main([f"--model_dir={model_dir}", "--text=[MASK]", "--top_k=-1"]) == 2
    assert capsys.readouterr().err.strip() == "error: --top_k must be at least 1, got -1"
    damaged = tmp_path / "model"
    shutil.copytree(model_dir, damaged, ignore=shutil.ignore_patterns("export", "logs"))
    data = (damaged / "model.keras").read_bytes()
    (damaged / "model.keras").write_bytes(data[:len(data) // 2])
    assert fill_mask.main([f"--model_dir={damaged}", "--text=[MASK]"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {damaged / 'model.keras'}: not a Keras model file")


def _free_ports(n):
    import socket

    socks = [socket.socket() for _ in range(n)]
    for sock in socks:
        sock.bind(("localhost", 0))
    ports = [sock.getsockname()[1] for sock in socks]
    for sock in socks:
        sock.close()
    return ports


@pytest.mark.slow
def test_two_workers_train_together_on_loopback(tmp_path, sample_dataset):
    data, _ = sample_dataset
    cluster = {"worker": [f"localhost:{p}" for p in _free_ports(2)]}
    procs = []
    for index in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster,
                                                       "task": {"type": "worker",
                                                                "index": index}})}
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "bertmodel.train", f"--tfrecords={data}",
             f"--model_dir={tmp_path / 'model'}", "--config=tiny", "--batch_size=8",
             "--epochs=2", "--steps_per_epoch=3", "--verbose=2", "--mixed_precision=fp32",
             "--strategy=multi_worker", "--no-save_outputs"], cwd=REPO, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    logs = []
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        logs.append(out)
        assert proc.returncode == 0, out[-3000:]
    for out in logs:
        assert "2 replica(s)" in out
    # One run's state, written by the chief; the workers' epoch losses agree (one global
    # batch).
    model_dir = tmp_path / "model"
    assert sorted(os.listdir(model_dir / "checkpoints")) == ["best.weights.h5", "last"]
    history = json.loads((model_dir / "history.json").read_text())
    assert len(history["loss"]) == 2
    assert not [p for p in os.listdir(model_dir) if p.startswith(".worker-")]
    losses = [[line.split("- loss: ")[1].split(" ")[0] for line in out.splitlines()
               if "- loss: " in line] for out in logs]
    assert len(losses[0]) == 2 and losses[0] == losses[1]
