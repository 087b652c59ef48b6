"""The BERT backbone and the pretraining model (MLM + NSP heads, losses and metrics)."""

from __future__ import annotations

import tensorflow as tf

from bertdata.schema import (
    INPUT_IDS,
    INPUT_MASK,
    MASKED_LM_IDS,
    MASKED_LM_POSITIONS,
    MASKED_LM_WEIGHTS,
    NEXT_SENTENCE_LABELS,
    SEGMENT_IDS,
)
from bertmodel.model.config import DEFAULT_MLM_LOSS_WEIGHT, BertConfig
from bertmodel.model.layers import (
    KERAS3,
    BertEmbeddings,
    MaskedLMHead,
    TransformerBlock,
    attention_bias,
    initializer,
)
from bertmodel.training import schedule as _schedule  # noqa: F401  (registers WarmupCosine for loading)

keras = tf.keras


@keras.utils.register_keras_serializable(package="bertpipe")
class BertBackbone(keras.Model):
    """Embeddings + post-LN encoder blocks + [CLS] pooler; knows nothing of MLM or NSP.

    Inputs: {"input_ids", "input_mask", "segment_ids"}, int32 (batch, seq).
    Outputs: {"sequence_output": (batch, seq, hidden), "pooled_output": (batch, hidden)}.
    """

    def __init__(self, config: BertConfig | dict, **kwargs):
        super().__init__(**kwargs)
        self.config = config if isinstance(config, BertConfig) else BertConfig(**config)
        c = self.config
        self.embeddings = BertEmbeddings(
            c.vocab_size, c.hidden_size, c.max_position_embeddings, c.type_vocab_size,
            c.dropout_rate, c.layer_norm_epsilon, c.initializer_range, name="embeddings")
        self.blocks = [
            TransformerBlock(c.hidden_size, c.num_heads, c.intermediate_size, c.dropout_rate,
                             c.attention_dropout_rate, c.layer_norm_epsilon,
                             c.initializer_range, c.hidden_act, name=f"block_{i}")
            for i in range(c.num_layers)
        ]
        self.pooler = keras.layers.Dense(c.hidden_size, activation="tanh",
                                         kernel_initializer=initializer(c.initializer_range),
                                         name="pooler")

    @property
    def token_embedding(self):
        return self.embeddings.token_embedding

    def call(self, inputs, training=None, output_positions=None):
        """With output_positions (batch, n) int32, sequence_output holds only those
        positions (batch, n, hidden), and the last block computes nothing else. Position 0
        ([CLS]) must come first: the pooled output is read from the first row.
        """
        x = self.embeddings(inputs[INPUT_IDS], inputs[SEGMENT_IDS], training=training)
        bias = attention_bias(inputs[INPUT_MASK])
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            x = block(x, bias, training=training,
                      query_positions=output_positions if i == last else None)
        pooled = self.pooler(x[:, 0])  # the [CLS] vector
        return {"sequence_output": x, "pooled_output": pooled}

    def get_config(self):
        return {"config": self.config.to_dict(), "name": self.name}

    def build_from_config(self, config):
        # Weights are created by one call on a dummy batch (the inputs are a dict).
        self(dummy_inputs(self.config))

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class Perplexity(keras.metrics.Metric):
    """exp(mean MLM cross-entropy over real masked positions)."""

    def __init__(self, name="mlm_perplexity", **kwargs):
        super().__init__(name=name, **kwargs)
        self.total = self.add_weight(name="total", shape=(), initializer="zeros")
        self.count = self.add_weight(name="count", shape=(), initializer="zeros")

    def update_state(self, ce_sum, weight_sum):
        self.total.assign_add(tf.cast(ce_sum, tf.float32))
        self.count.assign_add(tf.cast(weight_sum, tf.float32))

    def result(self):
        return tf.exp(tf.math.divide_no_nan(self.total, self.count))

    def reset_state(self):
        self.total.assign(0.0)
        self.count.assign(0.0)


