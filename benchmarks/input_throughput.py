"""Throughput of `bertdata.make_dataset` against the common per-example pipeline.

Usage:
    python -m benchmarks.input_throughput --examples=200000 --batch_size=64 --repeats=3

Writes synthetic compact records (seq 128, 20 predictions, full length) with metadata into
a temporary folder, then times, in this one process and interleaved run by run:
  * make_dataset with one thread (tf.data private threadpool of 1, intra-op 1),
  * make_dataset with all cores,
  * the baseline: TFRecordDataset -> parse one example at a time -> padded_batch,
    with one thread and with all cores.
Prints the median examples/s of each and the ratios.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import sys
import tempfile
import time

import bertdata
from bertcommon import cli
from bertdata import schema
from bertdata.synthetic import write_synthetic_dataset
from bertdata.tfdata import dataset_files
from bertdata.tokenizer import SPECIAL_IDS


@dataclasses.dataclass(frozen=True)
class InputThroughputSettings(cli.Settings):
    examples: int = cli.flag(200_000, check=cli.at_least(8))
    batch_size: int = cli.flag(64, check=cli.positive)
    seq_length: int = cli.flag(128, check=cli.at_least(8))
    max_predictions: int = cli.flag(20, check=cli.positive)
    vocab_size: int = cli.flag(32_007, check=cli.at_least(100))
    batches: int = cli.flag(600, check=cli.positive)
    repeats: int = cli.flag(3, check=cli.positive)

    def problems(self):
        if self.max_predictions >= self.seq_length // 2:
            yield "--max_predictions: must be below half of --seq_length"


def single_threaded(ds):
    import tensorflow as tf

    opts = tf.data.Options()
    opts.threading.private_threadpool_size = 1
    opts.threading.max_intra_op_parallelism = 1
    return ds.with_options(opts)


def baseline_dataset(pattern, batch_size, seq_len, num_preds):
    """The common way: parse each record on its own, then padded_batch."""
    import tensorflow as tf

    spec = dataset_files.parse_spec("compact", masked=True)
    spec = {k: (tf.io.VarLenFeature(tf.int64) if k != schema.NEXT_SENTENCE_LABELS else v)
            for k, v in spec.items()}

    def parse(record):
        ex = tf.io.parse_single_example(record, spec)
        ids = tf.cast(tf.sparse.to_dense(ex[schema.INPUT_IDS]), tf.int32)
        after_first_sep = tf.cumsum(tf.cast(ids == SPECIAL_IDS.sep, tf.int32), exclusive=True)
        seg = tf.cast(after_first_sep > 0, tf.int32)
        pos = tf.cast(tf.sparse.to_dense(ex[schema.MASKED_LM_POSITIONS]), tf.int32)
        lm = tf.cast(tf.sparse.to_dense(ex[schema.MASKED_LM_IDS]), tf.int32)
        feats = {"input_ids": ids, "input_mask": tf.ones_like(ids), "segment_ids": seg,
                 "masked_lm_positions": pos}
        labels = {"masked_lm_ids": lm, "masked_lm_weights": tf.ones_like(pos, tf.float32),
                  "next_sentence_labels": tf.cast(ex[schema.NEXT_SENTENCE_LABELS][0], tf.int32)}
        return feats, labels

    files = tf.data.Dataset.list_files(pattern, shuffle=True, seed=1)
    ds = files.interleave(tf.data.TFRecordDataset, cycle_length=8,
                          num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.shuffle(10_000, seed=1).repeat()
    ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.padded_batch(batch_size, padded_shapes=(
        {"input_ids": [seq_len], "input_mask": [seq_len], "segment_ids": [seq_len],
         "masked_lm_positions": [num_preds]},
        {"masked_lm_ids": [num_preds], "masked_lm_weights": [num_preds],
         "next_sentence_labels": []}), drop_remainder=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def time_dataset(ds, batches, batch_size, warmup=50):
    """Examples/s when the batches are consumed inside the TensorFlow runtime.

    `model.fit` pulls batches inside its compiled step, so the benchmark does the same (a
    tf.function loop over one iterator) instead of paying a Python round trip per batch.
    The warm-up fills the shuffle buffer before the clock starts.
    """
    import tensorflow as tf

    it = iter(ds)

    @tf.function
    def consume(n):
        for _ in tf.range(n):
            next(it)
        return n

    consume(tf.constant(warmup))
    start = time.perf_counter()
    consume(tf.constant(batches))
    return batches * batch_size / (time.perf_counter() - start)


def measure(args: InputThroughputSettings) -> None:
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as d:
        n = write_synthetic_dataset(d, args.examples, vocab_size=args.vocab_size,
                                    seq_length=args.seq_length,
                                    max_predictions=args.max_predictions, num_files=8)
        print(f"wrote {n} compact records to {d}")
        pattern = os.path.join(d, "train-*")
        make = lambda: bertdata.make_dataset(pattern, args.batch_size, seed=1)  # noqa: E731
        base = lambda: baseline_dataset(pattern, args.batch_size, args.seq_length,  # noqa: E731
                                        args.max_predictions)
        runs = {
            "make_dataset_1_thread": lambda: single_threaded(make()),
            "make_dataset_all_cores": make,
            "per_example_1_thread": lambda: single_threaded(base()),
            "per_example_all_cores": base,
        }
        results = {k: [] for k in runs}
        for r in range(args.repeats):
            for name, build in runs.items():
                rate = time_dataset(build(), args.batches, args.batch_size)
                results[name].append(rate)
                print(f"run {r}: {name}: {rate:,.0f} examples/s", flush=True)
        med = {k: statistics.median(v) for k, v in results.items()}
        print(f"\ncores: {os.cpu_count()}, tensorflow {tf.__version__}, batch "
              f"{args.batch_size}, seq {args.seq_length}, medians of {args.repeats} runs:")
        for k, v in med.items():
            print(f"  {k:24s} {v:12,.0f} examples/s")
        one = med["make_dataset_1_thread"] / med["per_example_1_thread"]
        every = med["make_dataset_all_cores"] / med["per_example_all_cores"]
        print(f"  ratio 1 thread:  {one:.2f}x")
        print(f"  ratio all cores: {every:.2f}x")
        print(f"examples_per_s_1_thread={med['make_dataset_1_thread']:.0f} "
              f"baseline_1_thread={med['per_example_1_thread']:.0f} "
              f"examples_per_s_all={med['make_dataset_all_cores']:.0f} "
              f"baseline_all={med['per_example_all_cores']:.0f}")


def main(argv=None) -> int:
    return cli.run_command(InputThroughputSettings, measure, argv,
                           description=__doc__.split("\n")[0], tensorflow=True)


if __name__ == "__main__":
    sys.exit(main())
