"""The trainer: step-level checkpoints and exact resume, outputs, checked inputs, errors."""

import dataclasses
import json
import shutil

import numpy as np
import pytest
import tensorflow as tf

from bertdata import schema
from bertdata.tfdata import dataset_files
from bertmodel import train
from bertmodel.model.bert import BertPretrainer, dummy_inputs
from bertmodel.model.config import PRESETS
from bertmodel.training import plan
from bertmodel.training.checkpoints import CheckpointError, RunState
from tests.example_helpers import write_metadata
from tests.training_helpers import TINY, cut_shard


def _tiny_state(directory):
    """A built tiny pretrainer, its optimizer and a RunState in DIRECTORY."""
    from bertmodel.model.config import BertConfig

    model = BertPretrainer(config=BertConfig(**dict(PRESETS["tiny"].to_dict(), vocab_size=50)))
    model(dummy_inputs(model.backbone.config))
    model.compile(optimizer="adam")
    model.optimizer.build(model.trainable_variables)
    return model, RunState(str(directory), model, model.optimizer)


def test_the_runs_progress_survives_a_restart(tmp_path):
    model, first = _tiny_state(tmp_path)
    first.progress.step = 7
    first.progress.history = {"loss": [3.0, 2.5]}
    first.save_best(model, 0.31)
    first.save()
    weights = [w.numpy() for w in model.weights]
    _, again = _tiny_state(tmp_path)
    assert again.restore()
    assert (again.progress.step, again.progress.history) == (7, {"loss": [3.0, 2.5]})
    assert not again.improves(0.30) and not again.improves(float("nan"))
    assert again.improves(0.32)
    restored = [w.numpy() for w in again._checkpoint.model.weights]
    assert all(np.array_equal(a, b) for a, b in zip(weights, restored, strict=True))


def test_the_encoders_dropout_state_survives_a_restart(tmp_path):
    # The blocks' dropout counters pick each step's masks: restored at 0, a resumed run
    # trained on other masks than the same run uninterrupted.
    model, first = _tiny_state(tmp_path)
    counters = [v for v in model.variables if v.path.endswith("/counter")]
    assert len(counters) == 1 + 3 * model.backbone.config.num_layers
    for i, counter in enumerate(counters):
        counter.assign(100 + i)
    first.save()
    again_model, again = _tiny_state(tmp_path)
    assert again.restore()
    restored = [int(v.numpy()) for v in again_model.variables if v.path.endswith("/counter")]
    assert restored == [100 + i for i in range(len(counters))]


def test_a_checkpoint_without_the_encoders_variables_is_refused_naming_it(tmp_path):
    # What bertpipe wrote before the dropout counters were saved: the model and the optimizer
    # only (the blocks reached it through the optimizer's slots alone).
    model, _ = _tiny_state(tmp_path / "old")
    progress = tf.Variable("{}", trainable=False)
    tf.train.CheckpointManager(
        tf.train.Checkpoint(model=model, optimizer=model.optimizer, progress=progress),
        str(tmp_path / "old" / "last"), max_to_keep=2).save(checkpoint_number=3)
    _, state = _tiny_state(tmp_path / "old")
    with pytest.raises(CheckpointError, match=r"ckpt-3 lacks variables of this model"):
        state.restore()


def _other_tokenizer(tmp_path, corpus):
    from bertdata.tokenizer import train_tokenizer

    return train_tokenizer([corpus], str(tmp_path / "other"), 900, num_threads=1)


def test_a_tokenizer_that_did_not_make_the_records_is_refused(tmp_path, sample_dataset,
                                                             sample_corpus):
    data, _ = sample_dataset
    other = _other_tokenizer(tmp_path, sample_corpus)
    with pytest.raises(train.TrainError, match=f"--spm_model {other} is not the tokenizer"):
        train.train_from_flags([f"--tfrecords={data}", f"--model_dir={tmp_path / 'm'}",
                                f"--spm_model={other}", *TINY])


def test_eval_records_of_another_tokenizer_are_refused(tmp_path, sample_dataset,
                                                       sample_corpus):
    from beam_jobs import create_pretraining_data as job

    data, _ = sample_dataset
    other = _other_tokenizer(tmp_path, sample_corpus)
    job.run_from_flags([f"--input={sample_corpus}", f"--output_dir={tmp_path / 'other'}",
                        f"--spm_model={other}", "--max_seq_length=64", "--eval_fraction=0.3",
                        "--runner=FnApiRunner"])
    with pytest.raises(train.TrainError, match="--eval_tfrecords .* has tokenizer sha256"):
        train.train_from_flags(
            [f"--tfrecords={data}", f"--eval_tfrecords={tmp_path / 'other'}/eval-*",
             f"--model_dir={tmp_path / 'm'}", *TINY])


