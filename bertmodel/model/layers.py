"""Layers of the BERT encoder, written with TensorFlow ops so they run under Keras 3 and
under tf-keras (TF_USE_LEGACY_KERAS=1, the multi-worker path)."""

from __future__ import annotations

import functools
import math
import random

import tensorflow as tf

keras = tf.keras
# tf-keras (TF_USE_LEGACY_KERAS=1) has no __version__ on its tf.keras module.
KERAS3 = getattr(keras, "__version__", "2").startswith("3")


def initializer(stddev: float):
    """A new initializer for one weight. Never share one between weights: an unseeded Keras
    initializer takes its seed when it is made, so every weight it fills would start from the
    same random stream (the three embeddings, or the four kernels of a block, would share
    their leading values)."""
    return keras.initializers.TruncatedNormal(stddev=stddev)


def gelu_tanh(x):
    """GELU with the tanh approximation, as in BERT."""
    return tf.nn.gelu(x, approximate=True)


def gelu_exact(x):
    """GELU with the error function (transformers' "gelu")."""
    return tf.nn.gelu(x, approximate=False)


# BertConfig.hidden_act -> the function.
ACTIVATIONS = {"gelu_tanh": gelu_tanh, "gelu": gelu_exact}


def u32(value):
    return tf.constant(value, tf.uint32)


def fmix32(h):
    """MurmurHash3's 32-bit finalizer: a cheap, well-mixed counter-based random source."""
    xor, shift = tf.bitwise.bitwise_xor, tf.bitwise.right_shift
    h = xor(h, shift(h, u32(16))) * u32(0x85EBCA6B)
    h = xor(h, shift(h, u32(13))) * u32(0xC2B2AE35)
    return xor(h, shift(h, u32(16)))


class HashedRandom(keras.layers.Layer):
    """A layer that draws random bits as a hash of (element index, call counter, salt).

    The counter is a weight, so a checkpoint carries it and a resumed run draws what the
    uninterrupted run would have drawn; replicas mix in their replica id so their draws
    differ. The bits cost five integer ops per element, which XLA fuses into their use.
    """

    def __init__(self, salt=None, **kwargs):
        super().__init__(**kwargs)
        # Drawn from Python's RNG, so keras.utils.set_random_seed makes it reproducible.
        self.salt = int(salt if salt is not None else random.getrandbits(32))

    def build(self, input_shape=None):
        aggregation = ("only_first_replica" if KERAS3
                       else tf.VariableAggregation.ONLY_FIRST_REPLICA)
        self.counter = self.add_weight(name="counter", shape=(), dtype="int32",
                                       initializer="zeros", trainable=False,
                                       aggregation=aggregation)
        super().build(input_shape)

    def next_step(self):
        """The counter, incremented (uint32): each call that takes it draws anew."""
        if not self.built:
            self.build()
        return tf.bitcast(self.counter.assign_add(1), tf.uint32)

    def hashed_bits(self, index, step, offset):
        """uint32 bits, a hash of each INDEX (uint32) with STEP, OFFSET (uint32, broadcast
        against INDEX: what tells streams apart) and the salt."""
        seed = step * u32(0x9E3779B9) + offset + u32(self.salt)
        return fmix32(tf.bitwise.bitwise_xor(index * u32(0x27D4EB2F), seed))

    def random_bits(self, shape):
        """uint32 bits of SHAPE, new at each call, different on each replica."""
        ctx = tf.distribute.get_replica_context()
        replica = ctx.replica_id_in_sync_group if ctx is not None else 0
        index = tf.bitcast(tf.range(tf.reduce_prod(shape)), tf.uint32)
        bits = self.hashed_bits(index, self.next_step(),
                                tf.cast(replica, tf.uint32) * u32(0x632BE5AB))
        return tf.reshape(bits, shape)

    def get_config(self):
        return {**super().get_config(), "salt": self.salt}


@keras.utils.register_keras_serializable(package="bertpipe")
class FastDropout(HashedRandom):
    """Inverted dropout whose mask comes from HashedRandom's bits.

    Same semantics as keras.layers.Dropout, but the random bits are cheap: on CPU, Keras'
    dropout under XLA made an encoder block about 4.5x slower (1.23 s against 0.27 s for a
    seed-size block), and without XLA this is still the faster of the two. Each call
    draws a new mask.
    """

    def __init__(self, rate, salt=None, **kwargs):
        super().__init__(salt=salt, **kwargs)
        self.rate = float(rate)

    def call(self, x, training=None):
        if not training or self.rate <= 0.0:
            return x
        bits = self.random_bits(tf.shape(x))
        keep = bits >= u32(min(int(self.rate * 2.0**32), 2**32 - 1))
        return tf.where(keep, x * tf.cast(1.0 / (1.0 - self.rate), x.dtype), tf.zeros_like(x))

    def get_config(self):
        return {**super().get_config(), "rate": self.rate}


