

import json

import numpy as np
import pytest
import tensorflow as tf

from bertmodel.model.bert import BertBackbone, BertClassifier, BertPretrainer, dummy_inputs
from bertmodel.model.config import (
    PRESETS,
    BertConfig,
    default_finetune_learning_rate,
    default_learning_rate,
    load_config,
)
from bertmodel.training.schedule import WarmupCosine, default_warmup_steps
from tests.model_helpers import TINY, batch


def test_model_outputs_have_the_documented_shapes():
    model = BertPretrainer(config=TINY)
    x, _ = batch(TINY)
    out = model(x)
    assert out["mlm_logits"].shape == (3, 4, TINY.vocab_size)
    assert out["nsp_logits"].shape == (3, 2)
    assert out["mlm_logits"].dtype == tf.float32
    backbone_out = model.backbone(x)
    assert backbone_out["sequence_output"].shape == (3, 12, TINY.hidden_size)
    assert backbone_out["pooled_output"].shape == (3, TINY.hidden_size)


def test_a_pretrainers_config_rebuilds_it():
    model = BertPretrainer(config=TINY)
    clone = BertPretrainer.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    assert BertBackbone.from_config(model.backbone.get_config()).config == TINY


def test_every_weight_starts_from_its_own_random_values():
    # A shared initializer object would fill several weights from one random stream, so their
    # leading values would coincide (embeddings with each other, a block's four kernels).
    model = BertPretrainer(config=TINY)
    model(batch(TINY)[0])
    random_weights = [w for w in model.weights
                      if "embeddings" in w.path or w.path.endswith("kernel")]
    assert len(random_weights) >= 3 + 4 * TINY.num_layers
    leading = [tuple(np.asarray(w).reshape(-1)[:4].round(6)) for w in random_weights]
    assert len(set(leading)) == len(leading)
    std = np.std(np.asarray(model.backbone.weights[0]))
    assert abs(std - TINY.initializer_range * 0.88) < 0.2 * TINY.initializer_range


def test_seed_preset_has_the_reference_size():
    model = BertPretrainer(config=PRESETS["seed"])
    model(dummy_inputs(PRESETS["seed"]))
    # 10.7 M in the reference; the MLM transform + output bias add 0.1 M.
    assert 10.6e6 < model.count_params() < 10.9e6


def test_mlm_logits_only_at_masked_positions_match_the_full_computation():
    model = BertPretrainer(config=TINY)
    x, _ = batch(TINY)
    got = model(x, training=False)["mlm_logits"].numpy()
    seq = model.backbone(x, training=False)["sequence_output"]
    head = model.mlm_head
    full = head.layer_norm(head.transform(seq))  # every position
    full = tf.matmul(full, head.token_embedding.embeddings, transpose_b=True) + head.output_bias
    want = tf.gather(full, x["masked_lm_positions"], batch_dims=1).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # The pretrainer's last block runs at [CLS] and the masked positions only: NSP too
    # must equal the full backbone's.
    pooled = model.backbone(x, training=False)["pooled_output"]
    np.testing.assert_allclose(model(x, training=False)["nsp_logits"].numpy(),
                               model.nsp_head(pooled).numpy(), rtol=1e-5, atol=1e-5)


def test_padding_does_not_change_real_positions():
    model = BertPretrainer(config=TINY)
    x, _ = batch(TINY, b=1, s=8)
    padded = {k: np.pad(v, [(0, 0), (0, 4)]) if k != "masked_lm_positions" else v
              for k, v in x.items()}
    a = model.backbone(x, training=False)["sequence_output"].numpy()
    b = model.backbone(padded, training=False)["sequence_output"].numpy()
    np.testing.assert_allclose(a, b[:, :8], rtol=1e-4, atol=1e-5)


def test_schedule_values():
    s = WarmupCosine(2.5e-4, warmup_steps=100, total_steps=1000)
    assert float(s(0)) == 0.0
    assert float(s(50)) == pytest.approx(1.25e-4)
    assert float(s(100)) == pytest.approx(2.5e-4)
    assert float(s(550)) == pytest.approx(1.25e-4, rel=1e-4)
    assert float(s(1000)) == pytest.approx(0.0, abs=1e-12)
    assert WarmupCosine(**s.get_config()).get_config() == s.get_config()
    assert default_warmup_steps(5000) == 500 and default_warmup_steps(500) == 100


def test_config_json_is_strict(tmp_path):
    good = tmp_path / "c.json"
    good.write_text(json.dumps({"hidden_size": 64, "num_heads": 2}))
    assert load_config(str(good)).hidden_size == 64
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"hidden": 64}))
    with pytest.raises(ValueError, match="unknown key.*hidden"):
        load_config(str(bad))
    with pytest.raises(ValueError, match="neither a preset"):
        load_config("huge")
    with pytest.raises(ValueError, match="divisible"):
        BertConfig(hidden_size=30, num_heads=4)


def test_loss_is_the_weighted_global_mean():
    model = BertPretrainer(config=TINY, mlm_loss_weight=20.0)
    x, y = batch(TINY)
    pred = model(x, training=False)
    loss = float(model.compute_loss(x, y, pred))
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(y["masked_lm_ids"], pred["mlm_logits"])
    mlm = float(tf.reduce_sum(ce * y["masked_lm_weights"]) / y["masked_lm_weights"].sum())
    nsp = float(tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        y["next_sentence_labels"], pred["nsp_logits"])))
    assert loss == pytest.approx(20 * mlm + nsp, rel=1e-5)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_a_saved_classifier_loads_with_its_outputs(tmp_path, pooling):
    model = BertClassifier(config=TINY, num_labels=3, pooling=pooling)
    x, _ = batch(TINY, b=1, s=8)
    want = model(x, training=False).numpy()
    assert want.shape == (1, 3) and want.dtype == np.float32
    model.save(tmp_path / "c.keras")
    loaded = tf.keras.models.load_model(tmp_path / "c.keras")
    assert loaded.get_config() == model.get_config()
    np.testing.assert_allclose(loaded(x, training=False).numpy(), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_a_classifier_reads_only_real_positions(pooling):
    model = BertClassifier(config=TINY, num_labels=3, pooling=pooling)
    x, _ = batch(TINY, b=1, s=8)
    want = model(x, training=False).numpy()
    # Padding added after the real positions changes nothing.
    padded = {k: np.pad(v, [(0, 0), (0, 4)]) for k, v in x.items()}
    np.testing.assert_allclose(model(padded, training=False).numpy(), want, rtol=1e-4,
                               atol=1e-5)


def test_every_config_gets_the_learning_rate_of_its_width():
    assert [default_learning_rate(PRESETS[n]) for n in ("tiny", "mini", "seed", "base")] \
        == [2e-3, 1e-3, 1e-3, 1e-4]
    assert default_learning_rate(BertConfig(hidden_size=512, num_heads=8)) == 1e-3
    assert default_learning_rate(BertConfig(hidden_size=16, num_heads=2)) == 2e-3


def test_fine_tuning_gets_the_rate_measured_for_its_width():
    assert [default_finetune_learning_rate(PRESETS[n])
            for n in ("tiny", "mini", "seed", "base", "large")] == [1e-3, 1e-3, 5e-4, 2e-5, 2e-5]
    # Between presets, the narrower one's rate.
    assert default_finetune_learning_rate(BertConfig(hidden_size=192, num_heads=4)) == 1e-3
    assert default_finetune_learning_rate(BertConfig(hidden_size=512, num_heads=8)) == 5e-4
