"""Everything about training that only a machine with GPUs can check, in a few minutes.

    python -m bertmodel.gpu_check                        # seed and base, every GPU
    python -m bertmodel.gpu_check --configs=base --steps=60 --peak_tflops=989
    python -m bertmodel.gpu_check --cpu --configs=tiny --steps=6   # the check itself, on a CPU

It writes synthetic full-length records (seq 128, 20 predictions) with their metadata, then
runs the trainer (one process per combination) for every combination of the presets,
strategy (the default single device, and MirroredStrategy over every visible GPU),
precision and XLA, and reads seq/s and tokens/s from the trainer's own step logs, over the
steps after the first log window (which holds tracing and compiling). MFU divides the
formula's FLOPs (bertmodel.training.flops) by the peak of all the devices used: the GPU's
dense peak looked up by its name, or --peak_tflops per device. A failed combination is a
row saying why. It also checks that one replica and N replicas give the same loss on the
same global batch (dropout off, same initial weights, one SGD step); exit 1 if they differ.
Prints one Markdown table, ready for docs/benchmarks.md.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import sys
import tempfile

from bertcommon import cli
from bertdata.synthetic import write_synthetic_dataset
from bertmodel.model.config import PRESETS
from bertmodel.training import gpu_check

PER_REPLICA_BATCH = {"seed": 64, "base": 32, "tiny": 16}


@dataclasses.dataclass(frozen=True)
class GpuCheckSettings(cli.Settings):
    configs: tuple[str, ...] = cli.flag(("seed", "base"), help="presets")
    steps: int = cli.flag(40, check=cli.at_least(2))
    batch_size: int | None = cli.flag(
        None, check=cli.positive, help="per replica; default 64 (seed), 32 (base), 16 (tiny)")
    precisions: tuple[str, ...] = cli.flag(("bf16", "fp32"), help="bf16, fp16, fp32")
    xla: tuple[str, ...] = cli.flag(("true", "false"), help="true, false")
    vocab_size: int = cli.flag(32_007, check=cli.at_least(100))
    peak_tflops: float | None = cli.flag(None, check=cli.positive,
                                         help="dense peak per device")
    cpu: bool = cli.flag(False, help="no GPU: two logical CPU devices stand in for the GPUs")
    skip_replica_check: bool = cli.flag(
        False, help="leave out the one-SGD-step comparison of 1 and N replicas")
    same_process: bool = cli.flag(
        False, help="every combination in this process: faster, for checking the check "
                    "itself (a combination that fails may then spoil the next)")

    def problems(self):
        for name, values, allowed in (("--configs", self.configs, tuple(PRESETS)),
                                      ("--precisions", self.precisions, ("bf16", "fp16", "fp32")),
                                      ("--xla", self.xla, ("true", "false"))):
            wrong = [v for v in values if v not in allowed]
            if wrong or not values:
                yield f"{name}: {', '.join(wrong) or 'none given'}; expected some of " \
                      f"{', '.join(allowed)}"


def check(settings: GpuCheckSettings) -> int:
    if settings.cpu:
        # Read when TensorFlow first lists the GPUs, which nothing has asked for yet.
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    devices = gpu_check.visible_devices(settings.cpu)
    if not devices:
        print("error: no GPU is visible (--cpu checks the check itself on a CPU)",
              file=sys.stderr)
        return 2
    losses = None if settings.skip_replica_check else gpu_check.replicas_agree(devices, 1007)
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as work:
        rows = run_combinations(settings, devices, work)
    print("\n" + gpu_check.markdown_table(rows, devices))
    if losses is None:
        return 0
    one, many = losses
    agree = abs(one - many) <= 1e-4 * max(1.0, abs(one))
    print(f"\n1 replica vs {len(devices)} replicas, same global batch, one SGD step: loss "
          f"{one:.6f} vs {many:.6f} ({'equal' if agree else 'DIFFERENT'})")
    return 0 if agree else 1


def run_combinations(settings: GpuCheckSettings, devices: list[str], work: str) -> list:
    data = os.path.join(work, "data")
    os.makedirs(data)
    per_replica = {c: settings.batch_size or PER_REPLICA_BATCH.get(c, 32)
                   for c in settings.configs}
    largest = max(per_replica.values()) * len(devices)
    write_synthetic_dataset(data, max(largest * (settings.steps + 2), 512),
                            vocab_size=settings.vocab_size)
    rows = []
    for config, strategy, precision, xla in itertools.product(
            settings.configs, ("default", "mirrored"), settings.precisions, settings.xla):
        replicas = 1 if strategy == "default" else len(devices)
        job = gpu_check.Job(
            gpu_check.Row(config, strategy, replicas, precision, xla == "true",
                          per_replica[config] * replicas),
            data, work, settings.steps, settings.vocab_size, settings.peak_tflops)
        rows.append(gpu_check.run_one(job) if settings.same_process else
                    gpu_check.run_in_child(job))
        print(f"  {rows[-1]}", file=sys.stderr, flush=True)
    return rows


def main(argv=None) -> int:
    return cli.run_command(GpuCheckSettings, check, argv, description=__doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