@keras.utils.register_keras_serializable(package="bertpipe")
class BertEmbeddings(keras.layers.Layer):
    """token + position + segment embeddings, then LayerNorm and dropout."""

    def __init__(self, vocab_size, hidden_size, max_position_embeddings, type_vocab_size,
                 dropout_rate, layer_norm_epsilon, initializer_range, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.dropout_rate = dropout_rate
        self.layer_norm_epsilon = layer_norm_epsilon
        self.initializer_range = initializer_range
        init = functools.partial(initializer, initializer_range)  # init() per weight
        self.token_embedding = keras.layers.Embedding(
            vocab_size, hidden_size, embeddings_initializer=init(), name="token_embedding")
        self.position_embedding = keras.layers.Embedding(
            max_position_embeddings, hidden_size, embeddings_initializer=init(),
            name="position_embedding")
        self.segment_embedding = keras.layers.Embedding(
            type_vocab_size, hidden_size, embeddings_initializer=init(), name="segment_embedding")
        self.layer_norm = keras.layers.LayerNormalization(epsilon=layer_norm_epsilon,
                                                          name="layer_norm")
        self.dropout = FastDropout(dropout_rate, name="dropout")

    def build(self, input_shape):
        self.token_embedding.build(None)
        self.position_embedding.build(None)
        self.segment_embedding.build(None)
        self.layer_norm.build([None, None, self.hidden_size])
        self.dropout.build()
        super().build(input_shape)

    def call(self, input_ids, segment_ids, training=None):
        seq_len = tf.shape(input_ids)[1]
        x = self.token_embedding(input_ids)  # (batch, seq, hidden)
        positions = self.position_embedding(tf.range(seq_len))  # (seq, hidden)
        x = x + positions[tf.newaxis] + self.segment_embedding(segment_ids)
        return self.dropout(self.layer_norm(x), training=training)

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size,
                "hidden_size": self.hidden_size,
                "max_position_embeddings": self.max_position_embeddings,
                "type_vocab_size": self.type_vocab_size, "dropout_rate": self.dropout_rate,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "initializer_range": self.initializer_range}


@keras.utils.register_keras_serializable(package="bertpipe")
class TransformerBlock(keras.layers.Layer):
    """Post-LN block: h = LN(x + drop(attn(x))); out = LN(h + drop(ffn(h))).

    Attention runs on the whole batch at once: one fused projection for Q, K and V, two
    batched einsums, padding keys masked with a large negative bias.
    """

    def __init__(self, hidden_size, num_heads, intermediate_size, dropout_rate,
                 attention_dropout_rate, layer_norm_epsilon, initializer_range,
                 hidden_act="gelu_tanh", **kwargs):
        super().__init__(**kwargs)
        self.hidden_act = hidden_act
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.intermediate_size = intermediate_size
        self.dropout_rate = dropout_rate
        self.attention_dropout_rate = attention_dropout_rate
        self.layer_norm_epsilon = layer_norm_epsilon
        self.initializer_range = initializer_range
        init = functools.partial(initializer, initializer_range)  # init() per weight
        self.qkv = keras.layers.Dense(3 * hidden_size, kernel_initializer=init(), name="qkv")
        self.attention_output = keras.layers.Dense(hidden_size, kernel_initializer=init(),
                                                   name="attention_output")
        self.attention_dropout = FastDropout(attention_dropout_rate, name="attention_dropout")
        self.attention_output_dropout = FastDropout(dropout_rate,
                                                    name="attention_output_dropout")
        self.attention_layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, name="attention_layer_norm")
        self.intermediate = keras.layers.Dense(intermediate_size,
                                               activation=ACTIVATIONS[hidden_act],
                                               kernel_initializer=init(), name="intermediate")
        self.output_dense = keras.layers.Dense(hidden_size, kernel_initializer=init(),
                                               name="output")
        self.output_dropout = FastDropout(dropout_rate, name="output_dropout")
        self.output_layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, name="output_layer_norm")

    def build(self, input_shape):
        h = self.hidden_size
        self.qkv.build([None, None, h])
        self.attention_output.build([None, None, h])
        self.attention_layer_norm.build([None, None, h])
        self.intermediate.build([None, None, h])
        self.output_dense.build([None, None, self.intermediate_size])
        self.output_layer_norm.build([None, None, h])
        for dropout in (self.attention_dropout, self.attention_output_dropout,
                        self.output_dropout):
            dropout.build()
        super().build(input_shape)

    def call(self, x, attention_bias, training=None, query_positions=None):
        """x: (batch, seq, hidden) -> (batch, seq, hidden).

        With query_positions (batch, q) int32, only those positions are computed (they
        still attend to every key): (batch, q, hidden), equal to the full output gathered
        at those positions. A pretraining model needs the last block's output only at the
        masked positions and [CLS], and the rest of that block is most of its cost.
        """
        shape = tf.shape(x)
        batch, seq = shape[0], shape[1]
        qkv = self.qkv(x)  # (batch, seq, 3 * hidden)
        qkv = tf.reshape(qkv, [batch, seq, 3, self.num_heads, self.head_dim])
        q, k, v = tf.unstack(qkv, axis=2)  # each (batch, seq, heads, head_dim)
        if query_positions is not None:
            query_positions = tf.cast(query_positions, tf.int32)
            q = tf.gather(q, query_positions, batch_dims=1)  # (batch, q, heads, head_dim)
            x = tf.gather(x, query_positions, batch_dims=1)  # the residual, same rows
            seq = tf.shape(query_positions)[1]
        q = q * tf.cast(1.0 / math.sqrt(self.head_dim), q.dtype)
        # einsum lets the batched matmuls read the heads in place (no transpose copies).
        scores = tf.einsum("bqnd,bknd->bnqk", q, k)  # (batch, heads, seq, seq)
        # Softmax in float32 so that mixed precision cannot overflow on the mask bias.
        probs = tf.nn.softmax(tf.cast(scores, tf.float32) + tf.cast(attention_bias, tf.float32),
                              axis=-1)
        probs = self.attention_dropout(tf.cast(probs, x.dtype), training=training)
        context = tf.einsum("bnqk,bknd->bqnd", probs, v)  # (batch, seq, heads, head_dim)
        context = tf.reshape(context, [batch, seq, self.hidden_size])  # (batch, seq, hidden)
        attn = self.attention_output_dropout(self.attention_output(context), training=training)
        h = self.attention_layer_norm(x + attn)
        ffn = self.output_dropout(self.output_dense(self.intermediate(h)), training=training)
        return self.output_layer_norm(h + ffn)

    def get_config(self):
        return {**super().get_config(), "hidden_size": self.hidden_size,
                "num_heads": self.num_heads, "intermediate_size": self.intermediate_size,
                "dropout_rate": self.dropout_rate,
                "attention_dropout_rate": self.attention_dropout_rate,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "initializer_range": self.initializer_range, "hidden_act": self.hidden_act}


