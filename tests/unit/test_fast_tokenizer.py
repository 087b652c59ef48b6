"""Hugging Face fast tokenizers (tokenizer.json) as the project's Tokenizer: the special
ids, word boundaries and replacement ids of each published layout, and the reader's one-line
refusals. The ids themselves are compared with transformers' AutoTokenizer in
tests/integration/test_published_checkpoints.py."""

from __future__ import annotations

import json
import shutil
import unicodedata

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bertcommon.files import BadFile
from bertdata import pretraining as pt
from bertdata.fast_tokenizer import BERT_SPACE_CHARACTERS
from bertdata.tokenizer_files import FAST, NotInGraph, read_tokenizer_source
from bertdata.vocabulary import SpecialIds
from tests.example_helpers import one_pass_examples
from tests.korean_stress import stress_lines
from tests.model_helpers import edit_json
from tests.unit.test_readers import FUZZ, JSON, REFUSED, one_line, read_or_refused

TEXT = "대한민국은 민주공화국이다. 모든 국민은 법 앞에 평등하다."


def load(folder):
    return read_tokenizer_source(folder).load()


@pytest.mark.parametrize("layout, want", [
    ("klue", SpecialIds(pad=0, unk=1, cls=2, sep=3, mask=4)),
    ("mbert", SpecialIds(pad=0, unk=100, cls=101, sep=102, mask=103)),
    ("kobert", SpecialIds(pad=1, unk=0, cls=2, sep=3, mask=4)),
])
def test_special_ids_come_from_the_tokenizer(published_tokenizer, layout, want):
    assert load(published_tokenizer(layout)).special == want


def test_a_tokenizer_json_path_reads_its_folders_side_files(published_tokenizer):
    folder = published_tokenizer("klue")
    source = read_tokenizer_source(f"{folder}/tokenizer.json")
    assert source.kind == FAST
    assert [name for name, _ in source.files] == [
        "tokenizer.json", "tokenizer_config.json", "vocab.txt"]


def test_a_wordpiece_continuation_never_starts_a_word(published_tokenizer):
    tok = load(published_tokenizer("klue"))
    ids = tok.encode_line(TEXT)
    pieces = [tok.id_to_piece(i) for i in ids]
    assert any(p.startswith("##") for p in pieces)
    assert [bool(tok.word_start[i]) for i in ids] == [not p.startswith("##") for p in pieces]


def test_a_metaspace_piece_starts_a_word_only_with_its_marker(published_tokenizer):
    tok = load(published_tokenizer("kobert"))
    ids = tok.encode_line(TEXT)
    pieces = [tok.id_to_piece(i) for i in ids]
    assert any(not p.startswith("\u2581") for p in pieces)
    assert [bool(tok.word_start[i]) for i in ids] == [p.startswith("\u2581") for p in pieces]


def test_replacements_are_never_special_unknown_or_reserved(published_tokenizer):
    tok = load(published_tokenizer("mbert"))
    drawn = {tok.id_to_piece(i) for i in tok.replacement_ids}
    assert not drawn & {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused1]", "[unused99]"}
    assert len(drawn) == tok.vocab_size - 5 - 99


def test_examples_carry_the_tokenizers_own_special_ids(published_tokenizer, sample_lines):
    tok = load(published_tokenizer("mbert"))
    doc = tok.encode_flat([line for line in sample_lines[:60] if line.strip()])
    cfg = pt.ExampleSettings(max_seq_length=64, seed=3)
    examples = one_pass_examples(doc, np.random.default_rng(0), cfg,
                                 pt.VocabTables.from_tokenizer(tok))
    assert examples
    for ex in examples:
        ids = np.asarray(ex.input_ids)
        assert ids[0] == 101 and ids[-1] == 102 and np.count_nonzero(ids == 102) == 2


def test_whole_word_masking_takes_every_piece_of_a_wordpiece_word(published_tokenizer,
                                                                   sample_lines):
    tok = load(published_tokenizer("klue"))
    doc = tok.encode_flat([line for line in sample_lines[:200] if line.strip()])
    cfg = pt.ExampleSettings(max_seq_length=64, seed=3)
    continuations = 0
    for ex in one_pass_examples(doc, np.random.default_rng(1), cfg,
                                pt.VocabTables.from_tokenizer(tok)):
        ids = list(ex.input_ids)
        for position, original in zip(ex.masked_lm_positions, ex.masked_lm_ids, strict=True):
            ids[position] = original
        masked = set(ex.masked_lm_positions)
        for p in masked:
            if not tok.word_start[ids[p]]:
                continuations += 1
                assert p - 1 in masked or tok.is_special[ids[p - 1]]  # cut at its start
            if p + 1 < len(ids) and p + 1 not in masked:
                assert tok.word_start[ids[p + 1]] or tok.is_special[ids[p + 1]]
    assert continuations > 20


