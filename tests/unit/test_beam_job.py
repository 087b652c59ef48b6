"""The Beam data job run in-process (FnApiRunner): records, publishing, inputs, errors."""

import bz2
import gzip
import json
import lzma
import os

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from beam_jobs import create_pretraining_data as job
from beam_jobs import examples, shards
from beam_jobs.settings import JobSettings
from bertdata import pretraining as pt
from bertdata import schema, wire_format
from bertdata.corpus import documents_from_lines
from bertdata.tfdata import dataset_files
from bertdata.tokenizer_files import read_tokenizer_source
from tests.beam_job_helpers import (
    corpus_file,
    multi_line_documents,
    read_records,
    run_job,
    write_documents,
)
from tests.conftest import FNAPI
from tests.example_helpers import document_examples


def load_json(path):
    with open(path) as f:
        return json.load(f)


def read_metadata(out) -> schema.DatasetMetadata:
    """The job's metadata.json, read as every reader reads it (without TensorFlow)."""
    path = os.path.join(out, schema.METADATA_FILE)
    return schema.DatasetMetadata.from_json(load_json(path), path)


def expected_records(lines, tokenizer, cfg):
    vocab = pt.VocabTables.from_tokenizer(tokenizer)
    out = []
    for doc in documents_from_lines(lines):
        tokens = [np.array(x, np.int32) for x in tokenizer.encode(doc)]
        for inst in document_examples(tokens, cfg, vocab, key=pt.document_key(doc)):
            out.append(wire_format.serialize_instance(inst, "compact", masked=True,
                                                      max_seq_length=cfg.max_seq_length,
                                                      max_predictions_per_seq=20))
    return out


def test_create_record_blobs_equals_the_pure_functions(tmp_path, spm_model, tokenizer,
                                                       sample_lines):
    lines = sample_lines[:400]
    path = corpus_file(tmp_path, lines)
    cfg = pt.ExampleSettings(max_seq_length=64, dupe_factor=2, seed=3)
    size = os.path.getsize(path)
    ranges = [(str(path), s, min(s + 1000, size), 1000) for s in range(0, size, 1000)]
    want = expected_records(lines, tokenizer, cfg)
    assert len(want) > 20
    options = JobSettings(inputs=(str(path),), output_dir="-", spm_model=spm_model,
                         example=cfg)
    with BeamTestPipeline(options=PipelineOptions(FNAPI)) as p:
        source = read_tokenizer_source(spm_model)
        out = p | beam.Create(ranges) | examples.CreateRecordBlobs(options, source)
        # The outputs are (count, blob of framed records); a blob holds many records.
        records = out["train"] | "Unframe" >> beam.FlatMap(
            lambda blob: wire_format.unframe_records(blob[1]))
        counts = out["train"] | "Count" >> beam.Map(
            lambda blob: blob[0] == len(wire_format.unframe_records(blob[1])))
        assert_that(records, equal_to(want), label="train")
        assert_that(counts | beam.Distinct(), equal_to([True]), label="counts")
        assert_that(out["eval"], equal_to([]), label="eval")


def _parsed_sample_records(out):
    records = read_records(os.path.join(out, "train-*")) + read_records(
        os.path.join(out, "eval-*"))
    parsed = tf.io.parse_example(tf.constant(records), dataset_files.parse_spec("compact"))
    return (parsed["input_ids"].to_list(), parsed["masked_lm_positions"].to_list(),
            parsed["masked_lm_ids"].to_list(), parsed["next_sentence_labels"].numpy().ravel())


def test_the_metadata_names_the_tokenizer_with_the_record_format(sample_dataset, tokenizer):
    out, _ = sample_dataset
    meta = read_metadata(out)
    assert meta.tokenizer.sha256 == tokenizer.sha256
    assert meta.vocab_size == tokenizer.vocab_size and meta.record_format == "compact"


def test_a_finished_job_leaves_no_staging_folder(sample_dataset):
    out, _ = sample_dataset
    assert not [f for f in os.listdir(out) if f.startswith(job.STAGING_PREFIX)]


