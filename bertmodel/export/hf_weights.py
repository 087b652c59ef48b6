"""The Keras BERT's weights and sizes in Hugging Face `transformers`' BERT layout, both ways.

The model maps one to one onto `BertForPreTraining`: the fused QKV kernel splits into the
query, key and value projections (its columns are laid out [q | k | v], each head-major),
Keras kernels (in, out) are PyTorch Linear weights (out, in) transposed, LayerNorm gamma and
beta are weight and bias, the MLM decoder is the token embedding (tied, not stored twice)
with its own bias, and the next-sentence labels agree (0: B follows A). The GELU is the tanh
approximation (`gelu_pytorch_tanh` in transformers) for this project's models, or the exact
one (`gelu`) most published checkpoints use: BertConfig.hidden_act.

Only numpy here: the export needs neither PyTorch nor TensorFlow's model code beyond the
loaded Keras objects it is handed.
"""

from __future__ import annotations

import numbers

import numpy as np

from bertcommon.errors import BertpipeError
from bertmodel.model.config import BertConfig

# BertConfig.hidden_act <-> transformers' hidden_act; gelu_new is the same tanh formula.
HF_ACTIVATIONS = {"gelu_tanh": "gelu_pytorch_tanh", "gelu": "gelu"}
HF_ACTIVATION_ALIASES = {"gelu_new": "gelu_tanh"}
# transformers architectures of what this project trains.
PRETRAINING = "BertForPreTraining"
MASKED_LM = "BertForMaskedLM"  # a model pretrained without next-sentence prediction
CLASSIFICATION = "BertForSequenceClassification"
ARCHITECTURES = (PRETRAINING, MASKED_LM, CLASSIFICATION, "BertModel")


class HFFormatError(BertpipeError, ValueError):
    """A Hugging Face folder that does not fit this project's model; names the file and
    field."""


# config.json's values that this model's code fixes (an absolute-position BERT).
HF_FIXED = {"model_type": "bert", "position_embedding_type": "absolute"}
# config.json's keys for BertConfig's fields.
HF_SIZES = {"vocab_size": "vocab_size", "hidden_size": "hidden_size",
            "num_hidden_layers": "num_layers", "num_attention_heads": "num_heads",
            "intermediate_size": "intermediate_size",
            "max_position_embeddings": "max_position_embeddings",
            "type_vocab_size": "type_vocab_size"}
# (BertConfig field, transformers' default when config.json leaves the key out).
HF_NUMBERS = {"layer_norm_eps": ("layer_norm_epsilon", 1e-12),
              "hidden_dropout_prob": ("dropout_rate", 0.1),
              "attention_probs_dropout_prob": ("attention_dropout_rate", 0.1),
              "initializer_range": ("initializer_range", 0.02)}


def hf_config(config: BertConfig, architecture: str, labels=None, *,
              pad_token_id: int = 0) -> dict:
    """config.json of a transformers BERT with these sizes (PAD_TOKEN_ID: the tokenizer's;
    this project's is 0)."""
    out = {"architectures": [architecture], **HF_FIXED,
           "hidden_act": HF_ACTIVATIONS[config.hidden_act],
           **{key: getattr(config, field) for key, field in HF_SIZES.items()},
           **{key: getattr(config, field) for key, (field, _) in HF_NUMBERS.items()},
           "pad_token_id": pad_token_id, "tie_word_embeddings": True, "dtype": "float32",
           "use_cache": False}
    if labels is not None:
        out["id2label"] = {str(i): label for i, label in enumerate(labels)}
        out["label2id"] = {label: i for i, label in enumerate(labels)}
        out["problem_type"] = "single_label_classification"
    return out


def config_from_hf(hf: dict, source: str) -> BertConfig:
    """The BertConfig of a transformers BERT config.json; HFFormatError names the field that
    this project's model cannot represent."""
    if not isinstance(hf, dict):
        raise HFFormatError(f"{source}: holds a JSON {type(hf).__name__}, not an object")
    for key, want in HF_FIXED.items():
        if hf.get(key, want) != want:
            raise HFFormatError(f"{source}: {key} is {hf.get(key)!r}; this model needs "
                                f"{want!r}")
    values = {"hidden_act": _activation(hf, source)}
    for key, field in HF_SIZES.items():
        value = hf.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise HFFormatError(f"{source}: {key} must be a positive integer, got {value!r}")
        values[field] = value
    for key, (field, default) in HF_NUMBERS.items():
        value = hf.get(key, default)
        if not isinstance(value, numbers.Real) or isinstance(value, bool):
            raise HFFormatError(f"{source}: {key} must be a number, got {value!r}")
        values[field] = float(value)
    try:
        return BertConfig(**values)
    except ValueError as e:  # named by BertConfig's field: say config.json's key
        message = str(e)
        for key, field in [*HF_SIZES.items(), *((k, f) for k, (f, _) in HF_NUMBERS.items())]:
            if message.startswith(field + " "):
                message = key + message[len(field):]
        raise HFFormatError(f"{source}: {message}") from None


