"""The Keras BERT's weights and sizes in Hugging Face `transformers`' BERT layout, both ways.

The model maps one to one onto `BertForPreTraining`: the fused QKV kernel splits into the
query, key and value projections (its columns are laid out [q | k | v], each head-major),
Keras kernels (in, out) are PyTorch Linear weights (out, in) transposed, LayerNorm gamma and
beta are weight and bias, the MLM decoder is the token embedding (tied, not stored twice)
with its own bias, and the next-sentence labels agree (0: B follows A). The GELU is the tanh
approximation, `gelu_pytorch_tanh` in transformers.

Only numpy here: the export needs neither PyTorch nor TensorFlow's model code beyond the
loaded Keras objects it is handed.
"""

from __future__ import annotations

import numpy as np

from bertmodel.model.config import BertConfig

HIDDEN_ACT = "gelu_pytorch_tanh"
# transformers architectures of what this project trains.
PRETRAINING = "BertForPreTraining"
MASKED_LM = "BertForMaskedLM"  # a model pretrained without next-sentence prediction
CLASSIFICATION = "BertForSequenceClassification"
ARCHITECTURES = (PRETRAINING, MASKED_LM, CLASSIFICATION, "BertModel")


class HFFormatError(ValueError):
    """A Hugging Face folder that does not fit this project's model; names the field."""


def hf_config(config: BertConfig, architecture: str, labels=None) -> dict:
    """config.json of a transformers BERT with these sizes."""
    out = {
        "architectures": [architecture], "model_type": "bert",
        "vocab_size": config.vocab_size, "hidden_size": config.hidden_size,
        "num_hidden_layers": config.num_layers, "num_attention_heads": config.num_heads,
        "intermediate_size": config.intermediate_size, "hidden_act": HIDDEN_ACT,
        "hidden_dropout_prob": config.dropout_rate,
        "attention_probs_dropout_prob": config.attention_dropout_rate,
        "max_position_embeddings": config.max_position_embeddings,
        "type_vocab_size": config.type_vocab_size,
        "initializer_range": config.initializer_range,
        "layer_norm_eps": config.layer_norm_epsilon, "pad_token_id": 0,
        "position_embedding_type": "absolute", "tie_word_embeddings": True,
        "dtype": "float32", "use_cache": False,
    }
    if labels is not None:
        out["id2label"] = {str(i): label for i, label in enumerate(labels)}
        out["label2id"] = {label: i for i, label in enumerate(labels)}
        out["problem_type"] = "single_label_classification"
    return out


def config_from_hf(hf: dict, source: str) -> BertConfig:
    """The BertConfig of a transformers BERT config.json; HFFormatError names the field that
    this project's model cannot represent."""
    fixed = {"model_type": "bert", "hidden_act": HIDDEN_ACT,
             "position_embedding_type": "absolute"}
    for key, want in fixed.items():
        if hf.get(key, want) != want:
            raise HFFormatError(f"{source}: {key} is {hf.get(key)!r}; this model needs "
                                f"{want!r}")
    sizes = {"vocab_size": "vocab_size", "hidden_size": "hidden_size",
             "num_hidden_layers": "num_layers", "num_attention_heads": "num_heads",
             "intermediate_size": "intermediate_size",
             "max_position_embeddings": "max_position_embeddings",
             "type_vocab_size": "type_vocab_size"}
    values = {}
    for key, field in sizes.items():
        if not isinstance(hf.get(key), int) or hf[key] < 1:
            raise HFFormatError(f"{source}: {key} must be a positive integer, got "
                                f"{hf.get(key)!r}")
        values[field] = hf[key]
    try:
        return BertConfig(**values, layer_norm_epsilon=float(hf.get("layer_norm_eps", 1e-12)),
                          dropout_rate=float(hf.get("hidden_dropout_prob", 0.1)),
                          attention_dropout_rate=float(hf.get(
                              "attention_probs_dropout_prob", 0.1)),
                          initializer_range=float(hf.get("initializer_range", 0.02)))
    except ValueError as e:
        raise HFFormatError(f"{source}: {e}") from None


def _dense(prefix: str, layer) -> dict:
    kernel, bias = (np.asarray(w) for w in layer.get_weights())
    return {f"{prefix}.weight": kernel.T, f"{prefix}.bias": bias}


def _norm(prefix: str, layer) -> dict:
    gamma, beta = (np.asarray(w) for w in layer.get_weights())
    return {f"{prefix}.weight": gamma, f"{prefix}.bias": beta}


def backbone_tensors(backbone, prefix: str = "bert") -> dict[str, np.ndarray]:
    """The encoder's weights under transformers' BertModel names (with `prefix.`)."""
    c = backbone.config
    e = backbone.embeddings
    out = {
        f"{prefix}.embeddings.word_embeddings.weight": e.token_embedding.get_weights()[0],
        f"{prefix}.embeddings.position_embeddings.weight":
            e.position_embedding.get_weights()[0],
        f"{prefix}.embeddings.token_type_embeddings.weight":
            e.segment_embedding.get_weights()[0],
        **_norm(f"{prefix}.embeddings.LayerNorm", e.layer_norm),
        **_dense(f"{prefix}.pooler.dense", backbone.pooler),
    }
    for i, block in enumerate(backbone.blocks):
        at = f"{prefix}.encoder.layer.{i}"
        kernel, bias = (np.asarray(w) for w in block.qkv.get_weights())
        for j, name in enumerate(("query", "key", "value")):
            cols = slice(j * c.hidden_size, (j + 1) * c.hidden_size)
            out[f"{at}.attention.self.{name}.weight"] = kernel[:, cols].T
            out[f"{at}.attention.self.{name}.bias"] = bias[cols]
        out.update(_dense(f"{at}.attention.output.dense", block.attention_output))
        out.update(_norm(f"{at}.attention.output.LayerNorm", block.attention_layer_norm))
        out.update(_dense(f"{at}.intermediate.dense", block.intermediate))
        out.update(_dense(f"{at}.output.dense", block.output_dense))
        out.update(_norm(f"{at}.output.LayerNorm", block.output_layer_norm))
    return out


def pretrainer_tensors(model) -> dict[str, np.ndarray]:
    """BertForPreTraining's weights (the decoder is tied to the word embeddings)."""
    head = model.mlm_head
    out = {**backbone_tensors(model.backbone),
           **_dense("cls.predictions.transform.dense", head.transform),
           **_norm("cls.predictions.transform.LayerNorm", head.layer_norm),
           "cls.predictions.bias": np.asarray(head.output_bias)}
    if getattr(model, "nsp_head", None) is not None:
        out.update(_dense("cls.seq_relationship", model.nsp_head))
    return out


def classifier_tensors(model) -> dict[str, np.ndarray]:
    """BertForSequenceClassification's weights."""
    return {**backbone_tensors(model.backbone), **_dense("classifier", model.classifier)}


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
