"""The data job with the tokenizers of published Korean BERTs (tests/published_layouts.py:
klue/bert-base's, multilingual BERT's and KoBERT's layouts, built offline): its records hold
exactly the ids transformers' AutoTokenizer gives for the same folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from beam_jobs import create_pretraining_data as job
from bertdata import pretraining as pt
from bertdata.tokenizer_files import load_tokenizer
from tests.conftest import FNAPI
from tests.korean_stress import stress_lines, stress_pairs

pytestmark = [pytest.mark.slow, pytest.mark.hf]
LAYOUTS = ("klue", "mbert", "kobert")


def auto_tokenizer(folder):
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    return transformers.AutoTokenizer.from_pretrained(folder)


def record_ids(pattern):
    out = []
    for path in tf.io.gfile.glob(pattern):
        for raw in tf.data.TFRecordDataset(path):
            example = tf.train.Example.FromString(raw.numpy())
            out.append(tuple(example.features.feature["input_ids"].int64_list.value))
    return out


@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_data_jobs_records_hold_autotokenizers_ids(tmp_path, published_tokenizer,
                                                       sample_lines, layout):
    folder = published_tokenizer(layout)
    texts = [line for line in stress_lines(sample_lines) if line.strip()]
    corpus = tmp_path / "one_line_documents.txt"
    corpus.write_text("\n\n".join(texts) + "\n", encoding="utf-8")
    out = tmp_path / "data"
    # One example per one-line document, unmasked: the records are the tokenizer's ids.
    job.run_from_flags([f"--input={corpus}", f"--output_dir={out}", f"--tokenizer={folder}",
                        "--nsp_mode=none", "--masking=dynamic", "--max_seq_length=512",
                        *FNAPI])
    reference = auto_tokenizer(folder)
    # The job strips each line's surrounding white space (a Metaspace tokenizer would give
    # trailing '▁' pieces for it).
    want = [tuple(reference(text.strip())["input_ids"]) for text in texts]
    want = [ids for ids in want if 2 < len(ids) <= 512]
    assert sorted(record_ids(f"{out}/train-*")) == sorted(want)
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["special_ids"] == load_tokenizer(folder).special.as_dict()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_pairs_and_their_segments_equal_autotokenizers(published_tokenizer, sample_lines,
                                                       layout):
    folder = published_tokenizer(layout)
    tok = load_tokenizer(folder)
    reference = auto_tokenizer(folder)
    pairs = [(a, b) for a, b in stress_pairs(stress_lines(sample_lines))]
    encoded = [(np.array(tok.encode_line(a), np.int32), np.array(tok.encode_line(b), np.int32),
                0) for a, b in pairs]
    batch = pt.ExampleBatch.from_pairs(encoded, 4096, tok.special)
    for i, (a, b) in enumerate(pairs):
        want = reference(a, b, return_token_type_ids=True)
        assert batch.input_ids[i, :batch.lengths[i]].tolist() == want["input_ids"]
        assert batch.segment_ids(i).tolist() == want["token_type_ids"]
