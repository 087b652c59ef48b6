"""The Hugging Face export: transformers itself, in a process without this package, must
give our tokenizer's ids and our model's outputs (tests/hf_consumer.py does the loading)."""

import dataclasses
import json
import os
import unicodedata

import numpy as np
import pytest
import tensorflow as tf

from bertdata import schema
from bertdata.hf_tokenizer import syllable_then_final_jamo
from bertdata.tfdata import dataset_files
from bertdata.tokenizer import NORMALIZATIONS, SPECIAL_IDS, SentencePieceTokenizer, train_tokenizer
from bertdata.tokenizer_files import read_tokenizer_source
from bertmodel import export_hf
from bertmodel.export.saved_model import PretrainedExport
from bertmodel.fill_mask import fill_mask
from bertmodel.model.bert import BertClassifier, BertPretrainer, dummy_inputs
from bertmodel.model.config import PRESETS
from bertmodel.model.preprocessing import BertPreprocessor
from tests.example_helpers import metadata
from tests.hf_helpers import run_consumer
from tests.korean_stress import stress_lines, stress_pairs
from tests.model_helpers import edit_json, randomize_weights, trained_folder

pytest.importorskip("transformers", reason="the hf extra (transformers, torch) is missing")
pytestmark = [pytest.mark.slow, pytest.mark.hf, pytest.mark.xdist_group("hf_export")]

MAX_LENGTH = 24
# The input classes on which the export cannot equal SentencePiece (README, "Share it on
# the Hugging Face Hub"): a special piece alone, and a syllable without a final consonant
# followed by a bare final-consonant jamo.
SPECIAL_ALONE = "[MASK]"
SYLLABLE_PLUS_FINAL_JAMO = "하\u11ab"
NAMED_SPECIALS = "[PAD] [UNK]"
DOCUMENTED = {SPECIAL_ALONE, SYLLABLE_PLUS_FINAL_JAMO, NAMED_SPECIALS}
LABELS = ["긍정", "부정", "중립"]


def _stress(sample_lines):
    lines = stress_lines(sample_lines)
    kept = [x for x in lines if x not in DOCUMENTED and not syllable_then_final_jamo(x)
            and "[BOS]" not in x]
    return kept + [unicodedata.normalize("NFD", x) for x in lines[:8]]


@pytest.fixture(scope="module")
def tokenizer_folders(tmp_path_factory, sample_corpus):
    """A tokenizer for every --normalization, with and without --byte_fallback, each
    exported as the tokenizer files of a Hugging Face folder: {folder: Tokenizer}."""
    root = tmp_path_factory.mktemp("hf_tokenizers")
    out = {}
    for normalization in NORMALIZATIONS:
        for byte_fallback in (False, True):
            name = f"{normalization}-{'bytes' if byte_fallback else 'unk'}"
            model = train_tokenizer([sample_corpus], str(root / name), 800, num_threads=1,
                                    normalization=normalization, byte_fallback=byte_fallback)
            with open(model, "rb") as f:
                proto = f.read()
            folder = root / f"{name}-hf"
            folder.mkdir()
            export_hf.write_files(str(folder), export_hf.tokenizer_files(proto, 64))
            out[str(folder)] = SentencePieceTokenizer(proto)
    return out


@pytest.fixture(scope="module")
def exported(tmp_path_factory, spm_model, tokenizer):
    """A tiny pretrainer and a classifier with random weights, as bertmodel.train and
    bertmodel.finetune would leave them, exported with the command."""
    root = tmp_path_factory.mktemp("hf_models")
    config = dataclasses.replace(PRESETS["tiny"], vocab_size=tokenizer.vocab_size,
                                 max_position_embeddings=64, layer_norm_epsilon=1e-3)
    pretrainer = BertPretrainer(config=config)
    pretrainer(dummy_inputs(config))
    randomize_weights(pretrainer, 1)
    classifier = BertClassifier(num_labels=len(LABELS), config=config)
    classifier(dummy_inputs(config))
    randomize_weights(classifier, 2)
    out = {"pretrainer": pretrainer, "classifier": classifier}
    for name, model, labels in (("pretrained", pretrainer, None),
                                ("classifier", classifier, LABELS)):
        run = trained_folder(root, spm_model, model, name, labels)
        out[f"{name}_hf"] = str(root / f"{name}-hf")
        assert export_hf.main([f"--model_dir={run}", f"--output_dir={out[name + '_hf']}"]) == 0
    return out


