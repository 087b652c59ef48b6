"""A Hugging Face BERT folder back into the Keras model: to continue pretraining
(`bertmodel.train --init_from=HF_DIR`) or to fine-tune (`bertmodel.finetune
--model_dir=HF_DIR`).

The folder must hold what `bertmodel.export_hf` writes, possibly changed by someone else:
config.json (a BERT this model can represent: absolute positions, the tanh GELU),
model.safetensors (transformers' BERT names), and tokenizer.model, this project's
SentencePiece layout ([PAD] [UNK] [BOS] [EOS] [SEP] [CLS] [MASK] = 0..6) with as many pieces
as config.json's vocab_size; a tokenizer.json beside it must give the special pieces the
same ids. Anything else is an HFFormatError naming the file and field.
"""

from __future__ import annotations

import dataclasses
import json
import os

from bertmodel.export.hf_weights import HFFormatError

HF_FILES = ("config.json", "model.safetensors", "tokenizer.model")


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


def _check_tokenizer(folder: str, proto: bytes, vocab_size: int) -> None:
    from bertdata.tokenizer import SPECIAL_PIECES, Tokenizer

    path = os.path.join(folder, "tokenizer.model")
    try:
        tokenizer = Tokenizer(proto, name=path)
    except ValueError as e:
        raise HFFormatError(str(e)) from None
    if tokenizer.vocab_size != vocab_size:
        raise HFFormatError(f"{folder}/config.json: vocab_size is {vocab_size} but "
                            f"{path} holds {tokenizer.vocab_size} pieces")
    tokenizer_json = os.path.join(folder, "tokenizer.json")
    if os.path.isfile(tokenizer_json):
        with open(tokenizer_json, encoding="utf-8") as f:
            vocab = json.load(f).get("model", {}).get("vocab", {})
        for want, piece in enumerate(SPECIAL_PIECES):
            if vocab.get(piece) != want:
                raise HFFormatError(f"{tokenizer_json}: {piece} has id {vocab.get(piece)}, "
                                    f"expected {want} (this project's tokenizer layout)")


def read_hf_folder(folder: str) -> HFModel:
    """The sizes, weights and tokenizer of a Hugging Face BERT folder; HFFormatError names
    the file or field that does not fit."""
    from safetensors.numpy import load_file

    from bertmodel.export.hf_weights import ARCHITECTURES, config_from_hf

    for name in HF_FILES:
        if not os.path.isfile(os.path.join(folder, name)):
            raise HFFormatError(f"{folder}: no {name} (a folder written by "
                                "bertmodel.export_hf?)")
    source = os.path.join(folder, "config.json")
    try:
        with open(source, encoding="utf-8") as f:
            hf = json.load(f)
    except ValueError as e:
        raise HFFormatError(f"{source}: not JSON ({e})") from None
    config = config_from_hf(hf, source)
    architecture = (hf.get("architectures") or ["BertModel"])[0]
    if architecture not in ARCHITECTURES:
        raise HFFormatError(f"{source}: architectures is {hf.get('architectures')}; "
                            f"expected one of {list(ARCHITECTURES)}")
    with open(os.path.join(folder, "tokenizer.model"), "rb") as f:
        proto = f.read()
    _check_tokenizer(folder, proto, config.vocab_size)
    try:
        tensors = load_file(os.path.join(folder, "model.safetensors"))
    except Exception as e:  # safetensors raises its own error types for a damaged file
        raise HFFormatError(f"{folder}/model.safetensors: cannot read ({e})") from None
    # A BertModel saved on its own has no "bert." prefix; give it one.
    if not any(k.startswith("bert.") for k in tensors):
        tensors = {f"bert.{k}": v for k, v in tensors.items()}
    id2label = hf.get("id2label")
    labels = [id2label[str(i)] for i in range(len(id2label))] if id2label else None
    return HFModel(config, architecture, tensors, proto, labels)


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