def _activation(hf: dict, source: str) -> str:
    """BertConfig.hidden_act of config.json's hidden_act (transformers' default: gelu)."""
    named = hf.get("hidden_act", "gelu")
    ours = {theirs: ours for ours, theirs in HF_ACTIVATIONS.items()}
    ours.update(HF_ACTIVATION_ALIASES)
    if not isinstance(named, str) or named not in ours:
        raise HFFormatError(f"{source}: hidden_act is {named!r}; this model has "
                            f"{', '.join(sorted(ours))}")
    return ours[named]


def expected_shapes(config: BertConfig, architecture: str,
                    num_labels: int = 0) -> dict[str, tuple[int, ...]]:
    """Every tensor a folder of this architecture and these sizes holds, with its shape,
    under transformers' names (the encoder's with "bert.")."""
    h, inner = config.hidden_size, config.intermediate_size

    dense = dense_shapes

    def norm(name):
        return {f"{name}.weight": (h,), f"{name}.bias": (h,)}

    shapes = {"bert.embeddings.word_embeddings.weight": (config.vocab_size, h),
              "bert.embeddings.position_embeddings.weight": (config.max_position_embeddings, h),
              "bert.embeddings.token_type_embeddings.weight": (config.type_vocab_size, h),
              **norm("bert.embeddings.LayerNorm"), **dense("bert.pooler.dense", h, h)}
    for i in range(config.num_layers):
        at = f"bert.encoder.layer.{i}"
        for name in ("query", "key", "value"):
            shapes.update(dense(f"{at}.attention.self.{name}", h, h))
        shapes.update({**dense(f"{at}.attention.output.dense", h, h),
                       **norm(f"{at}.attention.output.LayerNorm"),
                       **dense(f"{at}.intermediate.dense", h, inner),
                       **dense(f"{at}.output.dense", inner, h), **norm(f"{at}.output.LayerNorm")})
    if architecture in (PRETRAINING, MASKED_LM):
        shapes.update({**dense("cls.predictions.transform.dense", h, h),
                       **norm("cls.predictions.transform.LayerNorm"),
                       "cls.predictions.bias": (config.vocab_size,)})
    if architecture == PRETRAINING:
        shapes.update(dense("cls.seq_relationship", h, 2))
    if architecture == CLASSIFICATION:
        shapes.update(dense("classifier", h, num_labels))
    return shapes


# Tensors a folder may hold that the model derives or does not need: the position-id buffer
# older transformers saved, and the MLM decoder, which must then be the tied embeddings.
OPTIONAL_TENSORS = ("bert.embeddings.position_ids", "cls.predictions.decoder.weight",
                    "cls.predictions.decoder.bias")


# What a folder's tensors may hold besides the encoder, each part whole or not at all.
POOLER, MLM_HEAD, NSP_HEAD, CLASSIFIER_HEAD = "pooler", "MLM head", "next-sentence head", \
    "classifier"


def _part_of(name: str) -> str:
    if name.startswith("bert.pooler."):
        return POOLER
    if name.startswith("cls.predictions."):
        return MLM_HEAD
    if name.startswith("cls.seq_relationship."):
        return NSP_HEAD
    if name.startswith("classifier."):
        return CLASSIFIER_HEAD
    return "encoder"


def present_parts(tensors: dict, config: BertConfig, num_labels: int, source: str
                  ) -> frozenset[str]:
    """Which parts besides the encoder TENSORS hold (POOLER, MLM_HEAD, ...), each checked
    whole with config.json's shapes; the encoder must be there. Published folders often
    hold other heads than their `architectures` names (klue/bert-base names
    BertForMaskedLM), so the tensors, not that field, say what is there. HFFormatError
    names a missing, misshapen or unknown tensor."""
    shapes = expected_shapes(config, PRETRAINING)
    if num_labels:
        shapes.update(dense_shapes("classifier", config.hidden_size, num_labels))
    present = {_part_of(name) for name in tensors if name in shapes}
    present.add("encoder")
    check_tensors(tensors, {name: shape for name, shape in shapes.items()
                            if _part_of(name) in present}, source)
    return frozenset(present - {"encoder"})


