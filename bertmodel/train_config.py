"""The trainer's settings: one validated dataclass, filled from the command line.

`bertmodel.train.train(TrainConfig(...))` does the work; `python -m bertmodel.train` only
parses its flags into a TrainConfig. Every check of a setting on its own is made here, with
a message naming the flag; checks against the data are made by the trainer before training.

Step counts (steps per epoch, warm-up, checkpoint, log and eval cadences) count batches of
`batch_size` examples. With gradient accumulation the optimizer updates every
`gradient_accumulation_steps` batches, the effective batch is their product, and the
learning-rate schedule counts those updates.
"""

from __future__ import annotations

import argparse
import dataclasses

from bertcommon import logs
from bertmodel.devices import PRECISIONS, STRATEGIES

OPTIMIZERS = ("adam", "adamw", "lamb")
PAD_MODES = ("longest", "buckets", "max")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    # Training shards: a glob or the data job's output directory.
    tfrecords: str
    # Where checkpoints, logs, the model and its exports go.
    model_dir: str
    # Held-out shards; then the best checkpoint is chosen by val_mlm_accuracy.
    eval_tfrecords: str | None = None
    # A preset (tiny, mini, seed, base, large) or a JSON file of BertConfig fields.
    config: str = "seed"
    # The global batch, split over replicas.
    batch_size: int = 64
    epochs: int = 2
    # Default: the train split's examples (metadata.json) // batch_size.
    steps_per_epoch: int | None = None
    # Total steps; overrides epochs (as many epochs as an epoch's steps make it, sharing the
    # total evenly; the total is rounded up to a multiple of them).
    train_steps: int | None = None
    # Batches per evaluation; default: the whole eval split.
    eval_steps: int | None = None
    # Also evaluate every N steps within an epoch.
    eval_every_steps: int | None = None
    # Peak of the warm-up + cosine schedule; default: the preset's (config.py).
    learning_rate: float | None = None
    # Default: max(100, total // 10) steps.
    warmup_steps: int | None = None
    optimizer: str = "adam"
    weight_decay: float = 0.01
    clipnorm: float | None = None
    gradient_accumulation_steps: int = 1
    mlm_loss_weight: float = 20.0
    mixed_precision: str = "auto"
    strategy: str = "auto"
    jit_compile: str = "auto"
    # Padding of make_dataset; default: buckets with XLA (few shapes to compile), else longest.
    pad_to: str | None = None
    shuffle_buffer: int = 10_000
    # The tokenizer; required for --masking=dynamic records, checked against the records.
    spm_model: str | None = None
    # A Hugging Face BERT folder (bertmodel.export_hf) whose weights start the run; its
    # config.json sets the model's sizes, and its tokenizer must be the records'.
    init_from: str | None = None
    seed: int = 1
    # Split the CPU into N logical devices (to try strategies without GPUs).
    cpu_devices: int = 0
    # Save a resumable checkpoint every N steps (and at every epoch's end); default: about
    # every 5 minutes (every 1,000 steps under multi_worker, where workers must agree).
    checkpoint_every_steps: int | None = None
    # Write step-level scalars to TensorBoard every N steps.
    log_every_steps: int = 100
    # Dense peak TFLOP/s of one device, for MFU; default: looked up by GPU name.
    peak_tflops: float | None = None
    # Keras progress bar: 0, 1 (per step) or 2 (per epoch).
    verbose: int = 1
    # Write model.keras, encoder.keras, export/ and plots.png at the end (not for runs that
    # only measure throughput).
    save_outputs: bool = True

    def __post_init__(self):
        problems = []

        def need(ok, message):
            if not ok:
                problems.append(message)

        def positive(name, allow_none=True):
            value = getattr(self, name)
            need((value is None and allow_none) or (value is not None and value >= 1),
                 f"--{name} must be a positive number, got {value}")

        for name in ("steps_per_epoch", "train_steps", "eval_steps", "eval_every_steps",
                     "checkpoint_every_steps"):
            positive(name)
        for name in ("batch_size", "epochs", "gradient_accumulation_steps", "log_every_steps"):
            positive(name, allow_none=False)
        need(self.learning_rate is None or self.learning_rate > 0,
             f"--learning_rate must be positive, got {self.learning_rate}")
        need(self.warmup_steps is None or self.warmup_steps >= 0,
             f"--warmup_steps must be >= 0, got {self.warmup_steps}")
        need(self.weight_decay >= 0, f"--weight_decay must be >= 0, got {self.weight_decay}")
        need(self.clipnorm is None or self.clipnorm > 0,
             f"--clipnorm must be positive, got {self.clipnorm}")
        need(self.mlm_loss_weight > 0,
             f"--mlm_loss_weight must be positive, got {self.mlm_loss_weight}")
        need(self.shuffle_buffer >= 0, f"--shuffle_buffer must be >= 0, got {self.shuffle_buffer}")
        need(self.cpu_devices >= 0, f"--cpu_devices must be >= 0, got {self.cpu_devices}")
        need(self.peak_tflops is None or self.peak_tflops > 0,
             f"--peak_tflops must be positive, got {self.peak_tflops}")
        need(self.optimizer in OPTIMIZERS, f"--optimizer must be one of {OPTIMIZERS}")
        need(self.mixed_precision in PRECISIONS, f"--mixed_precision must be one of {PRECISIONS}")
        need(self.strategy in STRATEGIES, f"--strategy must be one of {STRATEGIES}")
        need(self.jit_compile in ("auto", "true", "false"),
             "--jit_compile must be auto, true or false")
        need(self.pad_to is None or self.pad_to in PAD_MODES,
             f"--pad_to must be one of {PAD_MODES}")
        need(self.verbose in (0, 1, 2), f"--verbose must be 0, 1 or 2, got {self.verbose}")
        if problems:
            raise ValueError("; ".join(problems))


