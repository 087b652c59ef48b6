

import unicodedata

import numpy as np
import pytest

from bertdata.tokenizer import NUM_SPECIAL, SPECIAL_PIECES, SentencePieceTokenizer, train_tokenizer


def test_the_special_pieces_come_first_with_their_ids(tokenizer):
    assert tokenizer.vocab_size == 1000 + 7
    assert tokenizer.pieces[:7] == ["[PAD]", "[UNK]", "[BOS]", "[EOS]", "[SEP]", "[CLS]",
                                    "[MASK]"]
    s = tokenizer.special
    assert (s.pad, s.unk, s.bos, s.eos, s.sep, s.cls, s.mask) == (0, 1, 2, 3, 4, 5, 6)


def test_a_special_piece_written_in_text_is_one_id(tokenizer):
    # The special pieces are atomic when they appear in text: one id, after the word-start
    # piece SentencePiece puts before a word that begins with it.
    pieces = [tokenizer.id_to_piece(i) for i in tokenizer.encode_line("가 [MASK] 나")]
    assert pieces[1:] == ["▁", "[MASK]", "▁나"] and tokenizer.encode_line("[MASK]")[1:] == [6]


def test_replacements_are_every_ordinary_piece(tokenizer):
    ids = tokenizer.replacement_ids
    assert ids.min() >= NUM_SPECIAL and len(ids) == tokenizer.vocab_size - NUM_SPECIAL


def test_a_piece_starts_a_word_when_it_carries_the_marker(tokenizer):
    for i in range(tokenizer.vocab_size):
        assert tokenizer.word_start[i] == tokenizer.pieces[i].startswith("\u2581")


def test_held_back_lines_get_under_1_percent_unk(held_back):
    tok, _, held = held_back
    pieces = [i for line in held for i in tok.encode_line(line)]
    unk = sum(1 for i in pieces if i == tok.special.unk) / len(pieces)
    assert unk < 0.01, f"[UNK] rate {unk:.4f} on held-back lines"


def test_held_back_hangul_decodes_to_its_nfkc_form(held_back):
    tok, _, held = held_back
    sentence = "대한민국은 민주공화국이다."
    assert tok.decode(tok.encode_line(sentence)) == sentence
    # Apart from [UNK], decoding gives back the NFKC form of the line: precomposed Hangul
    # syllables survive (NFKC only folds compatibility forms such as circled digits).
    checked = 0
    for line in held:
        ids = tok.encode_line(line)
        if tok.special.unk in ids:
            continue
        assert tok.decode(ids) == " ".join(unicodedata.normalize("NFKC", line).split())
        checked += 1
    assert checked > 0.8 * len(held)


def test_not_a_model_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.model"
    bad.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="bad.model"):
        SentencePieceTokenizer.load(str(bad))
    with pytest.raises(FileNotFoundError, match="missing.model"):
        SentencePieceTokenizer.load(str(tmp_path / "missing.model"))


def test_foreign_layout_is_rejected(tmp_path, sample_corpus):
    import sentencepiece as spm

    spm.SentencePieceTrainer.train(input=sample_corpus, model_prefix=str(tmp_path / "plain"),
                                   vocab_size=500, minloglevel=2)
    with pytest.raises(ValueError, match="expected '\\[PAD\\]'"):
        SentencePieceTokenizer.load(str(tmp_path / "plain.model"))


@pytest.mark.parametrize("make_input, flags, message", [
    (lambda p: p.write_bytes(bytes(range(256)) * 200), [], "not valid UTF-8"),
    (lambda p: p.write_text("안녕\n", encoding="utf-16"), [], "UTF-16 byte-order mark"),
    (lambda p: p.write_bytes(b"\x00" * 4000), [], "NUL"),
    (lambda p: p.write_text("ab\ncd\n"), [], "Vocabulary size too high"),
    (None, ["--character_coverage=5"], "--character_coverage must be in (0, 1]"),
    (None, ["--input_sentence_size=-5"], "--input_sentence_size must be >= 0"),
    (None, ["--input="], "error: --input names no file"),
    (None, ["--vocab_size=lots"], "error: argument --vocab_size: invalid int value: 'lots'"),
])
def test_bad_tokenizer_input_is_one_line_naming_the_flag_or_file(tmp_path, sample_corpus,
                                                                 capsys, make_input, flags,
                                                                 message):
    from bertdata import tokenizer

    corpus = sample_corpus
    if make_input is not None:
        corpus = tmp_path / "input.txt"
        make_input(corpus)
    code = tokenizer.main([f"--input={corpus}", f"--model_prefix={tmp_path / 'm'}",
                           "--vocab_size=600", *flags])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1, err
    if make_input is not None:
        assert str(corpus) in err
    assert not (tmp_path / "m.model").exists()


def test_special_tables_are_consistent(tokenizer):
    assert tokenizer.is_special.sum() == len(SPECIAL_PIECES)
    assert not np.any(tokenizer.is_special[tokenizer.replacement_ids])


TRICKY_LINES = [
    "  앞뒤 공백과  두 칸 사이 ", "탭\t문자가\t섞인 줄", "결합 \u0301 문자 뒤", "ＡＢＣ　전각 공백",
    "①②③ 동그라미 숫자", "[MASK]와 [SEP] 그리고 [CLS]가 본문에", "nbsp\u00a0여기", "", " ",
    "이모지 😀 끝", "\u200b제로폭 공백", "제어\x1c문자", "¨x ´y 분리 부호", "같은 같은 같은 단어",
]


