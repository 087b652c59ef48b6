"""The trainer's callbacks: resumable checkpoints, step-level logs, evaluation within epochs."""

from __future__ import annotations

import csv
import json
import math
import os
import time

import tensorflow as tf

from bertcommon.files import atomic_path, remove_leftovers, write_json

keras = tf.keras

# Without --checkpoint_every_steps: a resumable checkpoint about this often.
CHECKPOINT_EVERY_SECONDS = 300


def _finite(logs, key="loss") -> bool:
    value = (logs or {}).get(key)
    return value is None or math.isfinite(float(value))


class StepCounter(keras.callbacks.Callback):
    """The one place a run's step is counted (state.progress.step, the batches trained,
    across restarts). It goes first in fit's callbacks: the others read the step it sets."""

    def __init__(self, state):
        super().__init__()
        self.state = state

    def on_train_batch_end(self, batch, logs=None):
        self.state.progress.step += 1


class Checkpointing(keras.callbacks.Callback):
    """Saves the run's state every N steps (or seconds) and at every epoch's
    end; records each epoch's metrics; keeps the best weights by the monitored metric.

    Nothing is saved after a non-finite loss: TerminateOnNaN then ends the run, and the
    last good state and the best weights stay as they were.
    """

    def __init__(self, state, monitor: str, every_steps: int | None, history_dir: str,
                 total_steps: int):
        super().__init__()
        self.state = state
        self.monitor = monitor
        self.every_steps = every_steps
        self.history_dir = history_dir
        self.total_steps = total_steps
        self._saved_at = time.monotonic()
        self._epoch_ended = False

    def on_train_batch_end(self, batch, logs=None):
        progress = self.state.progress
        due = (progress.step % self.every_steps == 0 if self.every_steps else
               time.monotonic() - self._saved_at >= CHECKPOINT_EVERY_SECONDS)
        if due and _finite(logs):
            self._save()

    def on_epoch_end(self, epoch, logs=None):
        if not _finite(logs):
            return
        for key, value in (logs or {}).items():
            self.state.progress.history.setdefault(key, []).append(float(value))
        self.consider_best((logs or {}).get(self.monitor))
        self._epoch_ended = True
        self._save()
        write_history(self.state.progress, self.history_dir)

    def on_train_end(self, logs=None):
        if self.model.stop_training:  # stopped on a non-finite loss
            return
        self.state.progress.finished = self.state.progress.step >= self.total_steps
        self._epoch_ended = True  # fit ends at an epoch's end
        self._save()

    def consider_best(self, value) -> None:
        if value is not None and self.state.improves(float(value)):
            self.state.save_best(self.model, float(value))

    def _save(self):
        # Mid-epoch the metrics' running sums go with the checkpoint (RestoreEpochMetrics).
        ended = self._epoch_ended
        self.state.progress.metric_states = None if ended else {
            m.name: [v.numpy().tolist() for v in m.variables] for m in self.model.metrics}
        self._epoch_ended = False
        self.state.save()
        self._saved_at = time.monotonic()


class RestoreEpochMetrics(keras.callbacks.Callback):
    """Puts the metric sums a mid-epoch checkpoint saved back at the start of the resumed
    epoch (fit has just reset them), so the epoch's figures count its steps before the
    interruption too. Runs first among the callbacks."""

    def __init__(self, metric_states: dict | None):
        super().__init__()
        self.metric_states = metric_states or {}

    def on_epoch_begin(self, epoch, logs=None):
        for metric in self.model.metrics:
            for variable, value in zip(metric.variables,
                                       self.metric_states.get(metric.name, []), strict=False):
                variable.assign(value)
        self.metric_states = {}


def write_history(progress, directory: str) -> None:
    """history.json and history.csv (one row per epoch) of a run's Progress, and, where it
    evaluated within epochs, eval_steps.json and eval_steps.csv (one row per evaluation);
    each replaced atomically."""
    history = progress.history
    epochs = len(history.get("loss", []))
    keys = sorted(history)
    for name, write in (("history.json", _write_json), ("history.csv", _write_csv)):
        path = os.path.join(directory, name)
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
            write(f, history, keys, epochs)
    if progress.evaluations:
        _write_evaluations(progress.evaluations, directory)


def _write_evaluations(rows: list[dict], directory: str) -> None:
    keys = ["step", *sorted({k for row in rows for k in row} - {"step"})]
    write_json(os.path.join(directory, "eval_steps.json"), rows, sort_keys=True)
    with atomic_path(os.path.join(directory, "eval_steps.csv")) as tmp, \
            open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(keys)
        writer.writerows([row.get(k, "") for k in keys] for row in rows)


def _write_json(f, history, keys, epochs):
    json.dump(history, f, indent=2, sort_keys=True)
    f.write("\n")


def _write_csv(f, history, keys, epochs):
    writer = csv.writer(f)
    writer.writerow(["epoch", *keys])
    for epoch in range(epochs):
        writer.writerow([epoch, *(history[k][epoch] if epoch < len(history[k]) else ""
                                  for k in keys)])


ENCODERS_DIR = "encoders"


def encoder_folder(model_dir: str, step: int) -> str:
    """Where KeepEncoders puts the encoder of STEP (names sort by step)."""
    return os.path.join(model_dir, ENCODERS_DIR, f"step-{step:07d}")


