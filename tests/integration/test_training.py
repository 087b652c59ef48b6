"""The trainer: step-level checkpoints and exact resume, outputs, checked inputs, errors."""

import csv
import json
import os
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from bertmodel import train
from bertmodel.training import devices
from bertmodel.training.callbacks import read_step_scalars
from tests.conftest import REPO
from tests.training_helpers import TINY, cut_shard, run_until, saved_step


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
    run_until(cmd, lambda: saved_step(model_dir) >= 4)
    killed_at = saved_step(model_dir)
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
    uninterrupted = train.train_from_flags([*cmd[3:4], f"--model_dir={tmp_path / 'whole'}",
                                            *cmd[5:]])["history"]
    assert "val_mlm_accuracy" in history and history == uninterrupted


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
    summary = train.train_from_flags(
        [f"--tfrecords={work / 'data'}", f"--model_dir={run}", "--config=mini",
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


def _dataset(root, tokenizer_model, *flags):
    """The data job in-process on the sample corpus with TOKENIZER_MODEL."""
    from beam_jobs import create_pretraining_data as job
    from tests.conftest import FNAPI, SAMPLE

    out = root / "data"
    job.run_from_flags([f"--input={SAMPLE}", f"--output_dir={out}",
                        f"--spm_model={tokenizer_model}", "--max_seq_length=64",
                        "--eval_fraction=0.2", *flags, *FNAPI])
    return out


def test_a_finished_run_refuses_records_of_another_tokenizer(tmp_path, pipeline_run, capsys):
    from bertdata.tokenizer import train_tokenizer
    from tests.conftest import SAMPLE

    work, _ = pipeline_run
    run = tmp_path / "model"
    shutil.copytree(work / "model", run)
    ours = (run / "tokenizer.model").read_bytes()
    pieces = json.loads((run / "config.json").read_text())["model"]["vocab_size"] - 7
    other = train_tokenizer([SAMPLE], str(tmp_path / "other"), pieces, num_threads=1,
                            normalization="identity")
    data = _dataset(tmp_path, other)
    capsys.readouterr()  # the data job's progress
    code = train.main([f"--tfrecords={data}", f"--model_dir={run}", "--config=mini",
                       "--batch_size=8", "--epochs=3", "--learning_rate=2e-3", "--seed=3",
                       "--verbosity=warning"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith(f"error: --model_dir {run} was trained on records with tokenizer sha256")
    assert (run / "tokenizer.model").read_bytes() == ours


def test_held_out_records_of_another_objective_are_refused(tmp_path, sample_dataset, spm_model,
                                                           capsys):
    data, _ = sample_dataset  # --nsp_mode=swap
    mlm_only = _dataset(tmp_path, spm_model, "--nsp_mode=none")
    capsys.readouterr()  # the data job's progress
    code = train.main([f"--tfrecords={data}", f"--eval_tfrecords={mlm_only / 'eval-*'}",
                       f"--model_dir={tmp_path / 'm'}", *TINY, "--train_steps=2"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "has nsp_mode none, but --tfrecords" in err and "has swap" in err
    assert not (tmp_path / "m").exists()


@pytest.mark.slow
def test_lamb_with_gradient_accumulation_updates_every_n_steps(tmp_path, sample_dataset):
    data, _ = sample_dataset
    summary = train.train_from_flags([f"--tfrecords={data}", f"--model_dir={tmp_path / 'm'}", *TINY,
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
    train.train_from_flags([*base, "--epochs=1"])
    best = model_dir / "checkpoints" / "best.weights.h5"
    good = best.read_bytes()
    # A learning rate this large sends the weights to infinity within a few steps.
    with pytest.raises(train.TrainError, match="non-finite loss"):
        train.train_from_flags([*base, "--epochs=3", "--learning_rate=1e30", "--warmup_steps=0"])
    assert best.read_bytes() == good
    state = json.loads((model_dir / "history.json").read_text())
    assert all(np.isfinite(state["loss"]))


@pytest.mark.slow
def test_a_shard_found_damaged_while_training_is_one_line_naming_it(tmp_path, sample_dataset,
                                                                    capsys):
    data, _ = sample_dataset
    cut, shard = cut_shard(tmp_path, data)
    code = train.main([f"--tfrecords={cut}", f"--model_dir={tmp_path / 'm'}", *TINY,
                       "--train_steps=200", "--verbosity=warning"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("error: corrupt or truncated") and str(shard) in err


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


def test_evaluations_within_epochs_go_to_the_history_and_survive_a_resume(tmp_path,
                                                                         sample_dataset):
    data, _ = sample_dataset
    model_dir = tmp_path / "m"
    flags = [f"--tfrecords={data}/train-*", f"--eval_tfrecords={data}/eval-*",
             f"--model_dir={model_dir}", *TINY, "--steps_per_epoch=4", "--eval_every_steps=3"]
    train.train_from_flags([*flags, "--epochs=1"])
    train.train_from_flags([*flags, "--epochs=2"])  # resumed: steps 5 to 8
    with open(model_dir / "eval_steps.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(row["step"]) for row in rows] == [3, 6]
    logged = read_step_scalars(str(model_dir / "logs" / "steps"), "val_mlm_loss")
    assert [float(row["val_mlm_loss"]) for row in rows] == \
        pytest.approx([value for run in logged for _, value in run], rel=1e-6)
    assert json.loads((model_dir / "eval_steps.json").read_text())[1]["step"] == 6
