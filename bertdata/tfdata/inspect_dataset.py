"""Look at a TFRecord dataset before training on it.

Usage:
    python -m bertdata.tfdata.inspect_dataset runs/sample/data --num_examples=3 \
        [--spm_model=runs/sample/tokenizer/ko.model]

Prints the record count of every shard next to the count metadata.json gives for it, the
numbers from stats.json and metadata.json, and a few decoded examples with their masks shown
as [MASK:original] (pieces when a tokenizer is available, ids otherwise). Exit code 1 when a
shard's count differs from metadata.json, 2 for a directory that is not a dataset or holds
no records.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys

from bertcommon import cli
from bertcommon.errors import BertpipeError
from bertcommon.files import read_json
from bertdata import schema
from bertdata.tfdata import dataset_files, input_pipeline
from bertdata.tfdata.integrity import read_error_message
from bertdata.tokenizer_files import load_tokenizer


def count_records(path: str, compression: schema.Compression) -> int:
    import tensorflow as tf

    ds = tf.data.TFRecordDataset(path, compression_type=compression.tensorflow)
    return int(ds.reduce(0, lambda n, _: n + 1))


def shard_counts(directory: str,
                 meta: schema.DatasetMetadata) -> dict[str, tuple[int, int | None]]:
    """{shard name: (records it holds, records metadata.json gives, or None)}."""
    import tensorflow as tf

    counts = {}
    for split in schema.SPLITS:
        pattern = os.path.join(directory, schema.shard_glob(split))
        for path in sorted(tf.io.gfile.glob(pattern)):
            counts[os.path.basename(path)] = (count_records(path, meta.compression),
                                              meta.records_in(path))
    return counts


def describe(directory: str, num_examples: int = 3, spm_model: str | None = None) -> dict:
    """Counts, stats and decoded examples of a dataset directory, as a dict."""
    import tensorflow as tf

    meta = dataset_files.read_metadata(directory)
    if meta is None:
        raise ValueError(f"{directory} holds no {schema.METADATA_FILE}")
    shards = shard_counts(directory, meta)
    total = sum(n for n, _ in shards.values())
    if total == 0:
        raise ValueError(f"{directory} holds no records ({len(shards)} shard(s))")
    stats_path = os.path.join(directory, schema.STATS_FILE)
    stats = {}
    if tf.io.gfile.exists(stats_path):
        stats = read_json(stats_path, opener=tf.io.gfile.GFile)
    tok = None
    if spm_model:
        if not os.path.exists(spm_model):
            raise ValueError(f"--spm_model {spm_model}: no such file")
        try:
            tok = load_tokenizer(spm_model)
        except ValueError as e:  # names the file
            raise ValueError(f"--spm_model {e}") from None
        if tok.sha256 != meta.tokenizer.sha256:
            raise ValueError(f"--spm_model {spm_model}: not the tokenizer the records were "
                             "made with")
    elif meta.tokenizer.path and os.path.exists(meta.tokenizer.path):
        tok = load_tokenizer(meta.tokenizer.path)
    examples = []
    if num_examples > 0 and meta.masking == "static":
        ds = input_pipeline.make_dataset(directory, num_examples, is_training=False)
        features, labels = next(iter(ds))
        for i in range(int(features[schema.INPUT_IDS].shape[0])):
            examples.append(render(features, labels, i, tok))
    return {"shards": shards, "total_records": total, "metadata": meta, "stats": stats,
            "examples": examples}


def render(features, labels, i, tok) -> dict:
    ids = features[schema.INPUT_IDS][i].numpy()
    n = int(features[schema.INPUT_MASK][i].numpy().sum())
    weights = labels[schema.MASKED_LM_WEIGHTS][i].numpy()
    positions = features[schema.MASKED_LM_POSITIONS][i].numpy()[weights > 0]
    originals = labels[schema.MASKED_LM_IDS][i].numpy()[weights > 0]
    show = tok.id_to_piece if tok else str
    original_at = dict(zip(positions.tolist(), originals.tolist(), strict=True))
    pieces = []
    for pos in range(n):
        piece = show(int(ids[pos]))
        if pos in original_at:
            piece = f"[{piece}:{show(original_at[pos])}]"
        pieces.append(piece)
    segments = features[schema.SEGMENT_IDS][i].numpy().tolist()
    return {"tokens": " ".join(pieces), "length": n, "masked": len(original_at),
            "next_sentence_label": int(labels[schema.NEXT_SENTENCE_LABELS][i].numpy()),
            "segment_b_starts_at": segments.index(1) if 1 in segments else None}


def print_report(directory: str, info: dict) -> int:
    """Prints the report; returns the number of shards whose count disagrees."""
    print(f"dataset: {directory}")
    wrong = 0
    for name, (count, expected) in info["shards"].items():
        note = "" if expected is None else f" (metadata.json: {expected})"
        if expected is not None and expected != count:
            note += " MISMATCH"
            wrong += 1
        print(f"  {name}: {count} records{note}")
    print(f"  total: {info['total_records']} records")
    meta = info["metadata"]
    print(f"format: {meta.record_format}, masking {meta.masking}, max_seq_length "
          f"{meta.max_seq_length}, max_predictions {meta.max_predictions_per_seq}, "
          f"vocab {meta.vocab_size}, nsp_mode {meta.nsp_mode}, seed {meta.seed}")
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
    return wrong


@dataclasses.dataclass(frozen=True)
class InspectSettings(cli.Settings):
    directory: str = cli.flag(positional=True, help="the data job's output directory")
    num_examples: int = cli.flag(3, check=cli.non_negative, help="examples to decode")
    spm_model: str | None = cli.flag(None, help="the tokenizer, to show pieces")


def _command(settings: InspectSettings) -> int:
    import tensorflow as tf

    try:
        info = describe(settings.directory, settings.num_examples, settings.spm_model)
    except (ValueError, OSError) as e:
        raise BertpipeError(str(e)) from None
    except tf.errors.OpError as e:  # a damaged shard, found while reading it
        message = read_error_message(e)
        if message is None:
            raise
        raise BertpipeError(f"{settings.directory}: {message}") from None
    wrong = print_report(settings.directory, info)
    if wrong:
        raise BertpipeError(f"{wrong} shard(s) hold another record count than "
                               "metadata.json says", exit_code=1)
    return 0


def main(argv=None) -> int:
    return cli.run_command(InspectSettings, _command, argv, tensorflow=True,
                           description="Inspect a pretraining TFRecord directory.")


if __name__ == "__main__":
    sys.exit(main())