def test_the_splits_hold_the_counted_examples(sample_dataset):
    out, stats = sample_dataset
    train = read_records(os.path.join(out, "train-*"))
    evals = read_records(os.path.join(out, "eval-*"))
    assert len(train) == stats["train_examples"] == read_metadata(out).num_examples(
        schema.TRAIN)
    assert len(evals) == stats["eval_examples"] > 0
    assert stats["documents_read"] == 18


def test_half_the_pairs_are_not_next(sample_dataset):
    out, _ = sample_dataset
    *_, labels = _parsed_sample_records(out)
    assert abs(labels.mean() - 0.5) < 0.06


def test_examples_have_the_reference_layout(sample_dataset):
    out, _ = sample_dataset
    ids, positions, _, _ = _parsed_sample_records(out)
    for x, p in zip(ids, positions, strict=True):
        assert len(x) <= 128 and x[0] == 5 and x[-1] == 4 and x.count(4) == 2
        assert all(0 < q < len(x) - 1 and x[q] != 4 for q in p)


def test_the_jobs_masking_takes_its_budget_by_the_80_10_10_rule(sample_dataset, tokenizer):
    out, stats = sample_dataset
    ids, positions, originals, _ = _parsed_sample_records(out)
    masked = sum(len(p) for p in positions)
    assert 0.12 < masked / sum(len(x) - 3 for x in ids) <= 0.15
    assert stats["masked_tokens"] == masked
    replaced = kept = 0
    for x, p, m in zip(ids, positions, originals, strict=True):
        for q, orig in zip(p, m, strict=True):
            assert not tokenizer.is_special[orig]
            kept += x[q] == orig
            replaced += x[q] not in (orig, 6)
    assert 0.05 < kept / masked < 0.16 and replaced > 0


def test_every_word_goes_through_the_word_cache(sample_dataset):
    _, stats = sample_dataset
    # Some words were seen more than once: fewer misses than words.
    words = stats["tokenizer"]["words"]
    assert words > stats["lines_read"]
    assert 0 < stats["tokenizer"]["word_cache_misses"] < words


def test_metadata_counts_every_shard(sample_dataset):
    out, _ = sample_dataset
    meta = read_metadata(out)
    for split in schema.SPLITS:
        shards_meta = meta.splits[split].shards
        assert sorted(shards_meta) == sorted(f for f in os.listdir(out)
                                             if f.startswith(f"{split}-"))
        for name, count in shards_meta.items():
            assert len(read_records(os.path.join(out, name))) == count
        assert sum(shards_meta.values()) == meta.num_examples(split)


def test_labels_are_the_original_pieces(tmp_path, spm_model, sample_lines):
    """Static masks against the same job run unmasked (--masking=dynamic, same seed)."""
    path = corpus_file(tmp_path, sample_lines[:300])
    runs = {}
    for masking in ("static", "dynamic"):
        out, _ = run_job(tmp_path, path, spm_model, f"--masking={masking}", "--seed=9",
                         out=masking)
        recs = read_records(os.path.join(out, "train-*"))
        runs[masking] = tf.io.parse_example(tf.constant(recs), dataset_files.parse_spec(
            "compact", masked=masking == "static"))
    plain = {tuple(x) for x in runs["dynamic"]["input_ids"].to_list()}
    assert len(plain) == len(runs["dynamic"]["input_ids"].to_list())
    restored = set()
    for x, p, m in zip(runs["static"]["input_ids"].to_list(),
                       runs["static"]["masked_lm_positions"].to_list(),
                       runs["static"]["masked_lm_ids"].to_list(), strict=True):
        x = list(x)
        for q, orig in zip(p, m, strict=True):
            x[q] = orig
        restored.add(tuple(x))
    assert restored == plain


