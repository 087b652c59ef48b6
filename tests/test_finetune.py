"""Fine-tuning: TSV input, its errors, and whether pretraining helps."""

import json
import os
import shutil

import pytest

from bertmodel import finetune


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


@pytest.mark.parametrize("train,dev,message", [
    ("a\tx\nb\n", "a\tx\n", "train.tsv:2: expected 2 tab-separated columns"),
    ("a\tx\nb\ty\tz\n", "a\tx\n", "train.tsv:2: expected 2 tab-separated columns"),
    ("", "a\tx\n", "--train {train}: no examples"),
    ("a\tx\na\ty\n", "a\tx\n", "only one label ('a')"),
    ("a\tx\nb\ty\n", "a\tx\n\nc\tz\n", "dev.tsv:3: label 'c' does not occur in"),
    ("a\tx\nb\ty\n", "a\tx\tw\n", "differ: one holds sentence pairs"),
    ("a\tx\n\tyy\n", "a\tx\n", "train.tsv:2: an empty label or text"),
])
def test_bad_tsv_files_are_errors_naming_file_and_line(tmp_path, capsys, train, dev,
                                                       message):
    (tmp_path / "train.tsv").write_text(train, encoding="utf-8")
    (tmp_path / "dev.tsv").write_text(dev, encoding="utf-8")
    code = finetune.main([f"--model_dir={tmp_path}", f"--train={tmp_path / 'train.tsv'}",
                          f"--eval={tmp_path / 'dev.tsv'}", f"--output_dir={tmp_path / 'o'}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message.format(train=tmp_path / "train.tsv") in err
    assert "\n" not in err and not (tmp_path / "o").exists()


@pytest.mark.parametrize("percent, warmup", [(10, 7), (30, 21), (0, 1), (100, 70)])
def test_the_warm_up_takes_its_percentage_of_the_steps(percent, warmup):
    config = finetune.FinetuneConfig(model_dir="m", train="t", eval="e", output_dir="o",
                                     warmup_percent=percent)
    schedule = finetune.learning_rate_schedule(config, steps=70, peak=1e-3)
    assert (schedule.warmup_steps, schedule.total_steps) == (warmup, 70)
    assert float(schedule(warmup)) == pytest.approx(1e-3)  # the peak, where warm-up ends


def test_a_warm_up_beyond_all_the_steps_is_refused_naming_the_flag(tmp_path, capsys):
    code = finetune.main([f"--model_dir={tmp_path}", "--train=t.tsv", "--eval=e.tsv",
                          f"--output_dir={tmp_path / 'o'}", "--warmup_percent=101"])
    assert code == 2
    assert capsys.readouterr().err == "error: --warmup_percent must be in [0, 100], got 101\n"


def test_blank_lines_are_skipped_and_counted(tmp_path):
    (tmp_path / "t.tsv").write_text("a\tx\n\n  \nb\ty\n", encoding="utf-8")
    examples = finetune.read_tsv(str(tmp_path / "t.tsv"), "--train")
    assert examples.labels == ["a", "b"] and examples.lines == [1, 4]
    assert examples.skipped_blank == 2


def test_a_byte_order_mark_is_not_part_of_the_first_label(tmp_path):
    (tmp_path / "t.tsv").write_text("\ufeff헌법\tx\n헌법\ty\n", encoding="utf-8")
    assert finetune.read_tsv(str(tmp_path / "t.tsv"), "--train").labels == ["헌법", "헌법"]


def test_a_header_row_is_skipped_not_read_as_a_label(tmp_path):
    (tmp_path / "t.tsv").write_text("label\ttext\na\tx\nb\ty\n", encoding="utf-8")
    examples = finetune.read_tsv(str(tmp_path / "t.tsv"), "--train")
    assert examples.labels == ["a", "b"] and examples.header == "label\ttext"
    assert examples.lines == [2, 3]


def test_the_bag_of_words_baseline_learns_words_that_decide_the_label():
    from bertmodel.bag_of_words import NaiveBayes

    good = ["정말 재밌다", "최고의 영화", "재밌고 감동", "배우 연기 최고", "또 보고 싶다 재밌다"]
    bad = ["정말 지루하다", "최악의 영화", "지루하고 졸림", "연기 최악", "돈 아깝다 지루하다"]
    model = NaiveBayes(2).fit(good + bad, [1] * 5 + [0] * 5)
    assert model.predict(["재밌다 최고", "지루하다 최악", "감동 재밌고"]).tolist() == [1, 0, 1]


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


# ---- the output folder: checked first, written whole ---------------------------------------

@pytest.fixture
def tiny_run(tmp_path, spm_model, tokenizer, sample_lines):
    """A bertmodel.train-like folder with a tiny random encoder, and a two-label TSV."""
    import dataclasses

    from bertmodel.config import PRESETS
    from bertmodel.model import BertBackbone, dummy_inputs

    config = dataclasses.replace(PRESETS["tiny"], vocab_size=tokenizer.vocab_size)
    encoder = BertBackbone(config, name="backbone")
    encoder(dummy_inputs(config))
    run = tmp_path / "run"
    run.mkdir()
    encoder.save(str(run / "encoder.keras"))
    shutil.copyfile(spm_model, run / "tokenizer.model")
    rows = [f"{'ab'[i % 2]}\t{line}" for i, line in enumerate(sample_lines[:24]) if line]
    (tmp_path / "t.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return run, tmp_path / "t.tsv"


def _finetune(run, tsv, out, *extra):
    return finetune.main([f"--model_dir={run}", f"--train={tsv}", f"--eval={tsv}",
                          f"--output_dir={out}", "--epochs=1", "--max_seq_length=32", *extra])


@pytest.mark.slow
def test_a_finished_output_dir_is_replaced_only_with_overwrite(tiny_run, tmp_path, capsys):
    run, tsv = tiny_run
    out = tmp_path / "out"
    out.mkdir()
    (out / "labels.json").write_text('["old"]')
    assert _finetune(run, tsv, out, "--no-export") == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "labels.json").read_text() == '["old"]'
    assert _finetune(run, tsv, out, "--no-export", "--overwrite") == 0
    assert json.loads((out / "labels.json").read_text()) == ["a", "b"]


def test_a_file_as_output_dir_is_refused_before_training(tiny_run, tmp_path, capsys):
    run, tsv = tiny_run
    (tmp_path / "file").write_text("")
    assert _finetune(run, tsv, tmp_path / "file") == 2
    err = capsys.readouterr().err.strip()
    assert "is a file" in err and len(err.splitlines()) == 1 and "epoch" not in err


@pytest.mark.slow
def test_a_failure_while_writing_leaves_no_partial_folder(tiny_run, tmp_path, capsys,
                                                         monkeypatch):
    import tensorflow as tf

    run, tsv = tiny_run

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tf.keras.Model, "save", disk_full)
    assert _finetune(run, tsv, tmp_path / "out") == 2
    assert "No space left on device" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp-")]
