"""Using a pretrained model: the in-graph preprocessor, raw-text exports, loading, keras-hub."""

import pytest
import tensorflow as tf

from bertmodel.model.preprocessing import BertPreprocessor
from tests.serving_helpers import CLS, SEP


def test_the_preprocessor_gives_the_tokenizers_ids_on_held_back_lines(held_back):
    tok, source, lines = held_back
    pre = BertPreprocessor(source, max_seq_length=512)
    out = pre(tf.constant(lines))
    for i, line in enumerate(lines):
        want = [CLS] + tok.encode_line(line) + [SEP]
        n = int(out["input_mask"][i].numpy().sum())
        assert out["input_ids"][i, :n].numpy().tolist() == want, line
        assert not out["segment_ids"][i].numpy().any()


def test_pairs_are_laid_out_as_the_data_job_lays_them_out(held_back):
    tok, source, lines = held_back
    pre = BertPreprocessor(source, max_seq_length=512)
    out = pre(tf.constant(lines[:20]), tf.constant(lines[20:40]))
    for i in range(20):
        a, b = tok.encode_line(lines[i]), tok.encode_line(lines[20 + i])
        n = len(a) + len(b) + 3
        assert out["input_ids"][i, :n].numpy().tolist() == [CLS, *a, SEP, *b, SEP]
        # Segment 0 up to and including the first [SEP], 1 after it, 0 on padding: the
        # convention make_dataset derives from the records.
        assert out["segment_ids"][i].numpy().tolist() == \
            [0] * (len(a) + 2) + [1] * (len(b) + 1) + [0] * (out["input_ids"].shape[1] - n)


def test_pairs_are_trimmed_round_robin_keeping_each_segments_start(held_back):
    tok, source, lines = held_back
    long_a = " ".join(lines[:8])
    short_b = lines[9]
    pre = BertPreprocessor(source, max_seq_length=32)
    out = pre(tf.constant([long_a, short_b]), tf.constant([short_b, long_a]))
    a, b = tok.encode_line(long_a), tok.encode_line(short_b)
    assert len(a) > 40 and len(b) < 14
    ids = out["input_ids"].numpy()
    assert out["input_mask"].numpy().sum(axis=1).tolist() == [32, 32]
    # The short segment keeps all its pieces; the long one gives way from its end.
    assert ids[0].tolist() == [CLS, *a[:29 - len(b)], SEP, *b, SEP]
    assert ids[1].tolist() == [CLS, *b, SEP, *a[:29 - len(b)], SEP]


@pytest.fixture(scope="module")
def short_export(spm_model, tokenizer):
    """A tiny pretrainer's text functions, trimming to 16 positions (not saved)."""
    import dataclasses

    from bertdata.tokenizer_files import read_tokenizer_source
    from bertmodel.export.saved_model import PretrainedExport
    from bertmodel.model.bert import BertPretrainer, dummy_inputs
    from bertmodel.model.config import PRESETS

    config = dataclasses.replace(PRESETS["tiny"], vocab_size=tokenizer.vocab_size,
                                 max_position_embeddings=16)
    model = BertPretrainer(config=config)
    model(dummy_inputs(config))
    return PretrainedExport(model, BertPreprocessor(read_tokenizer_source(spm_model), 16))


def test_fill_mask_answers_a_mask_within_the_positions(short_export):
    out = short_export.fill_mask(tf.constant(["대한민국은 [MASK] 공화국이다."]))
    assert out["mask_positions"].shape == (1, 1) and int(out["mask_positions"][0, 0]) > 0
    assert out["top_pieces"][0, 0, 0].numpy() != b""


def test_fill_mask_fails_a_request_whose_mask_lies_past_the_positions(short_export):
    late = " ".join(["대한민국은 민주공화국이다."] * 10) + " [MASK]"
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match="past the 16 positions the model takes"):
        short_export.fill_mask(tf.constant(["[MASK] 하나", late]))
