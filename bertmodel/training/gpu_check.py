"""The parts of `bertmodel.gpu_check`: one timed training run per
combination (in a child process of its own on GPUs), and the 1-vs-N replica comparison.

A child process runs `python -m bertmodel.training.gpu_check JOB`, JOB being the JSON of a
`Job`, and prints its `Row` as JSON on its last line.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np

from bertcommon import logs
from bertdata.tokenizer import NUM_SPECIAL
from bertmodel import train
from bertmodel.model.config import PRESETS
from bertmodel.training import flops
from bertmodel.training.callbacks import read_step_scalars
from bertmodel.training.devices import mirrored_strategy, split_cpu
from bertmodel.training.replica_check import one_step_losses

SEQ, PREDS = 128, 20  # bertdata.synthetic's defaults: what the records hold


@dataclasses.dataclass
class Row:
    """One combination and what it measured (None: not measured; note: why)."""
    config: str
    strategy: str
    replicas: int
    precision: str
    xla: bool
    batch: int
    seq_per_s: float | None = None
    tokens_per_s: float | None = None
    mfu: float | None = None
    note: str = ""


@dataclasses.dataclass(frozen=True)
class Job:
    """What one combination's run needs: the records, a work folder, the budget."""
    row: Row
    data: str
    work: str
    steps: int
    vocab_size: int
    peak_tflops: float | None = None


def measured(log_dir: str, tag: str) -> float | None:
    """The trainer's scalar over its last log window (the first holds compiling)."""
    values = [value for run in read_step_scalars(log_dir, tag) for _, value in run]
    return values[-1] if len(values) > 1 else None


def _failure_note(error: Exception) -> str:
    lines = [x.strip() for x in str(error).splitlines()
             if x.strip() and not x.strip().startswith(("File ", "[["))]
    return f"failed: {(lines[-1] if lines else type(error).__name__)[:100]}"


def run_one(job: Job) -> Row:
    """Trains the combination for JOB.steps and reads its speed from the step logs."""
    row = dataclasses.replace(job.row)
    model_dir = os.path.join(job.work, f"{row.config}-{row.strategy}-{row.precision}-{row.xla}")
    flags = [f"--tfrecords={job.data}", f"--model_dir={model_dir}", f"--config={row.config}",
             f"--batch_size={row.batch}", f"--train_steps={job.steps}", "--warmup_steps=0",
             f"--log_every_steps={max(1, job.steps // 2)}", f"--strategy={row.strategy}",
             f"--mixed_precision={row.precision}", f"--jit_compile={str(row.xla).lower()}",
             "--pad_to=max", "--verbose=0", "--no-save_outputs"]
    try:
        train.train_from_flags(flags)
    except Exception as e:  # a failed combination is a finding, not the end of the check
        row.note = _failure_note(e)
        return row
    logs = os.path.join(model_dir, "logs", "steps")
    row.seq_per_s = measured(logs, "examples_per_second")
    row.tokens_per_s = measured(logs, "tokens_per_second")
    peak = job.peak_tflops * 1e12 if job.peak_tflops else flops.device_peak(row.precision)[0]
    if row.seq_per_s and peak:
        cfg = dataclasses.replace(PRESETS[row.config], vocab_size=job.vocab_size)
        row.mfu = row.seq_per_s * flops.flops_per_sequence(cfg, SEQ, PREDS) / (
            peak * row.replicas)
    return row


def run_in_child(job: Job) -> Row:
    """Runs one combination in a fresh process (a failure such as XLA's under a
    multi-replica strategy leaves collective ops unusable in its process)."""
    done = subprocess.run([sys.executable, "-m", __name__,
                           json.dumps(dataclasses.asdict(job))], capture_output=True, text=True)
    if done.returncode:
        lines = done.stderr.strip().splitlines() or ["no output"]
        return dataclasses.replace(job.row, note=f"failed: {lines[-1][:100]}")
    return Row(**json.loads(done.stdout.strip().splitlines()[-1]))


def replicas_agree(devices: list[str], vocab_size: int) -> tuple[float, float]:
    """(loss on one device, loss on all) after one SGD step on the same global batch."""
    import tensorflow as tf

    cfg = dataclasses.replace(PRESETS["tiny"], vocab_size=vocab_size, dropout_rate=0.0,
                              attention_dropout_rate=0.0)
    rng = np.random.default_rng(0)
    b, s, p = 4 * len(devices), 32, 4
    x = {"input_ids": rng.integers(NUM_SPECIAL, vocab_size, (b, s)).astype("int32"),
         "input_mask": np.ones((b, s), "int32"), "segment_ids": np.zeros((b, s), "int32"),
         "masked_lm_positions": np.tile(np.arange(1, p + 1, dtype="int32"), (b, 1))}
    y = {"masked_lm_ids": rng.integers(NUM_SPECIAL, vocab_size, (b, p)).astype("int32"),
         "masked_lm_weights": np.ones((b, p), "float32"),
         "next_sentence_labels": (np.arange(b) % 2).astype("int32")}
    tf.keras.mixed_precision.set_global_policy("float32")
    _, one = one_step_losses(tf.distribute.OneDeviceStrategy(devices[0]), cfg, x, y, 0.1)
    _, many = one_step_losses(mirrored_strategy(devices), cfg, x, y, 0.1)
    return one, many


def visible_devices(cpu: bool) -> list[str]:
    """The GPUs' names, or with CPU two logical CPU devices standing in for them."""
    import tensorflow as tf

    if cpu:
        split_cpu(2)
        return [d.name for d in tf.config.list_logical_devices("CPU")]
    return [d.name for d in tf.config.list_logical_devices("GPU")]


def markdown_table(rows: list[Row], devices: list[str]) -> str:
    def fmt(value, spec):
        return "-" if value is None else format(value, spec)

    lines = [f"devices: {', '.join(devices)}",
             "| config | strategy | replicas | precision | XLA | global batch | seq/s "
             "| tokens/s | MFU | note |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r.config} | {r.strategy} | {r.replicas} | {r.precision} | "
              f"{'on' if r.xla else 'off'} | {r.batch} | {fmt(r.seq_per_s, ',.1f')} | "
              f"{fmt(r.tokens_per_s, ',.0f')} | {fmt(r.mfu, '.1%')} | {r.note} |" for r in rows]
    return "\n".join(lines)


def _child(spec: str) -> int:
    fields = json.loads(spec)
    job = Job(**{**fields, "row": Row(**fields["row"])})
    logs.configure("warning")
    if os.environ.get("CUDA_VISIBLE_DEVICES") == "":
        visible_devices(cpu=True)  # the parent checks on a CPU: the same two devices
    print(json.dumps(dataclasses.asdict(run_one(job))))
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1]))
