"""bertmodel.export.hf_import reads a Hugging Face folder strictly: every field typed and in
range, every tensor expected and present with its shape, nothing left over, and the tokenizer
the one the weights were trained with. Each tampered folder is one HFFormatError naming the
file and the field."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
from safetensors.numpy import load_file, save_file

from bertdata.tokenizer import train_tokenizer
from bertmodel import export_hf
from bertmodel.export.hf_import import TOKENIZER_SHA256, read_hf_config, read_hf_folder
from bertmodel.export.hf_weights import MLM_HEAD, NSP_HEAD, POOLER, HFFormatError
from bertmodel.model.bert import BertPretrainer, dummy_inputs
from bertmodel.model.config import PRESETS
from tests.conftest import SAMPLE
from tests.model_helpers import edit_json, trained_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory, spm_model, tokenizer):
    """A tiny pretrainer as bertmodel.train leaves it, exported by the command."""
    root = tmp_path_factory.mktemp("hf_folder")
    config = dataclasses.replace(PRESETS["tiny"], vocab_size=tokenizer.vocab_size,
                                 max_position_embeddings=64)
    model = BertPretrainer(config=config)
    model(dummy_inputs(config))
    run = trained_folder(root, spm_model, model, "run")
    assert export_hf.main([f"--model_dir={run}", f"--output_dir={root / 'hf'}"]) == 0
    return root / "hf"


def copy(folder, tmp_path):
    shutil.copytree(folder, tmp_path / "hf")
    return tmp_path / "hf"


def refused(folder) -> str:
    with pytest.raises(HFFormatError) as caught:
        read_hf_folder(str(folder))
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_the_exported_folder_reads_back_with_its_tokenizers_checksum(folder, tokenizer):
    hf = read_hf_folder(str(folder))
    assert (hf.architecture, hf.labels, hf.config.num_layers) == ("BertForPreTraining", None, 2)
    assert json.loads((folder / "config.json").read_text())[TOKENIZER_SHA256] \
        == tokenizer.sha256


@pytest.mark.parametrize("text, named", [
    ("{not json", "config.json: not JSON"),
    ("[1, 2]", "config.json: holds a JSON list, not an object"),
    ('{"vocab_size": NaN}', "config.json: not JSON"),
])
def test_a_config_that_is_not_a_json_object_is_refused(folder, tmp_path, text, named):
    hf = copy(folder, tmp_path)
    (hf / "config.json").write_text(text)
    assert named in refused(hf)


@pytest.mark.parametrize("change, named", [
    ({"layer_norm_eps": None}, "layer_norm_eps must be a number, got None"),
    ({"layer_norm_eps": -1e-3}, "layer_norm_eps must be a positive number"),
    ({"hidden_dropout_prob": 2.0}, "hidden_dropout_prob must be a number in [0, 1)"),
    ({"attention_probs_dropout_prob": "0.1"}, "attention_probs_dropout_prob must be a number"),
    ({"hidden_size": True}, "hidden_size must be a positive integer, got True"),
    ({"num_hidden_layers": 2.0}, "num_hidden_layers must be a positive integer"),
    ({"architectures": "BertForPreTraining"}, "architectures must be a list of one of"),
    ({"architectures": ["BertForPreTraining", "BertModel"]}, "architectures must be a list"),
    ({TOKENIZER_SHA256: "abc"}, f"{TOKENIZER_SHA256} must be a sha256"),
])
def test_a_config_field_of_the_wrong_type_or_range_is_named(folder, tmp_path, change, named):
    hf = copy(folder, tmp_path)
    edit_json(hf, "config.json", lambda c: {**c, **change})
    assert named in refused(hf)


@pytest.mark.parametrize("change, named", [
    ({"num_hidden_layers": 1}, "unexpected tensor 'bert.encoder.layer.1."),
    ({"max_position_embeddings": 512}, "position_embeddings.weight has shape (64, 32), "
                                       "expected (512, 32)"),
    ({"hidden_size": 64, "num_attention_heads": 2}, "has shape"),
])
def test_sizes_that_do_not_match_the_weights_are_named(folder, tmp_path, change, named):
    hf = copy(folder, tmp_path)
    edit_json(hf, "config.json", lambda c: {**c, **change})
    assert named in refused(hf)


def _edit_tensors(hf, edit):
    tensors = load_file(str(hf / "model.safetensors"))
    save_file(edit(tensors), str(hf / "model.safetensors"))


def test_a_missing_tensor_is_named(folder, tmp_path):
    hf = copy(folder, tmp_path)
    _edit_tensors(hf, lambda t: {k: v for k, v in t.items() if "layer.1.output.dense" not in k})
    assert "no tensor 'bert.encoder.layer.1.output.dense." in refused(hf)


def test_a_head_held_in_part_is_named(folder, tmp_path):
    hf = copy(folder, tmp_path)
    _edit_tensors(hf, lambda t: {k: v for k, v in t.items() if k != "cls.seq_relationship.bias"})
    assert "no tensor 'cls.seq_relationship.bias'" in refused(hf)


def test_the_tensors_not_architectures_say_which_heads_a_folder_holds(folder, tmp_path):
    """Published folders name one head and hold another (klue/bert-base names
    BertForMaskedLM); what the weights hold is loaded."""
    hf = copy(folder, tmp_path)
    edit_json(hf, "config.json", lambda c: {**c, "architectures": ["BertForMaskedLM"]})
    assert read_hf_folder(str(hf)).parts == {POOLER, MLM_HEAD, NSP_HEAD}


def test_an_unknown_tensor_is_named(folder, tmp_path):
    hf = copy(folder, tmp_path)
    _edit_tensors(hf, lambda t: {**t, "bert.adapter.weight": t["cls.predictions.bias"]})
    assert "unexpected tensor 'bert.adapter.weight'" in refused(hf)


def test_an_untied_decoder_is_named(folder, tmp_path):
    hf = copy(folder, tmp_path)
    _edit_tensors(hf, lambda t: {**t, "cls.predictions.decoder.weight":
                                 t["bert.embeddings.word_embeddings.weight"] * 2})
    assert "cls.predictions.decoder.weight differs" in refused(hf)


def test_another_models_tokenizer_json_is_refused(folder, tmp_path):
    hf = copy(folder, tmp_path)

    def swap_two_pieces(t):
        vocab = t["model"]["vocab"]
        a, b = (piece for piece, i in vocab.items() if i in (100, 101))
        return {**t, "model": {**t["model"], "vocab": {**vocab, a: vocab[b], b: vocab[a]}}}

    edit_json(hf, "tokenizer.json", swap_two_pieces)
    assert "tokenizer.json: its vocabulary is not" in refused(hf)


def test_another_tokenizer_model_of_the_same_size_is_refused(folder, tmp_path, tokenizer):
    hf = copy(folder, tmp_path)
    other = train_tokenizer([SAMPLE], str(tmp_path / "other"), tokenizer.vocab_size - 7,
                            num_threads=1, normalization="identity")
    shutil.copy(other, hf / "tokenizer.model")
    assert "tokenizer.model: not the tokenizer these weights were trained with" in refused(hf)


@pytest.mark.parametrize("id2label, named", [
    ({"0": "neg", "5": "pos"}, "id2label has no id 1"),
    ({"0": "neg", "1": "neg"}, "distinct"),
    ([["0", "neg"]], "id2label must be an object"),
])
def test_a_classifiers_labels_must_be_numbered_from_zero(folder, tmp_path, id2label, named):
    hf = copy(folder, tmp_path)
    edit_json(hf, "config.json", lambda c: {**c, "architectures": [
        "BertForSequenceClassification"], "id2label": id2label})
    with pytest.raises(HFFormatError, match=named):
        read_hf_config(str(hf / "config.json"))


@pytest.mark.parametrize("raw", [b"", b"\x00" * 64, b"\xff" * 8 + b"{}", b"not weights\n" * 9])
def test_damaged_weights_are_named(folder, tmp_path, raw):
    hf = copy(folder, tmp_path)
    (hf / "model.safetensors").write_bytes(raw)
    assert "model.safetensors: cannot read" in refused(hf)


def test_exporting_a_run_with_a_damaged_tokenizer_is_one_line(tmp_path, spm_model, tokenizer,
                                                              capsys):
    config = dataclasses.replace(PRESETS["tiny"], vocab_size=tokenizer.vocab_size)
    model = BertPretrainer(config=config)
    model(dummy_inputs(config))
    run = trained_folder(tmp_path, spm_model, model, "run")
    (run / "tokenizer.model").write_bytes(b"not a SentencePiece model")
    capsys.readouterr()
    assert export_hf.main([f"--model_dir={run}", f"--output_dir={tmp_path / 'hf'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds no usable tokenizer" in err[0] and "tokenizer.model" in err[0]
    assert not (tmp_path / "hf").exists()
