"""Real runs of `bertmodel.train --objective=electra`: what a run writes and logs, exact
resume, the trainer's options (dynamic masking, bf16, XLA, gradient accumulation), the
replicas, and --init_from a BERT folder."""

import csv
import dataclasses
import json
import sys

import numpy as np
import pytest
import tensorflow as tf

from bertmodel import export_hf, train
from bertmodel.export.hf_import import read_hf_folder
from bertmodel.training.callbacks import read_step_scalars
from bertmodel.training.replica_check import one_step_losses
from tests.model_helpers import TINY as TINY_CONFIG
from tests.model_helpers import batch, two_cpu_replicas
from tests.training_helpers import TINY, run_until, saved_step

pytestmark = pytest.mark.slow

ELECTRA = [*TINY, "--objective=electra"]
DETECTION = ("rtd_loss", "rtd_accuracy", "rtd_precision", "rtd_recall", "rtd_auc")


@pytest.fixture(scope="module")
def electra_run(tmp_path_factory, sample_dataset):
    data, _ = sample_dataset
    model_dir = tmp_path_factory.mktemp("electra") / "m"
    summary = train.train_from_flags([
        f"--tfrecords={data}/train-*", f"--eval_tfrecords={data}/eval-*",
        f"--model_dir={model_dir}", *ELECTRA, "--steps_per_epoch=6", "--epochs=2",
        "--eval_every_steps=4", "--log_every_steps=2", "--learning_rate=5e-3"])
    return model_dir, summary


def test_an_electra_run_writes_every_output(electra_run):
    model_dir, _ = electra_run
    for name in ("model.keras", "encoder.keras", "export", "plots.png", "history.json"):
        assert (model_dir / name).exists(), name
    settings = json.loads((model_dir / "config.json").read_text())["training"]
    assert settings["objective"] == "electra" and settings["mlm_loss_weight"] == 1.0


def test_the_encoder_file_is_the_discriminator(electra_run):
    model_dir, _ = electra_run
    model = tf.keras.models.load_model(model_dir / "model.keras")
    encoder = tf.keras.models.load_model(model_dir / "encoder.keras")
    assert encoder.config == model.backbone.config != model.generator.config
    for mine, theirs in zip(encoder.weights, model.backbone.weights, strict=True):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())


def test_the_history_holds_both_models_figures(electra_run):
    model_dir, _ = electra_run
    history = json.loads((model_dir / "history.json").read_text())
    for name in ("mlm_loss", "mlm_accuracy", *DETECTION):
        assert len(history[name]) == 2 and len(history[f"val_{name}"]) == 2, name
    assert "nsp_loss" not in history
    assert history["rtd_loss"][1] < history["rtd_loss"][0]


def test_detection_scalars_are_logged_every_n_steps(electra_run):
    model_dir, _ = electra_run
    for name in DETECTION:
        logged = read_step_scalars(str(model_dir / "logs" / "steps"), name)
        assert [step for step, _ in logged[0]] == [2, 4, 6, 8, 10, 12], name


