"""Look at a TFRecord dataset before training on it.

Usage:
    python -m bertdata.inspect runs/sample/data --num_examples=3 \
        [--spm_model=runs/sample/tokenizer/ko.model]

Prints the record count of every shard, the numbers from stats.json and metadata.json, and
a few decoded examples with their masks shown as [MASK:original] (pieces when a tokenizer
is available, ids otherwise).
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def count_records(path: str, compression: str) -> int:
    import tensorflow as tf

    ds = tf.data.TFRecordDataset(path, compression_type=compression or None)
    return int(ds.reduce(0, lambda n, _: n + 1))


def describe(directory: str, num_examples: int = 3, spm_model: str | None = None) -> dict:
    """Counts, stats and decoded examples of a dataset directory, as a dict."""
    import tensorflow as tf

    from bertdata import input_pipeline, schema
    from bertdata.tokenizer import Tokenizer

    meta = schema.read_metadata(directory)
    if meta is None:
        raise ValueError(f"{directory} holds no {schema.METADATA_FILE}")
    compression = "GZIP" if meta["compression"] == "GZIP" else ""
    shards = {}
    for split in meta["splits"]:
        for path in sorted(tf.io.gfile.glob(os.path.join(directory, f"{split}-*-of-*"))):
            shards[os.path.basename(path)] = count_records(path, compression)
    stats_path = os.path.join(directory, schema.STATS_FILE)
    stats = {}
    if tf.io.gfile.exists(stats_path):
        with tf.io.gfile.GFile(stats_path) as f:
            stats = json.load(f)
    tok = None
    path = spm_model or meta["tokenizer"].get("path")
    if path and os.path.isfile(path):
        tok = Tokenizer.load(path)
    examples = []
    if num_examples > 0 and meta["masking"] == "static":
        ds = input_pipeline.make_dataset(directory, num_examples, is_training=False)
        features, labels = next(iter(ds))
        for i in range(int(features["input_ids"].shape[0])):
            examples.append(_render(features, labels, i, tok))
    return {"shards": shards, "total_records": sum(shards.values()), "metadata": meta,
            "stats": stats, "examples": examples}


def _render(features, labels, i, tok) -> dict:
    ids = features["input_ids"][i].numpy()
    n = int(features["input_mask"][i].numpy().sum())
    weights = labels["masked_lm_weights"][i].numpy()
    positions = features["masked_lm_positions"][i].numpy()[weights > 0]
    originals = labels["masked_lm_ids"][i].numpy()[weights > 0]
    show = (lambda t: tok.id_to_piece(t)) if tok else str
    original_at = dict(zip(positions.tolist(), originals.tolist(), strict=True))
    pieces = []
    for pos in range(n):
        piece = show(int(ids[pos]))
        if pos in original_at:
            piece = f"[{piece}:{show(original_at[pos])}]"
        pieces.append(piece)
    return {"tokens": " ".join(pieces), "length": n, "masked": len(original_at),
            "next_sentence_label": int(labels["next_sentence_labels"][i].numpy()),
            "segment_b_starts_at": int(list(features["segment_ids"][i].numpy()).index(1))
            if 1 in features["segment_ids"][i].numpy() else None}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Inspect a pretraining TFRecord directory.")
    p.add_argument("directory")
    p.add_argument("--num_examples", type=int, default=3)
    p.add_argument("--spm_model", default=None)
    args = p.parse_args(argv)
    try:
        info = describe(args.directory, args.num_examples, args.spm_model)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"dataset: {args.directory}")
    for name, count in info["shards"].items():
        print(f"  {name}: {count} records")
    print(f"  total: {info['total_records']} records")
    meta = info["metadata"]
    print(f"format: {meta['record_format']}, masking {meta['masking']}, max_seq_length "
          f"{meta['max_seq_length']}, max_predictions {meta['max_predictions_per_seq']}, "
          f"vocab {meta['vocab_size']}, nsp_mode {meta.get('nsp_mode')}, seed {meta['seed']}")
    stats = info["stats"]
    if stats:
        keys = ("documents_read", "examples", "train_examples", "eval_examples",
                "masked_fraction", "not_next_fraction", "unk_rate", "truncation_rate",
                "mean_length")
        print("stats: " + ", ".join(f"{k}={stats[k]:.4g}" if isinstance(stats[k], float)
                                    else f"{k}={stats[k]}" for k in keys if k in stats))
        if stats.get("skipped_or_repaired"):
            print("skipped or repaired: " + json.dumps(stats["skipped_or_repaired"]))
    for n, ex in enumerate(info["examples"], 1):
        label = "not next" if ex["next_sentence_label"] else "is next"
        print(f"\nexample {n}: {ex['length']} pieces, {ex['masked']} masked, {label}, "
              f"segment B from position {ex['segment_b_starts_at']}")
        print("  " + ex["tokens"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
