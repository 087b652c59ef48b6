"""SavedModel exports of a pretrained model, for TF Serving or `tf.saved_model.load`.

A SavedModel written here needs only `tensorflow` and `tensorflow_text` to load. Signatures:
  serve / serving_default: the four int32 feature tensors -> mlm_logits, and nsp_logits
    (a BERT with next-sentence prediction) or rtd_logits (an ELECTRA's discriminator: is
    each piece a replacement?);
  fill_mask: text (string, batch) -> top_pieces (string, batch x masks x k),
    top_scores (float32, same shape, probabilities among ordinary pieces, special pieces
    never proposed) and mask_positions (int32, batch x masks; -1 where a text has fewer
    [MASK]s), with k = the export's default (5);
  fill_mask_top_k: the same with an int32 scalar input top_k;
  encode: text -> pooled_output (batch x hidden), sequence_output (batch x length x
    hidden) and input_mask (batch x length);
  encode_pair: text and text_b, laid out as [CLS] A [SEP] B [SEP].
Signatures cannot have optional inputs, so each optional input makes a second signature
(fill_mask_top_k, encode_pair). Loaded in Python, the same functions are attributes:
`tf.saved_model.load(path).fill_mask(tf.constant(["..."]))`, and so is `encoder` (the three
feature tensors without masked_lm_positions -> the encoder's outputs), which the text
functions share; a classifier export's `logits` is its counterpart.
"""

from __future__ import annotations

import logging

import tensorflow as tf

from bertdata.schema import INPUT_IDS, INPUT_MASK, MASKED_LM_POSITIONS, SEGMENT_IDS
from bertdata.tokenizer_files import NotInGraph, TokenizerSource
from bertmodel.model.preprocessing import BertPreprocessor

log = logging.getLogger("bertmodel.export")

DEFAULT_TOP_K = 5
_TEXT = tf.TensorSpec([None], tf.string, name="text")
_TEXT_B = tf.TensorSpec([None], tf.string, name="text_b")
_TOP_K = tf.TensorSpec([], tf.int32, name="top_k")
FEATURE_SPEC = {
    INPUT_IDS: tf.TensorSpec([None, None], tf.int32, name=INPUT_IDS),
    INPUT_MASK: tf.TensorSpec([None, None], tf.int32, name=INPUT_MASK),
    SEGMENT_IDS: tf.TensorSpec([None, None], tf.int32, name=SEGMENT_IDS),
    MASKED_LM_POSITIONS: tf.TensorSpec([None, None], tf.int32, name=MASKED_LM_POSITIONS),
}
# What the preprocessor gives and the encoder takes.
ENCODER_FEATURE_SPEC = {name: FEATURE_SPEC[name] for name in (INPUT_IDS, INPUT_MASK, SEGMENT_IDS)}


def checked_features(features: dict, config) -> dict:
    """The feature tensors of a `serve` request, passed on only when every id is in range
    (an out-of-range id would fail deep inside a gather, naming none of them)."""
    seq = tf.shape(features[INPUT_IDS])[1]
    ranges = {INPUT_IDS: (config.vocab_size, config.vocab_size),
              SEGMENT_IDS: (config.type_vocab_size, config.type_vocab_size),
              INPUT_MASK: (2, 2), MASKED_LM_POSITIONS: (seq, "the sequence length")}
    checks = []
    for name, (limit, said) in ranges.items():
        value = features[name]
        ok = tf.logical_and(tf.reduce_all(value >= 0), tf.reduce_all(value < limit))
        checks.append(tf.debugging.assert_equal(ok, True,
                                                message=f"{name} must lie in [0, {said})"))
    checks.append(tf.debugging.assert_less_equal(
        seq, config.max_position_embeddings,
        message=f"sequences longer than the model's {config.max_position_embeddings} positions"))
    with tf.control_dependencies(checks):
        return {name: tf.identity(value) for name, value in features.items()}


