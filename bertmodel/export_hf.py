"""Export a trained model as a Hugging Face `transformers` folder.

Usage:
    python -m bertmodel.export_hf --model_dir=runs/sample/model --output_dir=runs/sample/hf

--model_dir is a `bertmodel.train` output (model.keras: exported as BertForPreTraining,
both heads, or as BertForMaskedLM when it was trained without next-sentence prediction; an
ELECTRA run's as ElectraForPreTraining, the discriminator, with its generator as
ElectraForMaskedLM in the subfolder generator/, a whole folder of its own) or
a `bertmodel.finetune` output (classifier.keras: exported as BertForSequenceClassification
with the label names in id2label). The folder holds config.json, model.safetensors, the
tokenizer and README.md, a model card written from the run. A run with this project's
SentencePiece model gets tokenizer.json (see bertdata.hf_tokenizer), tokenizer_config.json,
special_tokens_map.json and tokenizer.model (the model itself, which `--init_from` and
`--model_dir` read back); a run that continued a published checkpoint gets that
checkpoint's tokenizer files unchanged, and config.json its pad token's id. It loads with
transformers' Auto classes and nothing of this package:

    from transformers import AutoModelForMaskedLM, AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained("runs/sample/hf")
    model = AutoModelForMaskedLM.from_pretrained("runs/sample/hf")

Needs `safetensors` and `tokenizers` (the `hf` extra), not PyTorch. The folder is written
under a temporary name and renamed when complete; an existing non-empty --output_dir is
replaced only with --overwrite.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys

import numpy as np

import bertmodel
from bertcommon import cli
from bertcommon.errors import BertpipeError
from bertcommon.files import BadFile, atomic_path, output_dir_problem, read_json
from bertdata.hf_tokenizer import UnsupportedTokenizer, tokenizer_json
from bertdata.schema import DatasetMetadata
from bertdata.tokenizer import SPECIAL_PIECES
from bertdata.tokenizer_files import SENTENCEPIECE, TokenizerSource, read_tokenizer_source
from bertmodel.export import hf_electra, hf_weights
from bertmodel.export.hf_electra import DISCRIMINATOR
from bertmodel.export.hf_import import TOKENIZER_SHA256
from bertmodel.export.hf_weights import CLASSIFICATION, MASKED_LM, PRETRAINING
from bertmodel.export.model_card import model_card
from bertmodel.training.plan import DATA_METADATA

log = logging.getLogger("bertmodel.export_hf")

class ExportError(BertpipeError):
    """Bad flags or an unusable model directory; one line naming the flag or file."""


@dataclasses.dataclass(frozen=True)
class ExportSettings(cli.Settings):
    model_dir: str = cli.flag(help="a bertmodel.train or bertmodel.finetune output directory")
    output_dir: str = cli.flag(help="the folder to write")
    overwrite: bool = cli.flag(False, help="replace a non-empty --output_dir")


DESCRIPTION = "Export a trained model as a Hugging Face folder."


@dataclasses.dataclass
class TrainedModel:
    """What a run's folder holds, loaded: the Keras model and its facts for the card."""

    kind: str  # an architecture of hf_weights (BERT) or DISCRIMINATOR (ELECTRA)
    model: object
    tokenizer: TokenizerSource
    pad_token_id: int
    labels: list | None
    facts: dict


def _read_json(path: str, expect: type = dict):
    """A JSON file of the run's folder (EXPECT: its type); an empty one when there is none."""
    if not os.path.isfile(path):
        return expect()
    try:
        return read_json(path, expect=expect)
    except BadFile as e:
        raise ExportError(str(e)) from None


def load_trained(model_dir: str) -> TrainedModel:
    """The finished model of a bertmodel.train or bertmodel.finetune output folder."""
    if not os.path.isdir(model_dir):
        raise ExportError(f"--model_dir {model_dir}: no such directory")
    classifier = os.path.join(model_dir, "classifier.keras")
    kind = CLASSIFICATION if os.path.exists(classifier) else PRETRAINING
    path = classifier if kind == CLASSIFICATION else os.path.join(model_dir, "model.keras")
    try:  # the model first: a folder without one is not a finished run, whatever else it has
        model = bertmodel._load(path, os.path.basename(path))
    except bertmodel.ModelFileError as e:
        raise ExportError(f"--model_dir: {e}") from None
    try:
        tokenizer = read_tokenizer_source(model_dir)
        pad_token_id = tokenizer.load(word_cache_size=0).special.pad
    except ValueError as e:  # the reader's BadFile, or a model that does not load
        raise ExportError(f"--model_dir {model_dir} holds no usable tokenizer ({e}): not a "
                          "finished bertmodel.train or bertmodel.finetune output") from None
    if isinstance(model, bertmodel.ElectraPretrainer):
        kind = DISCRIMINATOR
    elif kind == PRETRAINING and model.nsp_head is None:
        kind = MASKED_LM
    labels = None
    if kind == CLASSIFICATION:
        labels = _read_json(os.path.join(model_dir, "labels.json"), list)
        if len(labels) != model.num_labels or not all(isinstance(x, str) for x in labels):
            raise ExportError(f"{model_dir}/labels.json: missing, or not a list of the "
                              f"{model.num_labels} labels")
        if model.pooling != "cls":
            raise ExportError(f"{path}: a classifier with --pooling={model.pooling}; "
                              "transformers' BertForSequenceClassification reads the pooled "
                              "[CLS] vector, so only --pooling=cls exports")
    facts = {"config": _read_json(os.path.join(model_dir, "config.json")),
             "data": _read_data_metadata(os.path.join(model_dir, DATA_METADATA)),
             "history": _read_json(os.path.join(model_dir, "history.json")),
             "results": _read_json(os.path.join(model_dir, "results.json"))}
    return TrainedModel(kind, model, tokenizer, pad_token_id, labels, facts)


