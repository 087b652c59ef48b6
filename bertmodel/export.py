"""Exports of a trained model: a SavedModel for serving."""

from __future__ import annotations

import tensorflow as tf

from bertmodel.layers import KERAS3


def export_saved_model(model, path: str) -> None:
    """Writes a SavedModel whose `serve` signature takes the four int32 feature tensors
    (batch, seq) / (batch, preds) and returns mlm_logits and nsp_logits."""
    spec = {
        "input_ids": tf.TensorSpec([None, None], tf.int32, name="input_ids"),
        "input_mask": tf.TensorSpec([None, None], tf.int32, name="input_mask"),
        "segment_ids": tf.TensorSpec([None, None], tf.int32, name="segment_ids"),
        "masked_lm_positions": tf.TensorSpec([None, None], tf.int32,
                                             name="masked_lm_positions"),
    }

    if KERAS3:
        model.export(path, format="tf_saved_model", input_signature=[spec], verbose=False)
        return

    class _Serving(tf.Module):  # tf-keras
        def __init__(self, model):
            super().__init__()
            self.model = model

        @tf.function(input_signature=[spec])
        def serve(self, features):
            return self.model(features, training=False)

    module = _Serving(model)
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