def mask_positions(input_ids, mask_id: int) -> tf.Tensor:
    """(B, M) positions of the [MASK] pieces (MASK_ID) of each row, padded with -1."""
    b, n = tf.shape(input_ids)[0], tf.shape(input_ids)[1]
    where = tf.ragged.boolean_mask(tf.broadcast_to(tf.range(n)[None], [b, n]),
                                   tf.equal(input_ids, mask_id))
    return where.to_tensor(-1)


def top_pieces(mlm_logits, top_k, is_special):
    """(probabilities, ids) of the top_k ordinary pieces: the special pieces (IS_SPECIAL, a
    bool vector over the vocabulary) get no mass."""
    logits = tf.where(tf.logical_not(is_special), tf.cast(mlm_logits, tf.float32),
                      float("-inf"))
    return tf.math.top_k(tf.nn.softmax(logits, axis=-1), k=top_k)


def hold_model(module: tf.Module, model) -> None:
    """Gives MODULE the Keras model as `module.model`, with only its variables in what
    tf.saved_model.save walks: a Keras model in that graph has its own default serving
    function traced (the whole model, once more, with autograph) though no signature here
    calls it."""
    module.model_variables = list(model.variables)
    object.__setattr__(module, "model", model)  # past tf.Module's tracking __setattr__


class PretrainedExport(tf.Module):
    """The pretrainer with its preprocessor, as tf.functions on raw text."""

    def __init__(self, model, preprocessor: BertPreprocessor):
        super().__init__(name="bertpipe_export")
        hold_model(self, model)
        self.preprocessor = preprocessor

    # autograph=False throughout: these functions branch on Python values only, and the
    # rewrite only slowed every export down. The text functions call `serve` and
    # `encoder` rather than the Keras model, so the model is traced twice, not five times
    # (its trace is most of an export's time, and grows with the layers).
    @tf.function(input_signature=[FEATURE_SPEC], autograph=False)
    def serve(self, features):
        return self.model.serving_outputs(checked_features(features,
                                                           self.model.backbone.config))

    @tf.function(input_signature=[ENCODER_FEATURE_SPEC], autograph=False)
    def encoder(self, features):
        return self.model.backbone(features, training=False)

    def _fill_mask(self, text, top_k):
        is_special = self.preprocessor.is_special
        ordinary = len(is_special) - int(is_special.sum())
        check = tf.debugging.assert_equal(
            tf.logical_and(top_k >= 1, top_k <= ordinary), True,
            message=f"top_k must be between 1 and {ordinary} (the ordinary pieces)")
        with tf.control_dependencies([check]):
            top_k = tf.identity(top_k)
        inputs = self.preprocessor(text)
        mask_id = self.preprocessor.special.mask
        positions = mask_positions(inputs[INPUT_IDS], mask_id)
        # A [MASK] that trimming to the model's positions cut off fails the request, as the
        # fill_mask command refuses it, rather than going unanswered. (Written otherwise, as
        # full-width brackets, it becomes a [MASK] only in normalization: never fewer.)
        found = tf.reduce_sum(tf.cast(positions >= 0, tf.int64), axis=1)
        written = tf.strings.split(
            text, self.preprocessor.pieces(mask_id)).row_lengths() - 1
        check = tf.debugging.assert_greater_equal(
            found, written, message=f"a [MASK] lies past the "
                                    f"{self.preprocessor.max_seq_length} positions the model "
                                    "takes")
        with tf.control_dependencies([check]):
            positions = tf.identity(positions)
        # Rows with fewer masks look up position 0 ([CLS]); their slots are dropped below.
        out = self.serve({**inputs, MASKED_LM_POSITIONS: tf.maximum(positions, 0)})
        scores, ids = top_pieces(out["mlm_logits"], top_k, tf.constant(is_special))
        valid = (positions >= 0)[..., None]
        return {"top_pieces": tf.where(valid, self.preprocessor.pieces(ids), ""),
                "top_scores": tf.where(valid, scores, 0.0),
                "mask_positions": positions}

    @tf.function(input_signature=[_TEXT], autograph=False)
    def fill_mask(self, text):
        return self.fill_mask_top_k(text, tf.constant(DEFAULT_TOP_K))

    @tf.function(input_signature=[_TEXT, _TOP_K], autograph=False)
    def fill_mask_top_k(self, text, top_k):
        return self._fill_mask(text, top_k)

    def _encode(self, text, text_b=None):
        inputs = self.preprocessor(text, text_b)
        out = self.encoder(inputs)
        return {"pooled_output": tf.cast(out["pooled_output"], tf.float32),
                "sequence_output": tf.cast(out["sequence_output"], tf.float32),
                "input_mask": inputs[INPUT_MASK]}

    @tf.function(input_signature=[_TEXT], autograph=False)
    def encode(self, text):
        return self._encode(text)

    @tf.function(input_signature=[_TEXT, _TEXT_B], autograph=False)
    def encode_pair(self, text, text_b):
        return self._encode(text, text_b)


