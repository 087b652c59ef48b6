"""ELECTRA pretraining (Clark et al. 2020): replaced-token detection.

A small generator, a masked LM, fills the masked positions with pieces sampled from its own
output distribution; the discriminator, a full BERT encoder, then says of every real token
whether it was replaced. Loss = mlm_loss_weight x the generator's MLM cross-entropy (over
the real masked positions) + rtd_loss_weight x the discriminator's sigmoid cross-entropy
(over every real token); the paper's λ is 50. A sampled piece equal to the original counts
as not replaced, as in the paper. No gradient passes through the sampling: the detection
loss trains the discriminator and the shared embeddings, the MLM loss the generator and
the shared embeddings.

The two share the embeddings (token, position and segment tables and their LayerNorm), as
ELECTRA does. The generator is narrower (a fraction of the discriminator's width, heads and
feed-forward, its depth the same) and projects the shared embeddings down to its width, as
transformers' ElectraModel does when embedding_size differs from hidden_size; its MLM
head maps back to the embeddings' width and reads the token table (tied), with the exact
GELU of transformers' ElectraGeneratorPredictions.

The discriminator is `backbone`, a BertBackbone: encoder.keras, fine-tuning, `encode` and
`classify` use it as they use a BERT's encoder. `fill_mask` uses the generator.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from bertdata.schema import (
    INPUT_IDS,
    INPUT_MASK,
    MASKED_LM_IDS,
    MASKED_LM_POSITIONS,
    MASKED_LM_WEIGHTS,
    SEGMENT_IDS,
)
from bertmodel.model.bert import (
    BertBackbone,
    MaskedLMTracking,
    dummy_inputs,
    global_sum,
    masked_lm_sums,
    without_pooler,
)
from bertmodel.model.config import (
    DEFAULT_GENERATOR_SIZE,
    DEFAULT_RTD_LOSS_WEIGHT,
    ELECTRA_MLM_LOSS_WEIGHT,
    BertConfig,
)
from bertmodel.model.layers import (
    ACTIVATIONS,
    HashedRandom,
    MaskedLMHead,
    TransformerBlock,
    attention_bias,
    fmix32,
    initializer,
    u32,
)

keras = tf.keras


def generator_config(config: BertConfig, size: float) -> BertConfig:
    """The generator's sizes: SIZE of the discriminator's width, heads and feed-forward
    (at least one head; the width a multiple of the heads), the same depth. At 1/4 this is
    ELECTRA-Small's generator (256 wide, 4 heads -> 64 wide, 1 head)."""
    if not 0 < size <= 1:
        raise ValueError(f"the generator's size must be in (0, 1], got {size!r}")
    heads = max(1, round(config.num_heads * size))
    hidden = max(heads, round(config.hidden_size * size / heads) * heads)
    return dataclasses.replace(config, hidden_size=hidden, num_heads=heads,
                               intermediate_size=max(1, round(config.intermediate_size * size)))


@keras.utils.register_keras_serializable(package="bertpipe")
class ElectraGenerator(keras.layers.Layer):
    """The generator: the shared embeddings, a projection to its width (when narrower),
    its encoder blocks and a tied MLM head; logits (batch, preds, vocab) at the given
    positions (the last block computes only those)."""

    def __init__(self, embeddings, config: BertConfig | dict, **kwargs):
        super().__init__(**kwargs)
        self.embeddings = embeddings  # the discriminator's layer, shared
        self.config = config if isinstance(config, BertConfig) else BertConfig(**config)
        c, width = self.config, embeddings.hidden_size
        self.projection = (keras.layers.Dense(c.hidden_size, kernel_initializer=initializer(
            c.initializer_range), name="projection") if width != c.hidden_size else None)
        self.blocks = [
            TransformerBlock(c.hidden_size, c.num_heads, c.intermediate_size, c.dropout_rate,
                             c.attention_dropout_rate, c.layer_norm_epsilon,
                             c.initializer_range, c.hidden_act, name=f"block_{i}")
            for i in range(c.num_layers)]
        self.mlm_head = MaskedLMHead(embeddings.token_embedding, width, c.layer_norm_epsilon,
                                     c.initializer_range, "gelu", input_size=c.hidden_size,
                                     name="mlm_head")

    def call(self, inputs, positions, training=None):
        x = self.embeddings(inputs[INPUT_IDS], inputs[SEGMENT_IDS], training=training)
        if self.projection is not None:
            x = self.projection(x)
        bias = attention_bias(inputs[INPUT_MASK])
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            x = block(x, bias, training=training,
                      query_positions=positions if i == last else None)
        return self.mlm_head(x)

    def get_config(self):
        # The embeddings are shared, not configured; the owning model passes them in again.
        return {**super().get_config(), "config": self.config.to_dict()}


