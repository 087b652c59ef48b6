"""The Keras BERT of bertpipe: config, backbone, pretraining model, schedule, trainer."""

from bertmodel.config import PRESETS, BertConfig, load_config

__all__ = ["BertConfig", "PRESETS", "load_config"]