def export_saved_model(model, path: str, *, tokenizer: TokenizerSource | None = None,
                       max_seq_length: int | None = None) -> None:
    """Writes the SavedModel described in the module docstring. Without a tokenizer, or
    with one that has no graph counterpart (said in one line), only the `serve` signature
    on feature tensors is written."""
    preprocessor = None
    if tokenizer is not None:
        try:
            preprocessor = BertPreprocessor(
                tokenizer, max_seq_length or model.backbone.config.max_position_embeddings)
        except NotInGraph as e:
            log.warning("%s: the export has the serve signature on feature tensors only", e)
    if preprocessor is None:
        module = tf.Module()
        hold_model(module, model)
        module.serve = tf.function(model.serving_outputs,
                                   input_signature=[FEATURE_SPEC], autograph=False)
        tf.saved_model.save(module, path, signatures={"serving_default": module.serve,
                                                      "serve": module.serve})
        return
    module = PretrainedExport(model, preprocessor)
    tf.saved_model.save(module, path, signatures={
        "serving_default": module.serve, "serve": module.serve,
        "fill_mask": module.fill_mask, "fill_mask_top_k": module.fill_mask_top_k,
        "encode": module.encode, "encode_pair": module.encode_pair})


class ClassifierExport(tf.Module):
    """A fine-tuned classifier with its preprocessor and label names."""

    def __init__(self, model, preprocessor: BertPreprocessor, labels):
        super().__init__(name="bertpipe_classifier")
        hold_model(self, model)
        self.preprocessor = preprocessor
        self.labels = tf.constant(list(labels))

    # The two text functions call `logits`, so the model is traced once.
    @tf.function(input_signature=[ENCODER_FEATURE_SPEC], autograph=False)
    def logits(self, features):
        return self.model(features, training=False)

    def _classify(self, text, text_b=None):
        probabilities = tf.nn.softmax(self.logits(self.preprocessor(text, text_b)), axis=-1)
        return {"probabilities": probabilities,
                "label": tf.gather(self.labels, tf.argmax(probabilities, axis=-1))}

    @tf.function(input_signature=[_TEXT], autograph=False)
    def classify(self, text):
        return self._classify(text)

    @tf.function(input_signature=[_TEXT, _TEXT_B], autograph=False)
    def classify_pair(self, text, text_b):
        return self._classify(text, text_b)


def export_classifier(model, path: str, *, tokenizer: TokenizerSource, max_seq_length: int,
                      labels) -> None:
    """A SavedModel whose `classify` signature takes text (and `classify_pair` text and
    text_b) strings and returns probabilities (batch x labels) and label (string). The
    tokenizer must have a graph counterpart (fine-tuning ran with it)."""
    module = ClassifierExport(model, BertPreprocessor(tokenizer, max_seq_length), labels)
    tf.saved_model.save(module, path, signatures={"serving_default": module.classify,
                                                  "classify": module.classify,
                                                  "classify_pair": module.classify_pair})
