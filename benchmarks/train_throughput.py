"""Training throughput of the project's BERT against keras-hub's BertMaskedLM, same size.

Usage:
    python -m benchmarks.train_throughput --config=seed --batch_size=64 --seq_length=128 \
        --max_predictions=20 --steps=12 --repeats=3 [--mixed_precision=auto|fp32|bf16|fp16]
        [--jit_compile=auto|true|false] [--electra]

--jit_compile=auto applies the trainer's rule to the project's model; keras-hub keeps Keras'
own default (no XLA on a CPU-only machine). Both models train with model.fit on the same
synthetic batch (full-length sequences, so
padding cannot flatter either), the same optimizer and the same precision, alternating run
by run in this one process. Each run times its steps after two warm-up steps with a
callback and keeps the median step; the figure per model is the median over runs.
keras-hub is a benchmark-only extra: pip install -e .[benchmark].

FLOPs per sequence (forward + backward) = 6*N_enc*S + 12*L*d*S^2 + 6*(d^2 + d*V)*P, with
N_enc the encoder-block parameters; MFU divides achieved FLOP/s by the device's peak
(--peak_tflops, or an estimate printed with its assumptions). The project's model executes
fewer FLOPs than the formula counts (see skipped_flops_per_sequence); the utilisation of the
FLOPs it does execute is printed too. The last line reads
`seq_per_s=<project> baseline_seq_per_s=<keras-hub> mfu=<x>`.
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import time

import numpy as np

from bertcommon import cli
from bertdata.tokenizer import NUM_SPECIAL
from bertmodel.model.bert import BertPretrainer
from bertmodel.model.config import load_config
from bertmodel.model.electra import ElectraPretrainer
from bertmodel.training.devices import resolve_jit, resolve_precision
from bertmodel.training.flops import device_peak, flops_per_sequence, skipped_flops_per_sequence
from bertmodel.training.schedule import WarmupCosine, make_optimizer


@dataclasses.dataclass(frozen=True)
class TrainThroughputSettings(cli.Settings):
    config: str = cli.flag("seed", help="a preset or a JSON config")
    batch_size: int = cli.flag(64, check=cli.positive)
    seq_length: int = cli.flag(128, check=cli.at_least(8))
    max_predictions: int = cli.flag(20, check=cli.positive)
    steps: int = cli.flag(12, check=cli.at_least(2))
    repeats: int = cli.flag(3, check=cli.positive)
    mixed_precision: str = cli.flag(
        "fp32", choices=("auto", "fp32", "bf16", "fp16"),
        help="auto: what the trainer picks on this machine")
    jit_compile: str = cli.flag("auto", choices=("auto", "true", "false"))
    baseline: bool = cli.flag(True, help="keras-hub's BertMaskedLM beside it")
    electra: bool = cli.flag(False, help="also time --objective=electra's model (generator "
                                         "a quarter wide) on the same batch")
    peak_tflops: float | None = cli.flag(None, check=cli.positive)

    def problems(self):
        if self.max_predictions >= self.seq_length:
            yield "--max_predictions: must be below --seq_length"


def synthetic_batch(batch, seq, preds, vocab, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(NUM_SPECIAL, vocab, (batch, seq)).astype("int32")
    segments = np.zeros((batch, seq), "int32")
    segments[:, seq // 2:] = 1
    positions = np.sort(np.stack([rng.choice(np.arange(1, seq), preds, replace=False)
                                  for _ in range(batch)]), axis=1).astype("int32")
    labels = rng.integers(NUM_SPECIAL, vocab, (batch, preds)).astype("int32")
    nsp = rng.integers(0, 2, batch).astype("int32")
    return ids, segments, positions, labels, nsp


class StepTimer:
    """Keras callback recording the wall time of each training step."""

    def __init__(self):
        import tensorflow as tf

        class _Cb(tf.keras.callbacks.Callback):
            def __init__(cb):
                super().__init__()
                cb.times = []
                cb.last = None

            def on_train_batch_end(cb, batch, logs=None):
                if logs:  # force the step's results to exist before reading the clock
                    float(next(iter(logs.values())))
                now = time.perf_counter()
                if cb.last is not None:
                    cb.times.append(now - cb.last)
                cb.last = now

        self.callback = _Cb()


def build_project(cfg, jit, model_class=None):
    model = (model_class or BertPretrainer)(config=cfg)
    model.compile(optimizer=make_optimizer("adam", WarmupCosine(2.5e-4, 100, 10_000)),
                  jit_compile=jit)
    return model


def build_keras_hub(cfg):
    import keras_hub
    import tensorflow as tf

    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=cfg.vocab_size, num_layers=cfg.num_layers, num_heads=cfg.num_heads,
        hidden_dim=cfg.hidden_size, intermediate_dim=cfg.intermediate_size,
        dropout=cfg.dropout_rate, max_sequence_length=cfg.max_position_embeddings)
    model = keras_hub.models.BertMaskedLM(backbone=backbone, preprocessor=None)
    model.compile(optimizer=tf.keras.optimizers.Adam(2.5e-4, beta_1=0.9, beta_2=0.98,
                                                     epsilon=1e-9),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  weighted_metrics=[tf.keras.metrics.SparseCategoricalAccuracy()])
    return model


def time_fit(model, data, steps):
    timer = StepTimer()
    model.fit(data, steps_per_epoch=steps + 2, epochs=1, verbose=0,
              callbacks=[timer.callback])
    return statistics.median(timer.callback.times[1:])  # drop the warm-up step


def measure(args: TrainThroughputSettings) -> None:
    import tensorflow as tf

    precision = resolve_precision(args.mixed_precision)
    policy = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}[precision]
    tf.keras.mixed_precision.set_global_policy(policy)
    cfg = load_config(args.config)
    jit = resolve_jit(args.jit_compile, 1, precision)
    b, s, pr = args.batch_size, args.seq_length, args.max_predictions
    ids, seg, pos, labels, nsp = synthetic_batch(b, s, pr, cfg.vocab_size)
    mask = np.ones_like(ids)
    weights = np.ones((b, pr), "float32")
    ours = tf.data.Dataset.from_tensors((
        {"input_ids": ids, "input_mask": mask, "segment_ids": seg,
         "masked_lm_positions": pos},
        {"masked_lm_ids": labels, "masked_lm_weights": weights, "next_sentence_labels": nsp},
    )).repeat()
    theirs = tf.data.Dataset.from_tensors((
        {"token_ids": ids, "segment_ids": seg, "padding_mask": mask, "mask_positions": pos},
        labels, weights)).repeat()

    models = {"project": build_project(cfg, jit)}
    if args.baseline:
        models["keras_hub"] = build_keras_hub(cfg)
    if args.electra:
        models["electra"] = build_project(cfg, jit, ElectraPretrainer)
    data = {"project": ours, "keras_hub": theirs, "electra": ours}
    rates = {k: [] for k in models}
    for r in range(args.repeats):
        for name, model in models.items():
            step = time_fit(model, data[name], args.steps)
            rates[name].append(b / step)
            print(f"run {r}: {name}: {b / step:.1f} seq/s ({step * 1000:.0f} ms/step)",
                  flush=True)
    ours_rate = statistics.median(rates["project"])
    base_rate = statistics.median(rates["keras_hub"]) if "keras_hub" in rates else float("nan")

    flops = flops_per_sequence(cfg, s, pr)
    peak, peak_note = device_peak(precision)
    if args.peak_tflops:
        peak, peak_note = args.peak_tflops * 1e12, "--peak_tflops"
    mfu = ours_rate * flops / peak if peak else float("nan")
    executed = flops - skipped_flops_per_sequence(cfg, s, pr)
    hw_util = ours_rate * executed / peak if peak else float("nan")
    print(f"\nconfig={args.config} precision={precision} jit_compile={jit} batch={b} seq={s} "
          f"preds={pr}; medians of {args.repeats} runs of {args.steps} steps")
    print(f"project params: {models['project'].count_params():,}; "
          f"FLOPs/sequence {flops / 1e9:.2f} G; peak {peak_note}")
    print(f"project {ours_rate:.1f} seq/s, keras-hub BertMaskedLM {base_rate:.1f} seq/s, "
          f"ratio {ours_rate / base_rate:.2f}x")
    print(f"MFU counts the formula's FLOPs; the project's model executes "
          f"{executed / 1e9:.2f} G of them per sequence (its last block skips the positions "
          f"no head reads), so the hardware's own utilisation is {hw_util:.3f}")
    if "electra" in rates:
        electra_rate = statistics.median(rates["electra"])
        print(f"ELECTRA (same discriminator, generator a quarter wide): {electra_rate:.1f} "
              f"seq/s, {ours_rate / electra_rate:.2f}x the time of an MLM step")
    print(f"seq_per_s={ours_rate:.1f} baseline_seq_per_s={base_rate:.1f} mfu={mfu:.3f}")


def main(argv=None) -> int:
    return cli.run_command(TrainThroughputSettings, measure, argv,
                           description=__doc__.split("\n")[0], tensorflow=True)


if __name__ == "__main__":
    sys.exit(main())