def make_parser() -> argparse.ArgumentParser:
    d = TrainConfig(tfrecords="-", model_dir="-")
    p = argparse.ArgumentParser(description="Pretrain BERT (MLM + NSP) with Keras.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--tfrecords", required=True, help="training shards: glob or dataset dir")
    p.add_argument("--model_dir", required=True)
    p.add_argument("--eval_tfrecords", default=None, help="held-out shards: glob")
    p.add_argument("--config", default=d.config, help="preset (tiny, mini, seed, base, large) "
                                                       "or a JSON file")
    for name, typ, text in [
        ("batch_size", int, "GLOBAL batch size"), ("epochs", int, None),
        ("steps_per_epoch", int, "default: train examples (metadata.json) // batch_size"),
        ("train_steps", int, "total steps; overrides --epochs"),
        ("eval_steps", int, "default: the whole eval split"),
        ("eval_every_steps", int, "also evaluate within epochs, every N steps"),
        ("learning_rate", float, "default: the preset's peak (see the README)"),
        ("warmup_steps", int, "default: max(100, total_steps // 10)"),
        ("weight_decay", float, "adamw and lamb"), ("clipnorm", float, "global norm clip"),
        ("gradient_accumulation_steps", int, "batches per optimizer update"),
        ("mlm_loss_weight", float, None), ("shuffle_buffer", int, None), ("seed", int, None),
        ("cpu_devices", int, "split the CPU into N logical devices (testing strategies)"),
        ("checkpoint_every_steps", int, "default: about every 5 minutes"),
        ("log_every_steps", int, "TensorBoard step scalars"),
        ("peak_tflops", float, "device peak for MFU; default: looked up by GPU name"),
        ("verbose", int, "Keras progress bar: 0, 1 or 2"),
    ]:
        p.add_argument(f"--{name}", type=typ, default=getattr(d, name), help=text)
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=d.optimizer)
    p.add_argument("--mixed_precision", choices=PRECISIONS, default=d.mixed_precision)
    p.add_argument("--strategy", choices=STRATEGIES, default=d.strategy)
    p.add_argument("--jit_compile", choices=("auto", "true", "false"), default=d.jit_compile)
    p.add_argument("--pad_to", choices=PAD_MODES, default=None,
                   help="default: buckets with XLA, else longest")
    p.add_argument("--spm_model", default=None,
                   help="the tokenizer; required for --masking=dynamic records")
    p.add_argument("--init_from", default=None,
                   help="a Hugging Face BERT folder to continue pretraining from "
                        "(sizes from its config.json; --config is ignored)")
    p.add_argument("--save_outputs", choices=("true", "false"), default="true",
                   help="write model.keras, encoder.keras, export/ and plots.png at the end")
    logs.add_verbosity_flag(p)
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The validated config; raises ValueError naming the flags at fault."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in vars(args).items() if k in fields}
    values["save_outputs"] = values.get("save_outputs", "true") == "true"
    return TrainConfig(**values)