def dense_shapes(name: str, n_in: int, n_out: int) -> dict[str, tuple[int, ...]]:
    return {f"{name}.weight": (n_out, n_in), f"{name}.bias": (n_out,)}


def check_tensors(tensors: dict, shapes: dict[str, tuple[int, ...]], source: str) -> None:
    """TENSORS must be exactly SHAPES' names with those shapes (OPTIONAL_TENSORS aside, and
    a tied decoder must equal what it is tied to); HFFormatError names the first that is
    missing, misshapen or left over."""
    for name, shape in shapes.items():
        _take(tensors, name, shape, source)
    extra = sorted(set(tensors) - set(shapes) - set(OPTIONAL_TENSORS))
    if extra:
        raise HFFormatError(f"{source}: unexpected tensor {extra[0]!r} ({len(extra)} in all): "
                            "weights for another architecture or size than config.json's")
    tied = {"cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
            "cls.predictions.decoder.bias": "cls.predictions.bias"}
    for name, twin in tied.items():
        if name in tensors and (twin not in tensors or not np.array_equal(
                np.asarray(tensors[name], np.float32), np.asarray(tensors[twin], np.float32))):
            raise HFFormatError(f"{source}: {name} differs from {twin}; this model ties them")


def dense_tensors(prefix: str, layer) -> dict:
    kernel, bias = (np.asarray(w) for w in layer.get_weights())
    return {f"{prefix}.weight": kernel.T, f"{prefix}.bias": bias}


def norm_tensors(prefix: str, layer) -> dict:
    gamma, beta = (np.asarray(w) for w in layer.get_weights())
    return {f"{prefix}.weight": gamma, f"{prefix}.bias": beta}


def embedding_tensors(embeddings, prefix: str) -> dict[str, np.ndarray]:
    """BertEmbeddings' weights under transformers' names (with `prefix.embeddings.`)."""
    e = embeddings
    return {
        f"{prefix}.embeddings.word_embeddings.weight": e.token_embedding.get_weights()[0],
        f"{prefix}.embeddings.position_embeddings.weight":
            e.position_embedding.get_weights()[0],
        f"{prefix}.embeddings.token_type_embeddings.weight":
            e.segment_embedding.get_weights()[0],
        **norm_tensors(f"{prefix}.embeddings.LayerNorm", e.layer_norm)}


def block_tensors(blocks, prefix: str) -> dict[str, np.ndarray]:
    """Encoder blocks' weights under transformers' names (`prefix.encoder.layer.N.`)."""
    out = {}
    for i, block in enumerate(blocks):
        at = f"{prefix}.encoder.layer.{i}"
        kernel, bias = (np.asarray(w) for w in block.qkv.get_weights())
        for j, name in enumerate(("query", "key", "value")):
            cols = slice(j * block.hidden_size, (j + 1) * block.hidden_size)
            out[f"{at}.attention.self.{name}.weight"] = kernel[:, cols].T
            out[f"{at}.attention.self.{name}.bias"] = bias[cols]
        out.update(dense_tensors(f"{at}.attention.output.dense", block.attention_output))
        out.update(norm_tensors(f"{at}.attention.output.LayerNorm", block.attention_layer_norm))
        out.update(dense_tensors(f"{at}.intermediate.dense", block.intermediate))
        out.update(dense_tensors(f"{at}.output.dense", block.output_dense))
        out.update(norm_tensors(f"{at}.output.LayerNorm", block.output_layer_norm))
    return out


def backbone_tensors(backbone, prefix: str = "bert") -> dict[str, np.ndarray]:
    """The encoder's weights under transformers' BertModel names (with `prefix.`)."""
    return {**embedding_tensors(backbone.embeddings, prefix),
            **dense_tensors(f"{prefix}.pooler.dense", backbone.pooler),
            **block_tensors(backbone.blocks, prefix)}


