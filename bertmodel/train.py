"""Pretrain BERT on the TFRecords of the Beam job, with model.fit under tf.distribute.

Usage:
    python -m bertmodel.train --tfrecords='runs/data/train-*' \
        --eval_tfrecords='runs/data/eval-*' --model_dir=runs/model --config=seed \
        --batch_size=64 --epochs=2

Writes into --model_dir: config.json (model and training settings), data_metadata.json
(the dataset's metadata.json: tokenizer checksum, lengths), tokenizer.model when the
tokenizer file is reachable, checkpoints/best.weights.h5 (best by MLM accuracy),
backup/ (BackupAndRestore: rerun the same command to resume a killed run), logs/
(TensorBoard), history.csv, history.json, plots.png, model.keras (the pretrainer),
encoder.keras (the backbone, for fine-tuning) and export/ (a SavedModel for serving).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import shutil
import sys

log = logging.getLogger("bertmodel.train")

STRATEGIES = ("auto", "default", "mirrored", "multi_worker", "tpu")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


class TrainError(Exception):
    """A problem with the flags or the data, found before training starts."""


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Pretrain BERT (MLM + NSP) with Keras.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--tfrecords", required=True, help="training shards: glob or dataset dir")
    p.add_argument("--eval_tfrecords", default=None, help="held-out shards: glob")
    p.add_argument("--model_dir", required=True)
    p.add_argument("--config", default="seed", help="preset (tiny, seed, base, large) or JSON")
    p.add_argument("--batch_size", type=int, default=64, help="GLOBAL batch size")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--steps_per_epoch", type=int, default=None,
                   help="default: training examples (metadata.json) // batch_size")
    p.add_argument("--train_steps", type=int, default=None,
                   help="total steps; overrides --epochs (epochs = train_steps / "
                        "steps_per_epoch)")
    p.add_argument("--eval_steps", type=int, default=None, help="default: the whole eval set")
    p.add_argument("--learning_rate", type=float, default=2.5e-4)
    p.add_argument("--warmup_steps", type=int, default=None,
                   help="default: max(100, total_steps // 10)")
    p.add_argument("--optimizer", choices=("adam", "adamw"), default="adam")
    p.add_argument("--weight_decay", type=float, default=0.01, help="adamw only")
    p.add_argument("--clipnorm", type=float, default=None, help="global gradient-norm clip")
    p.add_argument("--mlm_loss_weight", type=float, default=20.0)
    p.add_argument("--mixed_precision", choices=PRECISIONS, default="auto")
    p.add_argument("--strategy", choices=STRATEGIES, default="auto")
    p.add_argument("--jit_compile", choices=("auto", "true", "false"), default="auto",
                   help="auto: XLA on a single device (not for bf16 on a CPU), off under a "
                        "multi-replica strategy")
    p.add_argument("--pad_to", choices=("longest", "buckets", "max"), default=None,
                   help="default: buckets with XLA (few shapes to compile), else longest")
    p.add_argument("--shuffle_buffer", type=int, default=10_000)
    p.add_argument("--spm_model", default=None,
                   help="tokenizer .model; needed for records written with --masking=dynamic")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--cpu_devices", type=int, default=0,
                   help="split the CPU into this many logical devices (testing strategies)")
    p.add_argument("--verbose", type=int, default=1, help="Keras progress bar: 0, 1 or 2")
    return p


def cpu_has_bf16() -> bool:
    """True on x86 CPUs with bf16 matrix instructions (AVX512-BF16 or AMX), via oneDNN."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(name: str) -> str:
    """'auto': bf16 on GPUs with bf16 tensor cores (compute capability >= 8) and on CPUs with
    bf16 instructions (measured: 1.5x fp32 on a 2-core AVX512-BF16 CPU), fp16 on older GPUs,
    fp32 elsewhere."""
    if name != "auto":
        return name
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "bf16" if cpu_has_bf16() else "fp32"
    cc = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability", (0, 0))
    return "bf16" if cc and cc[0] >= 8 else "fp16"


def resolve_jit(flag: str, replicas: int, precision: str) -> bool:
    """'auto': XLA on a single device, except bf16 on a CPU, where XLA's CPU backend does not
    use the bf16 instructions (measured 47 against 66 seq/s without XLA); never under a
    multi-replica strategy (it failed there with Keras 3)."""
    if flag != "auto":
        return flag == "true"
    import tensorflow as tf

    if replicas > 1:
        return False
    return bool(tf.config.list_physical_devices("GPU")) or precision == "fp32"


