"""A synthetic dataset in the data job's format: full-length compact records of random
ordinary pieces with a metadata.json, for measuring speed where the text does not matter
(bertmodel.gpu_check, the input and training benchmarks). Full length, so padding cannot
flatter a measurement."""

from __future__ import annotations

import os

import numpy as np

from bertcommon.files import atomic_path, write_json
from bertdata import pretraining, schema, wire_format
from bertdata.tokenizer import NUM_SPECIAL, SPECIAL_IDS


def write_synthetic_dataset(directory: str, num_examples: int, *, vocab_size: int,
                            seq_length: int = 128, max_predictions: int = 20,
                            num_files: int = 1, seed: int = 0) -> int:
    """NUM_EXAMPLES // NUM_FILES examples in each of NUM_FILES train shards of DIRECTORY
    ([CLS] A [SEP] B [SEP], the masked positions in A); returns the examples written."""
    rng = np.random.default_rng(seed)
    per_file = num_examples // num_files
    shards = {}
    for index in range(num_files):
        ids = rng.integers(NUM_SPECIAL, vocab_size, (per_file, seq_length)).astype(np.int32)
        ids[:, 0] = SPECIAL_IDS.cls
        ids[:, seq_length // 2] = ids[:, -1] = SPECIAL_IDS.sep
        positions = np.sort(np.stack([rng.choice(np.arange(1, seq_length // 2), max_predictions,
                                                 replace=False) for _ in range(per_file)]),
                            axis=1)
        records = wire_format.serialize_compact_batch(
            ids, np.full(per_file, seq_length), positions, np.take_along_axis(ids, positions, 1),
            np.full(per_file, max_predictions), rng.integers(0, 2, per_file))
        name = schema.shard_name(schema.TRAIN, index, num_files, schema.Compression.NONE)
        with atomic_path(os.path.join(directory, name)) as tmp, open(tmp, "wb") as f:
            f.write(wire_format.frame_records(records))
        shards[name] = per_file
    meta = schema.DatasetMetadata.build(
        record_format="compact", masking="static", compression=schema.Compression.NONE,
        example_config=pretraining.ExampleSettings(max_seq_length=seq_length,
                                                   max_predictions_per_seq=max_predictions),
        tokenizer_sha256="synthetic", tokenizer_path="", vocab_size=vocab_size,
        special_ids=SPECIAL_IDS, package_version="synthetic",
        splits={schema.TRAIN: schema.SplitInfo(num_examples=per_file * num_files,
                                               num_shards=num_files, shards=shards)})
    write_json(os.path.join(directory, schema.METADATA_FILE), meta.to_json())
    return per_file * num_files