@pytest.mark.parametrize("layout", ["klue", "mbert"])
def test_the_word_cache_gives_a_wordpiece_tokenizers_own_ids(published_tokenizer,
                                                             sample_lines, layout):
    tok = load(published_tokenizer(layout))
    # Characters BERT deletes (\x0b, \x1c) join their neighbours; the ones it takes for
    # white space (\u3000, \u00a0, \t) part them; the cache does not split at \u2028.
    lines = stress_lines(sample_lines) + ["가\x0b나 다\x1c라", "가\u3000나\u00a0다\t라",
                                          "가\u2028나", "[SEP][SEP] 둘 [SEP]"]
    flat, lengths = tok.encode_flat(lines)
    assert tok.cache_switch.enabled and len(tok._word_cache) > 0
    want = tok.encode(lines)
    assert lengths == [len(ids) for ids in want]
    assert flat.tolist() == [i for ids in want for i in ids]


def test_a_tokenizer_json_other_than_berts_pipeline_has_no_word_cache(published_tokenizer):
    assert not load(published_tokenizer("kobert")).cache_switch.enabled


def copy_folder(published_tokenizer, tmp_path, layout="klue"):
    folder = tmp_path / layout
    shutil.copytree(published_tokenizer(layout), folder)
    return folder


def without_mask_token(published_tokenizer, tmp_path):
    """A klue-layout folder whose [MASK] is renamed and named by no side file."""
    folder = copy_folder(published_tokenizer, tmp_path)
    (folder / "tokenizer_config.json").unlink()

    def rename_mask(data):
        vocab = data["model"]["vocab"]
        vocab["[NOMASK]"] = vocab.pop("[MASK]")
        data["added_tokens"] = [t for t in data["added_tokens"] if t["content"] != "[MASK]"]
        return data

    edit_json(folder, "tokenizer.json", rename_mask)
    return folder


def test_a_tokenizer_without_a_mask_token_is_one_line(published_tokenizer, tmp_path):
    folder = without_mask_token(published_tokenizer, tmp_path)
    with pytest.raises(BadFile) as e:
        load(folder)
    assert one_line(e.value) == (
        f"{folder}/tokenizer.json: the tokenizer has no mask token (none of [MASK], <mask> is "
        "in its vocabulary, and no tokenizer_config.json beside it names a mask_token)")


def test_a_declared_token_missing_from_the_vocabulary_is_one_line(published_tokenizer,
                                                                   tmp_path):
    folder = copy_folder(published_tokenizer, tmp_path)
    edit_json(folder, "tokenizer_config.json", lambda d: {**d, "mask_token": "<mask>"})
    with pytest.raises(BadFile, match="the mask token '<mask>' that its folder declares "
                                      r"\(mask_token\) is not in its vocabulary"):
        load(folder)


def test_a_declared_token_that_is_not_a_string_is_refused_naming_its_key(published_tokenizer,
                                                                         tmp_path):
    folder = copy_folder(published_tokenizer, tmp_path)
    edit_json(folder, "tokenizer_config.json", lambda d: {**d, "cls_token": 5})
    with pytest.raises(BadFile, match=f"^{folder}/tokenizer_config.json: cls_token must be"):
        read_tokenizer_source(str(folder))


def test_a_tokenizer_json_of_another_kind_is_one_line(tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps({"model": {"type": "SentencePieceBPE"}}))
    with pytest.raises(BadFile, match=f"^{path}: model.type must be one of WordPiece, BPE"):
        read_tokenizer_source(str(path))


def test_a_folder_without_a_tokenizer_is_one_line(tmp_path):
    with pytest.raises(BadFile, match="neither a .model file, a tokenizer.json, nor a folder"):
        read_tokenizer_source(str(tmp_path))


def fuzz_copy(published_tokenizer, tmp_path):
    """A fresh copy of the klue-layout folder (one per example: tmp_path is the test's)."""
    folder = tmp_path / "fuzz"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(published_tokenizer("klue"), folder)
    return folder


