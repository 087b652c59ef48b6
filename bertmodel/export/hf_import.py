"""A Hugging Face BERT folder into the Keras model: to continue pretraining
(`bertmodel.train --init_from=HF_DIR`) or to fine-tune (`bertmodel.finetune
--model_dir=HF_DIR`). The folder is one `bertmodel.export_hf` wrote, or a published
checkpoint (klue/bert-base, KoBERT, multilingual BERT), possibly changed by someone else.

It must hold config.json (a BERT this model can represent: absolute positions, the exact or
the tanh GELU), its weights as model.safetensors or pytorch_model.bin (read through PyTorch
where it is installed), under transformers' BERT names: the encoder, and each of the pooler,
the MLM head, the next-sentence head and a classifier either whole or not at all, with
config.json's shapes and nothing else; and its tokenizer (bertdata.tokenizer_files: this
project's tokenizer.model, or any tokenizer.json) with config.json's vocab_size pieces. A
tokenizer.model must be the one whose sha256 an export recorded in config.json, and a
tokenizer.json beside it must hold the same vocabulary. Anything else is an HFFormatError
naming the file and field.
"""

from __future__ import annotations

import dataclasses
import logging
import os

from bertcommon.files import BadFile, read_json
from bertdata.tokenizer_files import SENTENCEPIECE, TokenizerSource, read_tokenizer_source
from bertmodel.export.hf_weights import (
    ARCHITECTURES,
    CLASSIFICATION,
    MLM_HEAD,
    NSP_HEAD,
    POOLER,
    HFFormatError,
    config_from_hf,
    load_backbone_tensors,
    load_pretrainer_tensors,
    present_parts,
)
from bertmodel.model.bert import BertBackbone, dummy_inputs
from bertmodel.model.electra import ElectraPretrainer

log = logging.getLogger("bertmodel.export.hf_import")

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
# The key of config.json under which bertmodel.export_hf records the sha256 of the
# tokenizer the weights were trained with (transformers keeps unknown keys as is).
TOKENIZER_SHA256 = "bertpipe_tokenizer_sha256"


def is_hf_folder(path: str) -> bool:
    """True for a folder laid out as transformers saves a model (config.json beside its
    weights)."""
    return os.path.isfile(os.path.join(path, "config.json")) and any(
        os.path.isfile(os.path.join(path, name)) for name in WEIGHT_FILES)


@dataclasses.dataclass
class HFModel:
    config: object  # BertConfig
    architecture: str
    tensors: dict
    tokenizer: TokenizerSource
    labels: list | None
    # The parts besides the encoder that the weights hold (hf_weights.present_parts).
    parts: frozenset = frozenset()


def _check_tokenizer(folder: str, hf: HFConfig) -> TokenizerSource:
    """The folder's tokenizer: config.json's vocab_size pieces, the one an export recorded;
    a tokenizer.json beside a tokenizer.model must hold the same vocabulary."""
    try:
        source = read_tokenizer_source(folder)
        tokenizer = source.load(word_cache_size=0)
    except ValueError as e:
        raise HFFormatError(str(e)) from None
    if tokenizer.vocab_size != hf.config.vocab_size:
        raise HFFormatError(f"{folder}/config.json: vocab_size is {hf.config.vocab_size} but "
                            f"{source.name} holds {tokenizer.vocab_size} pieces")
    if hf.tokenizer_sha256 and source.sha256 != hf.tokenizer_sha256:
        raise HFFormatError(f"{source.name}: not the tokenizer these weights were trained with "
                            f"(config.json records {TOKENIZER_SHA256} {hf.tokenizer_sha256})")
    described = os.path.join(folder, "tokenizer.json")
    if source.kind != SENTENCEPIECE or not os.path.isfile(described):
        return source
    try:
        found = read_json(described).get("model")
    except BadFile as e:
        raise HFFormatError(str(e)) from None
    want = {tokenizer.id_to_piece(i): i for i in range(tokenizer.vocab_size)}
    # The vocabulary, not the merges: tokenizers rewrites those in another notation when a
    # folder is saved again (transformers' save_pretrained), with the same meaning.
    if not isinstance(found, dict) or found.get("vocab") != want:
        raise HFFormatError(f"{described}: its vocabulary is not {source.name}'s: another "
                            "model's tokenizer?")
    return source


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
    if not os.path.isfile(os.path.join(folder, "config.json")):
        raise HFFormatError(f"{folder}: no config.json (a Hugging Face model folder?)")
    hf = read_hf_config(os.path.join(folder, "config.json"))
    tokenizer = _check_tokenizer(folder, hf)
    weights, tensors = read_weights(folder)
    # A BertModel saved on its own has no "bert." prefix; give it one. Checkpoints converted
    # from TensorFlow name LayerNorm's weights gamma and beta.
    if not any(k.startswith("bert.") for k in tensors):
        tensors = {(k if k.startswith(("cls.", "classifier.")) else f"bert.{k}"): v
                   for k, v in tensors.items()}
    tensors = {_modern_name(k): v for k, v in tensors.items()}
    parts = present_parts(tensors, hf.config, len(hf.labels or ()), weights)
    return HFModel(hf.config, hf.architecture, tensors, tokenizer, hf.labels, parts)


