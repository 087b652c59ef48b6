"""The trainer: step-level checkpoints and exact resume, outputs, checked inputs, errors."""

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest
import tensorflow as tf

from bertdata import schema
from bertmodel import devices, run_plan, train
from bertmodel.callbacks import read_step_scalars
from bertmodel.checkpoints import CheckpointError, RunState
from bertmodel.config import PRESETS
from bertmodel.model import BertPretrainer, dummy_inputs
from tests.conftest import REPO
from tests.example_helpers import write_metadata

TINY = ["--config=tiny", "--batch_size=8", "--verbose=0", "--mixed_precision=fp32",
        "--jit_compile=false"]


def tensorboard_scalars(log_dir, tag):
    return [point for points in read_step_scalars(str(log_dir), tag) for point in points]


def test_a_run_writes_every_output(pipeline_run):
    model_dir = pipeline_run[0] / "model"
    for name in ("config.json", "data_metadata.json", "tokenizer.model", "history.csv",
                 "history.json", "plots.png", "model.keras", "encoder.keras",
                 "checkpoints/best.weights.h5", "export/saved_model.pb"):
        assert (model_dir / name).exists(), name


def test_a_runs_history_has_each_epoch_and_a_falling_loss(pipeline_run):
    history = json.loads((pipeline_run[0] / "model" / "history.json").read_text())
    assert len(history["loss"]) == 3 and history["mlm_loss"][-1] < history["mlm_loss"][0] - 0.5


def test_the_learning_rate_is_logged_every_n_steps_through_warm_up_and_decay(pipeline_run):
    # Step scalars every 100 steps: the learning rate climbs over the warm-up (100 steps of
    # some 640) to its 2e-3 peak, then decays.
    model_dir = pipeline_run[0] / "model"
    training = json.loads((model_dir / "config.json").read_text())["training"]
    total = training["total_steps"]
    assert training["warmup_steps"] == 100 and total == 3 * training["steps_per_epoch"]
    rates = dict(tensorboard_scalars(model_dir / "logs" / "steps", "learning_rate"))
    assert sorted(rates) == list(range(100, total + 1, 100)) and len(rates) >= 5
    assert rates[100] == pytest.approx(2e-3, rel=1e-3) and rates[200] < rates[100]


def test_tokens_per_second_count_real_tokens(pipeline_run):
    steps = pipeline_run[0] / "model" / "logs" / "steps"
    speed = tensorboard_scalars(steps, "examples_per_second")
    tokens = tensorboard_scalars(steps, "tokens_per_second")
    # Tokens per example are between the shortest and the longest possible example.
    assert speed and all(5 * e <= t <= 64 * e
                         for (_, e), (_, t) in zip(speed, tokens, strict=True))