@keras.utils.register_keras_serializable(package="bertpipe")
class GumbelSampler(HashedRandom):
    """One piece per row of logits (batch, preds, vocab), drawn from softmax(logits) by the
    Gumbel-max trick, with uniform draws hashed from each example's own seed (see
    `example_seeds`), the element's index in the example and, in training, the counter.

    So the draws of an example do not depend on which replica holds it (several replicas
    train as one device on the same batch), a resumed run draws as the uninterrupted one
    would (the counter is checkpointed), and in evaluation the draws follow the batch
    alone: a held-out figure does not depend on how many evaluations came before it.
    """

    def call(self, logits, seeds, training=None):
        step = self.next_step() if training else u32(0)
        logits = tf.cast(logits, tf.float32)
        shape = tf.shape(logits)
        index = tf.bitcast(tf.range(tf.reduce_prod(shape[1:])), tf.uint32)[None, :]
        bits = tf.reshape(self.hashed_bits(index, step, tf.cast(seeds, tf.uint32)[:, None]),
                          shape)
        uniform = (tf.cast(tf.bitwise.right_shift(bits, u32(8)), tf.float32) + 0.5) \
            * (1.0 / 2**24)  # in (0, 1)
        gumbel = -tf.math.log(-tf.math.log(uniform))
        return tf.argmax(logits + gumbel, axis=-1, output_type=tf.int32)


def example_seeds(input_ids) -> tf.Tensor:
    """(batch,) uint32: a hash of each example's ids and their places."""
    ids = tf.bitcast(tf.cast(input_ids, tf.int32), tf.uint32)
    places = tf.bitcast(tf.range(tf.shape(ids)[1]), tf.uint32)[None, :] * u32(0x9E3779B1)
    return tf.reduce_sum(fmix32(tf.bitwise.bitwise_xor(ids * u32(0x85EBCA77), places)),
                         axis=1)


def place(values, positions, input_ids):
    """INPUT_IDS (batch, seq) with VALUES (batch, preds) put at POSITIONS (batch, preds).
    Slot 0 pads a short prediction list ([CLS] is never masked), so it places nothing."""
    base = tf.cast(input_ids, values.dtype)
    kept = tf.where(positions > 0, values, tf.gather(base, positions, batch_dims=1))
    rows = tf.broadcast_to(tf.range(tf.shape(positions)[0])[:, None], tf.shape(positions))
    return tf.tensor_scatter_nd_update(base, tf.stack([rows, positions], axis=-1), kept)


