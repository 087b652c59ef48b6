"""Example building one document or one example at a time, for tests.

The data job builds examples in batches of many documents; these helpers run the same
public functions on a single document (or a single finished example), which is what tests
compare the batched paths with.
"""

import collections

import numpy as np

from bertdata import pretraining as pt
from bertdata.tokenizer import SPECIAL_IDS


def document_examples(doc, config: pt.ExampleSettings, vocab: pt.VocabTables, *, key: bytes,
                      pool=None, counts=None) -> list[pt.Instance]:
    """All examples of one document over `dupe_factor` passes, each with its own streams."""
    passes = list(pt.document_passes(doc, config, key=key, pool=pool, counts=counts))
    if not passes:
        return []
    pairs = [pair for pass_pairs, _ in passes for pair in pass_pairs]
    batch = pt.build_batch(pairs, [rng for _, rng in passes], [len(p) for p, _ in passes],
                           config, vocab, counts)
    return batch.instances()


def one_pass_examples(doc, rng, config: pt.ExampleSettings, vocab: pt.VocabTables, *,
                      key: bytes = b"", pool=None, counts=None) -> list[pt.Instance]:
    """One pass over one document with one stream that cuts the pairs, then masks them."""
    counts = counts if counts is not None else collections.Counter()
    pairs = pt.document_pairs(doc, rng, config, key=key, pool=pool, counts=counts)
    if not pairs:
        return []
    return pt.build_batch(pairs, [rng], [len(pairs)], config, vocab, counts).instances()


def pack_pair(a: np.ndarray, b: np.ndarray, max_seq_length: int):
    """(input_ids, segment_ids, truncated) of one pair laid out as [CLS] A [SEP] B [SEP]."""
    batch = pt.ExampleBatch.from_pairs([(a, b, 0)], max_seq_length, SPECIAL_IDS)
    return batch.input_ids[0, :batch.lengths[0]], batch.segment_ids(0), bool(batch.truncated[0])


def mask_one(ids, rng, vocab: pt.VocabTables, **rates):
    """Whole-word masking of one finished example: (masked ids, positions, original ids)."""
    ids = np.asarray(ids, dtype=np.int32)
    batch = pt.ExampleBatch.from_rows([ids], vocab.special.sep)
    pt.mask_whole_words(batch, [rng], [1], vocab, **rates)
    n = batch.num_masked[0]
    return (batch.input_ids[0, :len(ids)].copy(), batch.masked_lm_positions[0, :n].copy(),
            batch.masked_lm_ids[0, :n].copy())


def metadata(**overrides):
    """A DatasetMetadata as the data job builds it, with small defaults; OVERRIDES replace
    fields (splits as {split: {shard name: records}})."""
    import dataclasses

    from bertdata import schema

    shards = overrides.pop("splits", {schema.TRAIN: {}})
    splits = {name: schema.SplitInfo(num_examples=sum(counts.values()),
                                     num_shards=len(counts), shards=dict(counts))
              for name, counts in shards.items()}
    example_fields = {f.name for f in dataclasses.fields(pt.ExampleSettings)}
    example = pt.ExampleSettings(**{k: overrides.pop(k) for k in list(overrides)
                                  if k in example_fields})
    built = schema.DatasetMetadata.build(
        record_format="compact", masking=example.masking, compression=schema.Compression.NONE,
        example_config=example, tokenizer_sha256="abc", tokenizer_path="", vocab_size=5000,
        special_ids=SPECIAL_IDS, splits=splits, package_version="test")
    return dataclasses.replace(built, **overrides)


def write_metadata(directory, meta) -> None:
    """DIRECTORY/metadata.json of META, as the data job writes it."""
    import json
    import os

    from bertdata import schema

    with open(os.path.join(directory, schema.METADATA_FILE), "w") as f:
        json.dump(meta.to_json(), f)
