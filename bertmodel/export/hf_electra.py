"""An ELECTRA run's weights and sizes in `transformers`' ELECTRA layout.

The discriminator is `ElectraForPreTraining`: the encoder under `electra.` as BERT's is
under `bert.` (ElectraModel has no pooler, so the Keras backbone's untrained pooler is left
out) and the detection head as `discriminator_predictions.dense` and `.dense_prediction`.
The generator is `ElectraForMaskedLM` with embedding_size the discriminator's width: the
shared embeddings (written again, as transformers keeps one copy per model), the
projection as `electra.embeddings_project`, its blocks, and its MLM head as
`generator_predictions` with `generator_lm_head` tied to the word embeddings (its bias
stored). Only numpy here, as in hf_weights.
"""

from __future__ import annotations

import numpy as np

from bertmodel.export.hf_weights import (
    HF_ACTIVATIONS,
    HF_NUMBERS,
    HF_SIZES,
    block_tensors,
    dense_tensors,
    embedding_tensors,
    norm_tensors,
)
from bertmodel.model.config import BertConfig

DISCRIMINATOR = "ElectraForPreTraining"
GENERATOR = "ElectraForMaskedLM"
# The subfolder of an ELECTRA export that holds the generator.
GENERATOR_FOLDER = "generator"


def electra_config(config: BertConfig, architecture: str, *, embedding_size: int,
                   pad_token_id: int) -> dict:
    """config.json of a transformers ELECTRA with these sizes."""
    return {"architectures": [architecture], "model_type": "electra",
            "position_embedding_type": "absolute", "embedding_size": embedding_size,
            "hidden_act": HF_ACTIVATIONS[config.hidden_act],
            **{key: getattr(config, field) for key, field in HF_SIZES.items()},
            **{key: getattr(config, field) for key, (field, _) in HF_NUMBERS.items()},
            "pad_token_id": pad_token_id, "tie_word_embeddings": True, "dtype": "float32",
            "use_cache": False}


def discriminator_tensors(model) -> dict[str, np.ndarray]:
    """ElectraForPreTraining's weights of an ElectraPretrainer."""
    backbone = model.backbone
    return {**embedding_tensors(backbone.embeddings, "electra"),
            **block_tensors(backbone.blocks, "electra"),
            **dense_tensors("discriminator_predictions.dense", model.rtd_dense),
            **dense_tensors("discriminator_predictions.dense_prediction", model.rtd_output)}


def generator_tensors(model) -> dict[str, np.ndarray]:
    """ElectraForMaskedLM's weights of an ElectraPretrainer's generator."""
    generator = model.generator
    head = generator.mlm_head
    out = {**embedding_tensors(generator.embeddings, "electra"),
           **block_tensors(generator.blocks, "electra"),
           **dense_tensors("generator_predictions.dense", head.transform),
           **norm_tensors("generator_predictions.LayerNorm", head.layer_norm),
           "generator_lm_head.bias": np.asarray(head.output_bias)}
    if generator.projection is not None:
        out.update(dense_tensors("electra.embeddings_project", generator.projection))
    return out


def electra_folders(model, pad_token_id: int) -> dict[str, tuple[dict, dict]]:
    """{subfolder ("" for the top): (config.json, tensors)}: the discriminator at the top,
    the generator in GENERATOR_FOLDER."""
    width = model.backbone.config.hidden_size
    return {
        "": (electra_config(model.backbone.config, DISCRIMINATOR, embedding_size=width,
                            pad_token_id=pad_token_id), discriminator_tensors(model)),
        GENERATOR_FOLDER: (electra_config(model.generator.config, GENERATOR,
                                          embedding_size=width, pad_token_id=pad_token_id),
                           generator_tensors(model)),
    }