@pytest.mark.parametrize("flag,message", [
    ("--warmup_steps=-1", "--warmup_steps must be >= 0, got -1"),
    ("--eval_steps=0", "--eval_steps must be positive, got 0"),
    ("--learning_rate=0", "--learning_rate must be positive, got 0.0"),
    ("--learning_rate=-0.1", "--learning_rate must be positive"),
    ("--gradient_accumulation_steps=0", "--gradient_accumulation_steps must be positive"),
    ("--config=galactic", "neither a preset"),
    ("--train_steps=0", "--train_steps must be positive, got 0"),
    ("--warmup_steps=1000", "--warmup_steps 1000 is more than the 10 steps of the run"),
    ("--gradient_accumulation_steps=11", "the optimizer would never update the model"),
    ("--strategy=tpu", "--strategy=tpu: no TPU found here"),
    ("--objective=gpt", "--objective"),
    ("--generator_size=0", "--generator_size must be in (0, 1], got 0.0"),
    ("--generator_size=1.5", "--generator_size must be in (0, 1], got 1.5"),
    ("--rtd_loss_weight=10", "--rtd_loss_weight apply to --objective=electra only"),
])
def test_bad_flags_are_refused_in_one_line_with_exit_2(tmp_path, sample_dataset, capsys, flag,
                                                       message):
    data, _ = sample_dataset
    code = train.main([f"--tfrecords={data}", f"--model_dir={tmp_path / 'm'}", *TINY,
                       "--steps_per_epoch=10", "--epochs=1", flag])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and message in err and "\n" not in err
    assert not (tmp_path / "m" / "model.keras").exists()


@pytest.mark.parametrize("flag, pattern, message", [
    ("--tfrecords", "eval-*", "is not one of the train shards"),
    ("--tfrecords", "*", "is not one of the train shards"),
    ("--eval_tfrecords", "train-*", "is not one of the eval shards"),
])
def test_a_glob_that_reaches_the_other_split_is_refused(tmp_path, sample_dataset, capsys,
                                                         flag, pattern, message):
    data, _ = sample_dataset
    args = {"--tfrecords": str(data), "--eval_tfrecords": f"{data}/eval-*"}
    args[flag] = f"{data}/{pattern}"
    code = train.main([f"{k}={v}" for k, v in args.items()] +
                      [f"--model_dir={tmp_path / 'm'}", *TINY])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and flag in err and len(err.splitlines()) == 1, err


def test_steps_per_epoch_count_the_shards_given(sample_dataset):
    """One shard of several is an epoch of that shard's examples, not of the split's."""
    from bertdata import schema

    data, _ = sample_dataset
    meta = dataset_files.read_metadata(str(data))
    shards = meta.splits[schema.TRAIN].shards
    first = sorted(shards)[0]
    assert plan.examples_in([f"{data}/{first}"], meta) == shards[first]
    every = dataset_files.list_files(str(data))
    assert plan.examples_in(every, meta) == meta.num_examples(schema.TRAIN)


def test_a_model_dir_that_is_a_file_or_another_models_is_refused(tmp_path, sample_dataset):
    data, _ = sample_dataset
    (tmp_path / "a_file").write_text("not a directory")
    with pytest.raises(train.TrainError, match="is a file, not a directory"):
        train.train_from_flags([f"--tfrecords={data}", f"--model_dir={tmp_path / 'a_file'}", *TINY])
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text(json.dumps({"model": {"hidden_size": 999}}))
    with pytest.raises(train.TrainError, match="holds a run of another model"):
        train.train_from_flags([f"--tfrecords={data}", f"--model_dir={tmp_path / 'm'}", *TINY])


def test_a_model_dir_of_another_objective_is_refused(tmp_path, sample_dataset):
    data, _ = sample_dataset
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text(json.dumps(
        {"training": {"objective": "electra", "generator_size": 0.25}}))
    with pytest.raises(train.TrainError, match="holds a run of another objective"):
        train.train_from_flags([f"--tfrecords={data}", f"--model_dir={tmp_path / 'm'}", *TINY])


def test_the_mlm_loss_weight_defaults_by_objective():
    from bertmodel.training.settings import TrainSettings

    common = {"tfrecords": "d", "model_dir": "m"}
    assert TrainSettings(**common).mlm_weight == 20.0
    assert TrainSettings(**common, objective="electra").mlm_weight == 1.0
    assert TrainSettings(**common, objective="electra", mlm_loss_weight=3.0).mlm_weight == 3.0


def test_a_dataset_without_examples_is_refused(tmp_path, sample_dataset):
    data, _ = sample_dataset
    empty = tmp_path / "empty"
    shutil.copytree(data, empty)
    meta = dataset_files.read_metadata(str(empty))
    shards = {name: 0 for name in meta.splits[schema.TRAIN].shards}
    split = schema.SplitInfo(num_examples=0, num_shards=len(shards), shards=shards)
    write_metadata(empty, dataclasses.replace(meta, splits={**meta.splits, schema.TRAIN: split}))
    with pytest.raises(train.TrainError, match="says the train shards given hold 0 examples"):
        train.train_from_flags([f"--tfrecords={empty}", f"--model_dir={tmp_path / 'm'}", *TINY])


def test_inspect_reports_a_damaged_shard_in_one_line(tmp_path, sample_dataset, capsys):
    from bertdata.tfdata import inspect_dataset

    data, _ = sample_dataset
    cut, _ = cut_shard(tmp_path, data)
    code = inspect_dataset.main([str(cut), "--num_examples=1"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and str(cut) in err, err


@pytest.mark.parametrize("make, message", [
    (lambda p: p.mkdir(), "no such file (a preset name or a JSON file"),
    (lambda p: p.write_text('{"hidden_size": -4}'), "hidden_size must be positive, got -4"),
    (lambda p: p.write_text("[1, 2]"), "holds a JSON list, not an object"),
])
def test_a_config_file_that_cannot_work_is_one_line_naming_it(tmp_path, sample_dataset, capsys,
                                                             make, message):
    data, _ = sample_dataset
    config = tmp_path / "config.json"
    make(config)
    code = train.main([f"--tfrecords={data}", f"--model_dir={tmp_path / 'm'}",
                       f"--config={config}"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"error: --config {config}: {message}")
    assert err.count("\n") == 1
