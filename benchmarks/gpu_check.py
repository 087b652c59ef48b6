"""Everything about training that only a machine with GPUs can check, in a few minutes.

Usage (on a machine with NVIDIA GPUs; `pip install -e ".[train]"` first):
    python benchmarks/gpu_check.py                       # seed and base, every GPU
    python benchmarks/gpu_check.py --configs=base --steps=60 --peak_tflops=989
On a CPU (the test suite runs this so that it cannot rot):
    python benchmarks/gpu_check.py --cpu --configs=tiny --steps=6

It writes synthetic full-length records (seq 128, 20 predictions) with their metadata, then
runs the project's trainer (bertmodel.train, one process per combination: a failure such as
XLA's under a multi-replica strategy leaves collective ops unusable in its process) for
every combination of the
presets, strategy (the default single device, and MirroredStrategy over every visible GPU),
precision (bf16, fp32) and XLA (on, off), and reads seq/s and tokens/s from the trainer's own
step logs, over the steps after the first log window (which holds tracing and compiling).
MFU divides the formula's FLOPs (bertmodel.training.flops) by the peak of all the devices used: the
GPU's bf16 or fp32 dense peak looked up by its name, or --peak_tflops per device. A failed
combination is a row saying why. It also checks that one replica and N replicas give the
same loss on the same global batch (dropout off, same initial weights, one SGD step).
Prints one table in Markdown, ready for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

SEQ, PREDS = 128, 20


def write_records(directory: str, vocab_size: int, count: int, seed: int = 0) -> None:
    """Full-length compact records of random ordinary pieces, with a metadata.json."""
    import numpy as np

    from bertdata import pretraining, schema, wire_format
    from bertdata.tokenizer import NUM_SPECIAL, SPECIAL_IDS

    rng = np.random.default_rng(seed)
    ids = rng.integers(NUM_SPECIAL, vocab_size, (count, SEQ)).astype(np.int32)
    ids[:, 0], ids[:, SEQ // 2], ids[:, -1] = SPECIAL_IDS.cls, SPECIAL_IDS.sep, SPECIAL_IDS.sep
    positions = np.sort(rng.choice(np.arange(1, SEQ // 2), (count, PREDS)), axis=1)
    records = wire_format.serialize_compact_batch(
        ids, np.full(count, SEQ), positions, np.take_along_axis(ids, positions, 1),
        np.full(count, PREDS), rng.integers(0, 2, count))
    name = schema.shard_name(schema.TRAIN, 0, 1, schema.Compression.NONE)
    with open(os.path.join(directory, name), "wb") as f:
        f.write(wire_format.frame_records(records))
    meta = schema.DatasetMetadata.build(
        record_format="compact", masking="static", compression=schema.Compression.NONE,
        example_config=pretraining.ExampleSettings(max_seq_length=SEQ,
                                                 max_predictions_per_seq=PREDS),
        tokenizer_sha256="synthetic", tokenizer_path="", vocab_size=vocab_size,
        special_ids={}, package_version="gpu_check",
        splits={schema.TRAIN: schema.SplitInfo(num_examples=count, num_shards=1,
                                               shards={name: count})})
    with open(os.path.join(directory, schema.METADATA_FILE), "w") as f:
        json.dump(meta.to_json(), f)


@dataclasses.dataclass
class Row:
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


def measured(log_dir: str, tag: str) -> float | None:
    """The trainer's scalar over its last log window (the first holds compiling)."""
    from bertmodel.training.callbacks import read_step_scalars

    values = [value for run in read_step_scalars(log_dir, tag) for _, value in run]
    return values[-1] if len(values) > 1 else None


def run_one(row: Row, data: str, args, work: str) -> Row:
    from bertmodel import train
    from bertmodel.model.config import PRESETS
    from bertmodel.training import flops

    model_dir = os.path.join(work, f"{row.config}-{row.strategy}-{row.precision}-{row.xla}")
    flags = [f"--tfrecords={data}", f"--model_dir={model_dir}", f"--config={row.config}",
             f"--batch_size={row.batch}", f"--train_steps={args.steps}", "--warmup_steps=0",
             f"--log_every_steps={max(1, args.steps // 2)}", f"--strategy={row.strategy}",
             f"--mixed_precision={row.precision}", f"--jit_compile={str(row.xla).lower()}",
             "--pad_to=max", "--verbose=0", "--no-save_outputs"]
    try:
        train.train_from_flags(flags)
    except Exception as e:  # a failed combination is a finding, not the end of the check
        lines = [x.strip() for x in str(e).splitlines()
                 if x.strip() and not x.strip().startswith(("File ", "[["))]
        row.note = f"failed: {(lines[-1] if lines else type(e).__name__)[:100]}"
        return row
    logs = os.path.join(model_dir, "logs", "steps")
    row.seq_per_s = measured(logs, "examples_per_second")
    row.tokens_per_s = measured(logs, "tokens_per_second")
    peak = args.peak_tflops * 1e12 if args.peak_tflops else flops.device_peak(row.precision)[0]
    if row.seq_per_s and peak:
        cfg = dataclasses.replace(PRESETS[row.config], vocab_size=args.vocab_size)
        row.mfu = row.seq_per_s * flops.flops_per_sequence(cfg, SEQ, PREDS) / (
            peak * row.replicas)
    return row


