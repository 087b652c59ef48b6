"""bertdata.wordpiece: BERT's WordPiece in Python gives the `tokenizers` library's ids for
every word it takes, and leaves to the library every word it cannot do exactly."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bertdata.tokenizer_files import read_tokenizer_source
from bertdata.wordpiece import WordPieceWords
from tests.unit.test_readers import FUZZ

# Syllables and jamo the test vocabulary has and lacks, ASCII, the added tokens' text,
# and characters BERT's normalizer or pre-tokenizer changes (CJK, accents, a soft hyphen,
# Unicode punctuation, a control character, full-width letters).
ALPHABET = "대한민국은법앞에평등하다영화가는를너무재밌었어요똠뷁쀍ㅋㅎㅠㅜ" \
    "abcXYZ019.,!?'\"#[]()-~SEPCLSMASK中國éÉ\u00ad…“”\x07ＡＢ"
WORDS = st.text(alphabet=ALPHABET, max_size=14)


@pytest.fixture(scope="module")
def klue(published_tokenizer):
    source = read_tokenizer_source(published_tokenizer("klue"))
    return source.load(), source.wordpiece_settings()


def library_ids(tokenizer, word: str) -> list[int]:
    return tokenizer.encode([word])[0]


@FUZZ
@given(words=st.lists(WORDS, max_size=40))
def test_each_word_gets_the_librarys_ids(klue, words):
    tokenizer, _ = klue
    encoded = tokenizer._encode_words(words)
    got = [list(memoryview(ids).cast("i")) for ids in encoded]
    assert got == [library_ids(tokenizer, w) for w in words]


@FUZZ
@given(word=WORDS)
def test_a_word_taken_in_python_gets_the_librarys_ids(klue, word):
    tokenizer, settings = klue
    python = WordPieceWords(settings)
    if python.simple(word):
        assert python.encode(word) == library_ids(tokenizer, word)


def test_most_korean_words_are_taken_in_python(klue, sample_lines):
    python = WordPieceWords(klue[1])
    words = [w for line in sample_lines[:200] for w in line.split()]
    assert sum(map(python.simple, words)) > 0.5 * len(words)


def test_a_part_longer_than_the_limit_is_one_unknown(klue):
    tokenizer, settings = klue
    python = WordPieceWords(settings)
    word = "대한" * (settings.max_chars_per_word // 2) + "민"
    assert python.encode(word) == library_ids(tokenizer, word) == [tokenizer.special.unk]


def test_a_part_no_piece_covers_is_one_unknown(klue):
    tokenizer, settings = klue
    word = "대한뷁"
    assert "뷁" not in "".join(settings.pieces)
    assert WordPieceWords(settings).encode(word) == library_ids(tokenizer, word) \
        == [tokenizer.special.unk]


def test_a_lowercasing_tokenizer_leaves_every_word_to_the_library(klue):
    # Its normalizer decomposes Hangul syllables before WordPiece sees them.
    python = WordPieceWords(dataclasses.replace(klue[1], lowercase=True))
    assert not python.simple("대한민국")


def test_a_word_with_an_added_tokens_first_character_is_left_to_the_library(klue):
    settings = dataclasses.replace(klue[1], added_tokens=(("국민", 5000),))
    assert not WordPieceWords(settings).simple("대한민국")


def test_an_added_token_spelled_as_a_continuation_turns_python_off(klue):
    settings = dataclasses.replace(klue[1], added_tokens=(("##다", 5000),))
    assert not WordPieceWords(settings).enabled
