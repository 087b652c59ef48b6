"""Throughput of `bertdata.make_dataset` against the common per-example pipeline.

Usage:
    python benchmarks/input_throughput.py --examples=200000 --batch_size=64 --repeats=3

Writes synthetic compact records (seq 128, 20 predictions, full length) with metadata into
a temporary folder, then times, in this one process and interleaved run by run:
  * make_dataset with one thread (tf.data private threadpool of 1, intra-op 1),
  * make_dataset with all cores,
  * the baseline: TFRecordDataset -> parse one example at a time -> padded_batch,
    with one thread and with all cores.
Prints the median examples/s of each and the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bertdata import pretraining, schema, wire_format  # noqa: E402
from bertdata.tfdata import dataset_files  # noqa: E402


def write_records(directory, num_examples, seq_len, num_preds, vocab, num_files=8):
    rng = np.random.default_rng(0)
    per_file = num_examples // num_files
    for i in range(num_files):
        path = os.path.join(directory, f"train-{i:05d}-of-{num_files:05d}.tfrecord")
        records = []
        for _ in range(per_file):
            ids = rng.integers(7, vocab, seq_len)
            pos = np.sort(rng.choice(seq_len, num_preds, replace=False))
            ids[0], ids[seq_len // 2], ids[-1] = 5, 4, 4  # [CLS] A [SEP] B [SEP]
            records.append(wire_format.serialize_compact(ids, pos, ids[pos], int(rng.integers(2))))
        _write_tfrecord(path, records)
    meta = schema.DatasetMetadata.build(
        record_format="compact", masking="static", compression=schema.Compression.NONE,
        example_config=pretraining.ExampleSettings(max_seq_length=seq_len,
                                                 max_predictions_per_seq=num_preds, seed=0),
        tokenizer_sha256="synthetic", tokenizer_path="", vocab_size=vocab, special_ids={},
        splits={}, package_version="input_throughput")
    with open(os.path.join(directory, schema.METADATA_FILE), "w") as f:
        json.dump(meta.to_json(), f)
    return per_file * num_files


def _write_tfrecord(path, records):
    import tensorflow as tf

    with tf.io.TFRecordWriter(path) as w:
        for r in records:
            w.write(r)


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
        seg = tf.cast(tf.cumsum(tf.cast(ids == 4, tf.int32), exclusive=True) > 0, tf.int32)
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


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--examples", type=int, default=200_000)
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--seq_length", type=int, default=128)
    p.add_argument("--max_predictions", type=int, default=20)
    p.add_argument("--vocab_size", type=int, default=32_007)
    p.add_argument("--batches", type=int, default=600)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)

    import tensorflow as tf

    import bertdata

    with tempfile.TemporaryDirectory() as d:
        n = write_records(d, args.examples, args.seq_length, args.max_predictions,
                          args.vocab_size)
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


if __name__ == "__main__":
    main()