@keras.utils.register_keras_serializable(package="bertpipe")
class ElectraPretrainer(MaskedLMTracking, keras.Model):
    """Generator + discriminator (backbone) + detection head, trained on the records of
    `bertdata.make_dataset` as BertPretrainer is (next-sentence labels are not read).

    Outputs: {"mlm_logits": float32 (batch, preds, vocab), the generator's;
    "sampled_ids": int32 (batch, preds), the pieces put at the masked positions;
    "rtd_logits": float32 (batch, seq), the discriminator's replaced-or-not logits on the
    input with those pieces in place}. Losses are normalised by global counts, as in
    BertPretrainer, so any number of replicas trains as one device on the same batch.
    """

    def __init__(self, backbone: BertBackbone | None = None, *, config=None,
                 generator_size: float = DEFAULT_GENERATOR_SIZE,
                 mlm_loss_weight: float = ELECTRA_MLM_LOSS_WEIGHT,
                 rtd_loss_weight: float = DEFAULT_RTD_LOSS_WEIGHT, **kwargs):
        super().__init__(**kwargs)
        if backbone is None:
            backbone = BertBackbone(config, name="backbone")
        self.backbone = backbone
        c = backbone.config
        self.generator_size = float(generator_size)
        self.mlm_loss_weight = float(mlm_loss_weight)
        self.rtd_loss_weight = float(rtd_loss_weight)
        self.generator = ElectraGenerator(backbone.embeddings,
                                          generator_config(c, self.generator_size),
                                          name="generator")
        self.sampler = GumbelSampler(name="sampler")
        self.rtd_dense = keras.layers.Dense(c.hidden_size, activation=ACTIVATIONS[c.hidden_act],
                                            kernel_initializer=initializer(c.initializer_range),
                                            name="rtd_dense")
        self.rtd_output = keras.layers.Dense(
            1, kernel_initializer=initializer(c.initializer_range), name="rtd_output")
        self._start_tracking()
        self.rtd_loss_tracker = keras.metrics.Mean(name="rtd_loss")
        self.rtd_accuracy = keras.metrics.BinaryAccuracy(name="rtd_accuracy")
        self.rtd_precision = keras.metrics.Precision(name="rtd_precision")
        self.rtd_recall = keras.metrics.Recall(name="rtd_recall")
        # Precision and recall read the detector at 0.5, which an early detector never
        # reaches on text: the area under the ROC curve shows whether it ranks at all.
        self.rtd_auc = keras.metrics.AUC(num_thresholds=200, name="rtd_auc")

    def generator_logits(self, inputs, training=None):
        positions = tf.cast(inputs[MASKED_LM_POSITIONS], tf.int32)
        return self.generator(inputs, positions, training=training)

    def detection_logits(self, inputs, training=None):
        """(batch, seq) float32: is each piece a replacement?"""
        out = self.backbone(inputs, training=training)["sequence_output"]
        logits = self.rtd_output(self.rtd_dense(out))
        return tf.cast(tf.squeeze(logits, axis=-1), tf.float32)

    def call(self, inputs, training=None):
        mlm_logits = self.generator_logits(inputs, training)
        positions = tf.cast(inputs[MASKED_LM_POSITIONS], tf.int32)
        sampled = self.sampler(tf.stop_gradient(mlm_logits),
                               example_seeds(inputs[INPUT_IDS]), training=training)
        replaced = {**inputs, INPUT_IDS: place(sampled, positions, inputs[INPUT_IDS])}
        return {"mlm_logits": mlm_logits, "sampled_ids": sampled,
                "rtd_logits": self.detection_logits(replaced, training)}

    def serving_outputs(self, features):
        """For a SavedModel's `serve` and fill_mask: the generator's logits at the masked
        positions and the discriminator's on the input as given (nothing sampled)."""
        return {"mlm_logits": self.generator_logits(features, training=False),
                "rtd_logits": self.detection_logits(features, training=False)}

    @property
    def trainable_weights(self):
        return without_pooler(super().trainable_weights, self.backbone)

    def replaced_labels(self, x, y, y_pred):
        """(batch, seq) float32: 1 where the discriminator's input differs from the
        original text (a sampled piece equal to the original is not a replacement)."""
        positions = tf.cast(x[MASKED_LM_POSITIONS], tf.int32)
        ids = tf.cast(x[INPUT_IDS], tf.int32)
        original = place(tf.cast(y[MASKED_LM_IDS], tf.int32), positions, ids)
        replaced = place(y_pred["sampled_ids"], positions, ids)
        return tf.cast(tf.not_equal(original, replaced), tf.float32)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        mlm_sum, weight_sum = masked_lm_sums(y, y_pred["mlm_logits"])
        self._track_masked_lm(x, mlm_sum, weight_sum, training)
        tokens = tf.cast(x[INPUT_MASK], tf.float32)
        rtd_ce = tf.nn.sigmoid_cross_entropy_with_logits(
            labels=self.replaced_labels(x, y, y_pred), logits=y_pred["rtd_logits"])
        rtd_sum, token_sum = tf.reduce_sum(rtd_ce * tokens), tf.reduce_sum(tokens)
        self.rtd_loss_tracker.update_state(tf.math.divide_no_nan(rtd_sum, token_sum),
                                           sample_weight=token_sum)
        # This replica's share of the global means, as in BertPretrainer.
        return self._track_total(
            self.mlm_loss_weight * mlm_sum / tf.maximum(global_sum(weight_sum), 1.0)
            + self.rtd_loss_weight * rtd_sum / tf.maximum(global_sum(token_sum), 1.0))

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        self.mlm_accuracy.update_state(y[MASKED_LM_IDS], y_pred["mlm_logits"],
                                       sample_weight=y[MASKED_LM_WEIGHTS])
        labels = self.replaced_labels(x, y, y_pred)
        probabilities = tf.sigmoid(y_pred["rtd_logits"])
        tokens = x[INPUT_MASK]
        for metric in (self.rtd_accuracy, self.rtd_precision, self.rtd_recall,
                       self.rtd_auc):
            metric.update_state(labels, probabilities, sample_weight=tokens)
        return self.get_metrics_result()

    @property
    def metrics(self):
        return self._loss_metric() + [self.mlm_loss_tracker, self.mlm_accuracy,
                                      self.mlm_perplexity, self.rtd_loss_tracker,
                                      self.rtd_accuracy, self.rtd_precision, self.rtd_recall,
                                      self.rtd_auc]

    def get_config(self):
        return {"config": self.backbone.config.to_dict(),
                "generator_size": self.generator_size,
                "mlm_loss_weight": self.mlm_loss_weight,
                "rtd_loss_weight": self.rtd_loss_weight, "name": self.name}

    def build_from_config(self, config):
        self(dummy_inputs(self.backbone.config))

    @classmethod
    def from_config(cls, config):
        return cls(config=BertConfig(**config["config"]),
                   generator_size=config["generator_size"],
                   mlm_loss_weight=config["mlm_loss_weight"],
                   rtd_loss_weight=config["rtd_loss_weight"], name=config.get("name"))