def damaged_copy(published_tokenizer, tmp_path, change: dict):
    """fuzz_copy whose tokenizer.json has CHANGE's keys."""
    folder = fuzz_copy(published_tokenizer, tmp_path)
    edit_json(folder, "tokenizer.json", lambda d: {**d, **change})
    return folder


@FUZZ
@given(change=st.dictionaries(st.sampled_from(["model", "normalizer", "pre_tokenizer",
                                               "added_tokens", "post_processor", "decoder"]),
                              JSON, min_size=1, max_size=2))
def test_a_damaged_tokenizer_json_loads_or_is_one_line(published_tokenizer, tmp_path, change):
    folder = damaged_copy(published_tokenizer, tmp_path, change)
    tok = read_or_refused(lambda: load(folder), BadFile, str(folder))
    if tok is REFUSED:
        return
    assert tok.vocab_size == len(tok.pieces) and tok.special.mask < tok.vocab_size


@FUZZ
@given(change=st.dictionaries(st.sampled_from(["model", "normalizer", "pre_tokenizer",
                                               "added_tokens"]),
                              JSON, min_size=1, max_size=2))
def test_a_damaged_tokenizer_json_runs_in_the_graph_with_its_pieces_or_is_one_line(
        published_tokenizer, tmp_path, change):
    folder = damaged_copy(published_tokenizer, tmp_path, change)

    def tokenizer_and_graph_settings():
        source = read_tokenizer_source(folder)
        return source.load(), source.wordpiece_graph_settings()

    both = read_or_refused(tokenizer_and_graph_settings, (BadFile, NotInGraph), str(folder))
    if both is REFUSED:
        return
    tok, settings = both
    assert settings.pieces == tuple(tok.pieces)


@FUZZ
@given(config=st.dictionaries(st.sampled_from(["cls_token", "sep_token", "mask_token",
                                               "pad_token", "unk_token", "model_max_length"]),
                              JSON | st.sampled_from(["[CLS]", "[SEP]", "[MASK]"]),
                              max_size=3))
def test_any_tokenizer_config_gives_distinct_special_ids_or_one_line(published_tokenizer,
                                                                     tmp_path, config):
    folder = fuzz_copy(published_tokenizer, tmp_path)
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    tok = read_or_refused(lambda: load(folder), BadFile, str(folder))
    if tok is REFUSED:
        return
    ids = list(tok.special.as_dict().values())
    assert len(set(ids)) == len(ids) and tok.is_special[ids].all()


def test_the_data_job_refuses_a_tokenizer_without_a_mask_token_in_one_line(
        published_tokenizer, tmp_path, sample_corpus, capsys):
    from beam_jobs import create_pretraining_data as job

    folder = without_mask_token(published_tokenizer, tmp_path)
    code = job.main([f"--input={sample_corpus}", f"--output_dir={tmp_path / 'out'}",
                     f"--tokenizer={folder}", "--runner=FnApiRunner"])
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        f"error: --tokenizer {folder}/tokenizer.json: the tokenizer has no mask token (none of "
        "[MASK], <mask> is in its vocabulary, and no tokenizer_config.json beside it names a "
        "mask_token)")


def test_the_data_job_takes_one_tokenizer_flag(published_tokenizer, spm_model, tmp_path,
                                                sample_corpus, capsys):
    from beam_jobs import create_pretraining_data as job

    code = job.main([f"--input={sample_corpus}", f"--output_dir={tmp_path / 'out'}",
                     f"--tokenizer={published_tokenizer('klue')}", f"--spm_model={spm_model}"])
    assert code == 2
    assert "give the tokenizer once" in capsys.readouterr().err


def test_training_refuses_records_of_another_tokenizer(published_tokenizer, sample_dataset,
                                                       tmp_path):
    from bertmodel import train

    data, _ = sample_dataset  # made with the project's SentencePiece model
    with pytest.raises(train.TrainError, match=r"--tokenizer .*klue0? is not the tokenizer the "
                                               r"records were made with"):
        train.train_from_flags([f"--tfrecords={data}", f"--model_dir={tmp_path / 'm'}",
                                f"--tokenizer={published_tokenizer('klue')}", "--config=tiny"])


def test_the_word_cache_cuts_at_every_bert_space_separator():
    spaces = {chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) == "Zs"}
    assert set(BERT_SPACE_CHARACTERS) == spaces | {"\t", "\n", "\r"}
