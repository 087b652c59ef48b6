"""The Keras BERT of bertpipe: config, backbone, pretraining model, training, export.

Importing this package registers the model's classes with Keras, so the files a training
run writes load with `keras.models.load_model`:

    import bertmodel
    encoder = keras.models.load_model("runs/sample/model/encoder.keras")
    # or, with a clear error for a missing or damaged file:
    encoder = bertmodel.load_encoder("runs/sample/model/encoder.keras")

It needs TensorFlow (`pip install "bertpipe[train]"`); the data side (bertdata, beam_jobs)
does not. TensorFlow's C++ start-up lines are hidden unless TF_CPP_MIN_LOG_LEVEL is set.
"""

from bertcommon import logs as _logs

try:
    _logs.import_tensorflow_quietly()
except ImportError as _e:  # the data-side install
    raise ImportError(f"bertmodel needs TensorFlow ({_e}): pip install 'bertpipe[train]'") \
        from None

from bertmodel.model.bert import BertBackbone, BertClassifier, BertPretrainer  # noqa: E402
from bertmodel.model.config import PRESETS, BertConfig, load_config  # noqa: E402
from bertmodel.model.electra import ElectraPretrainer  # noqa: E402


class ModelFileError(ValueError):
    """A model file that is missing or cannot be read as a Keras model; names the file."""


def _load(path: str, kind: str):
    import os
    import zipfile

    import tensorflow as tf

    if not os.path.isfile(path):
        raise ModelFileError(f"{path}: no such file (a {kind} written by bertmodel.train?)")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(f"{path}: not a Keras model file (truncated or damaged?)")
    try:
        return tf.keras.models.load_model(path)
    except Exception as e:  # Keras raises many kinds for a damaged archive
        raise ModelFileError(f"{path}: cannot load this Keras model ({e})") from None


def load_encoder(path: str) -> BertBackbone:
    """The pretrained encoder (encoder.keras): {input_ids, input_mask, segment_ids} ->
    {sequence_output, pooled_output}."""
    return _load(path, "encoder.keras")


def load_pretrainer(path: str) -> BertPretrainer | ElectraPretrainer:
    """The pretraining model (model.keras): a BertPretrainer with its MLM (and NSP) heads,
    or an ElectraPretrainer with its generator."""
    return _load(path, "model.keras")


__all__ = ["BertBackbone", "BertClassifier", "BertConfig", "BertPretrainer", "ElectraPretrainer",
           "ModelFileError", "PRESETS", "load_config", "load_encoder", "load_pretrainer"]
