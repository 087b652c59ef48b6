"""A Hugging Face BERT folder back into the Keras model: to continue pretraining
(`bertmodel.train --init_from=HF_DIR`) or to fine-tune (`bertmodel.finetune
--model_dir=HF_DIR`).

The folder must hold what `bertmodel.export_hf` writes, possibly changed by someone else:
config.json (a BERT this model can represent: absolute positions, the tanh GELU),
model.safetensors (transformers' BERT names: exactly the tensors of config.json's
architecture and sizes, nothing missing or left over), and tokenizer.model, this project's
SentencePiece layout ([PAD] [UNK] [BOS] [EOS] [SEP] [CLS] [MASK] = 0..6) with as many pieces
as config.json's vocab_size, the one whose sha256 the export recorded in config.json; a
tokenizer.json beside it must hold the same vocabulary. Anything else is an HFFormatError
naming the file and field.
"""

from __future__ import annotations

import dataclasses
import os

from bertcommon.files import BadFile, read_json
from bertmodel.export.hf_weights import HFFormatError

HF_FILES = ("config.json", "model.safetensors", "tokenizer.model")
# The key of config.json under which bertmodel.export_hf records the sha256 of the
# tokenizer.model the weights were trained with (transformers keeps unknown keys as is).
TOKENIZER_SHA256 = "bertpipe_tokenizer_sha256"


def is_hf_folder(path: str) -> bool:
    """True for a folder laid out as transformers saves a model (config.json with a
    model_type beside model.safetensors)."""
    return os.path.isfile(os.path.join(path, "model.safetensors")) and os.path.isfile(
        os.path.join(path, "config.json"))


@dataclasses.dataclass
class HFModel:
    config: object  # BertConfig
    architecture: str
    tensors: dict
    model_proto: bytes
    labels: list | None


def _check_tokenizer(folder: str, proto: bytes, hf: HFConfig) -> None:
    """tokenizer.model must parse, hold config.json's vocab_size pieces and be the one the
    export recorded; a tokenizer.json beside it must hold the same vocabulary."""
    import hashlib

    from bertdata.tokenizer import SentencePieceTokenizer

    path = os.path.join(folder, "tokenizer.model")
    try:
        tokenizer = SentencePieceTokenizer(proto, name=path)
    except ValueError as e:
        raise HFFormatError(str(e)) from None
    if tokenizer.vocab_size != hf.config.vocab_size:
        raise HFFormatError(f"{folder}/config.json: vocab_size is {hf.config.vocab_size} but "
                            f"{path} holds {tokenizer.vocab_size} pieces")
    if hf.tokenizer_sha256 and hashlib.sha256(proto).hexdigest() != hf.tokenizer_sha256:
        raise HFFormatError(f"{path}: not the tokenizer these weights were trained with "
                            f"(config.json records {TOKENIZER_SHA256} {hf.tokenizer_sha256})")
    described = os.path.join(folder, "tokenizer.json")
    if not os.path.isfile(described):
        return
    try:
        found = read_json(described).get("model")
    except BadFile as e:
        raise HFFormatError(str(e)) from None
    want = {tokenizer.id_to_piece(i): i for i in range(tokenizer.vocab_size)}
    # The vocabulary, not the merges: tokenizers rewrites those in another notation when a
    # folder is saved again (transformers' save_pretrained), with the same meaning.
    if not isinstance(found, dict) or found.get("vocab") != want:
        raise HFFormatError(f"{described}: its vocabulary is not {path}'s: another model's "
                            "tokenizer?")


@dataclasses.dataclass(frozen=True)
class HFConfig:
    """What config.json says: the sizes, the architecture, the labels of a classifier, and
    the sha256 of the tokenizer the weights were trained with (bertmodel.export_hf records
    it; None for folders from elsewhere)."""
    config: object  # BertConfig
    architecture: str
    labels: list | None
    tokenizer_sha256: str | None


