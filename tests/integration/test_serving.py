"""Using a pretrained model: the in-graph preprocessor, raw-text exports, loading, keras-hub."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import bertdata
from bertdata.tokenizer import SPECIAL_IDS, SentencePieceTokenizer
from bertdata.tokenizer_files import read_tokenizer_source
from bertmodel.model.preprocessing import BertPreprocessor
from tests.serving_helpers import CLS, SEP


@pytest.mark.slow
def test_the_preprocessor_feeds_fit_from_inside_a_tf_data_map(held_back):
    from bertmodel.model.bert import BertClassifier, dummy_inputs
    from bertmodel.model.config import PRESETS

    tok, source, lines = held_back
    pre = BertPreprocessor(source, max_seq_length=48)
    labels = np.arange(len(lines)) % 2
    ds = tf.data.Dataset.from_tensor_slices((lines, labels)).batch(8).map(
        lambda text, y: (pre(text), y))
    config = PRESETS["tiny"].__class__(**{**PRESETS["tiny"].to_dict(),
                                          "vocab_size": tok.vocab_size})
    model = BertClassifier(config=config, num_labels=2)
    model(dummy_inputs(config))
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.optimizer.build(model.trainable_variables)  # or fit's first trace runs twice
    before = [w.numpy().copy() for w in model.trainable_weights]
    history = model.fit(ds.take(3), epochs=1, verbose=0, shuffle=False)
    assert np.isfinite(history.history["loss"][0])
    assert all(not np.array_equal(a, b.numpy())
               for a, b in zip(before, model.trainable_weights, strict=True))


# keras-hub's BertMaskedLM does not use its backbone's pooler, so it has no gradient.
@pytest.mark.filterwarnings("ignore:Gradients do not exist:UserWarning")
@pytest.mark.slow
def test_keras_hub_bert_masked_lm_trains_on_make_dataset(sample_dataset, tokenizer):
    import keras_hub

    data, _ = sample_dataset
    ds = bertdata.make_dataset(data, 8, seed=1, output_format="keras_hub")
    x, y, weights = next(iter(ds))
    assert sorted(x) == ["mask_positions", "padding_mask", "segment_ids", "token_ids"]
    assert y.shape == weights.shape == x["mask_positions"].shape
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=tokenizer.vocab_size, num_layers=1, num_heads=2, hidden_dim=16,
        intermediate_dim=32, max_sequence_length=64)
    model = keras_hub.models.BertMaskedLM(backbone=backbone, preprocessor=None)
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  weighted_metrics=["sparse_categorical_accuracy"])
    model.optimizer.build(model.trainable_variables)  # or fit's first trace runs twice
    history = model.fit(ds, steps_per_epoch=3, epochs=1, verbose=0, shuffle=False)
    assert np.isfinite(history.history["loss"][0]) and history.history["loss"][0] > 0


FRESH_PROCESS = """
import json, sys
import tensorflow as tf, tensorflow_text
assert not [m for m in sys.modules if m.split(".")[0] in ("bertmodel", "bertdata")]
out = {}
export = tf.saved_model.load(sys.argv[1])
fill = export.signatures["fill_mask_top_k"](text=tf.constant([sys.argv[3]]),
                                            top_k=tf.constant(3))
out["fill_mask"] = [[p.decode() for p in row] for row in fill["top_pieces"].numpy()[0]]
out["scores"] = fill["top_scores"].numpy()[0].tolist()
out["positions"] = fill["mask_positions"].numpy().tolist()
encoded = export.signatures["encode"](text=tf.constant([sys.argv[4]]))
out["pooled"] = encoded["pooled_output"].numpy().tolist()
classifier = tf.saved_model.load(sys.argv[2]).signatures["classify"]
answer = classifier(text=tf.constant([sys.argv[4], sys.argv[3]]))
out["classify"] = [x.decode() for x in answer["label"].numpy()]
out["probabilities"] = answer["probabilities"].numpy().tolist()
ids = encoded["input_mask"].numpy()
features = {"input_ids": tf.constant(json.loads(sys.argv[6])), "input_mask": tf.ones_like(ids),
            "segment_ids": tf.zeros_like(ids)}
out["encoder_pooled"] = tf.cast(export.encoder(features)["pooled_output"],
                                tf.float32).numpy().tolist()
