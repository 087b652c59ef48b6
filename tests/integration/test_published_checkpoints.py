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
                         texts, *, specials_never_proposed=False, dropout=None,
                         initializer_range=0.2):
    """A folder as a published checkpoint ships (tests/published_checkpoint.py builds it
    with transformers) and transformers' outputs on TEXTS, with the batch given. With
    specials_never_proposed, the MLM bias of the special tokens is very low, so that
    transformers' fill-mask pipeline proposes what bertmodel.fill_mask does; DROPOUT sets
    both dropout rates of its config.json; INITIALIZER_RANGE the spread of its weights."""
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
    specials = np.flatnonzero(tok.is_special).tolist() if specials_never_proposed else []
    request.write_text(json.dumps({"folder": str(folder), "architecture": architecture,
                                   "weights": weights, "batch": batch,
                                   "special_ids": specials, "dropout": dropout,
                                   "initializer_range": initializer_range}))
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
        tmp_path, published_tokenizer, sample_corpus, sample_lines):
    from bertmodel import export_hf, fill_mask

    folder, _, _ = published_checkpoint(tmp_path, published_tokenizer, "mbert",
                                        "BertForMaskedLM", "bin", sample_lines[:2])
    run = continue_pretraining(tmp_path, folder, sample_corpus, "--train_steps=3")
    assert (tmp_path / "run" / "tokenizer.json").read_bytes() == (
        tmp_path / folder / "tokenizer.json").read_bytes()
    assert export_hf.main([f"--model_dir={run}", f"--output_dir={tmp_path / 'hf'}"]) == 0
    assert (tmp_path / "hf" / "vocab.txt").read_bytes() == (tmp_path / folder / "vocab.txt"
                                                            ).read_bytes()
    model, tok = fill_mask.load(str(run))
    answers = fill_mask.fill_mask(model, tok, "대한민국은 민주[MASK]국이다.")
    assert len(answers) == 1 and len(answers[0]) == 5
    assert not {piece for piece, _ in answers[0]} & {"[CLS]", "[SEP]", "[MASK]", "[PAD]"}


def continue_pretraining(tmp_path, folder, corpus, *flags) -> str:
    """The data job with FOLDER's tokenizer, then bertmodel.train from FOLDER; the run."""
    from bertmodel import train

    train.train_from_flags(trainer_flags(tmp_path, folder, corpus, *flags))
    return str(tmp_path / "run")


def trainer_flags(tmp_path, folder, corpus, *flags) -> list[str]:
    """The flags of continue_pretraining's run, after its data job (made once)."""
    data = tmp_path / "data"
    if not data.exists():
        job.run_from_flags([f"--input={corpus}", f"--output_dir={data}",
                            f"--tokenizer={folder}", "--max_seq_length=64", *FNAPI])
    return [f"--tfrecords={data}", f"--model_dir={tmp_path / 'run'}", f"--init_from={folder}",
            "--batch_size=4", "--verbose=0", *flags]


