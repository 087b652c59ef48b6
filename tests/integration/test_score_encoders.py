"""bertmodel.score_encoders and the trainer's --keep_encoder_every_steps: what pretraining
buys as it goes, scored on a task."""

import csv
import pathlib

import numpy as np
import pytest

from bertmodel import score_encoders, train
from bertpipe.sample_task import write_source_task

TINY = ["--config=tiny", "--batch_size=8", "--verbose=0", "--mixed_precision=fp32",
        "--jit_compile=false", "--no-save_outputs", "--warmup_steps=0"]


@pytest.fixture(scope="module")
def kept_run(sample_dataset, tmp_path_factory):
    data, _ = sample_dataset
    model_dir = tmp_path_factory.mktemp("kept") / "model"
    train.train_from_flags(
        [f"--tfrecords={data}", f"--model_dir={model_dir}", *TINY, "--train_steps=4",
         "--keep_encoder_every_steps=2", "--learning_rate=1e-2"])
    return model_dir


@pytest.mark.slow
def test_the_trainer_keeps_an_encoder_every_n_steps(kept_run):
    import bertmodel

    kept = score_encoders.kept_encoders(str(kept_run))
    assert [step for step, _ in kept] == [2, 4]
    weights = [bertmodel.load_encoder(f"{folder}/encoder.keras").get_weights()
               for _, folder in kept]
    assert any(not np.array_equal(a, b) for a, b in zip(*weights, strict=True))
    for _, folder in kept:  # each folder is one bertmodel.finetune reads
        kept_tokenizer = pathlib.Path(folder) / "tokenizer.model"
        assert kept_tokenizer.read_bytes() == (kept_run / "tokenizer.model").read_bytes()


@pytest.mark.slow
def test_every_kept_encoder_and_random_weights_are_scored(kept_run, tmp_path, capsys):
    train_tsv, dev_tsv = write_source_task(str(tmp_path / "task"))
    out = tmp_path / "scores"
    code = score_encoders.main([f"--model_dir={kept_run}", f"--train={train_tsv}",
                                f"--eval={dev_tsv}", f"--output_dir={out}", "--epochs=1",
                                "--batch_size=16", "--max_seq_length=64"])
    assert code == 0
    with open(out / "scores.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [0, 2, 4]
    assert all(0 <= float(r["eval_accuracy"]) <= 1 for r in rows)
    assert len({r["bag_of_words_accuracy"] for r in rows}) == 1  # one split for all
    assert (out / "scores.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out.splitlines()
    assert [line.split(",")[0] for line in printed] == ["0", "2", "4"]


def test_a_run_without_kept_encoders_is_one_line(tmp_path, capsys):
    (tmp_path / "model").mkdir()
    code = score_encoders.main([f"--model_dir={tmp_path / 'model'}", "--train=t.tsv",
                                "--eval=e.tsv", f"--output_dir={tmp_path / 'out'}"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "--keep_encoder_every_steps" in err
    assert not (tmp_path / "out").exists()
