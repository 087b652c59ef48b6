"""Fine-tuning: TSV input, its errors, and whether pretraining helps."""

import pytest

from bertmodel import finetune
from bertmodel.tasks import classifier
from bertmodel.tasks.tsv import read_tsv
from tests.finetune_helpers import finetune_tiny_run


@pytest.mark.parametrize("train,dev,message", [
    ("a\tx\nb\n", "a\tx\n", "train.tsv:2: expected 2 tab-separated columns"),
    ("a\tx\nb\ty\tz\n", "a\tx\n", "train.tsv:2: expected 2 tab-separated columns"),
    ("", "a\tx\n", "--train {train}: no examples"),
    ("a\tx\na\ty\n", "a\tx\n", "only one label ('a')"),
    ("a\tx\nb\ty\n", "a\tx\n\nc\tz\n", "dev.tsv:3: label 'c' does not occur in"),
    ("a\tx\nb\ty\n", "a\tx\tw\n", "differ: one holds sentence pairs"),
    ("a\tx\n\tyy\n", "a\tx\n", "train.tsv:2: an empty label or text"),
])
def test_bad_tsv_files_are_errors_naming_their_line(tmp_path, capsys, train, dev,
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
    config = classifier.FinetuneSettings(model_dir="m", train="t", eval="e", output_dir="o",
                                     warmup_percent=percent)
    schedule = classifier.learning_rate_schedule(config, steps=70, peak=1e-3)
    assert (schedule.warmup_steps, schedule.total_steps) == (warmup, 70)
    assert float(schedule(warmup)) == pytest.approx(1e-3)  # the peak, where warm-up ends


def test_a_warm_up_beyond_all_the_steps_is_refused_naming_the_flag(tmp_path, capsys):
    code = finetune.main([f"--model_dir={tmp_path}", "--train=t.tsv", "--eval=e.tsv",
                          f"--output_dir={tmp_path / 'o'}", "--warmup_percent=101"])
    assert code == 2
    assert capsys.readouterr().err == "error: --warmup_percent must be in [0, 100], got 101\n"


def test_blank_lines_are_counted_as_skipped(tmp_path):
    (tmp_path / "t.tsv").write_text("a\tx\n\n  \nb\ty\n", encoding="utf-8")
    examples = read_tsv(str(tmp_path / "t.tsv"), "--train")
    assert examples.labels == ["a", "b"] and examples.lines == [1, 4]
    assert examples.skipped_blank == 2


def test_a_byte_order_mark_is_not_part_of_the_first_label(tmp_path):
    (tmp_path / "t.tsv").write_text("\ufeff헌법\tx\n헌법\ty\n", encoding="utf-8")
    assert read_tsv(str(tmp_path / "t.tsv"), "--train").labels == ["헌법", "헌법"]


def test_a_header_row_is_skipped_not_read_as_a_label(tmp_path):
    (tmp_path / "t.tsv").write_text("label\ttext\na\tx\nb\ty\n", encoding="utf-8")
    examples = read_tsv(str(tmp_path / "t.tsv"), "--train")
    assert examples.labels == ["a", "b"] and examples.header == "label\ttext"
    assert examples.lines == [2, 3]


def test_the_bag_of_words_baseline_learns_words_that_decide_the_label():
    from bertmodel.tasks.bag_of_words import NaiveBayes

    good = ["정말 재밌다", "최고의 영화", "재밌고 감동", "배우 연기 최고", "또 보고 싶다 재밌다"]
    bad = ["정말 지루하다", "최악의 영화", "지루하고 졸림", "연기 최악", "돈 아깝다 지루하다"]
    model = NaiveBayes(2).fit(good + bad, [1] * 5 + [0] * 5)
    assert model.predict(["재밌다 최고", "지루하다 최악", "감동 재밌고"]).tolist() == [1, 0, 1]


def test_a_file_as_output_dir_is_refused_before_training(tiny_run, tmp_path, capsys):
    run, tsv = tiny_run
    (tmp_path / "file").write_text("")
    assert finetune_tiny_run(run, tsv, tmp_path / "file") == 2
    err = capsys.readouterr().err.strip()
    assert "is a file" in err and len(err.splitlines()) == 1 and "epoch" not in err


def test_a_run_with_a_damaged_tokenizer_is_refused_in_one_line(tiny_run, tmp_path, capsys):
    run, tsv = tiny_run
    (run / "tokenizer.model").write_bytes(b"not a SentencePiece model")
    assert finetune_tiny_run(run, tsv, tmp_path / "out") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "tokenizer.model" in err and "epoch" not in err