def test_num_shards_splits_records_evenly(tmp_path, spm_model, sample_corpus):
    out, _ = run_job(tmp_path, sample_corpus, spm_model, "--dupe_factor=2",
                     "--eval_fraction=0.2", "--num_shards=4")
    meta = read_metadata(out)
    for split in schema.SPLITS:
        counts = list(meta.splits[split].shards.values())
        mean = sum(counts) / 4
        # A hash of each record: shards within a binomial spread, none empty (by blob, one
        # split was 14,811 / 5,890 / 5,056 / 4,043, another had an empty shard).
        assert len(counts) == 4 and min(counts) > 0.6 * mean and max(counts) < 1.4 * mean, \
            (split, counts)


def test_shards_are_sized_by_data(tmp_path, spm_model, sample_corpus):
    out, stats = run_job(tmp_path, sample_corpus, spm_model, "--dupe_factor=8",
                         "--shard_size_mb=0.1", "--split_bytes=5000")
    names = sorted(f for f in os.listdir(out) if f.startswith("train-"))
    sizes = [os.path.getsize(os.path.join(out, n)) for n in names]
    total = sum(sizes)
    # Pieces of at most ~0.1 MB (plus one blob) packed into as few shards as fit.
    assert len(names) >= total // 150_000 >= 2
    assert len(names) <= 2 * total // 100_000 + 1
    assert names == [schema.shard_name("train", i, len(names), schema.Compression.NONE)
                     for i in range(len(names))]
    assert sum(len(read_records(os.path.join(out, n))) for n in names) == \
        stats["train_examples"]


def test_pieces_are_packed_first_fit_largest_first():
    def piece(n):
        return shards.Piece("train", f"p{n}", records=n, nbytes=n)

    plans = shards.plan_shards([piece(n) for n in (60, 50, 30, 30, 20, 5)], "train",
                               schema.Compression.NONE, shard_bytes=100)
    assert [[p.nbytes for p in plan.pieces] for plan in plans] == [[60, 30, 5], [50, 30, 20]]
    assert [plan.name for plan in plans] == ["train-00000-of-00002.tfrecord",
                                             "train-00001-of-00002.tfrecord"]
    exact = shards.plan_shards([piece(7)], "train", schema.Compression.GZIP, 100,
                               num_shards=3)
    assert [len(plan.pieces) for plan in exact] == [1, 0, 0]
    assert exact[2].name == "train-00002-of-00003.tfrecord.gz"


def test_gzip_padded_output_reads_back(tmp_path, spm_model, sample_lines):
    path = corpus_file(tmp_path, sample_lines[:200])
    out, _ = run_job(tmp_path, path, spm_model, "--record_format=padded",
                     "--compression=gzip", "--max_seq_length=32",
                     "--max_predictions_per_seq=5")
    assert any(f.startswith("train-") and f.endswith(".tfrecord.gz") for f in os.listdir(out))
    recs = read_records(os.path.join(out, "train-*"))
    p = tf.io.parse_example(tf.constant(recs), dataset_files.parse_spec(
        "padded", max_seq_length=32, max_predictions_per_seq=5))
    assert p["input_ids"].shape[1] == 32
    lengths = p["input_mask"].numpy().sum(1)
    assert np.all(p["input_ids"].numpy()[np.arange(len(recs)), lengths - 1] == 4)
    w = p["masked_lm_weights"].numpy()
    assert np.all((w == 0) | (w == 1)) and w.sum() > 0