def configure_devices(cpu_devices: int) -> None:
    import tensorflow as tf

    if cpu_devices > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_devices)


def make_strategy(name: str):
    import tensorflow as tf

    if name == "multi_worker":
        # Must come before anything initializes the TensorFlow runtime (listing devices
        # does), or collective ops cannot be configured.
        if "TF_CONFIG" not in os.environ:
            raise TrainError("--strategy=multi_worker needs the TF_CONFIG environment variable")
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise TrainError(f"--strategy must be one of {STRATEGIES}, got {name!r}")


def _dataset_metadata(pattern: str):
    from bertdata import schema

    try:
        files = schema.list_files(pattern)
    except ValueError as e:
        raise TrainError(f"--tfrecords: {e}") from None
    directory = os.path.dirname(files[0])
    try:
        meta = schema.read_metadata(directory)
    except ValueError as e:
        raise TrainError(str(e)) from None
    if meta is None:
        raise TrainError(f"--tfrecords: no {schema.METADATA_FILE} in {directory}; train on "
                         "the output of beam_jobs.create_pretraining_data")
    return files, meta


def plan_steps(args, meta) -> tuple[int, int]:
    """(steps_per_epoch, epochs) from the flags and the dataset size."""
    steps_per_epoch = args.steps_per_epoch
    if steps_per_epoch is None:
        examples = meta.get("splits", {}).get("train", {}).get("num_examples")
        if not examples:
            raise TrainError("metadata.json has no train example count: pass "
                             "--steps_per_epoch")
        steps_per_epoch = max(1, examples // args.batch_size)
    epochs = args.epochs
    if args.train_steps is not None:
        if args.train_steps < 1:
            raise TrainError(f"--train_steps must be at least one step, got {args.train_steps}")
        steps_per_epoch = min(steps_per_epoch, args.train_steps)
        epochs = max(1, math.ceil(args.train_steps / steps_per_epoch))
    if steps_per_epoch < 1 or epochs < 1:
        raise TrainError("need at least one step and one epoch")
    return steps_per_epoch, epochs


def save_plots(history: dict, path: str) -> None:
    """The reference's two plots side by side: NSP/MLM loss and NSP/MLM accuracy per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    epochs = range(1, len(history.get("loss", [])) + 1)
    for ax, kind in ((ax_loss, "loss"), (ax_acc, "accuracy")):
        for head in ("nsp", "mlm"):
            for prefix, style in (("", "-"), ("val_", "--")):
                key = f"{prefix}{head}_{kind}"
                if key in history:
                    ax.plot(epochs, history[key], style, marker="o",
                            label=f"{head.upper()} {'eval' if prefix else 'train'}")
        ax.set_xlabel("epoch")
        ax.set_title(f"NSP / MLM {kind}")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run(argv=None) -> dict:
    """Trains; returns a summary dict. Raises TrainError for bad flags or data."""
    args = make_parser().parse_args(argv)
    if args.batch_size < 1:
        raise TrainError(f"--batch_size must be positive, got {args.batch_size}")
    from bertmodel.config import PRESETS, load_config

    try:
        cfg = load_config(args.config)
    except ValueError as e:
        raise TrainError(str(e)) from None
    files, meta = _dataset_metadata(args.tfrecords)
    if args.config in PRESETS:
        cfg = dataclasses.replace(cfg, vocab_size=meta["vocab_size"])
    elif cfg.vocab_size != meta["vocab_size"]:
        raise TrainError(f"--config {args.config} has vocab_size={cfg.vocab_size} but the "
                         f"records were made with a {meta['vocab_size']}-piece tokenizer")
    if meta["max_seq_length"] > cfg.max_position_embeddings:
        raise TrainError(f"records are {meta['max_seq_length']} tokens long but the model has "
                         f"{cfg.max_position_embeddings} positions")
    if meta["masking"] == "dynamic" and not args.spm_model:
        raise TrainError("these records are unmasked (--masking=dynamic): pass --spm_model")
    steps_per_epoch, epochs = plan_steps(args, meta)

    import tensorflow as tf

    import bertdata
    from bertdata import dynamic_masking as dm
    from bertmodel.export import export_saved_model
    from bertmodel.layers import KERAS3
    from bertmodel.model import BertPretrainer, dummy_inputs
    from bertmodel.schedule import WarmupCosine, default_warmup_steps, make_optimizer

    configure_devices(args.cpu_devices)
    strategy = make_strategy(args.strategy)
    replicas = strategy.num_replicas_in_sync
    if args.batch_size % replicas:
        raise TrainError(f"--batch_size {args.batch_size} is not divisible by the "
                         f"{replicas} replicas of the strategy")
    precision = resolve_precision(args.mixed_precision)
    tf.keras.mixed_precision.set_global_policy(
        {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}[precision])
    jit = resolve_jit(args.jit_compile, replicas, precision)
    pad_to = args.pad_to or ("buckets" if jit else "longest")
    tf.keras.utils.set_random_seed(args.seed)

    total_steps = steps_per_epoch * epochs
    warmup = args.warmup_steps if args.warmup_steps is not None else \
        default_warmup_steps(total_steps)
    masking = dm.masking_options(args.spm_model) if meta["masking"] == "dynamic" else None

    def dataset_fn(pattern, training):
        def fn(ctx):
            return bertdata.make_dataset(
                pattern, args.batch_size, is_training=training, input_context=ctx,
                seed=args.seed, pad_to=pad_to, shuffle_buffer=args.shuffle_buffer,
                dynamic_masking=masking, repeat=training)
        return strategy.distribute_datasets_from_function(fn)

    try:
        train_ds = dataset_fn(files, True)
        eval_ds = dataset_fn(args.eval_tfrecords, False) if args.eval_tfrecords else None
    except ValueError as e:
        raise TrainError(str(e)) from None

    # Under multi-worker training every worker runs this code; only the chief writes into
    # --model_dir, the others into a scratch folder beside it (removed at the end).
    out_dir = args.model_dir if is_chief(strategy) else os.path.join(
        args.model_dir, f".worker-{strategy.cluster_resolver.task_id}")
    os.makedirs(out_dir, exist_ok=True)
    settings = {"model": cfg.to_dict(), "training": {
        **vars(args), "steps_per_epoch": steps_per_epoch, "epochs": epochs,
        "total_steps": total_steps, "warmup_steps": warmup, "precision": precision,
        "jit_compile": jit, "pad_to": pad_to, "replicas": replicas}}
    _write_json(os.path.join(out_dir, "config.json"), settings)
    _write_json(os.path.join(out_dir, "data_metadata.json"), meta)
    tokenizer_path = args.spm_model or meta["tokenizer"].get("path")
    if tokenizer_path and os.path.isfile(tokenizer_path):
        shutil.copyfile(tokenizer_path, os.path.join(out_dir, "tokenizer.model"))

    with strategy.scope():
        model = BertPretrainer(config=cfg, mlm_loss_weight=args.mlm_loss_weight,
                               name="bert_pretrainer")
        model(dummy_inputs(cfg))
        schedule = WarmupCosine(args.learning_rate, warmup, total_steps)
        model.compile(optimizer=make_optimizer(args.optimizer, schedule,
                                               weight_decay=args.weight_decay,
                                               clipnorm=args.clipnorm),
                      jit_compile=jit)
    log.info("model: %s parameters; %d replica(s); precision %s; XLA %s; %d steps "
             "(%d epochs x %d), warm-up %d", f"{model.count_params():,}", replicas,
             precision, jit, total_steps, epochs, steps_per_epoch, warmup)

    monitor = "val_mlm_accuracy" if eval_ds is not None else "mlm_accuracy"
    ckpt_dir = os.path.join(out_dir, "checkpoints")
    os.makedirs(ckpt_dir, exist_ok=True)
    callbacks = [
        # double_checkpoint: a run killed while writing its backup resumes from the one
        # before (without it, a kill mid-write left an unreadable HDF5 file behind).
        _finite_only(tf.keras.callbacks.BackupAndRestore)(
            os.path.join(args.model_dir, "backup"),
            **({"double_checkpoint": True} if KERAS3 else {})),
        _finite_only(tf.keras.callbacks.ModelCheckpoint)(
            os.path.join(ckpt_dir, "best.weights.h5"), monitor=monitor, mode="max",
            save_best_only=True, save_weights_only=True),
        tf.keras.callbacks.TensorBoard(os.path.join(out_dir, "logs")),
        tf.keras.callbacks.CSVLogger(os.path.join(out_dir, "history.csv"),
                                     append=True),
        tf.keras.callbacks.TerminateOnNaN(),
    ]
    eval_steps = args.eval_steps
    if eval_ds is not None and eval_steps is None:
        eval_steps = _eval_steps(args.eval_tfrecords, args.batch_size)
    history = model.fit(train_ds, epochs=epochs, steps_per_epoch=steps_per_epoch,
                        validation_data=eval_ds, validation_steps=eval_steps,
                        callbacks=callbacks, verbose=args.verbose)
    hist = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    _write_json(os.path.join(out_dir, "history.json"), hist)
    summary = {"model_dir": args.model_dir, "history": hist,
               "parameters": int(model.count_params())}
    if any(not math.isfinite(v) for v in hist.get("loss", [])) or \
            getattr(model, "stop_training", False):
        # TerminateOnNaN stopped the run: keep the last good checkpoint, publish nothing.
        raise TrainError("training stopped on a non-finite loss; the best checkpoint so far "
                         f"is kept in {ckpt_dir}")
    if hist:
        save_plots(hist, os.path.join(out_dir, "plots.png"))
    best = os.path.join(ckpt_dir, "best.weights.h5")
    if os.path.exists(best) and (KERAS3 or replicas == 1):
        # The reference keeps the best weights by MLM accuracy. (tf-keras cannot assign
        # loaded weights to multi-worker variables; there the final weights are kept.)
        with strategy.scope():
            model.load_weights(best)
    model.save(os.path.join(out_dir, "model.keras"))
    model.backbone.save(os.path.join(out_dir, "encoder.keras"))
    export_saved_model(model, os.path.join(out_dir, "export"))
    summary["best_checkpoint"] = best
    if eval_ds is not None:
        summary["eval"] = {k: float(v) for k, v in model.evaluate(
            eval_ds, steps=eval_steps, verbose=0, return_dict=True).items()}
    if out_dir != args.model_dir:
        shutil.rmtree(out_dir, ignore_errors=True)
    summary["plots"] = os.path.join(out_dir, "plots.png")
    summary["logs"] = os.path.join(out_dir, "logs")
    return summary


def _finite_only(callback_class):
    """The callback, minus its end-of-epoch work after an epoch whose loss is not finite.

    TerminateOnNaN ends the run at the epoch's end, but ModelCheckpoint (whose "best" starts
    at -inf) and BackupAndRestore would first save the broken weights over the good ones.
    """

    class FiniteOnly(callback_class):
        def on_epoch_end(self, epoch, logs=None):
            loss = (logs or {}).get("loss")
            if loss is not None and not math.isfinite(float(loss)):
                return
            super().on_epoch_end(epoch, logs)

    FiniteOnly.__name__ = f"FiniteOnly{callback_class.__name__}"
    return FiniteOnly


def is_chief(strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (resolver.task_type == "worker"
                                            and resolver.task_id == 0)


def _eval_steps(pattern: str, batch_size: int) -> int | None:
    """Batches in one pass over the eval split, from its metadata (None when unknown)."""
    from bertdata import schema

    files = schema.list_files(pattern)
    meta = schema.read_metadata(os.path.dirname(files[0]))
    count = (meta or {}).get("splits", {}).get("eval", {}).get("num_examples")
    return math.ceil(count / batch_size) if count else None


def _write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True, default=str)
        f.write("\n")


def _use_legacy_keras_for_multi_worker(argv) -> None:
    """Keras 3's fit fails under MultiWorkerMirroredStrategy (keras-team/keras#20585; here it
    raised "Attempt to convert a value ({'input_ids': PerReplica...})"), so that path runs
    the same model code under tf-keras. The switch must happen before TensorFlow loads."""
    args = sys.argv[1:] if argv is None else argv
    if "--strategy=multi_worker" in args or (
            "--strategy" in args and args[args.index("--strategy") + 1:][:1] == ["multi_worker"]):
        if "tensorflow" in sys.modules:
            return
        os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


def main(argv=None) -> int:
    _use_legacy_keras_for_multi_worker(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    try:
        summary = run(argv)
    except TrainError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({k: v for k, v in summary.items() if k != "history"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
