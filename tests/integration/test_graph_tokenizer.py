"""The in-graph preprocessor with published BERTs' WordPiece tokenizers
(tests/published_layouts.py): tensorflow-text gives the ids the `tokenizers` library gives
for the same tokenizer.json, on the Korean stress set, singles and pairs; the one class
where they differ is pinned."""

from __future__ import annotations

import pytest
import tensorflow as tf
import tokenizers

from bertdata.tokenizer_files import NotInGraph, read_tokenizer_source
from bertmodel.model.preprocessing import BertPreprocessor
from tests.korean_stress import stress_lines, stress_pairs

WORDPIECE_LAYOUTS = ("klue", "mbert")


def reference(folder) -> tokenizers.Tokenizer:
    return tokenizers.Tokenizer.from_file(f"{folder}/tokenizer.json")


@pytest.mark.parametrize("layout", WORDPIECE_LAYOUTS)
def test_the_graph_gives_the_tokenizers_librarys_ids(published_tokenizer, sample_lines,
                                                     layout):
    folder = published_tokenizer(layout)
    lines = stress_lines(sample_lines)
    got = BertPreprocessor(read_tokenizer_source(folder), 512).tokenize(tf.constant(lines))
    want = [e.ids for e in reference(folder).encode_batch(lines, add_special_tokens=False)]
    for line, ids, expected in zip(lines, got.to_list(), want, strict=True):
        assert ids == expected, line


@pytest.mark.parametrize("layout", WORDPIECE_LAYOUTS)
def test_pairs_and_segments_in_the_graph_equal_the_tokenizers_librarys(published_tokenizer,
                                                                       sample_lines, layout):
    folder = published_tokenizer(layout)
    pairs = stress_pairs(stress_lines(sample_lines))
    out = BertPreprocessor(read_tokenizer_source(folder), 512)(
        tf.constant([a for a, _ in pairs]), tf.constant([b for _, b in pairs]))
    lengths = out["input_mask"].numpy().sum(axis=1)
    for i, (a, b) in enumerate(pairs):
        want = reference(folder).encode(a, b)  # its post-processor lays pairs out
        assert out["input_ids"][i, :lengths[i]].numpy().tolist() == want.ids
        assert out["segment_ids"][i, :lengths[i]].numpy().tolist() == want.type_ids


def test_a_word_past_the_librarys_character_limit_is_pinned(published_tokenizer):
    """The documented difference: past max_input_chars_per_word (100) characters the library
    gives [UNK]; tensorflow-text counts bytes (4 a character here) and splits the word."""
    folder = published_tokenizer("klue")
    pre = BertPreprocessor(read_tokenizer_source(folder), 512)
    word_100, word_101 = "가" * 100, "가" * 101
    graph = pre.tokenize(tf.constant([word_100, word_101])).to_list()
    library = [e.ids for e in reference(folder).encode_batch([word_100, word_101],
                                                             add_special_tokens=False)]
    assert graph[0] == library[0] and len(library[0]) > 1
    assert library[1] == [pre.special.unk] and len(graph[1]) > 1


def test_a_unigram_tokenizer_has_no_graph_counterpart(published_tokenizer):
    folder = published_tokenizer("kobert")
    with pytest.raises(NotInGraph, match=r"tokenizer\.json: a Unigram model"):
        BertPreprocessor(read_tokenizer_source(folder), 64)