class KeepEncoders(keras.callbacks.Callback):
    """Every N steps, the encoder as a folder bertmodel.finetune reads (encoder.keras and
    the tokenizer's files: TOKENIZER is a bertdata.tokenizer_files.TokenizerSource, or None),
    written whole under a temporary name, so that checkpoints can be scored on a task
    afterwards (bertmodel.score_encoders). Not after a non-finite loss."""

    def __init__(self, state, every: int, model_dir: str, tokenizer):
        super().__init__()
        self.state, self.every = state, every
        self.model_dir, self.tokenizer = model_dir, tokenizer

    def on_train_begin(self, logs=None):
        remove_leftovers(os.path.join(self.model_dir, ENCODERS_DIR))  # of a killed run

    def on_train_batch_end(self, batch, logs=None):
        step = self.state.progress.step
        if step % self.every or not _finite(logs):
            return
        final = encoder_folder(self.model_dir, step)
        os.makedirs(os.path.dirname(final), exist_ok=True)
        with atomic_path(final) as tmp:
            os.makedirs(tmp)
            self.model.backbone.save(os.path.join(tmp, "encoder.keras"))
            if self.tokenizer is not None:
                self.tokenizer.write_files(tmp)


class StepLogger(keras.callbacks.Callback):
    """Every N steps, TensorBoard scalars at the global step: the running losses and
    accuracies, the learning rate, examples/s, tokens/s (real, unpadded tokens) and, where
    the device's peak is known, the model FLOPs utilisation of the padded tokens."""

    def __init__(self, log_dir: str, every: int, state, *, global_batch: int,
                 flops_per_sequence, peak_flops: float | None):
        """flops_per_sequence(padded length): a training step's FLOPs per sequence."""
        super().__init__()
        self.writer = tf.summary.create_file_writer(log_dir)
        self.every, self.state = every, state
        self.global_batch, self.flops_per_sequence = global_batch, flops_per_sequence
        self.peak_flops = peak_flops
        self._last = None

    def _counts(self):
        real, padded = self.model.token_counter.result()
        return time.perf_counter(), self.state.progress.step, float(real), float(padded)

    def on_train_begin(self, logs=None):
        self._last = self._counts()

    def on_train_batch_end(self, batch, logs=None):
        step = self.state.progress.step
        if step % self.every or not logs:
            return
        now = self._counts()
        seconds = max(now[0] - self._last[0], 1e-9)
        steps, real, padded = now[1] - self._last[1], now[2] - self._last[2], \
            now[3] - self._last[3]
        scalars = {k: float(v) for k, v in logs.items()}
        scalars["learning_rate"] = float(self.model.optimizer.learning_rate)
        scalars["examples_per_second"] = steps * self.global_batch / seconds
        scalars["tokens_per_second"] = real / seconds
        sequences = steps * self.global_batch
        if self.peak_flops and sequences:
            length = padded / sequences
            executed = self.flops_per_sequence(length)
            scalars["mfu"] = executed * sequences / seconds / self.peak_flops
        with self.writer.as_default(step=step):
            for name, value in scalars.items():
                tf.summary.scalar(name, value)
        self._last = now


def read_step_scalars(log_dir: str, tag: str) -> list[list[tuple[int, float]]]:
    """A StepLogger scalar as [(step, value), ...] per event file of log_dir, oldest file
    first (each run of the trainer, a resumed one included, writes a new file)."""
    from tensorboard.backend.event_processing import event_accumulator

    runs = []
    for name in sorted(os.listdir(log_dir)):
        events = event_accumulator.EventAccumulator(os.path.join(log_dir, name),
                                                    size_guidance={"tensors": 0})
        events.Reload()
        if tag in events.Tags()["tensors"]:
            runs.append([(e.step, float(tf.make_ndarray(e.tensor_proto)))
                         for e in events.Tensors(tag)])
    return runs


class EvaluateEvery(keras.callbacks.Callback):
    """Evaluates every N steps within epochs, without disturbing the epoch's running train
    metrics (Keras resets all metrics when it evaluates; they are saved and put back). The
    figures go to TensorBoard (val_<metric> at the step) and to the run's Progress, which
    the checkpoints carry and write_history writes out (eval_steps.csv); it runs before
    Checkpointing, so that a checkpoint at the same step holds its evaluation."""

    def __init__(self, dataset, steps: int | None, every: int, state, log_dir: str,
                 checkpointing: Checkpointing):
        super().__init__()
        self.dataset, self.steps, self.every, self.state = dataset, steps, every, state
        self.writer = tf.summary.create_file_writer(log_dir)
        self.checkpointing = checkpointing
        self.history_dir = checkpointing.history_dir

    def on_train_batch_end(self, batch, logs=None):
        step = self.state.progress.step
        if step % self.every:
            return
        variables = [v for m in self.model.metrics for v in m.variables]
        saved = [v.numpy() for v in variables]
        result = self.model.evaluate(self.dataset, steps=self.steps, verbose=0,
                                     return_dict=True)
        for variable, value in zip(variables, saved, strict=True):
            variable.assign(value)
        with self.writer.as_default(step=step):
            for name, value in result.items():
                tf.summary.scalar(f"val_{name}", float(value))
        evaluations = self.state.progress.evaluations
        evaluations[:] = [row for row in evaluations if row["step"] < step]  # a redone step
        evaluations.append({"step": step, **{f"val_{k}": float(v) for k, v in result.items()}})
        write_history(self.state.progress, self.history_dir)
        monitor = self.checkpointing.monitor
        if monitor.startswith("val_"):
            self.checkpointing.consider_best(result.get(monitor[len("val_"):]))
