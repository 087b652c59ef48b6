import subprocess
import sys
import unicodedata

import numpy as np
import pytest

from bertdata.tokenizer import NUM_SPECIAL, SPECIAL_PIECES, Tokenizer, train_tokenizer


def test_layout_and_special_ids(tokenizer):
    assert tokenizer.vocab_size == 1000 + 7
    assert tokenizer.pieces[:7] == ["[PAD]", "[UNK]", "[BOS]", "[EOS]", "[SEP]", "[CLS]",
                                    "[MASK]"]
    s = tokenizer.special
    assert (s.pad, s.unk, s.bos, s.eos, s.sep, s.cls, s.mask) == (0, 1, 2, 3, 4, 5, 6)
    # The special pieces are atomic when they appear in text.
    assert tokenizer.encode_line("[MASK]") == [6] or tokenizer.encode_line("[MASK]")[-1] == 6


def test_replacement_ids_and_word_starts(tokenizer):
    ids = tokenizer.replacement_ids
    assert ids.min() >= NUM_SPECIAL and len(ids) == tokenizer.vocab_size - NUM_SPECIAL
    for i in range(tokenizer.vocab_size):
        assert tokenizer.word_start[i] == tokenizer.pieces[i].startswith("\u2581")


def test_hangul_round_trip_and_unk_rate_on_held_back_lines(tmp_path, sample_lines):
    lines = [x for x in sample_lines if x.strip()]
    train, held = lines[: int(len(lines) * 0.8)], lines[int(len(lines) * 0.8):]
    corpus = tmp_path / "train.txt"
    corpus.write_text("\n".join(train) + "\n", encoding="utf-8")
    tok = Tokenizer.load(train_tokenizer([str(corpus)], str(tmp_path / "m"), 1000,
                                         num_threads=1))
    sentence = "대한민국은 민주공화국이다."
    assert tok.decode(tok.encode_line(sentence)) == sentence
    pieces = [i for line in held for i in tok.encode_line(line)]
    unk = sum(1 for i in pieces if i == tok.special.unk) / len(pieces)
    assert unk < 0.01, f"[UNK] rate {unk:.4f} on held-back lines"
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
        Tokenizer.load(str(bad))
    with pytest.raises(FileNotFoundError, match="missing.model"):
        Tokenizer.load(str(tmp_path / "missing.model"))


def test_foreign_layout_is_rejected(tmp_path, sample_corpus):
    import sentencepiece as spm

    spm.SentencePieceTrainer.train(input=sample_corpus, model_prefix=str(tmp_path / "plain"),
                                   vocab_size=500, minloglevel=2)
    with pytest.raises(ValueError, match="expected '\\[PAD\\]'"):
        Tokenizer.load(str(tmp_path / "plain.model"))


def test_cli_trains_and_reports_missing_input(tmp_path, sample_corpus):
    prefix = tmp_path / "cli"
    ok = subprocess.run([sys.executable, "-m", "bertdata.tokenizer", f"--input={sample_corpus}",
                         f"--model_prefix={prefix}", "--vocab_size=600"],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert Tokenizer.load(f"{prefix}.model").vocab_size == 607
    assert (tmp_path / "cli.vocab").read_text().splitlines()[6].startswith("[MASK]")
    bad = subprocess.run([sys.executable, "-m", "bertdata.tokenizer",
                          f"--input={tmp_path / 'nope.txt'}", f"--model_prefix={prefix}",
                          "--vocab_size=600"], capture_output=True, text=True)
    assert bad.returncode == 2 and "nope.txt" in bad.stderr


def test_special_tables_are_consistent(tokenizer):
    assert tokenizer.is_special.sum() == len(SPECIAL_PIECES)
    assert not np.any(tokenizer.is_special[tokenizer.replacement_ids])