def _run_until(cmd, condition, seconds=180):
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + seconds
        while time.time() < deadline and not condition():
            if proc.poll() is not None:
                pytest.fail(f"training exited early: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.1)
        assert condition(), "no checkpoint in time"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


@pytest.mark.slow
def test_a_run_killed_mid_epoch_resumes_at_its_step_with_a_clean_console(tmp_path,
                                                                        sample_dataset):
    data, _ = sample_dataset
    model_dir = tmp_path / "model"
    # A large step size, so that the loss visibly falls between the two runs.
    cmd = [sys.executable, "-m", "bertmodel.train", f"--tfrecords={data}",
           f"--model_dir={model_dir}", *TINY, "--batch_size=16", "--epochs=2",
           "--steps_per_epoch=12", "--learning_rate=1e-2", "--warmup_steps=0",
           "--checkpoint_every_steps=4", "--log_every_steps=2", "--no-save_outputs",
           f"--eval_tfrecords={data}/eval-*"]
    index = model_dir / "checkpoints" / "last" / "checkpoint"

    def saved_step():
        text = index.read_text() if index.exists() else ""
        return int(text.split("ckpt-")[1].split('"')[0]) if "ckpt-" in text else 0

    _run_until(cmd, lambda: saved_step() >= 4)
    killed_at = saved_step()
    assert killed_at in (4, 8) and not (model_dir / "history.json").exists()
    resumed = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resuming at step {killed_at}, in epoch 1" in resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["steps"] == 24  # not 24 + the steps trained before the kill
    history = json.loads((model_dir / "history.json").read_text())
    assert len(history["loss"]) == 2  # both epochs, each once
    # The rerun logs from the step after its checkpoint to the end, starting at a loss
    # below the first run's first (the first run may have logged past its checkpoint).
    first_run, rerun = read_step_scalars(str(model_dir / "logs" / "steps"), "mlm_loss")
    assert [s for s, _ in rerun] == list(range(killed_at + 2, 25, 2))
    assert rerun[0][1] < first_run[0][1] - 0.2
    # A clean console: the package's lines, none of TensorFlow's C++ or Keras' warnings.
    for noise in ("I0000", "cuInit", "shuffle=True", "oneDNN", "Traceback"):
        assert noise not in resumed.stderr, noise
    assert "model: " in resumed.stderr and "effective batch 16" in resumed.stderr
    # Bit for bit the history of the same run uninterrupted, validation included: the
    # data from the step it stopped at, the interrupted epoch's means over all its steps,
    # the dropout masks from where they were (before, the blocks' counters restarted at 0:
    # losses 1e-3 off, weights diverging).
    uninterrupted = train.run([*cmd[3:4], f"--model_dir={tmp_path / 'whole'}",
                               *cmd[5:]])["history"]
    assert "val_mlm_accuracy" in history and history == uninterrupted


def _tiny_state(directory):
    """A built tiny pretrainer, its optimizer and a RunState in DIRECTORY."""
    from bertmodel.config import BertConfig

    model = BertPretrainer(config=BertConfig(**dict(PRESETS["tiny"].to_dict(), vocab_size=50)))
    model(dummy_inputs(model.backbone.config))
    model.compile(optimizer="adam")
    model.optimizer.build(model.trainable_variables)
    return model, RunState(str(directory), model, model.optimizer)


def test_progress_and_the_best_value_survive_a_restart(tmp_path):
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


def test_a_finished_run_writes_what_is_missing_without_training(tmp_path, pipeline_run):
    work, _ = pipeline_run
    run = tmp_path / "model"
    shutil.copytree(work / "model", run)
    before = (run / "history.json").read_text()
    for name in ("export", "plots.png"):
        shutil.rmtree(run / name, ignore_errors=True) if name == "export" else \
            (run / name).unlink()
    # A damaged output (cut short) and what a killed writer leaves behind.
    (run / "model.keras").write_bytes((run / "model.keras").read_bytes()[:1000])
    (run / ".tmp-encoder.keras").write_bytes(b"half")
    encoder_written = (run / "encoder.keras").stat().st_mtime_ns
    settings = json.loads((run / "config.json").read_text())["training"]
    # The flags of the pipeline's run (conftest.pipeline_run).
    summary = train.run([f"--tfrecords={work / 'data'}", f"--model_dir={run}", "--config=mini",
                         "--batch_size=8", "--epochs=3", "--learning_rate=2e-3",
                         "--verbose=0", "--seed=3"])
    assert summary["steps"] == settings["total_steps"]
    assert (run / "export" / "saved_model.pb").exists() and (run / "plots.png").exists()
    assert (run / "history.json").read_text() == before
    assert not [p for p in os.listdir(run) if p.startswith(".tmp-")]
    manifest = json.loads((run / "outputs.json").read_text())
    assert manifest["step"] == settings["total_steps"]
    # Rewritten whole (a Keras archive again, of the size the manifest records), while the
    # output that was whole was kept.
    assert zipfile.is_zipfile(run / "model.keras")
    assert (run / "model.keras").stat().st_size == manifest["sizes"]["model.keras"] > 1000
    assert (run / "encoder.keras").stat().st_mtime_ns == encoder_written


def _other_tokenizer(tmp_path, corpus):
    from bertdata.tokenizer import train_tokenizer

    return train_tokenizer([corpus], str(tmp_path / "other"), 900, num_threads=1)


def test_a_tokenizer_that_did_not_make_the_records_is_refused(tmp_path, sample_dataset,
                                                             sample_corpus):
    data, _ = sample_dataset
    other = _other_tokenizer(tmp_path, sample_corpus)
    with pytest.raises(train.TrainError, match=f"--spm_model {other} is not the tokenizer"):
        train.run([f"--tfrecords={data}", f"--model_dir={tmp_path / 'm'}",
                   f"--spm_model={other}", *TINY])


def test_eval_records_of_another_tokenizer_are_refused(tmp_path, sample_dataset,
                                                       sample_corpus):
    from beam_jobs import create_pretraining_data as job

    data, _ = sample_dataset
    other = _other_tokenizer(tmp_path, sample_corpus)
    job.run([f"--input={sample_corpus}", f"--output_dir={tmp_path / 'other'}",
             f"--spm_model={other}", "--max_seq_length=64", "--eval_fraction=0.3",
             "--runner=FnApiRunner"])
    with pytest.raises(train.TrainError, match="--eval_tfrecords .* has tokenizer sha256"):
        train.run([f"--tfrecords={data}", f"--eval_tfrecords={tmp_path / 'other'}/eval-*",
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
])
def test_bad_flags_are_one_line_and_exit_2(tmp_path, sample_dataset, capsys, flag, message):
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
    meta = schema.read_metadata(str(data))
    shards = meta.splits[schema.TRAIN].shards
    first = sorted(shards)[0]
    assert run_plan.examples_in([f"{data}/{first}"], meta) == shards[first]
    every = schema.list_files(str(data))
    assert run_plan.examples_in(every, meta) == meta.num_examples(schema.TRAIN)


def test_a_model_dir_that_is_a_file_or_another_models_is_refused(tmp_path, sample_dataset):
    data, _ = sample_dataset
    (tmp_path / "a_file").write_text("not a directory")
    with pytest.raises(train.TrainError, match="is a file, not a directory"):
        train.run([f"--tfrecords={data}", f"--model_dir={tmp_path / 'a_file'}", *TINY])
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text(json.dumps({"model": {"hidden_size": 999}}))
    with pytest.raises(train.TrainError, match="holds a run of another model"):
        train.run([f"--tfrecords={data}", f"--model_dir={tmp_path / 'm'}", *TINY])


def test_a_dataset_without_examples_is_refused(tmp_path, sample_dataset):
    data, _ = sample_dataset
    empty = tmp_path / "empty"
    shutil.copytree(data, empty)
    meta = schema.read_metadata(str(empty))
    shards = {name: 0 for name in meta.splits[schema.TRAIN].shards}
    split = schema.SplitInfo(num_examples=0, num_shards=len(shards), shards=shards)
    write_metadata(empty, dataclasses.replace(meta, splits={**meta.splits, schema.TRAIN: split}))
    with pytest.raises(train.TrainError, match="says the train shards given hold 0 examples"):
        train.run([f"--tfrecords={empty}", f"--model_dir={tmp_path / 'm'}", *TINY])


@pytest.mark.slow
def test_lamb_with_gradient_accumulation_updates_every_n_steps(tmp_path, sample_dataset):
    data, _ = sample_dataset
    summary = train.run([f"--tfrecords={data}", f"--model_dir={tmp_path / 'm'}", *TINY,
                         "--optimizer=lamb", "--gradient_accumulation_steps=3",
                         "--train_steps=6", "--warmup_steps=0", "--no-save_outputs"])
    settings = json.loads((tmp_path / "m" / "config.json").read_text())["training"]
    assert settings["effective_batch_size"] == 24 and summary["steps"] == 6
    assert summary["optimizer_updates"] == 2  # one update per 3 batches


@pytest.mark.slow
def test_a_non_finite_loss_stops_and_keeps_the_last_good_state(tmp_path, sample_dataset):
    data, _ = sample_dataset
    model_dir = tmp_path / "model"
    base = [f"--tfrecords={data}", f"--model_dir={model_dir}", *TINY, "--steps_per_epoch=3",
            "--no-save_outputs"]
    train.run([*base, "--epochs=1"])
    best = model_dir / "checkpoints" / "best.weights.h5"
    good = best.read_bytes()
    # A learning rate this large sends the weights to infinity within a few steps.
    with pytest.raises(train.TrainError, match="non-finite loss"):
        train.run([*base, "--epochs=3", "--learning_rate=1e30", "--warmup_steps=0"])
    assert best.read_bytes() == good
    state = json.loads((model_dir / "history.json").read_text())
    assert all(np.isfinite(state["loss"]))


@pytest.mark.slow
def test_gpu_check_runs_on_a_cpu(monkeypatch, capsys):
    # All combinations in this process (on a GPU machine each gets its own), on the two
    # logical CPU devices conftest made. Its 1-vs-2-replica comparison is
    # bertmodel.replica_check, which test_model.py runs on a harder batch.
    monkeypatch.syspath_prepend(os.path.join(REPO, "benchmarks"))
    import gpu_check

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # restored after; the script sets it
    code = gpu_check.main(["--cpu", "--configs=tiny", "--steps=4", "--precisions=fp32",
                           "--xla=false", "--vocab_size=1007", "--same_process",
                           "--skip_replica_check"])
    out, err = capsys.readouterr()
    assert code == 0, err[-3000:]
    rows = [line.split(" | ") for line in out.splitlines() if line.startswith("| tiny |")]
    assert [(r[1], r[2]) for r in rows] == [("default", "1"), ("mirrored", "2")]
    for r in rows:  # seq/s and tokens/s measured: full-length records, 128 tokens each
        seq, tokens = float(r[6].replace(",", "")), float(r[7].replace(",", ""))
        assert seq > 0 and tokens == pytest.approx(128 * seq, rel=0.01)


def _cut_shard(tmp_path, data):
    """A copy of the dataset whose first train shard lost its second half (mid-record)."""
    cut = tmp_path / "cut"
    shutil.copytree(data, cut)
    shard = sorted(cut.glob("train-*"))[0]
    shard.write_bytes(shard.read_bytes()[:shard.stat().st_size // 2])
    return cut, shard


@pytest.mark.slow
def test_a_shard_found_damaged_while_training_is_one_line_naming_it(tmp_path, sample_dataset,
                                                                    capsys):
    data, _ = sample_dataset
    cut, shard = _cut_shard(tmp_path, data)
    code = train.main([f"--tfrecords={cut}", f"--model_dir={tmp_path / 'm'}", *TINY,
                       "--train_steps=200", "--verbosity=warning"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("error: corrupt or truncated") and str(shard) in err


def test_inspect_reports_a_damaged_shard_in_one_line(tmp_path, sample_dataset, capsys):
    from bertdata import inspect_dataset

    data, _ = sample_dataset
    cut, _ = _cut_shard(tmp_path, data)
    code = inspect_dataset.main([str(cut), "--num_examples=1"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and str(cut) in err, err


@pytest.mark.slow
def test_a_full_disk_while_training_is_one_line(tmp_path, sample_dataset, capsys, monkeypatch):
    from bertmodel.checkpoints import RunState

    data, _ = sample_dataset

    def disk_full(self):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(RunState, "save", disk_full)
    code = train.main([f"--tfrecords={data}", f"--model_dir={tmp_path / 'm'}", *TINY,
                       "--train_steps=4", "--checkpoint_every_steps=2", "--verbosity=warning"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "No space left on device" in err and len(err.splitlines()) == 1, err


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
        # Both ways into tf-keras: worker 0 restarts itself under it (as a user's command
        # does), worker 1 has it chosen by its launcher (and skips loading TensorFlow twice).
        env.pop(devices.LEGACY_KERAS, None)
        if index == 1:
            env[devices.LEGACY_KERAS] = "1"
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


@pytest.mark.parametrize("make, message", [
    (lambda p: p.mkdir(), "no such file (a preset name or a JSON file"),
    (lambda p: p.write_text('{"hidden_size": -4}'), "hidden_size must be positive, got -4"),
    (lambda p: p.write_text("[1, 2]"), "not a JSON object of BertConfig fields"),
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