def _modern_name(name: str) -> str:
    if name.endswith(".gamma"):
        return name[:-len("gamma")] + "weight"
    if name.endswith(".beta"):
        return name[:-len("beta")] + "bias"
    return name


def read_weights(folder: str) -> tuple[str, dict]:
    """(path, tensors by name as numpy arrays) of model.safetensors, else
    pytorch_model.bin (through PyTorch, loading tensors only, never code)."""
    path = os.path.join(folder, WEIGHT_FILES[0])
    if os.path.isfile(path):
        from safetensors.numpy import load_file

        try:
            return path, load_file(path)
        except Exception as e:  # safetensors raises its own error types for a damaged file
            raise HFFormatError(f"{path}: cannot read ({str(e)[:100]})") from None
    path = os.path.join(folder, WEIGHT_FILES[1])
    if not os.path.isfile(path):
        raise HFFormatError(f"{folder}: no {' or '.join(WEIGHT_FILES)}")
    try:
        import torch
    except ImportError:
        raise HFFormatError(
            f"{path}: reading pytorch_model.bin needs PyTorch (pip install torch); or convert "
            "the folder once where PyTorch is: transformers' AutoModel.from_pretrained(folder)"
            ".save_pretrained(folder) writes model.safetensors") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a damaged or unsafe file
        raise HFFormatError(f"{path}: cannot read ({str(e)[:100]})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                              for v in state.values()):
        raise HFFormatError(f"{path}: not a dict of tensors (a state_dict)")
    return path, {k: v.float().numpy() if v.is_floating_point() else v.numpy()
                  for k, v in state.items()}


def load_backbone(hf: HFModel):
    """A BertBackbone holding the folder's encoder weights."""
    backbone = BertBackbone(hf.config, name="backbone")
    backbone(dummy_inputs(hf.config))
    load_backbone_tensors(backbone, hf.tensors, "model weights")
    return backbone


def init_pretrainer(model, hf: HFModel) -> None:
    """Sets a built BertPretrainer's weights from the folder. Parts the folder lacks start
    as BERT starts them, and one line says which: a fresh pooler, MLM transform and
    output bias (the decoder is the word embeddings, tied), or next-sentence head. An
    ElectraPretrainer's discriminator takes the folder's encoder; its generator, narrower
    than any BERT folder's encoder, starts fresh."""
    if model.backbone.config.to_dict() != hf.config.to_dict():
        mine, theirs = model.backbone.config.to_dict(), hf.config.to_dict()
        field = next(k for k in mine if mine[k] != theirs[k])
        raise HFFormatError(f"config.json: {field} is {theirs[field]}, but the model to train "
                            f"has {mine[field]}")
    if isinstance(model, ElectraPretrainer):
        load_backbone_tensors(model.backbone, hf.tensors, "model weights")
        log.info("--init_from: the discriminator starts from the folder's encoder; the "
                 "generator and the detection head start from fresh weights")
        return
    if MLM_HEAD in hf.parts:
        load_pretrainer_tensors(model, hf.tensors, "model weights")
    else:
        load_backbone_tensors(model.backbone, hf.tensors, "model weights")
    wanted = [POOLER, MLM_HEAD] + ([NSP_HEAD] if model.nsp_head is not None else [])
    fresh = [part for part in wanted if part not in hf.parts]
    if fresh:
        log.info("--init_from: the folder has no %s; %s from fresh weights",
                 " or ".join(fresh), "it starts" if len(fresh) == 1 else "they start")
