"""What test_model.py's unit and integration tests share."""

import dataclasses
import functools

import numpy as np

from bertmodel.model.config import (
    PRESETS,
)

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


def trained_folder(root, spm_model, model, name, labels=None):
    """ROOT/NAME as bertmodel.train (LABELS None) or bertmodel.finetune leaves a finished
    model: the Keras file and the tokenizer (and the labels)."""
    import json

    folder = root / name
    folder.mkdir()
    with open(spm_model, "rb") as src, open(folder / "tokenizer.model", "wb") as dst:
        dst.write(src.read())
    if labels is None:
        model.save(str(folder / "model.keras"))
    else:
        model.save(str(folder / "classifier.keras"))
        (folder / "labels.json").write_text(json.dumps(labels, ensure_ascii=False))
    return folder


def edit_json(folder, name, edit):
    """Replaces the JSON file FOLDER/NAME with EDIT(its value)."""
    import json

    path = folder / name
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))


def randomize_weights(model, seed, mlm_head=None):
    """Every weight of MODEL random (LayerNorm scales around 1, biases non-zero), so a
    swapped or transposed tensor cannot go unnoticed; the special pieces' bias in MLM_HEAD
    (default: the model's own, if any) low, as training makes it, so that neither side
    proposes them."""
    import tensorflow as tf

    from bertdata.tokenizer import SPECIAL_IDS

    rng = np.random.default_rng(seed)
    for var in model.weights:
        if var.dtype != tf.float32:
            continue
        value = rng.normal(0.0, 0.2, var.shape).astype("float32")
        if "gamma" in var.path:
            value += 1.0
        var.assign(value)
    head = mlm_head or getattr(model, "mlm_head", None)
    if head is not None:
        bias = head.output_bias.numpy()
        bias[:len(SPECIAL_IDS.as_dict())] = -30.0
        head.output_bias.assign(bias)


@functools.cache
def two_cpu_replicas():
    """One MirroredStrategy over the two logical CPUs for the whole test process: each new
    MirroredStrategy numbers its collective ops from the start again, and a second one
    training another model in the same process failed with "Shape mismatch in the
    collective instance" (its gradients' keys met the first one's)."""
    from bertmodel.training.devices import mirrored_strategy

    return mirrored_strategy(["/cpu:0", "/cpu:1"])