def attention_bias(input_mask):
    """(batch, seq) 1/0 mask -> (batch, 1, 1, seq) float32 bias: 0 for keys, -1e9 for [PAD]."""
    mask = tf.cast(input_mask, tf.float32)[:, tf.newaxis, tf.newaxis, :]
    return (1.0 - mask) * -1e9


@keras.utils.register_keras_serializable(package="bertpipe")
class MaskedLMHead(keras.layers.Layer):
    """Vocabulary logits at the masked positions only, through the tied token embedding.

    Gathering the P masked positions first means the largest matmul of a small BERT,
    hidden x vocab, runs on P rows per example instead of every position.
    """

    def __init__(self, token_embedding, hidden_size, layer_norm_epsilon, initializer_range,
                 hidden_act="gelu_tanh", input_size=None, **kwargs):
        super().__init__(**kwargs)
        self.hidden_act = hidden_act
        self.token_embedding = token_embedding
        # hidden_size: the embeddings' width, which the transform maps to; input_size: the
        # width of the encoder output it reads (narrower in an ELECTRA generator).
        self.hidden_size = hidden_size
        self.input_size = input_size or hidden_size
        self.layer_norm_epsilon = layer_norm_epsilon
        self.initializer_range = initializer_range
        self.transform = keras.layers.Dense(hidden_size, activation=ACTIVATIONS[hidden_act],
                                            kernel_initializer=initializer(initializer_range),
                                            name="transform")
        self.layer_norm = keras.layers.LayerNormalization(epsilon=layer_norm_epsilon,
                                                          name="layer_norm")

    def build(self, input_shape):
        self.transform.build([None, None, self.input_size])
        self.layer_norm.build([None, None, self.hidden_size])
        vocab = self.token_embedding.input_dim
        self.output_bias = self.add_weight(name="output_bias", shape=(vocab,),
                                           initializer="zeros")
        super().build(input_shape)

    def call(self, sequence_output, positions=None):
        """Logits (batch, preds, vocab) at `positions` of sequence_output.

        positions=None: sequence_output already holds just the masked positions.
        """
        if positions is None:
            h = sequence_output
        else:
            positions = tf.cast(positions, tf.int32)
            h = tf.gather(sequence_output, positions, batch_dims=1)  # (batch, preds, hidden)
        h = self.layer_norm(self.transform(h))
        shape = tf.shape(h)
        # One (batch*preds, hidden) x (hidden, vocab) GEMM: a rank-3 x rank-2 matmul would
        # broadcast into `batch` small GEMMs, several times slower on CPUs.
        flat = tf.reshape(h, [-1, self.hidden_size])  # (batch * preds, hidden)
        table = tf.cast(self.token_embedding.embeddings, h.dtype)  # (vocab, hidden)
        logits = tf.matmul(flat, table, transpose_b=True)  # (batch * preds, vocab)
        # Logits and everything after them in float32, whatever the compute dtype.
        logits = tf.cast(logits, tf.float32) + tf.cast(self.output_bias, tf.float32)
        return tf.reshape(logits, [shape[0], shape[1], -1])  # (batch, preds, vocab)

    def get_config(self):
        # The embedding is shared, not configured; the owning model passes it in again.
        cfg = super().get_config()
        cfg.update(hidden_size=self.hidden_size, layer_norm_epsilon=self.layer_norm_epsilon,
                   initializer_range=self.initializer_range, hidden_act=self.hidden_act,
                   input_size=self.input_size)
        return cfg
