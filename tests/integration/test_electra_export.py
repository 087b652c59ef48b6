"""An ELECTRA run's Hugging Face export, read by transformers itself (tests/hf_consumer.py,
a process without this package): every weight loads, and on the same weights, batch and
sampled replacements its generator and discriminator losses and logits equal ours, and its
fill-mask pipeline proposes what our fill_mask does."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from bertdata.tokenizer import SPECIAL_IDS
from bertmodel import export_hf
from bertmodel.export.hf_electra import GENERATOR_FOLDER
from bertmodel.fill_mask import fill_mask
from bertmodel.model.config import PRESETS
from bertmodel.model.electra import ElectraPretrainer, place
from tests.hf_helpers import run_consumer
from tests.model_helpers import randomize_weights, trained_folder

pytest.importorskip("transformers", reason="the hf extra (transformers, torch) is missing")
pytestmark = [pytest.mark.slow, pytest.mark.hf, pytest.mark.xdist_group("electra_export")]

FILL_MASK_TEXTS = ["이 영화 정말 [MASK] 좋아요", "대한민국은 민주[MASK]국이다.",
                   "[MASK] [MASK] 연속"]


def _masked_batch(tokenizer, lines, per_row=3):
    """Features and labels of LINES with PER_ROW pieces masked in each, rows padded to the
    longest; odd rows mask fewer, so their prediction lists end in padding slots."""
    rows, slots = [], []
    for i, line in enumerate(lines):
        ids = [SPECIAL_IDS.cls, *tokenizer.encode_line(line)[:28], SPECIAL_IDS.sep]
        positions = list(range(1 + i % 2, len(ids) - 1, 3))[:per_row - i % 2]
        slots.append([(p, ids[p]) for p in positions])
        for p in positions:
            ids[p] = SPECIAL_IDS.mask
        rows.append(ids)
    shape = (len(rows), max(map(len, rows)))
    x = {"input_ids": np.zeros(shape, "int32"), "input_mask": np.zeros(shape, "int32"),
         "segment_ids": np.zeros(shape, "int32"),
         "masked_lm_positions": np.zeros((len(rows), per_row), "int32")}
    y = {"masked_lm_ids": np.zeros((len(rows), per_row), "int32"),
         "masked_lm_weights": np.zeros((len(rows), per_row), "float32")}
    for i, (ids, row) in enumerate(zip(rows, slots, strict=True)):
        x["input_ids"][i, :len(ids)], x["input_mask"][i, :len(ids)] = ids, 1
        for j, (position, original) in enumerate(row):
            x["masked_lm_positions"][i, j] = position
            y["masked_lm_ids"][i, j], y["masked_lm_weights"][i, j] = original, 1.0
    return x, y


def _our_figures(model, x, y) -> dict:
    """Our losses (the trackers' means), the discriminator's input and labels, logits."""
    out = model(x, training=False)
    for tracker in (model.mlm_loss_tracker, model.rtd_loss_tracker):
        tracker.reset_state()
    model.compute_loss(x, y, out, training=False)
    positions = tf.constant(x["masked_lm_positions"])
    return {"mlm_loss": float(model.mlm_loss_tracker.result()),
            "rtd_loss": float(model.rtd_loss_tracker.result()),
            "replaced_ids": place(out["sampled_ids"], positions, x["input_ids"]).numpy(),
            "replaced_labels": model.replaced_labels(x, y, out).numpy(),
            "mlm_logits": out["mlm_logits"].numpy(), "rtd_logits": out["rtd_logits"].numpy()}


@pytest.fixture(scope="module")
def electra(tmp_path_factory, spm_model, tokenizer, sample_lines):
    """A tiny ELECTRA with random weights, as bertmodel.train leaves it, exported with the
    command; its batch; our figures; transformers' on the export."""
    root = tmp_path_factory.mktemp("electra")
    config = dataclasses.replace(PRESETS["tiny"], vocab_size=tokenizer.vocab_size,
                                 max_position_embeddings=64)
    model = ElectraPretrainer(config=config, generator_size=0.5)
    x, y = _masked_batch(tokenizer, [line for line in sample_lines if len(line) > 30][:10])
    model(x)
    randomize_weights(model, 3, mlm_head=model.generator.mlm_head)
    run = trained_folder(root, spm_model, model, "run")
    assert export_hf.main([f"--model_dir={run}", f"--output_dir={root / 'hf'}"]) == 0
    ours = _our_figures(model, x, y)
    mlm_labels = place(tf.where(y["masked_lm_weights"] > 0, y["masked_lm_ids"], -100),
                       tf.constant(x["masked_lm_positions"]),
                       tf.fill(x["input_ids"].shape, -100)).numpy()
    request = {"electra": {
        "folder": str(root / "hf"), "generator": str(root / "hf" / GENERATOR_FOLDER),
        "batch": {k: x[k].tolist() for k in ("input_ids", "input_mask", "segment_ids")},
        "replaced_ids": ours["replaced_ids"].tolist(),
        "replaced_labels": ours["replaced_labels"].tolist(),
        "mlm_labels": mlm_labels.tolist(), "fill_mask": FILL_MASK_TEXTS}}
    theirs = run_consumer(request, root)["electra"]
    return {"x": x, "ours": ours, "theirs": theirs, "model": model}


def test_both_models_load_every_weight(electra):
    theirs = electra["theirs"]
    assert theirs["discriminator_class"] == "ElectraForPreTraining"
    assert theirs["generator_class"] == "ElectraForMaskedLM"
    assert theirs["discriminator_missing"] == [] and theirs["generator_missing"] == []


def test_the_discriminator_fine_tunes_with_only_a_new_head(electra):
    theirs = electra["theirs"]
    assert theirs["model_class"] == "ElectraModel"
    assert theirs["classifier_class"] == "ElectraForSequenceClassification"
    assert theirs["classifier_new_keys"] and all(
        key.startswith("classifier.") for key in theirs["classifier_new_keys"])


def test_the_generator_replaced_enough_pieces_for_parity_to_mean_something(electra):
    ours = electra["ours"]
    # The parity below means something only if the generator replaced pieces.
    assert ours["replaced_labels"].sum() >= 10


def test_the_generator_loss_equals_transformers(electra):
    assert electra["theirs"]["mlm_loss"] == pytest.approx(electra["ours"]["mlm_loss"],
                                                          abs=1e-4)


def test_the_detection_loss_equals_transformers(electra):
    assert electra["theirs"]["rtd_loss"] == pytest.approx(electra["ours"]["rtd_loss"],
                                                          abs=1e-4)


def test_the_generator_logits_at_the_masks_equal_transformers(electra):
    x, ours, theirs = electra["x"], electra["ours"], electra["theirs"]
    at_masks = np.take_along_axis(theirs["mlm_logits"],
                                  x["masked_lm_positions"][..., None], axis=1)
    np.testing.assert_allclose(at_masks, ours["mlm_logits"], atol=1e-4)


def test_the_detection_logits_of_real_tokens_equal_transformers(electra):
    x, ours, theirs = electra["x"], electra["ours"], electra["theirs"]
    real = x["input_mask"].astype(bool)
    np.testing.assert_allclose(theirs["rtd_logits"][real], ours["rtd_logits"][real],
                               atol=1e-4)


def test_fill_mask_proposes_what_the_generator_proposes_here(electra, tokenizer):
    for text, theirs in zip(FILL_MASK_TEXTS, electra["theirs"]["fill_mask"], strict=True):
        ours = fill_mask(electra["model"], tokenizer, text)
        assert theirs == [[tokenizer.pieces.index(p) for p, _ in row] for row in ours], text