class TokenCounter(keras.metrics.Metric):
    """Tokens trained on: real (the input mask's ones) and padded (batch x length).

    A metric for its replica-safe sums, but kept out of the model's `metrics`, so Keras
    neither resets it each epoch nor shows it; the trainer's step logs read it for tokens/s
    and MFU, and checkpoints carry it across restarts.
    """

    def __init__(self, name="token_counter", **kwargs):
        super().__init__(name=name, **kwargs)
        self.real = self.add_weight(name="real", shape=(), initializer="zeros")
        self.padded = self.add_weight(name="padded", shape=(), initializer="zeros")

    def update_state(self, input_mask):
        mask = tf.cast(input_mask, tf.float32)
        self.real.assign_add(tf.reduce_sum(mask))
        self.padded.assign_add(tf.cast(tf.size(mask), tf.float32))

    def result(self):
        return tf.stack([tf.convert_to_tensor(self.real), tf.convert_to_tensor(self.padded)])

    def reset_state(self):
        self.real.assign(0.0)
        self.padded.assign(0.0)


def global_sum(value):
    """Sum of a per-replica value over all replicas (identity on one replica)."""
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return value
    return ctx.all_reduce(tf.distribute.ReduceOp.SUM, value)


def without_pooler(weights, backbone):
    """WEIGHTS less the pooler's. A pretraining objective that reads no [CLS] vector leaves
    the pooler for fine-tuning to train (an optimizer given it would warn of no gradients)."""
    pooler = {id(w) for w in backbone.pooler.trainable_weights}
    return [w for w in weights if id(w) not in pooler]


def masked_lm_sums(y, mlm_logits):
    """(the MLM cross-entropy summed over the real masked positions, their weight)."""
    weights = tf.cast(y[MASKED_LM_WEIGHTS], tf.float32)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(y[MASKED_LM_IDS], tf.int32), logits=mlm_logits)
    return tf.reduce_sum(ce * weights), tf.reduce_sum(weights)


class MaskedLMTracking:
    """What both pretrainers (BERT's, and ELECTRA's, whose generator is a masked LM) track
    alike: the masked LM's loss, accuracy and perplexity, the tokens trained on, and the
    total loss where tf-keras does not track it itself."""

    def _start_tracking(self):
        self.mlm_loss_tracker = keras.metrics.Mean(name="mlm_loss")
        self.mlm_accuracy = keras.metrics.SparseCategoricalAccuracy(name="mlm_accuracy")
        self.mlm_perplexity = Perplexity()
        self.token_counter = TokenCounter()
        # Keras 3 tracks the returned loss itself; tf-keras only tracks compiled losses.
        self.legacy_loss_tracker = None if KERAS3 else keras.metrics.Mean(name="loss")

    def _track_masked_lm(self, x, mlm_sum, weight_sum, training):
        if training and x is not None:
            self.token_counter.update_state(x[INPUT_MASK])
        # Trackers weighted by their own counts: exact means over batches and replicas (an
        # empty padding batch at the end of an eval set adds nothing).
        self.mlm_loss_tracker.update_state(tf.math.divide_no_nan(mlm_sum, weight_sum),
                                           sample_weight=weight_sum)
        self.mlm_perplexity.update_state(mlm_sum, weight_sum)

    def _track_total(self, total):
        """TOTAL, this replica's share of the loss, tracked where tf-keras would not."""
        if self.legacy_loss_tracker is not None:
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            self.legacy_loss_tracker.update_state(total * replicas)
        return total

    def _loss_metric(self) -> list:
        if self.legacy_loss_tracker is not None:
            return [self.legacy_loss_tracker]
        return [m for m in super().metrics if m.name == "loss"]


