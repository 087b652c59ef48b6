

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from bertmodel.model.bert import BertPretrainer
from bertmodel.training.replica_check import one_step_losses
from tests.model_helpers import TINY, batch, two_cpu_replicas


@pytest.fixture(scope="module")
def trained_tiny():
    """A tiny pretrainer after one Adam step, its batch and its outputs in inference mode."""
    model = BertPretrainer(config=TINY)
    x, y = batch(TINY)
    model(x)
    model.compile(optimizer="adam", jit_compile=False)  # XLA would triple the set-up time
    model.optimizer.build(model.trainable_variables)  # or fit's first trace runs twice
    model.fit(x, y, epochs=1, verbose=0)
    return model, x, model(x, training=False)


@pytest.mark.slow  # trains (one step)
@pytest.mark.xdist_group("trained_tiny")  # one worker makes the fixture once
def test_a_saved_model_file_reproduces_the_outputs(trained_tiny, tmp_path):
    model, x, want = trained_tiny
    model.save(tmp_path / "m.keras")
    got = tf.keras.models.load_model(tmp_path / "m.keras")(x, training=False)
    for k in want:
        np.testing.assert_allclose(got[k].numpy(), want[k].numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # trains (one step)
@pytest.mark.xdist_group("trained_tiny")  # one worker makes the fixture once
def test_a_saved_encoder_reproduces_the_backbone(trained_tiny, tmp_path):
    model, x, _ = trained_tiny
    model.backbone.save(tmp_path / "encoder.keras")
    encoder = tf.keras.models.load_model(tmp_path / "encoder.keras")
    want = model.backbone(x)
    for k in ("pooled_output", "sequence_output"):
        np.testing.assert_allclose(encoder(x)[k].numpy(), want[k].numpy(), rtol=1e-5,
                                   atol=1e-6)


@pytest.mark.slow  # trains (one step)
@pytest.mark.xdist_group("trained_tiny")  # one worker makes the fixture once
def test_the_serve_signature_reproduces_the_logits(trained_tiny, tmp_path):
    from bertmodel.export.saved_model import export_saved_model

    model, x, want = trained_tiny
    export_saved_model(model, str(tmp_path / "export"))
    served = tf.saved_model.load(str(tmp_path / "export"))
    out = served.serve({k: tf.constant(v) for k, v in x.items()})
    for k in ("mlm_logits", "nsp_logits"):
        np.testing.assert_allclose(out[k].numpy(), want[k].numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_mirrored_strategy_gives_the_one_device_loss():
    if len(tf.config.list_logical_devices("CPU")) < 2:
        pytest.skip("needs two logical CPU devices (set up in conftest)")
    cfg = dataclasses.replace(TINY, dropout_rate=0.0, attention_dropout_rate=0.0)
    x, y = batch(cfg, b=8, seed=4)
    y["masked_lm_weights"][1::2, 1:] = 0  # replicas with different numbers of masks
    one = one_step_losses(tf.distribute.OneDeviceStrategy("/cpu:0"), cfg, x, y)
    two = one_step_losses(two_cpu_replicas(), cfg, x, y)
    assert two[0] == pytest.approx(one[0], rel=1e-5)
    assert two[1] == pytest.approx(one[1], rel=1e-4)  # same update from the same gradients
    assert one[1] < one[0]