def test_word_cache_gives_exactly_the_encoders_ids(tokenizer, sample_lines):
    lines = sample_lines[:2000] + TRICKY_LINES
    assert tokenizer.cache_switch.enabled
    flat, lengths = tokenizer.encode_flat(lines)
    want = tokenizer.encode(lines)
    assert lengths == [len(x) for x in want]
    assert flat.dtype == np.int32 and flat.tolist() == [i for x in want for i in x]
    # Every line of the sample is a word the cache has now seen: all hits the second time.
    misses = tokenizer.word_cache_misses
    again, _ = tokenizer.encode_flat(lines)
    assert tokenizer.word_cache_misses == misses
    assert np.array_equal(again, flat)


def _cache_sized(spm_model, size):
    with open(spm_model, "rb") as f:
        return SentencePieceTokenizer(f.read(), word_cache_size=size)


def _encoded_in_batches(tok, sample_lines):
    """Six batches of 100 lines through TOK's cache: ids and lengths equal the encoder's.
    Returns the most words one batch held."""
    largest = 0
    for start in range(0, 600, 100):
        lines = sample_lines[start:start + 100]
        largest = max(largest, sum(len(x.split(" ")) for x in lines))
        want = tok.encode(lines)
        flat, lengths = tok.encode_flat(lines)
        assert flat.tolist() == [i for x in want for i in x]
        assert lengths == [len(x) for x in want]
    return largest


def test_word_cache_stays_bounded(spm_model, sample_lines):
    small = _cache_sized(spm_model, 50)
    largest = _encoded_in_batches(small, sample_lines)
    # The cache is emptied when full, then takes one batch's words.
    assert 0 < len(small._word_cache) <= 50 + largest


def test_a_word_cache_of_size_0_is_off(spm_model, sample_lines):
    off = _cache_sized(spm_model, 0)
    assert not off.cache_switch.enabled
    _encoded_in_batches(off, sample_lines)
    assert len(off._word_cache) == 0
    assert off.word_cache_misses == off.words_encoded > 0


def test_mostly_new_words_go_to_the_encoder_until_words_repeat(tokenizer, sample_lines):
    from bertdata.tokenizer import SentencePieceTokenizer as Tok

    tok = Tok(tokenizer._sp.serialized_model_proto())
    tok.cache_switch.warm_words = 500  # small text; the default waits for 16,384 words
    rng = np.random.default_rng(0)
    # Every word made new by two random Hangul syllables: the cache cannot help.
    novel = [[" ".join(w + chr(0xAC00 + int(rng.integers(11172))) * 2 for w in line.split(" "))
              for line in sample_lines[i:i + 10]] for i in range(0, 400, 10)]
    for doc in novel:
        flat, lengths = tok.encode_flat(doc)
        want = tok.encode(doc)
        assert flat.tolist() == [i for x in want for i in x]
        assert lengths == [len(x) for x in want]
    assert tok.words_bypassed > tok.words_encoded / 2
    # A young cache is never bypassed: new words are how it fills.
    young = Tok(tokenizer._sp.serialized_model_proto())
    for doc in novel:
        young.encode_flat(doc)
    assert young.words_bypassed == 0 and len(young._word_cache) < young.cache_switch.warm_words
    # The same document again and again: a probe fills the cache with its words, the next
    # probe finds them all, and from then on the cache serves it.
    doc = sample_lines[:10]
    for _ in range(3 * tok.cache_switch.PROBE_EVERY):
        tok.encode_flat(doc)
    bypassed = tok.words_bypassed
    for _ in range(20):
        flat, _ = tok.encode_flat(doc)
    assert tok.words_bypassed == bypassed
    assert flat.tolist() == [i for x in tok.encode(doc) for i in x]


@pytest.mark.parametrize("compress, suffix", [("gzip", ".gz"), ("bz2", ".bz2"), ("lzma", ".xz")])
def test_a_compressed_corpus_trains_the_pieces_of_the_plain_one(tmp_path, sample_lines,
                                                                compress, suffix):
    import importlib

    text = "\n".join(sample_lines[:600]).encode()
    (tmp_path / "c.txt").write_bytes(text)
    (tmp_path / f"c.txt{suffix}").write_bytes(importlib.import_module(compress).compress(text))

    def pieces(path, prefix):
        model = SentencePieceTokenizer.load(train_tokenizer(
            [str(path)], str(tmp_path / prefix), 600, num_threads=1))
        return [model.id_to_piece(i) for i in range(model.vocab_size)]

    assert pieces(tmp_path / f"c.txt{suffix}", "z") == pieces(tmp_path / "c.txt", "p")


def test_a_compressed_corpus_that_is_not_what_its_extension_says_is_named(tmp_path):
    (tmp_path / "c.txt.gz").write_bytes(b"plain text, not gzip\n" * 100)
    with pytest.raises(ValueError, match=r"--input .*c.txt.gz cannot be decompressed"):
        train_tokenizer([str(tmp_path / "c.txt.gz")], str(tmp_path / "t"), 100)