@keras.utils.register_keras_serializable(package="bertpipe")
class BertPretrainer(MaskedLMTracking, keras.Model):
    """Backbone + tied MLM head (masked positions only) + NSP classifier.

    Takes the `(features, labels)` batches of `bertdata.make_dataset` directly:
    outputs {"mlm_logits": float32 (batch, preds, vocab), "nsp_logits": float32 (batch, 2)},
    loss = mlm_loss_weight * MLM cross-entropy over real masked positions + NSP
    cross-entropy. With next_sentence=False (records of --nsp_mode=none) there is no NSP
    head, output or loss. Both are normalised by the GLOBAL count (masked positions, examples), so
    any number of replicas gives the loss and gradients of one device on the same batch.
    """

    def __init__(self, backbone: BertBackbone | None = None, *, config=None,
                 mlm_loss_weight: float = DEFAULT_MLM_LOSS_WEIGHT, next_sentence: bool = True,
                 **kwargs):
        super().__init__(**kwargs)
        if backbone is None:
            backbone = BertBackbone(config, name="backbone")
        self.backbone = backbone
        c = backbone.config
        self.mlm_loss_weight = float(mlm_loss_weight)
        self.next_sentence = bool(next_sentence)
        self.mlm_head = MaskedLMHead(backbone.token_embedding, c.hidden_size,
                                     c.layer_norm_epsilon, c.initializer_range, c.hidden_act,
                                     name="mlm_head")
        self.nsp_head = keras.layers.Dense(
            2, kernel_initializer=initializer(c.initializer_range),
            name="nsp_head") if self.next_sentence else None
        self._start_tracking()
        self.nsp_loss_tracker = keras.metrics.Mean(name="nsp_loss")
        self.nsp_accuracy = keras.metrics.SparseCategoricalAccuracy(name="nsp_accuracy")

    def call(self, inputs, training=None):
        # Only [CLS] and the masked positions of the last block's output are used: the
        # backbone computes just those (the same values; a fifth of the work at seq 128).
        positions = tf.cast(inputs[MASKED_LM_POSITIONS], tf.int32)
        cls = tf.zeros_like(positions[:, :1])
        out = self.backbone(inputs, training=training,
                            output_positions=tf.concat([cls, positions], axis=1))
        mlm_logits = self.mlm_head(out["sequence_output"][:, 1:])
        if self.nsp_head is None:
            return {"mlm_logits": mlm_logits}
        nsp_logits = tf.cast(self.nsp_head(out["pooled_output"]), tf.float32)
        return {"mlm_logits": mlm_logits, "nsp_logits": nsp_logits}

    def serving_outputs(self, features):
        """What a SavedModel's `serve` and the fill_mask command read: the outputs for
        these features, in inference mode."""
        return self(features, training=False)

    @property
    def trainable_weights(self):
        weights = super().trainable_weights
        if self.nsp_head is not None:
            return weights
        return without_pooler(weights, self.backbone)

    def _loss_sums(self, y, y_pred):
        mlm_sum, weight_sum = masked_lm_sums(y, y_pred["mlm_logits"])
        if self.nsp_head is None:
            return mlm_sum, weight_sum, None, None
        nsp_labels = tf.cast(tf.reshape(y[NEXT_SENTENCE_LABELS], [-1]), tf.int32)
        nsp_ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=nsp_labels,
                                                                logits=y_pred["nsp_logits"])
        examples = tf.cast(tf.shape(nsp_ce)[0], tf.float32)
        return mlm_sum, weight_sum, tf.reduce_sum(nsp_ce), examples

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        mlm_sum, weight_sum, nsp_sum, examples = self._loss_sums(y, y_pred)
        self._track_masked_lm(x, mlm_sum, weight_sum, training)
        # This replica's share of the global means: summing over replicas gives the loss of
        # the whole global batch (Keras sums replica gradients).
        total = self.mlm_loss_weight * mlm_sum / tf.maximum(global_sum(weight_sum), 1.0)
        if nsp_sum is not None:
            total += nsp_sum / tf.maximum(global_sum(examples), 1.0)
            self.nsp_loss_tracker.update_state(tf.math.divide_no_nan(nsp_sum, examples),
                                               sample_weight=examples)
        return self._track_total(total)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        self.mlm_accuracy.update_state(y[MASKED_LM_IDS], y_pred["mlm_logits"],
                                       sample_weight=y[MASKED_LM_WEIGHTS])
        if self.nsp_head is not None:
            self.nsp_accuracy.update_state(tf.reshape(y[NEXT_SENTENCE_LABELS], [-1]),
                                           y_pred["nsp_logits"])
        return self.get_metrics_result()

    @property
    def metrics(self):
        nsp = [self.nsp_loss_tracker, self.nsp_accuracy] if self.nsp_head is not None else []
        return self._loss_metric() + [self.mlm_loss_tracker, *nsp[:1], self.mlm_accuracy,
                                      *nsp[1:], self.mlm_perplexity]

    def get_config(self):
        return {"config": self.backbone.config.to_dict(),
                "mlm_loss_weight": self.mlm_loss_weight, "next_sentence": self.next_sentence,
                "name": self.name}

    def build_from_config(self, config):
        self(dummy_inputs(self.backbone.config))

    @classmethod
    def from_config(cls, config):
        return cls(config=BertConfig(**config["config"]),
                   mlm_loss_weight=config.get("mlm_loss_weight", DEFAULT_MLM_LOSS_WEIGHT),
                   next_sentence=config.get("next_sentence", True), name=config.get("name"))