def test_random_doc_b_segments_come_from_other_documents(tmp_path, spm_model, tokenizer,
                                                         sample_corpus, sample_lines):
    flags = ["--nsp_mode=random_doc", "--random_doc_pool_size=50", "--masking=dynamic",
             "--max_seq_length=64"]
    out, stats = run_job(tmp_path, sample_corpus, spm_model, *flags, "--split_bytes=9000")
    assert 0.4 < stats["not_next_fraction"] < 0.65
    recs = read_records(os.path.join(out, "train-*"))
    parsed = tf.io.parse_example(tf.constant(recs), dataset_files.parse_spec("compact",
                                                                      masked=False))
    # Each document's ids as one string: a random B is a run of another document's ids.
    def text(ids):
        return " " + " ".join(map(str, ids)) + " "

    docs = [text(i for ids in tokenizer.encode(d) for i in ids)
            for d in documents_from_lines(sample_lines)]
    random_b = 0
    for ids, label in zip(parsed["input_ids"].to_list(),
                          parsed["next_sentence_labels"].numpy().ravel(), strict=True):
        sep = ids.index(4)
        a, b = text(ids[1:sep]), text(ids[sep + 1:-1])
        home = [d for d in docs if a in d]
        if label == 1 and len(home) == 1:
            # (Bills share boilerplate, so B may also occur in A's document.)
            assert any(b in d for d in docs if d is not home[0]), \
                "a random B came from A's own document"
            random_b += 1
    assert random_b > 50
    # The pool is a corpus-wide sample: the same records however the corpus is split.
    again, _ = run_job(tmp_path, sample_corpus, spm_model, *flags, "--split_bytes=3000",
                       out="again")
    assert sorted(read_records(os.path.join(again, "train-*"))) == sorted(recs)


def test_compressed_corpora_give_the_plain_records(tmp_path, spm_model, sample_lines):
    text = ("\n".join(sample_lines[:250]) + "\n").encode()
    plain_dir, packed = tmp_path / "plain", tmp_path / "packed"
    plain_dir.mkdir()
    packed.mkdir()
    (plain_dir / "c.txt").write_bytes(text)
    (packed / "c.txt.gz").write_bytes(gzip.compress(text))
    (packed / "c.txt.bz2").write_bytes(bz2.compress(text))
    (packed / "c.txt.xz").write_bytes(lzma.compress(text))
    plain, _ = run_job(tmp_path, plain_dir / "c.txt", spm_model, out="o_plain")
    out, stats = run_job(tmp_path, f"{packed}/*", spm_model, out="o_packed")
    assert stats["files_read"] == 3
    want = read_records(os.path.join(plain, "train-*"))
    assert len(want) > 20
    assert sorted(read_records(os.path.join(out, "train-*"))) == sorted(want * 3)


