"""The data job with the tokenizers of published Korean BERTs (tests/published_layouts.py:
klue/bert-base's, multilingual BERT's and KoBERT's layouts, built offline): its records hold
exactly the ids transformers' AutoTokenizer gives for the same folder."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from beam_jobs import create_pretraining_data as job
from bertdata import pretraining as pt
from bertdata.tokenizer_files import load_tokenizer
from tests.conftest import FNAPI, REPO
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


CHECKPOINTS = [("klue", "BertForPreTraining", "safetensors"),
               ("mbert", "BertForMaskedLM", "bin"),
               ("kobert", "BertModel", "safetensors")]


def published_checkpoint(tmp_path, published_tokenizer, layout, architecture, weights,
                         texts):
    """A folder as a published checkpoint ships (tests/published_checkpoint.py builds it
    with transformers) and transformers' outputs on TEXTS, with the batch given."""
    pytest.importorskip("torch")
    folder = tmp_path / f"{layout}-{architecture}"
    shutil.copytree(published_tokenizer(layout), folder)
    tok = load_tokenizer(str(folder))
    rows = [[tok.special.cls, *tok.encode_line(t)[:30], tok.special.sep] for t in texts]
    width = max(map(len, rows))
    batch = {"input_ids": [r + [tok.special.pad] * (width - len(r)) for r in rows],
             "input_mask": [[1] * len(r) + [0] * (width - len(r)) for r in rows],
             "segment_ids": [[0] * width for _ in rows]}
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"folder": str(folder), "architecture": architecture,
                                   "weights": weights, "batch": batch}))
    done = subprocess.run([sys.executable, os.path.join(REPO, "tests", "published_checkpoint.py"),
                           str(request), str(tmp_path / "result.npz")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return str(folder), {k: np.asarray(v, np.int32) for k, v in batch.items()}, \
        dict(np.load(tmp_path / "result.npz"))


@pytest.mark.parametrize("layout, architecture, weights", CHECKPOINTS)
def test_an_imported_checkpoint_computes_what_transformers_does(
        tmp_path, published_tokenizer, sample_lines, layout, architecture, weights, caplog):
    from bertmodel.export.hf_import import init_pretrainer, read_hf_folder
    from bertmodel.model.bert import BertPretrainer, dummy_inputs

    texts = [line for line in sample_lines[:40] if line.strip()][:6]
    folder, batch, theirs = published_checkpoint(tmp_path, published_tokenizer, layout,
                                                 architecture, weights, texts)
    hf = read_hf_folder(folder)
    assert hf.config.hidden_act == "gelu" and hf.config.layer_norm_epsilon == 1e-12
    model = BertPretrainer(config=hf.config)
    model(dummy_inputs(hf.config))
    with caplog.at_level(logging.INFO, logger="bertmodel"):
        init_pretrainer(model, hf)
    width = batch["input_ids"].shape[1]
    positions = np.tile(np.arange(width, dtype=np.int32), (len(texts), 1))
    ours = model({**batch, "masked_lm_positions": positions}, training=False)
    sequence = model.backbone(batch, training=False)["sequence_output"]
    real = batch["input_mask"].astype(bool)
    np.testing.assert_allclose(np.asarray(sequence)[real], theirs["sequence_output"][real],
                               atol=1e-4)
    if architecture != "BertModel":
        np.testing.assert_allclose(np.asarray(ours["mlm_logits"])[real],
                                   theirs["mlm_logits"][real], atol=1e-4)
    if architecture == "BertForPreTraining":
        np.testing.assert_allclose(ours["nsp_logits"], theirs["nsp_logits"], atol=1e-4)
        assert "has no" not in caplog.text
    else:
        assert "the folder has no " in caplog.text


def test_continue_pretraining_a_published_checkpoint_then_fill_mask(
        tmp_path, published_tokenizer, sample_corpus, sample_lines, capsys):
    from bertmodel import export_hf, fill_mask, train

    folder, _, _ = published_checkpoint(tmp_path, published_tokenizer, "mbert",
                                        "BertForMaskedLM", "bin", sample_lines[:2])
    data = tmp_path / "data"
    job.run_from_flags([f"--input={sample_corpus}", f"--output_dir={data}",
                        f"--tokenizer={folder}", "--max_seq_length=64", *FNAPI])
    run = tmp_path / "run"
    train.train_from_flags([f"--tfrecords={data}", f"--model_dir={run}",
                            f"--init_from={folder}", "--train_steps=3", "--batch_size=4",
                            "--verbose=0"])
    assert (run / "tokenizer.json").read_bytes() == (tmp_path / folder / "tokenizer.json"
                                                     ).read_bytes()
    capsys.readouterr()
    # Not built yet (docs/published-models.md): refused in one line, not half done.
    assert export_hf.main([f"--model_dir={run}", f"--output_dir={tmp_path / 'hf'}"]) == 2
    assert "was trained with a tokenizer.json" in capsys.readouterr().err
    model, tok = fill_mask.load(str(run))
    answers = fill_mask.fill_mask(model, tok, "대한민국은 민주[MASK]국이다.")
    assert len(answers) == 1 and len(answers[0]) == 5
    assert not {piece for piece, _ in answers[0]} & {"[CLS]", "[SEP]", "[MASK]", "[PAD]"}