def pretrainer_tensors(model) -> dict[str, np.ndarray]:
    """BertForPreTraining's weights (the decoder is tied to the word embeddings)."""
    head = model.mlm_head
    out = {**backbone_tensors(model.backbone),
           **dense_tensors("cls.predictions.transform.dense", head.transform),
           **norm_tensors("cls.predictions.transform.LayerNorm", head.layer_norm),
           "cls.predictions.bias": np.asarray(head.output_bias)}
    if getattr(model, "nsp_head", None) is not None:
        out.update(dense_tensors("cls.seq_relationship", model.nsp_head))
    return out


def classifier_tensors(model) -> dict[str, np.ndarray]:
    """BertForSequenceClassification's weights."""
    return {**backbone_tensors(model.backbone), **dense_tensors("classifier", model.classifier)}


def _take(tensors: dict, name: str, shape, source: str) -> np.ndarray:
    if name not in tensors:
        raise HFFormatError(f"{source}: no tensor {name!r}")
    value = np.asarray(tensors[name], np.float32)
    if tuple(value.shape) != tuple(shape):
        raise HFFormatError(f"{source}: {name} has shape {tuple(value.shape)}, expected "
                            f"{tuple(shape)}")
    return value


def _set_dense(layer, tensors, prefix, source):
    kernel, bias = layer.get_weights()
    layer.set_weights([_take(tensors, f"{prefix}.weight", kernel.T.shape, source).T,
                       _take(tensors, f"{prefix}.bias", bias.shape, source)])


def _set_norm(layer, tensors, prefix, source):
    gamma, beta = layer.get_weights()
    layer.set_weights([_take(tensors, f"{prefix}.weight", gamma.shape, source),
                       _take(tensors, f"{prefix}.bias", beta.shape, source)])


def load_backbone_tensors(backbone, tensors: dict, source: str, prefix: str = "bert") -> None:
    """Sets a built BertBackbone's weights from transformers-named tensors (the inverse of
    backbone_tensors); HFFormatError names a missing or misshapen tensor."""
    c = backbone.config
    e = backbone.embeddings
    for layer, name in ((e.token_embedding, "word_embeddings"),
                        (e.position_embedding, "position_embeddings"),
                        (e.segment_embedding, "token_type_embeddings")):
        table = layer.get_weights()[0]
        layer.set_weights([_take(tensors, f"{prefix}.embeddings.{name}.weight", table.shape,
                                 source)])
    _set_norm(e.layer_norm, tensors, f"{prefix}.embeddings.LayerNorm", source)
    if f"{prefix}.pooler.dense.weight" in tensors:  # a BertForMaskedLM folder has none
        _set_dense(backbone.pooler, tensors, f"{prefix}.pooler.dense", source)
    h = c.hidden_size
    for i, block in enumerate(backbone.blocks):
        at = f"{prefix}.encoder.layer.{i}"
        parts = [(_take(tensors, f"{at}.attention.self.{n}.weight", (h, h), source).T,
                  _take(tensors, f"{at}.attention.self.{n}.bias", (h,), source))
                 for n in ("query", "key", "value")]
        block.qkv.set_weights([np.concatenate([k for k, _ in parts], axis=1),
                               np.concatenate([b for _, b in parts])])
        _set_dense(block.attention_output, tensors, f"{at}.attention.output.dense", source)
        _set_norm(block.attention_layer_norm, tensors, f"{at}.attention.output.LayerNorm",
                  source)
        _set_dense(block.intermediate, tensors, f"{at}.intermediate.dense", source)
        _set_dense(block.output_dense, tensors, f"{at}.output.dense", source)
        _set_norm(block.output_layer_norm, tensors, f"{at}.output.LayerNorm", source)


def load_pretrainer_tensors(model, tensors: dict, source: str) -> None:
    """Sets a built BertPretrainer's weights, heads included (inverse of pretrainer_tensors)."""
    load_backbone_tensors(model.backbone, tensors, source)
    head = model.mlm_head
    _set_dense(head.transform, tensors, "cls.predictions.transform.dense", source)
    _set_norm(head.layer_norm, tensors, "cls.predictions.transform.LayerNorm", source)
    head.output_bias.assign(_take(tensors, "cls.predictions.bias", head.output_bias.shape,
                                  source))
    # A BertForMaskedLM folder has no next-sentence head: the model's stays as it was.
    if getattr(model, "nsp_head", None) is not None and "cls.seq_relationship.weight" in tensors:
        _set_dense(model.nsp_head, tensors, "cls.seq_relationship", source)