def test_a_corrupt_compressed_file_is_an_error_naming_it(tmp_path, spm_model, sample_lines):
    data = gzip.compress(("\n".join(sample_lines[:400]) + "\n").encode())
    bad = tmp_path / "broken.txt.gz"
    bad.write_bytes(data[:len(data) // 2])  # truncated mid-stream
    with pytest.raises(Exception) as failure:
        run_job(tmp_path, bad, spm_model)
    assert job.is_input_error(failure.value)
    message = job.failure_message(failure.value)
    assert "broken.txt.gz" in message and "gzip" in message and "\n" not in message
    assert not os.path.exists(tmp_path / "out" / schema.METADATA_FILE)


def test_each_bad_input_is_skipped_with_its_count_by_kind(tmp_path, spm_model, sample_lines):
    d = tmp_path / "in"
    (d / "subdir").mkdir(parents=True)
    (d / "empty.txt").write_bytes(b"")
    (d / "spaces.txt").write_bytes(b"   \n\t\n\n  \n")
    (d / "utf16.txt").write_bytes("\n".join(sample_lines[:50]).encode("utf-16"))
    (d / "nul.txt").write_bytes(b"\x00" * 5000)
    good = "\n".join(sample_lines[:60]).encode()
    (d / "mixed.txt").write_bytes(good + b"\n\nbroken \xff\xfe bytes\nsecond line\n\n"
                                  + b"y" * (3 << 20))
    # The same file through two globs is read once.
    out, stats = run_job(tmp_path, f"{d}/*.txt,{d}/mixed*", spm_model,
                         "--max_line_bytes=100000")
    skipped = stats["skipped_or_repaired"]
    assert skipped["lines_invalid_utf8"] == 1
    assert skipped["lines_too_long"] == 1
    assert skipped["lines_whitespace_only"] == 3
    assert skipped["files_empty"] == 1
    assert skipped["files_skipped_not_utf8_text"] == 2
    assert {(os.path.basename(s["path"]), s["reason"][:22]) for s in stats["skipped_files"]} \
        == {("utf16.txt", "starts with a UTF-16 b"), ("nul.txt", "4096 of its first 4096")}
    assert stats["files_read"] == 2
    alone, _ = run_job(tmp_path, d / "mixed.txt", spm_model, "--max_line_bytes=100000",
                       out="alone")
    assert sorted(read_records(os.path.join(out, "train-*"))) == \
        sorted(read_records(os.path.join(alone, "train-*")))


def test_every_mode_counts_repaired_lines_as_the_default_job_does(tmp_path, spm_model,
                                                                  sample_lines):
    # Their extra passes over the corpus read every kind of line the reader repairs.
    path = tmp_path / "awkward.txt"
    path.write_bytes("\n".join(sample_lines[:80]).encode() + b"\nbroken \xff bytes\nnul \x00"
                     b"\n" + b"y" * 2000 + b"\n \t\n\n" + "\n".join(sample_lines[80:160]).encode())
    reader_counts = ("lines_invalid_utf8", "lines_with_nul_bytes", "lines_too_long",
                     "lines_whitespace_only")

    def repaired(*flags):
        _, stats = run_job(tmp_path, path, spm_model, "--max_line_bytes=1000", *flags,
                           out="o" + "".join(flags).replace("-", "_").replace("=", "_"))
        assert stats["examples"] > 0
        return [stats["skipped_or_repaired"].get(key, 0) for key in reader_counts]

    default = repaired()
    assert min(default) >= 1
    for flags in (["--nsp_mode=random_doc"], ["--dedup=lines"], ["--dedup=documents"]):
        assert repaired(*flags) == default, flags


@pytest.mark.parametrize("flag,message", [
    ("--input={tmp}/nothing-*.txt", "matches no file"),
    ("--input={tmp}", "is a directory; give a glob of its files"),
    ("--output_dir={tmp}/a_file", "is a file, not a directory"),
    ("--spm_model={tmp}/missing.model", "missing.model"),
    ("--spm_model={tmp}/garbage.model", "garbage.model"),
    ("--max_seq_length=3", "max_seq_length"),
    ("--eval_fraction=1.5", "--eval_fraction"),
    ("--num_shards=-1", "--num_shards must be >= 0"),
    ("--random_doc_pool_size=0", "--random_doc_pool_size must be positive, got 0"),
    ("--word_cache_size=-5", "--word_cache_size must be >= 0"),
    ("--max_seq_length=8", "nothing to predict: --max_seq_length 8"),
    ("--max_predictions_per_seq=0", "nothing to predict"),
    ("--masked_lm_prob=0", "nothing to predict"),
    ("--max_seq_lenght=64", r"unknown flag --max_seq_lenght \(did you mean --max_seq_length\?\)"),
])
def test_errors_before_work_starts(tmp_path, spm_model, sample_corpus, flag, message):
    (tmp_path / "garbage.model").write_bytes(b"\x00garbage")
    (tmp_path / "a_file").write_text("not a directory")
    args = {"--input": sample_corpus, "--spm_model": spm_model,
            "--output_dir": str(tmp_path / "out")}
    key, value = flag.split("=", 1)
    args[key] = value.format(tmp=tmp_path)
    with pytest.raises(job.JobError, match=message):
        job.run_from_flags([f"{k}={v}" for k, v in args.items()] + FNAPI)
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")


def test_no_training_example_is_an_error_that_publishes_nothing(tmp_path, spm_model):
    corpus = tmp_path / "thin.txt"
    # Whitespace-only lines and one-line documents: nothing to pair in swap mode.
    corpus.write_text("\u3000\n한 줄짜리 문서.\n\n \n또 다른 한 줄.\n\n", encoding="utf-8")
    with pytest.raises(Exception) as failure:
        run_job(tmp_path, corpus, spm_model)
    message = job.failure_message(failure.value)
    assert job.is_input_error(failure.value)
    assert message.startswith(f"no training example was built from --input {corpus}")
    assert "'documents_single_line': 2" in message and "nothing was published" in message
    out = tmp_path / "out"
    assert not out.exists() or not [f for f in os.listdir(out)
                                     if not f.startswith(job.STAGING_PREFIX)]


def test_the_pipeline_publishes_itself_leaving_stale_staging_to_the_launcher(
        tmp_path, spm_model, sample_lines):
    """The launcher only builds and starts the pipeline: run it without the launcher."""
    path = corpus_file(tmp_path, sample_lines[:200])
    out = tmp_path / "out"
    stale = out / f"{job.STAGING_PREFIX}killedrun"
    stale.mkdir(parents=True)
    (stale / "train-piece-1.tfrecord").write_bytes(b"left by a killed run")
    options = JobSettings(inputs=(str(path),), output_dir=str(out), spm_model=spm_model,
                         eval_fraction=0.2)
    source, tok = job.load_tokenizer_source(options)
    facts = {"tokenizer_sha256": tok.sha256, "tokenizer_path": spm_model,
             "vocab_size": tok.vocab_size, "special_ids": tok.special,
             "package_version": "test"}
    with beam.Pipeline(options=PipelineOptions(FNAPI)) as p:
        job.build_pipeline(p, options, source, facts, run_id="selfpublished")
    meta = read_metadata(out)
    stats = load_json(out / schema.STATS_FILE)
    assert meta.num_examples(schema.TRAIN) == stats["train_examples"] > 0
    assert stale.exists()  # a pipeline never removes another run's folder...
    job.remove_stale_staging(str(out))  # ...the next launcher does
    assert sorted(os.listdir(out)) == sorted(
        ["eval-00000-of-00001.tfrecord", "train-00000-of-00001.tfrecord",
         schema.STATS_FILE, schema.METADATA_FILE])


def test_only_overwrite_replaces_a_finished_output(tmp_path, spm_model, sample_lines):
    path = corpus_file(tmp_path, sample_lines[:200])
    out, _ = run_job(tmp_path, path, spm_model)
    before = read_records(os.path.join(out, "train-*"))
    with pytest.raises(job.JobError, match="already holds a finished dataset"):
        run_job(tmp_path, path, spm_model)
    assert read_records(os.path.join(out, "train-*")) == before
    run_job(tmp_path, path, spm_model, "--overwrite", "--seed=99", "--num_shards=2")
    after = read_records(os.path.join(out, "train-*"))
    assert sorted(after) != sorted(before) and len(after) == len(before)
    assert load_json(os.path.join(out, "metadata.json"))["seed"] == 99
    assert len([f for f in os.listdir(out) if f.startswith("train-")]) == 2


def test_failed_run_leaves_nothing_that_looks_finished(tmp_path, spm_model, sample_lines,
                                                       monkeypatch):
    path = corpus_file(tmp_path, sample_lines[:200])
    out = tmp_path / "out"
    calls = []
    original = examples.BuildRecordBlobsFn.process

    def failing(self, *args, **kwargs):
        # Dies right after handing its first blob of records to the writer.
        for blob in original(self, *args, **kwargs):
            calls.append(blob)
            yield blob
            raise RuntimeError("worker died")

    monkeypatch.setattr(examples.BuildRecordBlobsFn, "process", failing)
    with pytest.raises(Exception, match="worker died"):
        run_job(tmp_path, path, spm_model)
    assert calls
    leftovers = [f for f in os.listdir(out) if not f.startswith(job.STAGING_PREFIX)]
    assert leftovers == []


def test_a_failure_while_publishing_leaves_no_final_named_shard(tmp_path, spm_model,
                                                                sample_corpus, monkeypatch):
    """The disk fills up after the shards are in place, as metadata.json is written: the
    shards and stats.json already there do not make a dataset and are removed."""
    from beam_jobs import publish

    written = publish.write_json

    def full_at_metadata(obj, path):
        if path.endswith(schema.METADATA_FILE):
            raise OSError(28, "No space left on device")
        written(obj, path)

    monkeypatch.setattr(publish, "write_json", full_at_metadata)
    with pytest.raises(Exception, match="No space left on device"):
        run_job(tmp_path, sample_corpus, spm_model, "--num_shards=2")
    left = os.listdir(tmp_path / "out")
    assert not [f for f in left if not f.startswith(job.STAGING_PREFIX)], left


def test_a_tokenizer_that_does_not_fit_the_corpus_is_a_warning(tmp_path, sample_corpus,
                                                               capsys):
    """A tokenizer trained on English leaves most Korean as [UNK]: the summary says so."""
    from bertdata.tokenizer import train_tokenizer

    english = tmp_path / "en.txt"
    english.write_text("\n".join(f"the quick brown fox {i} jumps over the lazy dog"
                                 for i in range(200)) + "\n")
    model = train_tokenizer([str(english)], str(tmp_path / "en"), 60, num_threads=1)
    assert job.main([f"--input={sample_corpus}", f"--output_dir={tmp_path / 'out'}",
                     f"--spm_model={model}", "--max_seq_length=64", *FNAPI]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "[UNK]" in line]
    assert len(warnings) == 1 and "of the pieces are [UNK]" in warnings[0]


def test_dedup_keeps_one_copy_of_each_document_wherever_it_repeats(tmp_path, spm_model,
                                                                   sample_lines):
    d1, d2, d3, d4 = multi_line_documents(sample_lines, 4)
    a = write_documents(tmp_path / "a.txt", [d1, d2, d1, d3])
    write_documents(tmp_path / "b.txt", [d2, d4, d2])
    unique = write_documents(tmp_path / "unique.txt", [d1, d2, d3, d4])
    deduped, stats = run_job(tmp_path, os.path.join(os.path.dirname(a), "[ab].txt"),
                             spm_model, "--dedup=documents", "--split_bytes=700",
                             out="deduped")
    plain, _ = run_job(tmp_path, unique, spm_model, out="plain")
    assert sorted(read_records(os.path.join(deduped, "train-*"))) == sorted(
        read_records(os.path.join(plain, "train-*")))
    assert stats["documents_read"] == 7
    assert stats["skipped_or_repaired"]["documents_duplicate_dropped"] == 3


def test_dedup_lines_leaves_out_each_line_seen_before_in_the_corpus(tmp_path, spm_model,
                                                                    sample_lines):
    d1, d2, d3 = multi_line_documents(sample_lines, 3)
    files = {"a.txt": [d1, d2 + [d1[0]], d3[:1] + d1], "b.txt": [[d2[1], d3[1]] + d3, d1]}
    seen, unique_docs = set(), []
    for name in sorted(files):  # the first copy in (file, offset, line) order stays
        for doc in files[name]:
            kept = []
            for line in doc:
                if line not in seen:
                    kept.append(line)
                    seen.add(line)
            if kept:
                unique_docs.append(kept)
        write_documents(tmp_path / name, files[name])
    unique = write_documents(tmp_path / "unique.txt", unique_docs)
    deduped, stats = run_job(tmp_path, str(tmp_path / "[ab].txt"), spm_model,
                             "--dedup=lines", "--split_bytes=600", out="deduped")
    plain, _ = run_job(tmp_path, unique, spm_model, out="plain")
    assert sorted(read_records(os.path.join(deduped, "train-*"))) == sorted(
        read_records(os.path.join(plain, "train-*")))
    lines = sum(len(doc) for docs in files.values() for doc in docs)
    dropped = lines - sum(len(doc) for doc in unique_docs)
    assert dropped > 5 and stats["skipped_or_repaired"]["lines_duplicate_dropped"] == dropped