# Then the Keras files: they load after a plain `import bertmodel`.
import bertmodel, keras
encoder = keras.models.load_model(sys.argv[5])
out["keras_pooled"] = encoder(features)["pooled_output"].numpy().tolist()
print(json.dumps(out))
"""


def test_exports_answer_raw_text_in_a_process_without_this_package(pipeline_run, finetuned,
                                                                   capsys):
    from bertmodel import fill_mask

    work, _ = pipeline_run
    model_dir = work / "model"
    text = "대한민국은 민주[MASK]국이다. 모든 [MASK]은 법 앞에 평등하다."
    plain = "국회는 법률을 제정한다."
    assert fill_mask.main([f"--model_dir={model_dir}", f"--text={text}", "--top_k=3"]) == 0
    cli = [line.split(": ", 1)[1].split("  ") for line in capsys.readouterr().out.splitlines()
           if line.startswith("  [MASK]")]
    tok = SentencePieceTokenizer.load(str(model_dir / "tokenizer.model"))
    ids = [[CLS, *tok.encode_line(plain), SEP]]
    done = subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(model_dir / "export"),
                           str(finetuned["pretrained"] / "export"), text, plain,
                           str(model_dir / "encoder.keras"), json.dumps(ids)],
                          cwd="/", capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout)
    assert len(cli) == 2 and len(out["fill_mask"]) == 2
    for row, pieces, scores in zip(cli, out["fill_mask"], out["scores"], strict=True):
        assert [x.rsplit(" ", 1)[0] for x in row] == pieces
        # The model computes in bfloat16 (this CPU's mixed precision); a Keras call and the
        # SavedModel's graph round differently within its 3 significant digits.
        assert [float(x.rsplit(" ", 1)[1]) for x in row] == pytest.approx(scores, abs=1e-3)
        assert not [p for p in pieces if p.startswith("[")]
    assert out["positions"][0] == [i for i, t in enumerate(
        [CLS, *tok.encode_line(text), SEP]) if t == SPECIAL_IDS.mask]
    # Same ids, same weights; the export computes in bfloat16 (the policy it was trained
    # with), so the two agree to bfloat16's precision. A wrong layout or ids would not.
    np.testing.assert_allclose(out["pooled"], out["keras_pooled"], rtol=0.02, atol=0.01)
    # The loaded export's `encoder` attribute on those ids is what `encode` computed.
    np.testing.assert_allclose(out["encoder_pooled"], out["pooled"], rtol=1e-6, atol=1e-6)
    labels = json.loads((finetuned["pretrained"] / "labels.json").read_text())
    assert set(out["classify"]) <= set(labels)
    assert all(len(p) == len(labels) and sum(p) == pytest.approx(1, abs=1e-5)
               for p in out["probabilities"])
    assert os.path.exists(model_dir / "export" / "saved_model.pb")


BAD_REQUESTS = """
import json, sys
import tensorflow as tf, tensorflow_text
export = tf.saved_model.load(sys.argv[1])
classifier = tf.saved_model.load(sys.argv[2])
a2, b1, none = tf.constant(["가나다", "라마"]), tf.constant(["바사"]), tf.constant([], tf.string)
requests = {
    "encode_pair 2 vs 1": lambda: export.signatures["encode_pair"](text=a2, text_b=b1),
    "encode_pair 1 vs 2": lambda: export.signatures["encode_pair"](text=b1, text_b=a2),
    "classify_pair 2 vs 1": lambda: classifier.signatures["classify_pair"](text=a2, text_b=b1),
    "encode empty": lambda: export.signatures["encode"](text=none),
    "encode_pair empty": lambda: export.signatures["encode_pair"](text=none, text_b=none),
    "classify empty": lambda: classifier.signatures["classify"](text=none),
    "fill_mask empty": lambda: export.signatures["fill_mask"](text=none),
    "top_k 0": lambda: export.signatures["fill_mask_top_k"](text=a2, top_k=tf.constant(0)),
    "serve negative id": lambda: export.signatures["serve"](
        input_ids=tf.constant([[5, -3, 4]]), input_mask=tf.ones([1, 3], tf.int32),
        segment_ids=tf.zeros([1, 3], tf.int32), masked_lm_positions=tf.constant([[1]])),
    "serve segment 2": lambda: export.signatures["serve"](
        input_ids=tf.constant([[5, 9, 4]]), input_mask=tf.ones([1, 3], tf.int32),
        segment_ids=tf.constant([[0, 2, 0]]), masked_lm_positions=tf.constant([[1]])),
}
out = {}
for name, request in requests.items():
    try:
        out[name] = {k: list(v.shape) for k, v in request().items()}
    except tf.errors.InvalidArgumentError as e:
        found = [x for x in e.message.split("\\n") if "assertion failed" in x]
        out[name] = "error: " + (found or [e.message])[0]
# The process still serves.
out["after"] = export.signatures["encode"](text=a2)["pooled_output"].shape.as_list()
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def tiny_exports(tmp_path_factory, spm_model, tokenizer):
    """SavedModels of a tiny pretrainer and classifier (random weights): what the serving
    checks need, without waiting for a training run."""
    import dataclasses

    from bertmodel.export.saved_model import export_classifier, export_saved_model
    from bertmodel.model.bert import BertClassifier, BertPretrainer, dummy_inputs
    from bertmodel.model.config import PRESETS

    folder = tmp_path_factory.mktemp("tiny_exports")
    config = dataclasses.replace(PRESETS["tiny"], vocab_size=tokenizer.vocab_size)
    source = read_tokenizer_source(spm_model)
    pretrainer = BertPretrainer(config=config)
    pretrainer(dummy_inputs(config))
    export_saved_model(pretrainer, str(folder / "export"), tokenizer=source)
    classifier = BertClassifier(num_labels=2, config=config)
    classifier(dummy_inputs(config))
    export_classifier(classifier, str(folder / "classifier"), tokenizer=source,
                      max_seq_length=64, labels=["a", "b"])
    return folder / "export", folder / "classifier"


@pytest.mark.slow
def test_a_bad_serving_request_fails_alone_and_the_server_lives(tiny_exports):
    export, classifier = tiny_exports
    done = subprocess.run([sys.executable, "-c", BAD_REQUESTS, str(export), str(classifier)],
                          cwd="/", capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout)
    for name in ("encode_pair 2 vs 1", "encode_pair 1 vs 2", "classify_pair 2 vs 1"):
        assert out[name].startswith("error:") and "same number of strings" in out[name], out
    # An empty batch is a valid request with empty answers.
    assert out["encode empty"]["pooled_output"][0] == 0
    assert out["encode_pair empty"]["sequence_output"][0] == 0
    assert out["classify empty"]["probabilities"][0] == 0
    assert out["fill_mask empty"]["top_pieces"][0] == 0
    assert "top_k must be between 1 and" in out["top_k 0"]
    assert "input_ids must lie in [0, " in out["serve negative id"]
    assert "segment_ids must lie in [0, 2)" in out["serve segment 2"]
    assert out["after"][0] == 2
