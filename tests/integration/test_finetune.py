"""Fine-tuning: TSV input, its errors, and whether pretraining helps."""

import json
import os

import pytest

from tests.finetune_helpers import finetune_tiny_run


def test_pretraining_helps_the_classifier(finetuned):
    pretrained, scratch = (json.loads((finetuned[k] / "results.json").read_text())
                           for k in ("pretrained", "scratch"))
    assert pretrained["from_scratch"] is False and scratch["from_scratch"] is True
    assert pretrained["num_labels"] == scratch["num_labels"] == 8
    train_lines = (finetuned["pretrained"].parent / "train.tsv").read_text().count("\n")
    assert pretrained["train_examples"] == scratch["train_examples"] == train_lines
    assert pretrained["eval_accuracy"] > scratch["eval_accuracy"]
    assert pretrained["eval_macro_f1"] > scratch["eval_macro_f1"]
    # Both were scored every epoch and kept their best epoch.
    best = max(e["eval_accuracy"] for e in pretrained["epochs"])
    assert pretrained["eval_accuracy"] == best


def test_finetune_reports_the_baseline_beside_its_results(finetuned):
    results = json.loads((finetuned["pretrained"] / "results.json").read_text())
    dev = (finetuned["pretrained"].parent / "dev.tsv").read_text().splitlines()
    labels = [line.split("\t")[0] for line in dev if line]
    majority = max(labels.count(x) for x in set(labels)) / len(labels)
    # Words tell the sample task's sources apart: better than always the largest label.
    assert majority < results["bag_of_words_accuracy"] <= 1.0
    assert 0.0 < results["bag_of_words_macro_f1"] <= 1.0


def test_a_test_file_is_scored_with_the_kept_weights(finetuned):
    """Scored on the eval file itself, the test figures are the kept epoch's eval figures."""
    results = json.loads((finetuned["pretrained"] / "results.json").read_text())
    assert results["test_examples"] == results["eval_examples"]
    assert results["test_accuracy"] == results["eval_accuracy"]
    assert results["test_bag_of_words_accuracy"] == results["bag_of_words_accuracy"]


@pytest.mark.slow
def test_a_finished_output_dir_is_replaced_only_with_overwrite(tiny_run, tmp_path, capsys):
    run, tsv = tiny_run
    out = tmp_path / "out"
    out.mkdir()
    (out / "labels.json").write_text('["old"]')
    assert finetune_tiny_run(run, tsv, out, "--no-export") == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "labels.json").read_text() == '["old"]'
    assert finetune_tiny_run(run, tsv, out, "--no-export", "--overwrite") == 0
    assert json.loads((out / "labels.json").read_text()) == ["a", "b"]


@pytest.mark.slow
def test_a_failure_while_writing_leaves_no_partial_folder(tiny_run, tmp_path, capsys,
                                                         monkeypatch):
    import tensorflow as tf

    run, tsv = tiny_run

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tf.keras.Model, "save", disk_full)
    assert finetune_tiny_run(run, tsv, tmp_path / "out") == 2
    assert "No space left on device" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp-")]


def test_a_bad_test_file_is_refused_before_any_training(tiny_run, tmp_path, capsys):
    run, tsv = tiny_run
    (tmp_path / "test.tsv").write_bytes(b"a\t\xff\xfe not text\n")
    code = finetune_tiny_run(run, tsv, tmp_path / "out", f"--test={tmp_path / 'test.tsv'}")
    err = capsys.readouterr().err.strip()
    # One line and nothing else: no epoch was logged, nothing was written.
    assert code == 2 and len(err.splitlines()) == 1 and "--test" in err, err
    assert not (tmp_path / "out").exists()
