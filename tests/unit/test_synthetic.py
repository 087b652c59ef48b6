"""bertdata.synthetic: a dataset the input function reads like the data job's."""

from __future__ import annotations

import numpy as np

from bertdata import make_dataset, schema
from bertdata.synthetic import write_synthetic_dataset
from bertdata.tfdata.dataset_files import read_metadata
from bertdata.tokenizer import NUM_SPECIAL, SPECIAL_IDS


def test_the_metadata_counts_every_example_written(tmp_path):
    written = write_synthetic_dataset(str(tmp_path), 50, vocab_size=300, num_files=3)
    meta = read_metadata(str(tmp_path))
    assert written == 48 == meta.splits[schema.TRAIN].num_examples
    assert sum(meta.splits[schema.TRAIN].shards.values()) == 48


def test_make_dataset_reads_full_length_pairs_whose_labels_are_the_masked_pieces(tmp_path):
    write_synthetic_dataset(str(tmp_path), 16, vocab_size=300, seq_length=32,
                            max_predictions=5)
    features, labels = next(iter(make_dataset(str(tmp_path / "train-*"), 16,
                                              is_training=False, pad_to="max")))
    ids = features["input_ids"].numpy()
    assert ids.shape == (16, 32) and features["input_mask"].numpy().all()
    assert (ids[:, 0] == SPECIAL_IDS.cls).all() and (ids[:, [16, 31]] == SPECIAL_IDS.sep).all()
    positions = features["masked_lm_positions"].numpy()
    assert (np.take_along_axis(ids, positions, 1) == labels["masked_lm_ids"].numpy()).all()
    assert (ids[:, 1:16] >= NUM_SPECIAL).all()
