import dataclasses
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from bertmodel import train
from bertmodel.config import PRESETS, BertConfig, load_config
from bertmodel.model import BertBackbone, BertPretrainer, dummy_inputs
from bertmodel.schedule import WarmupCosine, default_warmup_steps

TINY = dataclasses.replace(PRESETS["tiny"], vocab_size=60)


def batch(cfg, b=3, s=12, p=4, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(7, cfg.vocab_size, (b, s)).astype("int32")
    mask = np.ones((b, s), "int32")
    mask[0, 8:] = 0
    ids[0, 8:] = 0
    x = {"input_ids": ids, "input_mask": mask,
         "segment_ids": (np.arange(s) >= s // 2).astype("int32")[None].repeat(b, 0),
         "masked_lm_positions": np.sort(rng.choice(np.arange(1, 8), (b, p)), 1).astype("int32")}
    y = {"masked_lm_ids": rng.integers(7, cfg.vocab_size, (b, p)).astype("int32"),
         "masked_lm_weights": np.array([[1, 1, 1, 0]] * b, "float32"),
         "next_sentence_labels": np.array([0, 1, 0][:b] + [1] * max(0, b - 3), "int32")}
    return x, y


def test_shapes_and_config_round_trip():
    model = BertPretrainer(config=TINY)
    x, _ = batch(TINY)
    out = model(x)
    assert out["mlm_logits"].shape == (3, 4, TINY.vocab_size)
    assert out["nsp_logits"].shape == (3, 2)
    assert out["mlm_logits"].dtype == tf.float32
    backbone_out = model.backbone(x)
    assert backbone_out["sequence_output"].shape == (3, 12, TINY.hidden_size)
    assert backbone_out["pooled_output"].shape == (3, TINY.hidden_size)
    clone = BertPretrainer.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    assert BertBackbone.from_config(model.backbone.get_config()).config == TINY


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


def test_save_load_and_exports_reproduce_outputs(tmp_path):
    model = BertPretrainer(config=TINY)
    x, y = batch(TINY)
    model.compile(optimizer="adam")
    model.fit(x, y, epochs=1, verbose=0)
    want = model(x, training=False)
    model.save(tmp_path / "m.keras")
    loaded = tf.keras.models.load_model(tmp_path / "m.keras")
    got = loaded(x, training=False)
    for k in want:
        np.testing.assert_allclose(got[k].numpy(), want[k].numpy(), rtol=1e-5, atol=1e-6)
    model.backbone.save(tmp_path / "encoder.keras")
    encoder = tf.keras.models.load_model(tmp_path / "encoder.keras")
    np.testing.assert_allclose(encoder(x)["pooled_output"].numpy(),
                               model.backbone(x)["pooled_output"].numpy(), rtol=1e-5, atol=1e-6)
    from bertmodel.export import export_saved_model

    export_saved_model(model, str(tmp_path / "export"))
    served = tf.saved_model.load(str(tmp_path / "export"))
    out = served.serve({k: tf.constant(v) for k, v in x.items()})
    np.testing.assert_allclose(out["mlm_logits"].numpy(), want["mlm_logits"].numpy(),
                               rtol=1e-4, atol=1e-5)


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


def test_mirrored_strategy_gives_the_one_device_loss():
    if len(tf.config.list_logical_devices("CPU")) < 2:
        pytest.skip("needs two logical CPU devices (set up in conftest)")
    cfg = dataclasses.replace(TINY, dropout_rate=0.0, attention_dropout_rate=0.0)
    x, y = batch(cfg, b=8, seed=4)
    y["masked_lm_weights"][1::2, 1:] = 0  # replicas with different numbers of masks
    ds = tf.data.Dataset.from_tensors((x, y))

    def losses(strategy):
        with strategy.scope():
            tf.keras.utils.set_random_seed(3)
            model = BertPretrainer(config=cfg)
            model(dummy_inputs(cfg))
            model.compile(optimizer=tf.keras.optimizers.SGD(0.01), jit_compile=False)
        data = strategy.experimental_distribute_dataset(ds) if strategy.num_replicas_in_sync \
            > 1 else ds
        hist = model.fit(data.repeat(1) if hasattr(data, "repeat") else data, epochs=1,
                         verbose=0)
        after = model.evaluate(ds, verbose=0, return_dict=True)
        return hist.history["loss"][0], after["loss"]

    one = losses(tf.distribute.OneDeviceStrategy("/cpu:0"))
    two = losses(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
    assert two[0] == pytest.approx(one[0], rel=1e-5)
    assert two[1] == pytest.approx(one[1], rel=1e-4)  # same update from the same gradients
    assert one[1] < one[0]


def run_train(tmp_path, dataset_dir, *extra):
    return train.run([f"--tfrecords={dataset_dir}", f"--model_dir={tmp_path / 'model'}",
                      "--config=tiny", "--batch_size=8", "--verbose=0",
                      "--mixed_precision=fp32", *extra])


def test_training_on_the_sample_lowers_the_loss_and_writes_everything(tmp_path, sample_dataset):
    out, _ = sample_dataset
    summary = run_train(tmp_path, out, f"--eval_tfrecords={out}/eval-*", "--epochs=5",
                        "--steps_per_epoch=20", "--learning_rate=5e-3", "--warmup_steps=5")
    hist = summary["history"]
    assert hist["mlm_loss"][-1] < hist["mlm_loss"][0] - 0.5
    model_dir = tmp_path / "model"
    for name in ("config.json", "data_metadata.json", "tokenizer.model", "history.csv",
                 "history.json", "plots.png", "model.keras", "encoder.keras",
                 "checkpoints/best.weights.h5", "export/saved_model.pb"):
        assert (model_dir / name).exists(), name
    assert os.listdir(model_dir / "logs")
    settings = json.loads((model_dir / "config.json").read_text())
    assert settings["model"]["vocab_size"] == 1007
    assert set(summary["eval"]) >= {"mlm_accuracy", "nsp_accuracy", "mlm_perplexity"}


@pytest.mark.parametrize("extra,message", [
    (["--config=galactic"], "neither a preset"),
    (["--batch_size=3", "--strategy=mirrored"], "not divisible by the 2 replicas"),
    (["--train_steps=0"], "at least one step"),
])
def test_bad_flags_fail_before_training(tmp_path, sample_dataset, extra, message):
    if "--strategy=mirrored" in extra and len(tf.config.list_logical_devices("CPU")) < 2:
        pytest.skip("needs two logical CPU devices")
    with pytest.raises(train.TrainError, match=message):
        run_train(tmp_path, sample_dataset[0], "--steps_per_epoch=1", *extra)
    assert not (tmp_path / "model" / "model.keras").exists()


def test_data_problems_fail_before_training(tmp_path, sample_dataset):
    out, _ = sample_dataset
    with pytest.raises(train.TrainError, match="matches no file"):
        run_train(tmp_path, str(tmp_path / "none-*"))
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({**TINY.to_dict(), "vocab_size": 999}))
    with pytest.raises(train.TrainError, match="vocab_size=999.*1007-piece"):
        train.run([f"--tfrecords={out}", f"--model_dir={tmp_path / 'm'}", f"--config={cfg}"])
    bare = tmp_path / "bare"
    bare.mkdir()
    for f in os.listdir(out):
        if f.startswith("train-"):
            shutil.copy(os.path.join(out, f), bare / f)
    with pytest.raises(train.TrainError, match="no metadata.json"):
        run_train(tmp_path, str(bare))


def test_non_finite_loss_stops_and_keeps_the_good_checkpoint(tmp_path, sample_dataset):
    out, _ = sample_dataset
    model_dir = tmp_path / "model"
    base = [f"--tfrecords={out}", f"--model_dir={model_dir}", "--config=tiny",
            "--batch_size=8", "--verbose=0", "--mixed_precision=fp32", "--steps_per_epoch=3"]
    train.run([*base, "--epochs=1"])
    best = model_dir / "checkpoints" / "best.weights.h5"
    good = best.read_bytes()
    # A learning rate this large sends the weights to infinity within a few steps.
    with pytest.raises(train.TrainError, match="non-finite loss"):
        train.run([*base, "--epochs=3", "--learning_rate=1e30", "--warmup_steps=0"])
    assert best.read_bytes() == good
    model = BertPretrainer(config=dataclasses.replace(TINY, vocab_size=1007))
    model(dummy_inputs(model.backbone.config))
    model.load_weights(best)
    assert all(np.all(np.isfinite(w.numpy())) for w in model.weights)