def replicas_agree(devices: list[str], vocab_size: int) -> tuple[float, float]:
    """(loss on one device, loss on all) after one SGD step on the same global batch."""
    import numpy as np
    import tensorflow as tf

    from bertmodel.model.config import PRESETS
    from bertmodel.training.devices import mirrored_strategy
    from bertmodel.training.replica_check import one_step_losses

    cfg = dataclasses.replace(PRESETS["tiny"], vocab_size=vocab_size, dropout_rate=0.0,
                              attention_dropout_rate=0.0)
    rng = np.random.default_rng(0)
    b, s, p = 4 * len(devices), 32, 4
    x = {"input_ids": rng.integers(7, vocab_size, (b, s)).astype("int32"),
         "input_mask": np.ones((b, s), "int32"), "segment_ids": np.zeros((b, s), "int32"),
         "masked_lm_positions": np.tile(np.arange(1, p + 1, dtype="int32"), (b, 1))}
    y = {"masked_lm_ids": rng.integers(7, vocab_size, (b, p)).astype("int32"),
         "masked_lm_weights": np.ones((b, p), "float32"),
         "next_sentence_labels": (np.arange(b) % 2).astype("int32")}
    tf.keras.mixed_precision.set_global_policy("float32")
    _, one = one_step_losses(tf.distribute.OneDeviceStrategy(devices[0]), cfg, x, y, 0.1)
    _, many = one_step_losses(mirrored_strategy(devices), cfg, x, y, 0.1)
    return one, many


def set_up_devices(cpu: bool, tf) -> list[str]:
    if cpu:
        from bertmodel.training.devices import split_cpu

        split_cpu(2)
        return [d.name for d in tf.config.list_logical_devices("CPU")]
    return [d.name for d in tf.config.list_logical_devices("GPU")]


def run_in_child(row: Row, data: str, argv: list[str], work: str) -> Row:
    """Runs one combination in a fresh process of this script; returns its Row."""
    import subprocess

    spec = json.dumps(dataclasses.asdict(row))
    done = subprocess.run([sys.executable, __file__, *argv, f"--row={spec}", f"--data={data}",
                           f"--work={work}"], capture_output=True, text=True)
    if done.returncode:
        row.note = f"failed: {done.stderr.strip().splitlines()[-1][:100]}"
        return row
    return Row(**json.loads(done.stdout.strip().splitlines()[-1]))


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", default="seed,base")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--batch_size", type=int, default=0,
                   help="per replica; default 64 (seed), 32 (base), 16 (tiny)")
    p.add_argument("--precisions", default="bf16,fp32")
    p.add_argument("--xla", default="true,false")
    p.add_argument("--vocab_size", type=int, default=32_007)
    p.add_argument("--peak_tflops", type=float, default=None, help="dense peak per device")
    p.add_argument("--cpu", action="store_true",
                   help="no GPU: two logical CPU devices stand in for the GPUs")
    p.add_argument("--skip_replica_check", action="store_true",
                   help="leave out the one-SGD-step comparison of 1 and N replicas")
    p.add_argument("--same_process", action="store_true",
                   help="run every combination in this process: faster, for checking the "
                        "script itself (a combination that fails may then spoil the next)")
    for internal in ("--row", "--data", "--work"):  # a child process's combination
        p.add_argument(internal, default=None, help=argparse.SUPPRESS)
    return p


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = make_parser().parse_args(argv)
    if args.cpu:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    from bertcommon import logs

    logs.configure("warning")
    tf = logs.import_tensorflow_quietly()
    devices = set_up_devices(args.cpu, tf)
    if args.row:
        row = run_one(Row(**json.loads(args.row)), args.data, args, args.work)
        print(json.dumps(dataclasses.asdict(row)))
        return 0
    if not devices:
        print("error: no GPU is visible (pass --cpu to check the script on a CPU)",
              file=sys.stderr)
        return 2
    losses = None if args.skip_replica_check else replicas_agree(devices, 1007)
    per_replica = {"seed": 64, "base": 32, "tiny": 16}
    rows = []
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as work:
        data = os.path.join(work, "data")
        os.makedirs(data)
        largest = max(args.batch_size or per_replica.get(c, 32)
                      for c in args.configs.split(",")) * len(devices)
        write_records(data, args.vocab_size, max(largest * (args.steps + 2), 512))
        for config, strategy, precision, xla in itertools.product(
                args.configs.split(","), ("default", "mirrored"), args.precisions.split(","),
                [x == "true" for x in args.xla.split(",")]):
            replicas = 1 if strategy == "default" else len(devices)
            batch = (args.batch_size or per_replica.get(config, 32)) * replicas
            row = Row(config, strategy, replicas, precision, xla, batch)
            rows.append(run_one(row, data, args, work) if args.same_process else
                        run_in_child(row, data, argv, work))
            print(f"  {rows[-1]}", file=sys.stderr, flush=True)
    print_table(rows, devices)
    if losses is None:
        return 0
    one, many = losses
    agree = abs(one - many) <= 1e-4 * max(1.0, abs(one))
    print(f"\n1 replica vs {len(devices)} replicas, same global batch, one SGD step: loss "
          f"{one:.6f} vs {many:.6f} ({'equal' if agree else 'DIFFERENT'})")
    return 0 if agree else 1


def print_table(rows, devices) -> None:
    print(f"\ndevices: {', '.join(devices)}")
    print("| config | strategy | replicas | precision | XLA | global batch | seq/s | tokens/s "
          "| MFU | note |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        def fmt(value, spec):
            return "-" if value is None else format(value, spec)

        print(f"| {r.config} | {r.strategy} | {r.replicas} | {r.precision} | "
              f"{'on' if r.xla else 'off'} | {r.batch} | {fmt(r.seq_per_s, ',.1f')} | "
              f"{fmt(r.tokens_per_s, ',.0f')} | {fmt(r.mfu, '.1%')} | {r.note} |")


if __name__ == "__main__":
    sys.exit(main())
