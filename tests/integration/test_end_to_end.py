"""The README's main command (bertpipe.end_to_end) at a small size."""

import json
import os
import pathlib

from bertdata.tfdata import dataset_files
from bertpipe import end_to_end


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
    meta = dataset_files.read_metadata(str(work / "data"))
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