@pytest.fixture(scope="module")
def mlm_only(tmp_path_factory, sample_corpus, spm_model):
    """The data job with --nsp_mode=none and a short training run on it, exported."""
    from beam_jobs import create_pretraining_data as job
    from bertmodel import train

    root = tmp_path_factory.mktemp("mlm_only")
    job.run_from_flags([f"--input={sample_corpus}", f"--output_dir={root / 'data'}",
                        f"--spm_model={spm_model}", "--nsp_mode=none", "--max_seq_length=64",
                        "--eval_fraction=0.2", "--runner=FnApiRunner"])
    summary = train.train_from_flags(
        [f"--tfrecords={root / 'data'}", f"--model_dir={root / 'model'}",
         f"--eval_tfrecords={root / 'data' / 'eval-*'}", "--config=tiny",
         "--batch_size=8", "--train_steps=6", "--verbose=0",
         "--mixed_precision=fp32", "--jit_compile=false"])
    assert export_hf.main([f"--model_dir={root / 'model'}",
                           f"--output_dir={root / 'hf'}"]) == 0
    return root, summary


def _batch(tokenizer, lines):
    """Feature tensors for lines with one [MASK] cut into each (real ids, padding)."""
    rows = []
    for i, line in enumerate(lines):
        ids = tokenizer.encode_line(line)[:MAX_LENGTH - 3]
        ids[len(ids) // 2] = SPECIAL_IDS.mask
        b = tokenizer.encode_line(lines[-1 - i])[:6] if i % 2 else []
        rows.append(([SPECIAL_IDS.cls, *ids, SPECIAL_IDS.sep] + (b + [SPECIAL_IDS.sep]
                                                                 if b else []),
                     len(ids) + 2))
    width = max(len(r) for r, _ in rows)
    ids = np.zeros((len(rows), width), "int32")
    mask = np.zeros_like(ids)
    segments = np.zeros_like(ids)
    for i, (row, first) in enumerate(rows):
        ids[i, :len(row)], mask[i, :len(row)] = row, 1
        segments[i, first:len(row)] = 1
    return {"input_ids": ids, "input_mask": mask, "segment_ids": segments}


@pytest.fixture(scope="module")
def consumer(tmp_path_factory, tokenizer_folders, exported, mlm_only, sample_lines,
             tokenizer):
    """What transformers computes on the exports, in one fresh process."""
    lines = _stress(sample_lines)
    held_back = [x for x in sample_lines if len(x) > 20][-12:]
    long_lines = [" ".join(sample_lines[i:i + 6]) for i in range(0, 60, 6)]
    request = {
        "tokenizers": list(tokenizer_folders) + [exported["pretrained_hf"]],
        "texts": lines + sorted(DOCUMENTED), "pairs": stress_pairs(lines),
        "truncate_pairs": [(long_lines[i], long_lines[-1 - i]) for i in range(5)] +
                          [(long_lines[0], "짧은 문장"), ("짧은 문장", long_lines[1])],
        "truncate_texts": long_lines, "max_length": MAX_LENGTH,
        "pretrained": exported["pretrained_hf"], "classifier": exported["classifier_hf"],
        "mlm_only": str(mlm_only[0] / "hf"),
        "batch": {k: v.tolist() for k, v in _batch(tokenizer, held_back).items()},
        "fill_mask": [line[:20] + "[MASK]" + line[20:40] for line in held_back[:6]] +
                     ["대한민국은 민주[MASK]국이다.", "[MASK] [MASK] 연속"],
        "classify": held_back + ["", "ㅋㅋㅋ"],
        "encode": held_back[:6] + ["ㅋㅋ 진짜 웃기다 👍", "大韓民國", "짧다"],
    }
    result = run_consumer(request, tmp_path_factory.mktemp("consumer"))
    return request, result


def test_autotokenizer_gives_sentencepieces_ids_for_every_normalization(consumer,
                                                                          tokenizer_folders):
    request, result = consumer
    for folder, tok in tokenizer_folders.items():
        got = result["tokenizers"][folder]["singles"]
        for text, ids in zip(request["texts"], got, strict=True):
            if text not in DOCUMENTED and not syllable_then_final_jamo(text):
                assert ids == tok.encode_line(text), (folder, text)


def test_pairs_get_the_data_jobs_layout_and_segment_ids(consumer, tokenizer):
    request, result = consumer
    got = result["tokenizers"][request["pretrained"]]["pairs"]
    for (a, b), (ids, segments) in zip(request["pairs"], got, strict=True):
        ea, eb = tokenizer.encode_line(a), tokenizer.encode_line(b)
        assert ids == [SPECIAL_IDS.cls, *ea, SPECIAL_IDS.sep, *eb, SPECIAL_IDS.sep]
        assert segments == [0] * (len(ea) + 2) + [1] * (len(eb) + 1)


def test_truncation_keeps_what_the_preprocessor_keeps_except_the_odd_piece(consumer,
                                                                            tokenizer):
    """transformers' longest_first and the preprocessor's round robin keep the same pieces,
    except that when both segments are cut and the budget is odd, transformers gives the
    odd piece to the longer segment (B on a tie) and round robin to A (README)."""
    request, result = consumer
    pre = BertPreprocessor(read_tokenizer_source(os.path.join(request["pretrained"],
                                                              "tokenizer.model")), MAX_LENGTH)
    got = result["tokenizers"][request["pretrained"]]
    ours = pre(tf.constant(request["truncate_texts"]))
    for i, ids in enumerate(got["truncated_singles"]):
        assert ids == ours["input_ids"][i][ours["input_mask"][i] == 1].numpy().tolist()
    a, b = zip(*request["truncate_pairs"], strict=True)
    ours = pre(tf.constant(a), tf.constant(b))
    budget = MAX_LENGTH - 3
    for i, (ids, _) in enumerate(got["truncated_pairs"]):
        mine = ours["input_ids"][i][ours["input_mask"][i] == 1].numpy().tolist()
        la, lb = len(tokenizer.encode_line(a[i])), len(tokenizer.encode_line(b[i]))
        if min(la, lb) > budget // 2 and budget % 2:
            keep_a = budget // 2 if lb >= la else budget // 2 + 1
            assert ids.index(SPECIAL_IDS.sep) == keep_a + 1
            assert len(ids) == len(mine) == MAX_LENGTH
        else:
            assert ids == mine


def test_the_documented_classes_differ_exactly_as_documented(consumer, tokenizer_folders):
    request, result = consumer
    for folder, tok in tokenizer_folders.items():
        got = dict(zip(request["texts"], result["tokenizers"][folder]["singles"],
                       strict=True))
        # SentencePiece puts a lone '▁' before a special piece that is the whole text.
        assert tok.encode_line(SPECIAL_ALONE) == [tok.pieces.index("▁"), SPECIAL_IDS.mask]
        assert got[SPECIAL_ALONE] == [SPECIAL_IDS.mask]
        # The export composes 하 + ᆫ into 한; SentencePiece keeps the jamo apart (with
        # `identity` neither side normalizes, and they agree).
        composed = tok.encode_line("한")
        if "identity" in folder:
            assert got[SYLLABLE_PLUS_FINAL_JAMO] == tok.encode_line(SYLLABLE_PLUS_FINAL_JAMO)
        else:
            assert got[SYLLABLE_PLUS_FINAL_JAMO] == composed, folder
            assert tok.encode_line(SYLLABLE_PLUS_FINAL_JAMO) != composed
        # transformers matches the text of [PAD], [UNK], [BOS] and [EOS] as those pieces;
        # SentencePiece reads them as characters.
        assert got[NAMED_SPECIALS] == [SPECIAL_IDS.pad, SPECIAL_IDS.unk]
        assert tok.encode_line(NAMED_SPECIALS)[0] != SPECIAL_IDS.pad


def test_pretraining_heads_equal_the_keras_pretrainer(consumer, exported):
    request, result = consumer
    batch = {k: np.array(v, "int32") for k, v in request["batch"].items()}
    positions = np.argmax(batch["input_ids"] == SPECIAL_IDS.mask, axis=1)[:, None]
    ours = exported["pretrainer"]({**batch, "masked_lm_positions": positions}, training=False)
    theirs = np.array(result["prediction_logits"])
    at_mask = theirs[np.arange(len(positions)), positions[:, 0]]
    np.testing.assert_allclose(at_mask, ours["mlm_logits"][:, 0].numpy(), atol=1e-4)
    np.testing.assert_allclose(result["seq_relationship_logits"], ours["nsp_logits"].numpy(),
                               atol=1e-4)
    assert result["pretraining_class"] == "BertForPreTraining"
    assert result["pretraining_missing"] == []


def test_masked_lm_loads_every_weight_with_the_tied_decoder(consumer, exported):
    request, result = consumer
    assert result["masked_lm_class"] == "BertForMaskedLM"
    assert result["masked_lm_missing"] == []
    np.testing.assert_allclose(result["masked_lm_logits"], result["prediction_logits"],
                               atol=1e-5)


def test_automodel_outputs_equal_the_encoder(consumer, exported):
    request, result = consumer
    batch = {k: np.array(v, "int32") for k, v in request["batch"].items()}
    ours = exported["pretrainer"].backbone(batch, training=False)
    mask = batch["input_mask"][..., None]
    assert result["model_class"] == "BertModel"
    np.testing.assert_allclose(np.array(result["sequence_output"]) * mask,
                               ours["sequence_output"].numpy() * mask, atol=1e-4)
    np.testing.assert_allclose(result["pooled_output"], ours["pooled_output"].numpy(),
                               atol=1e-4)


def test_encode_signature_on_raw_text_equals_tokenizer_plus_automodel(consumer, exported,
                                                                      spm_model):
    request, result = consumer
    export = PretrainedExport(exported["pretrainer"],
                              BertPreprocessor(read_tokenizer_source(spm_model), 64))
    ours = export.encode(tf.constant(request["encode"]))["pooled_output"].numpy()
    np.testing.assert_allclose(result["encode_pooled_output"], ours, atol=1e-4)


def test_fill_mask_pipeline_proposes_the_commands_top_5(consumer, exported, tokenizer):
    request, result = consumer
    for text, theirs in zip(request["fill_mask"], result["fill_mask"], strict=True):
        ours = fill_mask(exported["pretrainer"], tokenizer, text, top_k=5)
        assert theirs == [[tokenizer.pieces.index(p) for p, _ in row] for row in ours], text


def test_exported_classifier_gives_the_classify_labels(consumer, exported, spm_model):
    from bertmodel.export.saved_model import ClassifierExport

    request, result = consumer
    export = ClassifierExport(exported["classifier"], BertPreprocessor(
        read_tokenizer_source(spm_model), MAX_LENGTH), LABELS)
    ours = export.classify(tf.constant(request["classify"]))
    assert result["classify"]["architecture"] == "BertForSequenceClassification"
    assert result["classify"]["labels"] == [x.decode() for x in ours["label"].numpy()]
    np.testing.assert_allclose(result["classify"]["probabilities"],
                               ours["probabilities"].numpy(), atol=1e-4)


def test_a_new_classification_head_is_the_only_thing_not_loaded(consumer):
    _, result = consumer
    assert result["classifier_new_keys"] == ["classifier.bias", "classifier.weight"]
    assert result["classifier_num_labels"] == 2


# ---- the command's guarantees --------------------------------------------------------------

def _run_dir(tmp_path, spm_model, tokenizer):
    config = dataclasses.replace(PRESETS["tiny"], vocab_size=tokenizer.vocab_size)
    model = BertPretrainer(config=config)
    model(dummy_inputs(config))
    return trained_folder(tmp_path, spm_model, model, "run")


def test_a_folder_without_a_finished_model_is_one_line_naming_it(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "tokenizer.model").write_bytes(b"x")
    code = export_hf.main([f"--model_dir={tmp_path / 'run'}", f"--output_dir={tmp_path / 'hf'}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "model.keras" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "hf").exists()


def test_a_non_empty_output_dir_needs_overwrite(tmp_path, spm_model, tokenizer, capsys):
    run = _run_dir(tmp_path, spm_model, tokenizer)
    out = tmp_path / "hf"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    assert export_hf.main([f"--model_dir={run}", f"--output_dir={out}"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "mine.txt").read_text() == "keep"
    assert export_hf.main([f"--model_dir={run}", f"--output_dir={out}", "--overwrite"]) == 0
    assert not (out / "mine.txt").exists() and (out / "model.safetensors").is_file()


def test_an_unwritable_output_dir_is_one_line(tmp_path, spm_model, tokenizer, capsys):
    run = _run_dir(tmp_path, spm_model, tokenizer)
    (tmp_path / "file").write_text("")
    code = export_hf.main([f"--model_dir={run}", f"--output_dir={tmp_path / 'file' / 'hf'}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "--output_dir" in err and len(err.splitlines()) == 1


def test_a_mean_pooling_classifier_is_refused(tmp_path, spm_model, tokenizer, capsys):
    config = dataclasses.replace(PRESETS["tiny"], vocab_size=tokenizer.vocab_size)
    model = BertClassifier(num_labels=2, config=config, pooling="mean")
    model(dummy_inputs(config))
    run = trained_folder(tmp_path, spm_model, model, "run", ["a", "b"])
    assert export_hf.main([f"--model_dir={run}", f"--output_dir={tmp_path / 'hf'}"]) == 2
    assert "--pooling=mean" in capsys.readouterr().err


def test_the_model_card_is_written_from_the_run(tmp_path, spm_model, tokenizer):
    run = _run_dir(tmp_path, spm_model, tokenizer)
    (run / "config.json").write_text(json.dumps({"training": {
        "total_steps": 1234, "effective_batch_size": 32, "learning_rate": 0.001,
        "precision": "float32", "replicas": 1}}))
    meta = metadata(max_seq_length=128, nsp_mode="swap", masked_lm_prob=0.15,
                    max_predictions_per_seq=20, dupe_factor=5, seed=1,
                    vocab_size=tokenizer.vocab_size,
                    tokenizer=schema.TokenizerInfo(sha256=tokenizer.sha256),
                    splits={"train": {"a": 4321}, "eval": {"b": 99}})
    (run / "data_metadata.json").write_text(json.dumps(meta.to_json()))
    (run / "history.json").write_text(json.dumps({"val_mlm_accuracy": [0.1, 0.2345]}))
    assert export_hf.main([f"--model_dir={run}", f"--output_dir={tmp_path / 'hf'}"]) == 0
    card = (tmp_path / "hf" / "README.md").read_text()
    assert "1,234 steps of 32 sequences" in card
    assert f"{1234 * 32 * 128:,} tokens" in card
    assert "'train': 4321" in card and "val_mlm_accuracy 0.2345" in card
    assert "AutoModelForMaskedLM.from_pretrained" in card


# ---- back again: a Hugging Face folder into the Keras model ------------------------------

def test_a_round_trip_through_the_folder_keeps_every_output(exported):
    from bertmodel.export.hf_import import init_pretrainer, read_hf_folder

    hf = read_hf_folder(exported["pretrained_hf"])
    model = BertPretrainer(config=hf.config)
    model(dummy_inputs(hf.config))
    init_pretrainer(model, hf)
    x = dummy_inputs(hf.config, batch=3, seq=20, preds=5)
    x["input_ids"] = tf.constant(np.random.default_rng(3).integers(7, hf.config.vocab_size,
                                                                  (3, 20)), tf.int32)
    for key, value in model(x, training=False).items():
        np.testing.assert_array_equal(value.numpy(),
                                      exported["pretrainer"](x, training=False)[key].numpy())


def _edited_copy(tmp_path, source, file, edit):
    import shutil

    folder = tmp_path / "edited"
    shutil.copytree(source, folder)
    edit_json(folder, file, edit)
    return folder


@pytest.mark.parametrize("file, edit, named", [
    ("config.json", lambda c: {**c, "vocab_size": c["vocab_size"] + 1}, "vocab_size"),
    ("config.json", lambda c: {**c, "hidden_act": "relu"}, "hidden_act"),
    ("config.json", lambda c: {**c, "num_attention_heads": 5}, "num_heads"),
    ("tokenizer.json", lambda t: {**t, "model": {**t["model"], "vocab": {
        **t["model"]["vocab"], "[MASK]": 9}}}, "another model's tokenizer"),
])
def test_a_folder_that_does_not_fit_is_one_line_naming_the_field(tmp_path, exported, capsys,
                                                                 file, edit, named):
    from bertmodel import finetune

    folder = _edited_copy(tmp_path, exported["pretrained_hf"], file, edit)
    (tmp_path / "t.tsv").write_text("a\t가나\nb\t다라\n")
    code = finetune.main([f"--model_dir={folder}", f"--train={tmp_path / 't.tsv'}",
                          f"--eval={tmp_path / 't.tsv'}", f"--output_dir={tmp_path / 'out'}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and named in err and len(err.splitlines()) == 1, err


def test_finetune_reads_the_folder_as_its_encoder(tmp_path, exported, sample_lines):
    from bertmodel import finetune
    from bertmodel.tasks.classifier import encoder_for_finetuning

    encoder, _ = encoder_for_finetuning(exported["pretrained_hf"], False, 1)
    x = dummy_inputs(encoder.config, seq=9)
    np.testing.assert_array_equal(
        encoder(x)["pooled_output"].numpy(),
        exported["pretrainer"].backbone(x)["pooled_output"].numpy())
    rows = [f"{'ab'[i % 2]}\t{line}" for i, line in enumerate(sample_lines[:40]) if line]
    (tmp_path / "t.tsv").write_text("\n".join(rows) + "\n")
    assert finetune.main([f"--model_dir={exported['pretrained_hf']}",
                          f"--train={tmp_path / 't.tsv'}", f"--eval={tmp_path / 't.tsv'}",
                          f"--output_dir={tmp_path / 'out'}", "--epochs=1", "--no-export",
                          "--max_seq_length=32"]) == 0
    assert (tmp_path / "out" / "classifier.keras").is_file()


def test_training_continues_from_the_folders_weights(tmp_path, exported, sample_dataset):
    from bertmodel.train import train
    from bertmodel.training.settings import TrainSettings

    data, _ = sample_dataset
    train(TrainSettings(tfrecords=data, model_dir=str(tmp_path / "run"), batch_size=4,
                      train_steps=1, learning_rate=1e-9, warmup_steps=0, verbose=0,
                      init_from=exported["pretrained_hf"], config="seed", save_outputs=False,
                      mixed_precision="fp32", jit_compile="false"))
    config = exported["pretrainer"].backbone.config  # the folder's, not --config's
    trained = BertPretrainer(config=config)
    trained(dummy_inputs(config))
    trained.load_weights(str(tmp_path / "run" / "checkpoints" / "best.weights.h5"))
    for mine, theirs in zip(trained.backbone.weights, exported["pretrainer"].backbone.weights,
                            strict=True):
        if mine.dtype == tf.float32:  # (not the dropout layers' call counters)
            np.testing.assert_allclose(mine.numpy(), theirs.numpy(), atol=1e-6)


def test_init_from_a_folder_with_another_tokenizer_is_one_line(tmp_path, exported,
                                                                sample_dataset, capsys):
    from bertmodel import train

    data, _ = sample_dataset
    folder = tmp_path / "other"
    import shutil

    shutil.copytree(exported["pretrained_hf"], folder)
    proto = (folder / "tokenizer.model").read_bytes()
    (folder / "tokenizer.model").write_bytes(proto + b"\x00")  # another checksum
    code = train.main([f"--tfrecords={data}", f"--model_dir={tmp_path / 'run'}",
                       f"--init_from={folder}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "--init_from" in err and len(err.splitlines()) == 1, err


# ---- keras-hub -------------------------------------------------------------------------------

def _keras_hub_difference(tmp_path, spm_model, tokenizer, epsilon):
    """Largest difference between keras-hub's BertBackbone read from the export and ours."""
    keras_hub = pytest.importorskip("keras_hub")
    config = dataclasses.replace(PRESETS["tiny"], vocab_size=tokenizer.vocab_size,
                                 max_position_embeddings=64, layer_norm_epsilon=epsilon)
    model = BertPretrainer(config=config)
    model(dummy_inputs(config))
    randomize_weights(model, 4)
    run = trained_folder(tmp_path, spm_model, model, "run")
    assert export_hf.main([f"--model_dir={run}", f"--output_dir={tmp_path / 'hf'}"]) == 0
    theirs = keras_hub.models.BertBackbone.from_preset(str(tmp_path / "hf"))
    x = _batch(tokenizer, ["대한민국은 민주공화국이다.", "모든 국민은 법 앞에 평등하다."])
    out = theirs({"token_ids": x["input_ids"], "segment_ids": x["segment_ids"],
                  "padding_mask": x["input_mask"]})
    ours = model.backbone(x, training=False)
    mask = x["input_mask"][..., None]
    return float(np.max(np.abs((np.asarray(out["sequence_output"]) -
                                ours["sequence_output"].numpy()) * mask)))


def test_keras_hub_reads_the_export_with_the_same_outputs(tmp_path, spm_model, tokenizer):
    assert _keras_hub_difference(tmp_path, spm_model, tokenizer, 1e-12) < 1e-4


def test_keras_hub_ignores_layer_norm_eps(tmp_path, spm_model, tokenizer):
    """keras-hub's converter builds every LayerNorm with epsilon 1e-12 whatever
    layer_norm_eps says, so models with the reference's 1e-3 (tiny, mini, seed) differ there
    (README); base and large use 1e-12 and agree."""
    assert _keras_hub_difference(tmp_path, spm_model, tokenizer, 1e-3) > 1e-3


# ---- a model pretrained without next-sentence prediction -----------------------------------

def test_mlm_only_records_train_a_model_without_a_next_sentence_head(mlm_only):
    import bertmodel

    root, summary = mlm_only
    meta = dataset_files.read_metadata(str(root / "data"))
    assert meta.nsp_mode == "none" and not meta.has_next_sentence
    model = bertmodel.load_pretrainer(str(root / "model" / "model.keras"))
    assert model.nsp_head is None
    assert "mlm_accuracy" in summary["eval"] and "nsp_accuracy" not in summary["eval"]
    assert not any("nsp" in key for key in summary["history"])


def test_mlm_only_exports_as_bert_for_masked_lm_with_equal_logits(consumer, mlm_only):
    import bertmodel

    request, result = consumer
    root, _ = mlm_only
    config = json.loads((root / "hf" / "config.json").read_text())
    assert config["architectures"] == ["BertForMaskedLM"]
    assert result["mlm_only"]["class"] == "BertForMaskedLM"
    assert result["mlm_only"]["missing"] == []
    model = bertmodel.load_pretrainer(str(root / "model" / "model.keras"))
    batch = {k: np.array(v, "int32") for k, v in request["batch"].items()}
    positions = np.argmax(batch["input_ids"] == SPECIAL_IDS.mask, axis=1)[:, None]
    ours = model({**batch, "masked_lm_positions": positions}, training=False)["mlm_logits"]
    theirs = np.array(result["mlm_only"]["logits"])[np.arange(len(positions)), positions[:, 0]]
    np.testing.assert_allclose(theirs, ours[:, 0].numpy(), atol=1e-4)


def test_exporting_into_the_model_dir_itself_is_refused_first(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "model.keras").write_bytes(b"not empty")
    code = export_hf.main([f"--model_dir={tmp_path / 'run'}",
                           f"--output_dir={tmp_path / 'run'}", "--overwrite"])
    assert code == 2
    assert capsys.readouterr().err == "error: --output_dir must not be --model_dir\n"
    assert (tmp_path / "run" / "model.keras").read_bytes() == b"not empty"
