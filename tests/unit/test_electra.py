"""ELECTRA's pieces in memory: the generator's sizes, the sampler, the replaced input and its
labels, the losses and where their gradients go."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from bertmodel.model.config import PRESETS
from bertmodel.model.electra import (
    ElectraPretrainer,
    GumbelSampler,
    example_seeds,
    generator_config,
    place,
)
from tests.model_helpers import TINY, batch

QUIET = dataclasses.replace(TINY, dropout_rate=0.0, attention_dropout_rate=0.0)


@pytest.mark.parametrize("preset, width, heads, feed_forward", [
    ("seed", 64, 1, 256),  # ELECTRA-Small's generator: a quarter of 256 wide, 4 heads
    ("base", 192, 3, 768),
    ("tiny", 8, 1, 16),
])
def test_the_generator_is_a_quarter_of_the_discriminator(preset, width, heads, feed_forward):
    cfg = generator_config(PRESETS[preset], 0.25)
    assert (cfg.hidden_size, cfg.num_heads, cfg.intermediate_size) == (width, heads,
                                                                       feed_forward)
    assert cfg.num_layers == PRESETS[preset].num_layers


def test_a_generator_size_outside_zero_to_one_is_refused():
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        generator_config(PRESETS["tiny"], 1.5)


def test_place_writes_only_at_real_positions():
    ids = tf.constant([[5, 6, 7, 8], [5, 9, 9, 9]])
    positions = tf.constant([[2, 0], [1, 3]])  # slot 0 of row 0 pads the list
    got = place(tf.constant([[40, 41], [42, 43]]), positions, ids).numpy()
    np.testing.assert_array_equal(got, [[5, 6, 40, 8], [5, 42, 9, 43]])


def test_the_sampler_draws_in_proportion_to_the_softmax():
    sampler = GumbelSampler(salt=7)
    logits = tf.math.log(tf.tile(tf.constant([[[0.1, 0.2, 0.7]]]), [4000, 1, 1]))
    seeds = example_seeds(tf.range(4000)[:, None])  # 4,000 examples, one draw each
    draws = sampler(logits, seeds, training=True).numpy().ravel()
    shares = np.bincount(draws, minlength=3) / len(draws)
    np.testing.assert_allclose(shares, [0.1, 0.2, 0.7], atol=0.03)


def test_evaluation_draws_follow_the_example_not_the_counter():
    sampler = GumbelSampler(salt=7)
    logits = tf.zeros([2, 3, 500])
    seeds = example_seeds(tf.constant([[5, 6, 7], [5, 6, 8]]))
    first = sampler(logits, seeds, training=False).numpy()
    sampler(logits, seeds, training=True)  # a training draw in between
    np.testing.assert_array_equal(sampler(logits, seeds, training=False).numpy(), first)
    assert not np.array_equal(first[0], first[1])  # two examples, two draws


def test_training_draws_change_from_step_to_step():
    sampler = GumbelSampler(salt=7)
    logits, seeds = tf.zeros([1, 4, 500]), tf.constant([3], tf.uint32)
    assert not np.array_equal(sampler(logits, seeds, training=True).numpy(),
                              sampler(logits, seeds, training=True).numpy())


def _model_and_batch(**kwargs):
    model = ElectraPretrainer(config=QUIET, **kwargs)
    x, y = batch(QUIET, b=4, seed=2)
    x["masked_lm_positions"] = np.array([[1, 3, 5, 0]] * 4, "int32")  # slot 3 pads
    y["masked_lm_weights"] = np.array([[1, 1, 1, 0]] * 4, "float32")
    return model, x, y


def test_a_sampled_piece_equal_to_the_original_is_not_a_replacement():
    model, x, y = _model_and_batch()
    sampled = y["masked_lm_ids"].copy()
    sampled[:, 1] += 1  # the second masked piece of every example differs, the others not
    labels = model.replaced_labels(x, y, {"sampled_ids": tf.constant(sampled)}).numpy()
    expected = np.zeros_like(labels)
    expected[:, 3] = 1  # the second slot's position
    np.testing.assert_array_equal(labels, expected)


def test_the_loss_is_mlm_plus_lambda_times_detection_over_real_tokens():
    model, x, y = _model_and_batch(rtd_loss_weight=50.0)
    out = model(x, training=False)
    total = float(model.compute_loss(x, y, out, training=False))
    labels = model.replaced_labels(x, y, out).numpy()
    logits = out["rtd_logits"].numpy()
    bce = np.maximum(logits, 0) - logits * labels + np.log1p(np.exp(-np.abs(logits)))
    real = x["input_mask"].astype(bool)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(y["masked_lm_ids"],
                                                        out["mlm_logits"]).numpy()
    mlm = (ce * y["masked_lm_weights"]).sum() / y["masked_lm_weights"].sum()
    assert total == pytest.approx(mlm + 50.0 * bce[real].mean(), rel=1e-5)


def test_detection_gradients_never_reach_the_generator():
    model, x, y = _model_and_batch(mlm_loss_weight=1e-30)  # the detection loss alone
    with tf.GradientTape() as tape:
        loss = model.compute_loss(x, y, model(x, training=True))
    generator = model.generator.blocks[0].trainable_weights
    grads = tape.gradient(loss, generator + model.backbone.blocks[0].trainable_weights)
    assert all(g is None or float(tf.reduce_max(tf.abs(g))) < 1e-20
               for g in grads[:len(generator)])
    assert any(g is not None and float(tf.reduce_max(tf.abs(g))) > 0
               for g in grads[len(generator):])


def test_the_generator_shares_the_discriminators_embeddings():
    model, x, _ = _model_and_batch()
    model(x)
    shared = {id(w) for w in model.backbone.embeddings.weights}
    assert shared <= {id(w) for w in model.generator.weights}
    # Counted once among the weights the optimizer updates.
    ids = [id(w) for w in model.trainable_weights]
    assert len(ids) == len(set(ids))


def test_the_pooler_is_left_out_of_training():
    model, x, _ = _model_and_batch()
    model(x)
    pooler = {id(w) for w in model.backbone.pooler.trainable_weights}
    assert pooler and not pooler & {id(w) for w in model.trainable_weights}


def test_a_saved_electra_model_reproduces_its_serving_outputs(tmp_path):
    model, x, _ = _model_and_batch()
    model(x)
    want = model.serving_outputs(x)
    model.save(tmp_path / "m.keras")
    got = tf.keras.models.load_model(tmp_path / "m.keras").serving_outputs(x)
    for key in ("mlm_logits", "rtd_logits"):
        np.testing.assert_allclose(got[key].numpy(), want[key].numpy(), rtol=1e-5, atol=1e-6)