def transformers_on_export(tmp_path, source, export, lines, texts) -> dict:
    """tests/published_reexport.py's report on EXPORT (a separate process)."""
    request = tmp_path / "reexport.json"
    request.write_text(json.dumps({"source": source, "export": export, "lines": lines,
                                   "fill_mask": texts}))
    done = subprocess.run([sys.executable, os.path.join(REPO, "tests", "published_reexport.py"),
                           str(request), str(tmp_path / "reexport_result.json")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((tmp_path / "reexport_result.json").read_text())


def test_a_step_at_rate_zero_exports_the_source_bit_for_bit(tmp_path, published_tokenizer,
                                                            sample_corpus, sample_lines):
    from safetensors.numpy import load_file

    from bertmodel import export_hf, fill_mask

    folder, _, _ = published_checkpoint(tmp_path, published_tokenizer, "klue",
                                        "BertForPreTraining", "safetensors", sample_lines[:2],
                                        specials_never_proposed=True)
    # Warm-up from 0 over one step: the one step's rate is 0.
    run = continue_pretraining(tmp_path, folder, sample_corpus, "--train_steps=1",
                               "--warmup_steps=1", "--mixed_precision=fp32")
    export = tmp_path / "hf"
    assert export_hf.main([f"--model_dir={run}", f"--output_dir={export}"]) == 0
    source, exported = load_file(f"{folder}/model.safetensors"), load_file(
        export / "model.safetensors")
    assert set(source) <= set(exported)
    for name, tensor in source.items():
        assert exported[name].tobytes() == tensor.tobytes(), name
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        assert (export / name).read_bytes() == (tmp_path / folder / name).read_bytes()
    texts = [line[:12] + "[MASK]" + line[12:30] for line in sample_lines[:60:10]
             if len(line) > 30]
    lines = stress_lines(sample_lines)
    theirs = transformers_on_export(tmp_path, folder, str(export), lines, texts)
    assert theirs["export_ids"] == theirs["source_ids"]
    assert theirs["missing"] == [] and theirs["unexpected"] == []
    model, tok = fill_mask.load(run)
    served = tf.saved_model.load(os.path.join(run, "export"))  # held while its functions run
    top_pieces = served.fill_mask(tf.constant(texts))["top_pieces"].numpy()
    for text, proposed, in_graph in zip(texts, theirs["fill_mask"], top_pieces, strict=True):
        answers = fill_mask.fill_mask(model, tok, text)[0]
        # The run's SavedModel tokenizes in the graph, and answers as the command does.
        assert [p.decode() for p in in_graph[0]] == [piece for piece, _ in answers], text
        ours = {tok.pieces.index(piece): score for piece, score in answers}
        # The same five; their order may differ only where their scores tie within 1e-5.
        assert sorted(map(int, proposed)) == sorted(ours), text
        for i, score in ours.items():
            assert abs(proposed[str(i)] - score) < 1e-5, text


def test_finetuning_a_published_checkpoint_lays_text_out_as_autotokenizer(
        tmp_path, published_tokenizer, sample_lines):
    from bertmodel.tasks import classifier

    folder, _, _ = published_checkpoint(tmp_path, published_tokenizer, "klue",
                                        "BertForPreTraining", "safetensors", sample_lines[:2])
    texts = [line for line in sample_lines[:80] if line.strip()][:40]
    tsv = tmp_path / "task.tsv"
    tsv.write_text("".join(f"{'ab'[i % 2]}\t{t}\n" for i, t in enumerate(texts)),
                   encoding="utf-8")
    out = tmp_path / "classifier"
    classifier.finetune(classifier.FinetuneSettings(
        model_dir=folder, train=str(tsv), eval=str(tsv), output_dir=str(out), epochs=1,
        batch_size=8, max_seq_length=32))
    export = tf.saved_model.load(str(out / "export"))  # held: its functions need it alive
    served = export.classify(tf.constant(texts[:8]))
    reference = auto_tokenizer(folder)(texts[:8], padding=True, truncation=True,
                                       max_length=32, return_tensors="np")
    model = tf.keras.models.load_model(out / "classifier.keras")
    logits = model({"input_ids": reference["input_ids"].astype(np.int32),
                    "input_mask": reference["attention_mask"].astype(np.int32),
                    "segment_ids": reference["token_type_ids"].astype(np.int32)},
                   training=False)
    np.testing.assert_allclose(served["probabilities"], tf.nn.softmax(logits), atol=1e-5)


def test_finetuning_refuses_a_tokenizer_with_no_graph_counterpart_in_one_line(
        tmp_path, published_tokenizer, sample_lines, capsys):
    from bertmodel import finetune

    folder, _, _ = published_checkpoint(tmp_path, published_tokenizer, "kobert", "BertModel",
                                        "safetensors", sample_lines[:2])
    tsv = tmp_path / "task.tsv"
    tsv.write_text("a\t좋다\nb\t싫다\n", encoding="utf-8")
    code = finetune.main([f"--model_dir={folder}", f"--train={tsv}", f"--eval={tsv}",
                          f"--output_dir={tmp_path / 'out'}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "tokenizer.json: a Unigram model" in err[0]


def trainer_batches(flags: list[str], steps: int) -> dict:
    """The first STEPS batches a trainer run with FLAGS feeds to fit, made again by the
    trainer's own input code, as arrays named "<step>/<feature>"."""
    from bertcommon import cli
    from bertmodel.training.plan import plan_run
    from bertmodel.training.run import make_datasets, set_up_devices
    from bertmodel.training.settings import TrainSettings, make_parser

    config = cli.settings_from_args(TrainSettings, make_parser().parse_args(flags))
    train_from, _ = make_datasets(config, plan_run(config), set_up_devices(config))
    arrays = {}
    for step, (x, y) in enumerate(train_from(0)):
        if step == steps:
            return arrays
        arrays.update({f"{step}/{k}": np.asarray(v) for k, v in {**x, **y}.items()})
    raise AssertionError(f"the dataset ended before {steps} batches")


def test_training_from_a_checkpoint_follows_a_pytorch_loop_step_by_step(
        tmp_path, published_tokenizer, sample_corpus, sample_lines):
    """The trainer's per-step losses equal those of transformers' BertForPreTraining
    trained in PyTorch with the same loss, optimizer and schedule (tests/published_training.py)
    on the same batches from the same weights, dropout off, float32."""
    from bertmodel.training.callbacks import read_step_scalars

    steps = 30
    folder, _, _ = published_checkpoint(tmp_path, published_tokenizer, "klue",
                                        "BertForPreTraining", "safetensors", sample_lines[:2],
                                        dropout=0.0, initializer_range=0.02)
    # MLM weight 1: the loss is then about 8, so that the tolerance is a small share of
    # what training changes (at the default 20 it would hide a wrong learning rate). A
    # moderate rate: Adam's 1e-9 epsilon turns float32 differences in tiny gradients into
    # whole steps, so the two runs drift apart faster the larger the rate (at 2e-3 they
    # differed by 1.1e-3 at worst, at 5e-4 by 4e-4).
    recipe = (f"--train_steps={steps}", "--warmup_steps=5", "--learning_rate=5e-4",
              "--mlm_loss_weight=1", "--mixed_precision=fp32", "--log_every_steps=1")
    run = continue_pretraining(tmp_path, folder, sample_corpus, *recipe)
    # StepLogger writes the epoch's running mean of the loss after every step.
    [means] = read_step_scalars(os.path.join(run, "logs", "steps"), "loss")
    assert [step for step, _ in means] == list(range(1, steps + 1))
    running = [0.0] + [mean for _, mean in means]
    ours = [k * running[k] - (k - 1) * running[k - 1] for k in range(1, steps + 1)]
    np.savez(tmp_path / "batches.npz", **trainer_batches(
        trainer_flags(tmp_path, folder, sample_corpus, *recipe), steps))
    trained = json.loads((tmp_path / "run" / "config.json").read_text())
    request = tmp_path / "training.json"
    request.write_text(json.dumps({
        "folder": folder, "peak_learning_rate": 5e-4, "warmup_steps": 5, "total_steps": steps,
        "beta_2": trained["training"]["adam_beta_2"],
        "mlm_loss_weight": trained["training"]["mlm_loss_weight"]}))
    done = subprocess.run([sys.executable, os.path.join(REPO, "tests", "published_training.py"),
                           str(request), str(tmp_path / "batches.npz"),
                           str(tmp_path / "training_result.json")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    theirs = json.loads((tmp_path / "training_result.json").read_text())["losses"]
    # Training moves the loss by ten times the tolerance or more: the comparison is not of
    # constants.
    assert np.mean(theirs[:5]) - np.mean(theirs[-5:]) > 10 * 1e-3 * np.mean(theirs[:5])
    np.testing.assert_allclose(ours, theirs, rtol=1e-3)