def test_evaluations_within_epochs_score_the_detection(electra_run):
    model_dir, _ = electra_run
    with open(model_dir / "eval_steps.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(row["step"]) for row in rows] == [4, 8, 12]
    assert all(0 <= float(row["val_rtd_recall"]) <= 1 for row in rows)


def test_an_electra_run_killed_mid_epoch_resumes_bit_for_bit(tmp_path, sample_dataset):
    """Resumed from its step checkpoint, the run draws the replacements (and dropout
    masks) the uninterrupted run drew: the same history, validation included."""
    data, _ = sample_dataset
    flags = [f"--tfrecords={data}/train-*", f"--eval_tfrecords={data}/eval-*", *ELECTRA,
             "--steps_per_epoch=8", "--epochs=2", "--checkpoint_every_steps=3",
             "--no-save_outputs"]
    model_dir = tmp_path / "killed"
    cmd = [sys.executable, "-m", "bertmodel.train", f"--model_dir={model_dir}", *flags]
    run_until(cmd, lambda: saved_step(model_dir) >= 3)
    assert saved_step(model_dir) < 16
    resumed = train.train_from_flags([f"--model_dir={model_dir}", *flags])
    whole = train.train_from_flags([f"--model_dir={tmp_path / 'whole'}", *flags])
    assert "val_rtd_loss" in whole["history"] and resumed["history"] == whole["history"]


@pytest.fixture(scope="module")
def dynamic_data(tmp_path_factory, spm_model):
    """The sample's records with dynamic masking (the masks drawn while training)."""
    from beam_jobs import create_pretraining_data as job
    from tests.conftest import SAMPLE

    out = tmp_path_factory.mktemp("dynamic") / "data"
    job.run_from_flags([f"--input={SAMPLE}", f"--output_dir={out}", f"--spm_model={spm_model}",
                        "--masking=dynamic", "--nsp_mode=none", "--max_seq_length=64",
                        "--eval_fraction=0.2", "--runner=FnApiRunner"])
    return out


def test_electra_trains_in_bf16_under_xla_with_accumulation_on_dynamic_masks(tmp_path,
                                                                           dynamic_data):
    summary = train.train_from_flags([
        f"--tfrecords={dynamic_data}", f"--model_dir={tmp_path / 'm'}", "--config=tiny",
        "--objective=electra", "--batch_size=8", "--verbose=0", "--steps_per_epoch=8",
        "--epochs=1", "--mixed_precision=bf16", "--jit_compile=true",
        "--gradient_accumulation_steps=2", "--no-save_outputs"])
    assert summary["optimizer_updates"] == 4
    assert all(np.isfinite(summary["history"][name][0]) for name in ("loss", "rtd_loss"))


def test_two_replicas_train_electra_as_one_device():
    if len(tf.config.list_logical_devices("CPU")) < 2:
        pytest.skip("needs two logical CPU devices (set up in conftest)")
    cfg = dataclasses.replace(TINY_CONFIG, dropout_rate=0.0, attention_dropout_rate=0.0)
    x, y = batch(cfg, b=8, seed=4)
    one = one_step_losses(tf.distribute.OneDeviceStrategy("/cpu:0"), cfg, x, y,
                          objective="electra")
    two = one_step_losses(two_cpu_replicas(), cfg, x, y,
                          objective="electra")
    assert two[0] == pytest.approx(one[0], rel=1e-5)
    assert two[1] == pytest.approx(one[1], rel=1e-4)
    assert one[1] < one[0]


def test_init_from_a_bert_folder_starts_the_discriminator_from_it(tmp_path, pipeline_run,
                                                                    capsys):
    work, _ = pipeline_run
    folder = tmp_path / "hf"
    assert export_hf.main([f"--model_dir={work / 'model'}", f"--output_dir={folder}"]) == 0
    model_dir = tmp_path / "electra"
    assert train.main([f"--tfrecords={work / 'data'}", f"--init_from={folder}",
                       f"--model_dir={model_dir}", "--objective=electra", "--batch_size=8",
                       "--train_steps=1", "--verbose=0", "--learning_rate=1e-12",
                       "--warmup_steps=0"]) == 0
    assert "the discriminator starts from the folder's encoder" in capsys.readouterr().err
    source = read_hf_folder(str(folder)).tensors
    encoder = tf.keras.models.load_model(model_dir / "encoder.keras")
    np.testing.assert_allclose(
        encoder.embeddings.token_embedding.get_weights()[0],
        source["bert.embeddings.word_embeddings.weight"], atol=1e-6)
    kernel = encoder.blocks[-1].output_dense.get_weights()[0]
    np.testing.assert_allclose(kernel.T, source[
        f"bert.encoder.layer.{len(encoder.blocks) - 1}.output.dense.weight"], atol=1e-6)


def test_the_saved_models_fill_mask_answers_with_the_generator(electra_run, tokenizer):
    from bertmodel.fill_mask import fill_mask

    model_dir, _ = electra_run
    model = tf.keras.models.load_model(model_dir / "model.keras")
    served = tf.saved_model.load(str(model_dir / "export"))
    text = "이 영화 정말 [MASK] 좋아요"
    ours = [piece for piece, _ in fill_mask(model, tokenizer, text)[0]]
    got = served.fill_mask(tf.constant([text]))["top_pieces"].numpy()[0, 0]
    assert [p.decode() for p in got] == ours


def test_the_discriminator_learns_to_detect_obvious_replacements():
    """Rows of one repeated piece, a few masked: any other piece the generator puts there
    is plainly out of place. A detection path that misplaces its labels or inputs stays
    at the base rate (recall near 0)."""
    from bertmodel.model.electra import ElectraPretrainer

    cfg = dataclasses.replace(TINY_CONFIG, vocab_size=200)
    rng = np.random.default_rng(0)

    def batches(b=32, s=24, p=4):
        while True:
            ids = np.repeat(rng.integers(7, 50, (b, 1)), s, axis=1).astype("int32")
            positions = np.sort(np.stack([rng.choice(np.arange(1, s), p, replace=False)
                                          for _ in range(b)]), axis=1).astype("int32")
            original = np.take_along_axis(ids, positions, axis=1)
            np.put_along_axis(ids, positions, 6, axis=1)  # [MASK]
            yield ({"input_ids": ids, "input_mask": np.ones_like(ids),
                    "segment_ids": np.zeros_like(ids), "masked_lm_positions": positions},
                   {"masked_lm_ids": original, "masked_lm_weights": np.ones((b, p), "float32")})

    x, y = next(batches())
    spec = tuple({k: tf.TensorSpec(v.shape, v.dtype) for k, v in part.items()}
                 for part in (x, y))
    data = tf.data.Dataset.from_generator(batches, output_signature=spec)
    tf.keras.utils.set_random_seed(1)
    model = ElectraPretrainer(config=cfg)
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3))
    model.fit(data, steps_per_epoch=400, epochs=1, verbose=0)
    scores = model.evaluate(data, steps=20, verbose=0, return_dict=True)
    assert scores["rtd_recall"] > 0.5 and scores["rtd_precision"] > 0.8, scores
    assert scores["rtd_auc"] > 0.9, scores