@keras.utils.register_keras_serializable(package="bertpipe")
class BertClassifier(keras.Model):
    """Backbone + dropout + a dense layer on the pooled [CLS] vector: sentence (or sentence
    pair) classification logits (batch, num_labels), float32 whatever the policy."""

    def __init__(self, backbone: BertBackbone | None = None, *, num_labels: int,
                 config=None, dropout_rate: float = 0.1, pooling: str = "cls", **kwargs):
        super().__init__(**kwargs)
        if backbone is None:
            backbone = BertBackbone(config, name="backbone")
        if pooling not in ("cls", "mean"):
            raise ValueError(f"pooling must be 'cls' or 'mean', got {pooling!r}")
        self.backbone = backbone
        self.num_labels = int(num_labels)
        self.dropout_rate = float(dropout_rate)
        self.pooling = pooling
        c = backbone.config
        self.dropout = keras.layers.Dropout(dropout_rate, name="dropout")
        self.classifier = keras.layers.Dense(num_labels,
                                             kernel_initializer=initializer(c.initializer_range),
                                             name="classifier")

    def call(self, inputs, training=None):
        out = self.backbone(inputs, training=training)
        if self.pooling == "cls":
            pooled = out["pooled_output"]
        else:  # the mean of the real positions' vectors
            mask = tf.cast(inputs[INPUT_MASK], out["sequence_output"].dtype)[..., None]
            pooled = tf.reduce_sum(out["sequence_output"] * mask, axis=1) / tf.maximum(
                tf.reduce_sum(mask, axis=1), 1.0)
        return tf.cast(self.classifier(self.dropout(pooled, training=training)), tf.float32)

    def get_config(self):
        return {"config": self.backbone.config.to_dict(), "num_labels": self.num_labels,
                "dropout_rate": self.dropout_rate, "pooling": self.pooling, "name": self.name}

    def build_from_config(self, config):
        self(dummy_inputs(self.backbone.config))

    @classmethod
    def from_config(cls, config):
        return cls(config=BertConfig(**config["config"]), num_labels=config["num_labels"],
                   dropout_rate=config.get("dropout_rate", 0.1),
                   pooling=config.get("pooling", "cls"), name=config.get("name"))


def dummy_inputs(config: BertConfig, batch: int = 2, seq: int = 16, preds: int = 4):
    """A batch of zeros with the right structure, for building a model's weights."""
    return {
        INPUT_IDS: tf.zeros([batch, seq], tf.int32),
        INPUT_MASK: tf.ones([batch, seq], tf.int32),
        SEGMENT_IDS: tf.zeros([batch, seq], tf.int32),
        MASKED_LM_POSITIONS: tf.zeros([batch, preds], tf.int32),
    }