def _read_data_metadata(path: str):
    """The run's copy of its dataset's metadata.json; None when it has none."""
    data = _read_json(path)
    if not data:
        return None
    try:
        return DatasetMetadata.from_json(data, path)
    except ValueError as e:
        raise ExportError(str(e)) from None


def tokenizer_files(model_proto: bytes, max_length: int) -> dict[str, str | bytes]:
    """This project's tokenizer's files: file name -> text (or bytes, for the SentencePiece
    model)."""
    names = dict(zip(("pad", "unk", "bos", "eos", "sep", "cls", "mask"), SPECIAL_PIECES,
                     strict=True))
    special = {f"{k}_token": v for k, v in names.items()}
    config = {**special, "tokenizer_class": "PreTrainedTokenizerFast",
              "model_max_length": max_length, "padding_side": "right",
              "truncation_side": "right", "clean_up_tokenization_spaces": False,
              "model_input_names": ["input_ids", "token_type_ids", "attention_mask"]}
    return {"tokenizer.json": json.dumps(tokenizer_json(model_proto), ensure_ascii=False),
            "tokenizer_config.json": json.dumps(config, indent=2, ensure_ascii=False),
            "special_tokens_map.json": json.dumps(special, indent=2),
            "tokenizer.model": model_proto}


def write_files(folder: str, files: dict[str, str | bytes]) -> None:
    """Writes name -> text (UTF-8) or bytes into folder."""
    for name, content in files.items():
        if isinstance(content, bytes):
            with open(os.path.join(folder, name), "wb") as f:
                f.write(content)
        else:
            with open(os.path.join(folder, name), "w", encoding="utf-8") as f:
                f.write(content)


def export(settings: ExportSettings) -> dict:
    """Writes the folder; returns a summary. Raises ExportError."""
    _check_output_dir(settings)
    from safetensors.numpy import save  # the `hf` extra, checked by callers that need it

    trained = load_trained(settings.model_dir)
    tokenizer = trained.tokenizer
    max_length = trained.model.backbone.config.max_position_embeddings
    if tokenizer.kind == SENTENCEPIECE:
        try:
            tokenizer_texts = tokenizer_files(tokenizer.content, max_length)
        except UnsupportedTokenizer as e:
            raise ExportError(f"{tokenizer.name}: {e}") from None
    else:  # a published checkpoint's tokenizer, as it came
        tokenizer_texts = dict(tokenizer.files)
    parts = _model_folders(trained)
    folders = {}
    for sub, (config, hf, tensors) in parts.items():
        architecture = hf["architectures"][0]
        hf[TOKENIZER_SHA256] = tokenizer.sha256
        # C order: safetensors writes the buffer as it lies, and a transposed kernel's
        # buffer is column-major. Serialized here and written with the other files, so that
        # a full disk is an OSError like theirs.
        folders[sub] = {**tokenizer_texts,
                        "config.json": json.dumps(hf, indent=2, ensure_ascii=False),
                        "README.md": model_card(architecture, config, trained.facts,
                                                trained.labels, tokenizer.kind),
                        "model.safetensors": save({k: np.ascontiguousarray(v, np.float32)
                                                   for k, v in tensors.items()},
                                                  metadata={"format": "pt"})}
    try:
        with atomic_path(settings.output_dir) as tmp:
            for sub, files in folders.items():
                os.makedirs(os.path.join(tmp, sub), exist_ok=True)
                write_files(os.path.join(tmp, sub), files)
    except OSError as e:
        raise ExportError(f"--output_dir {settings.output_dir}: cannot write ({e.strerror or e})"
                          ) from None
    tensors = parts[""][2]
    log.info("wrote %s: %s, %d tensors", settings.output_dir, trained.kind, len(tensors))
    summary = {"output_dir": settings.output_dir, "architecture": trained.kind,
               "tensors": len(tensors),
               "parameters": int(sum(v.size for v in tensors.values()))}
    if len(parts) > 1:
        summary["subfolders"] = sorted(sub for sub in parts if sub)
    return summary


def _model_folders(trained: TrainedModel) -> dict[str, tuple[object, dict, dict]]:
    """{subfolder ("" for the top): (the sizes for the card, config.json, tensors)}."""
    model = trained.model
    if trained.kind == DISCRIMINATOR:
        configs = {"": model.backbone.config,
                   hf_electra.GENERATOR_FOLDER: model.generator.config}
        return {sub: (configs[sub], hf, tensors) for sub, (hf, tensors) in
                hf_electra.electra_folders(model, trained.pad_token_id).items()}
    if trained.kind == CLASSIFICATION:
        tensors = hf_weights.classifier_tensors(model)
    else:
        tensors = hf_weights.pretrainer_tensors(model)
    hf = hf_weights.hf_config(model.backbone.config, trained.kind, trained.labels,
                              pad_token_id=trained.pad_token_id)
    return {"": (model.backbone.config, hf, tensors)}


def _check_output_dir(settings: ExportSettings) -> None:
    if os.path.abspath(settings.output_dir) == os.path.abspath(settings.model_dir):
        raise ExportError("--output_dir must not be --model_dir")
    problem = output_dir_problem(settings.output_dir, settings.overwrite)
    if problem:
        raise ExportError(problem)


def _command(settings: ExportSettings) -> None:
    print(json.dumps(export(settings)))


def main(argv=None) -> int:
    return cli.run_command(ExportSettings, _command, argv, description=DESCRIPTION)


if __name__ == "__main__":
    sys.exit(main())