def read_hf_config(path: str) -> HFConfig:
    """config.json of a Hugging Face BERT folder, every field this project reads checked;
    HFFormatError names the file and field."""
    from bertmodel.export.hf_weights import ARCHITECTURES, CLASSIFICATION, config_from_hf

    try:
        hf = read_json(path)
    except BadFile as e:
        raise HFFormatError(str(e)) from None
    config = config_from_hf(hf, path)
    named = hf.get("architectures", ["BertModel"])
    if not (isinstance(named, list) and len(named) == 1 and named[0] in ARCHITECTURES):
        raise HFFormatError(f"{path}: architectures must be a list of one of "
                            f"{', '.join(ARCHITECTURES)}; got {named!r}")
    labels = _labels(hf.get("id2label"), path) if named[0] == CLASSIFICATION else None
    sha = hf.get(TOKENIZER_SHA256)
    if sha is not None and not (isinstance(sha, str) and len(sha) == 64
                                and all(c in "0123456789abcdef" for c in sha)):
        raise HFFormatError(f"{path}: {TOKENIZER_SHA256} must be a sha256 in hex, got {sha!r}")
    return HFConfig(config, named[0], labels, sha)


def _labels(id2label, path: str) -> list[str]:
    """A classifier's label names in id order: id2label must map "0".."n-1" to names."""
    if not isinstance(id2label, dict) or not id2label:
        raise HFFormatError(f"{path}: id2label must be an object of label names by id, got "
                            f"{id2label!r}")
    ids = [str(i) for i in range(len(id2label))]
    if sorted(id2label) != sorted(ids):
        missing = next(i for i in ids if i not in id2label)
        raise HFFormatError(f"{path}: id2label has no id {missing} (ids must be 0 to "
                            f"{len(ids) - 1})")
    names = [id2label[i] for i in ids]
    if not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
        raise HFFormatError(f"{path}: id2label's names must be distinct, non-empty strings")
    return names


def read_hf_folder(folder: str) -> HFModel:
    """The sizes, weights and tokenizer of a Hugging Face BERT folder, read strictly;
    HFFormatError names the file or field that does not fit."""
    from safetensors.numpy import load_file

    from bertmodel.export.hf_weights import check_tensors, expected_shapes

    for name in HF_FILES:
        if not os.path.isfile(os.path.join(folder, name)):
            raise HFFormatError(f"{folder}: no {name} (a folder written by "
                                "bertmodel.export_hf?)")
    hf = read_hf_config(os.path.join(folder, "config.json"))
    with open(os.path.join(folder, "tokenizer.model"), "rb") as f:
        proto = f.read()
    _check_tokenizer(folder, proto, hf)
    weights = os.path.join(folder, "model.safetensors")
    try:
        tensors = load_file(weights)
    except Exception as e:  # safetensors raises its own error types for a damaged file
        raise HFFormatError(f"{weights}: cannot read ({str(e)[:100]})") from None
    # A BertModel saved on its own has no "bert." prefix; give it one.
    if not any(k.startswith("bert.") for k in tensors):
        tensors = {f"bert.{k}": v for k, v in tensors.items()}
    check_tensors(tensors, expected_shapes(hf.config, hf.architecture, len(hf.labels or ())),
                  weights)
    return HFModel(hf.config, hf.architecture, tensors, proto, hf.labels)


def load_backbone(hf: HFModel):
    """A BertBackbone holding the folder's encoder weights."""
    from bertmodel.export.hf_weights import load_backbone_tensors
    from bertmodel.model.bert import BertBackbone, dummy_inputs

    backbone = BertBackbone(hf.config, name="backbone")
    backbone(dummy_inputs(hf.config))
    load_backbone_tensors(backbone, hf.tensors, "model.safetensors")
    return backbone


def init_pretrainer(model, hf: HFModel) -> None:
    """Sets a built BertPretrainer's weights from the folder; heads that the folder lacks
    (a BertModel or a classifier) keep their fresh initial values."""
    from bertmodel.export.hf_weights import load_backbone_tensors, load_pretrainer_tensors

    if model.backbone.config.to_dict() != hf.config.to_dict():
        mine, theirs = model.backbone.config.to_dict(), hf.config.to_dict()
        field = next(k for k in mine if mine[k] != theirs[k])
        raise HFFormatError(f"config.json: {field} is {theirs[field]}, but the model to train "
                            f"has {mine[field]}")
    if "cls.predictions.bias" in hf.tensors:
        load_pretrainer_tensors(model, hf.tensors, "model.safetensors")
    else:
        load_backbone_tensors(model.backbone, hf.tensors, "model.safetensors")
