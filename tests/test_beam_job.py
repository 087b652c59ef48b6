import collections
import json
import os

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from beam_jobs import create_pretraining_data as job
from beam_jobs import transforms
from bertdata import pretraining as pt
from bertdata import schema, wire_format
from bertdata.corpus import documents_from_lines
from tests.example_helpers import document_examples

FNAPI = ["--runner=FnApiRunner"]


def load_json(path):
    with open(path) as f:
        return json.load(f)


def read_records(pattern):
    files = sorted(tf.io.gfile.glob(pattern))
    comp = "GZIP" if files and files[0].endswith(".gz") else ""
    return [r.numpy() for f in files for r in tf.data.TFRecordDataset(f, comp)]


def expected_records(lines, tokenizer, cfg):
    vocab = pt.VocabTables.from_tokenizer(tokenizer)
    out = []
    for doc in documents_from_lines(lines):
        tokens = [np.array(x, np.int32) for x in tokenizer.encode(doc)]
        for inst in document_examples(tokens, cfg, vocab,
                                                 key=pt.document_key(doc)):
            out.append(wire_format.serialize_instance(inst, "compact", masked=True,
                                                 max_seq_length=cfg.max_seq_length,
                                                 max_predictions_per_seq=20))
    return out


def test_create_examples_transform_equals_the_pure_functions(tmp_path, spm_model, tokenizer,
                                                             sample_lines):
    lines = sample_lines[:400]
    path = tmp_path / "part.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    cfg = pt.ExampleConfig(max_seq_length=64, dupe_factor=2, seed=3)
    with open(spm_model, "rb") as f:
        proto = f.read()
    size = os.path.getsize(path)
    ranges = [(str(path), s, min(s + 1000, size)) for s in range(0, size, 1000)]
    want = expected_records(lines, tokenizer, cfg)
    assert len(want) > 20
    with BeamTestPipeline(options=PipelineOptions(FNAPI)) as p:
        out = p | beam.Create(ranges) | transforms.CreateExamples(proto, cfg)
        # The outputs are blobs of framed records; a blob holds many records.
        records = out["train"] | "Unframe" >> beam.FlatMap(wire_format.unframe_records)
        assert_that(records, equal_to(want), label="train")
        assert_that(out["eval"], equal_to([]), label="eval")


def test_sample_corpus_end_to_end(sample_dataset, tokenizer):
    out, stats = sample_dataset
    meta = load_json(os.path.join(out, schema.METADATA_FILE))
    assert meta["tokenizer"]["sha256"] == tokenizer.sha256
    assert meta["vocab_size"] == tokenizer.vocab_size and meta["record_format"] == "compact"
    assert not [f for f in os.listdir(out) if f.startswith(job.STAGING_PREFIX)]
    spec = schema.parse_spec("compact")
    train = read_records(os.path.join(out, "train-*"))
    evals = read_records(os.path.join(out, "eval-*"))
    assert len(train) == stats["train_examples"] == meta["splits"]["train"]["num_examples"]
    assert len(evals) == stats["eval_examples"] > 0
    parsed = tf.io.parse_example(tf.constant(train + evals), spec)
    ids = parsed["input_ids"].to_list()
    pos = parsed["masked_lm_positions"].to_list()
    lm = parsed["masked_lm_ids"].to_list()
    labels = parsed["next_sentence_labels"].numpy().ravel()
    assert abs(labels.mean() - 0.5) < 0.06
    masked = sum(len(p) for p in pos) / sum(len(x) - 3 for x in ids)
    assert 0.12 < masked <= 0.15
    replaced = kept = 0
    for x, p, m in zip(ids, pos, lm, strict=True):
        assert len(x) <= 128 and x[0] == 5 and x[-1] == 4 and x.count(4) == 2
        assert all(0 < q < len(x) - 1 and x[q] != 4 for q in p)
        for q, orig in zip(p, m, strict=True):
            assert not tokenizer.is_special[orig]
            kept += x[q] == orig
            replaced += x[q] not in (orig, 6)
    assert 0.05 < kept / sum(map(len, pos)) < 0.16 and replaced > 0
    # Labels equal the original pieces: rebuild the examples without masking from the corpus.
    assert stats["documents_read"] == 18
    assert stats["masked_tokens"] == sum(map(len, pos))
    # Every word went through the worker's word cache; some were seen more than once.
    words = stats["tokenizer"]["words"]
    assert words > stats["lines_read"]
    assert 0 < stats["tokenizer"]["word_cache_misses"] < words
    assert 0 < stats["tokenizer"]["word_cache_hit_rate"] < 1


def test_labels_are_the_original_pieces(tmp_path, spm_model, tokenizer, sample_lines):
    """Static masks against the same job run unmasked (--masking=dynamic, same seed)."""
    lines = sample_lines[:300]
    path = tmp_path / "c.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    runs = {}
    for masking in ("static", "dynamic"):
        out = str(tmp_path / masking)
        job.run([f"--input={path}", f"--output_dir={out}", f"--spm_model={spm_model}",
                 f"--masking={masking}", "--seed=9", *FNAPI])
        recs = read_records(os.path.join(out, "train-*"))
        parsed = tf.io.parse_example(tf.constant(recs), schema.parse_spec(
            "compact", masked=masking == "static"))
        runs[masking] = parsed
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


def test_same_records_whatever_the_workers_and_splits(tmp_path, spm_model, sample_corpus):
    a, b = str(tmp_path / "one"), str(tmp_path / "two")
    common = [f"--input={sample_corpus}", f"--spm_model={spm_model}", "--seed=5",
              "--dupe_factor=2", "--eval_fraction=0.1"]
    job.run([*common, f"--output_dir={a}", "--split_bytes=1000000000", *FNAPI])
    job.run([*common, f"--output_dir={b}", "--split_bytes=7000", *FNAPI,
             "--direct_num_workers=2", "--direct_running_mode=multi_processing"])
    c = str(tmp_path / "three_shards")
    job.run([*common, f"--output_dir={c}", "--split_bytes=7000", "--num_shards=3", *FNAPI])
    assert len([f for f in os.listdir(c) if f.startswith("train-")]) == 3
    for split in ("train", "eval"):
        ra = sorted(read_records(os.path.join(a, f"{split}-*")))
        rb = sorted(read_records(os.path.join(b, f"{split}-*")))
        rc = sorted(read_records(os.path.join(c, f"{split}-*")))
        assert ra == rb == rc and len(ra) > 0
    sa = load_json(os.path.join(a, "stats.json"))
    sb = load_json(os.path.join(b, "stats.json"))
    assert sa["counts"] == sb["counts"]


def test_gzip_padded_output_reads_back(tmp_path, spm_model, sample_lines):
    path = tmp_path / "c.txt"
    path.write_text("\n".join(sample_lines[:200]) + "\n", encoding="utf-8")
    out = str(tmp_path / "out")
    job.run([f"--input={path}", f"--output_dir={out}", f"--spm_model={spm_model}",
             "--record_format=padded", "--compression=gzip", "--max_seq_length=32",
             "--max_predictions_per_seq=5", *FNAPI])
    files = sorted(os.listdir(out))
    assert any(f.startswith("train-") and f.endswith(".tfrecord.gz") for f in files)
    recs = read_records(os.path.join(out, "train-*"))
    p = tf.io.parse_example(tf.constant(recs), schema.parse_spec(
        "padded", max_seq_length=32, max_predictions_per_seq=5))
    assert p["input_ids"].shape[1] == 32
    lengths = p["input_mask"].numpy().sum(1)
    assert np.all(p["input_ids"].numpy()[np.arange(len(recs)), lengths - 1] == 4)
    w = p["masked_lm_weights"].numpy()
    assert np.all((w == 0) | (w == 1)) and w.sum() > 0


def test_random_doc_mode_runs_on_the_whole_corpus(tmp_path, spm_model, sample_corpus):
    out = str(tmp_path / "rd")
    stats = job.run([f"--input={sample_corpus}", f"--output_dir={out}",
                     f"--spm_model={spm_model}", "--nsp_mode=random_doc", "--split_bytes=9000",
                     "--random_doc_pool_size=50", *FNAPI])
    assert stats["examples"] > 100
    assert 0.4 < stats["not_next_fraction"] < 0.6
    assert load_json(os.path.join(out, "metadata.json"))["nsp_mode"] == "random_doc"


def test_bad_inputs_are_skipped_and_counted(tmp_path, spm_model, sample_lines):
    d = tmp_path / "in"
    d.mkdir()
    (d / "empty.txt").write_bytes(b"")
    (d / "spaces.txt").write_bytes(b"   \n\t\n\n  \n")
    good = "\n".join(sample_lines[:60]).encode()
    (d / "mixed.txt").write_bytes(good + b"\n\nbroken \xff\xfe bytes\nsecond line\n\n"
                                  + b"y" * (3 << 20))
    out = str(tmp_path / "out")
    stats = job.run([f"--input={d}/*.txt", f"--output_dir={out}", f"--spm_model={spm_model}",
                     "--max_line_bytes=100000", *FNAPI])
    skipped = stats["skipped_or_repaired"]
    assert skipped["lines_invalid_utf8"] == 1
    assert skipped["lines_too_long"] == 1
    assert skipped["lines_whitespace_only"] == 3
    assert stats["counts"]["files_empty"] == 1
    assert stats["examples"] > 0


@pytest.mark.parametrize("flag,message", [
    ("--input={tmp}/nothing-*.txt", "matches no file"),
    ("--spm_model={tmp}/missing.model", "missing.model"),
    ("--spm_model={tmp}/garbage.model", "garbage.model"),
    ("--max_seq_length=3", "max_seq_length"),
    ("--eval_fraction=1.5", "eval_fraction"),
])
def test_errors_before_work_starts(tmp_path, spm_model, sample_corpus, flag, message):
    (tmp_path / "garbage.model").write_bytes(b"\x00garbage")
    args = {"--input": sample_corpus, "--spm_model": spm_model,
            "--output_dir": str(tmp_path / "out")}
    key, value = flag.split("=", 1)
    args[key] = value.format(tmp=tmp_path)
    with pytest.raises(job.JobError, match=message):
        job.run([f"{k}={v}" for k, v in args.items()] + FNAPI)
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")


def test_all_empty_inputs_is_an_error(tmp_path, spm_model):
    (tmp_path / "a.txt").write_bytes(b"")
    with pytest.raises(job.JobError, match="every matched file is empty"):
        job.run([f"--input={tmp_path}/*.txt", f"--output_dir={tmp_path}/out",
                 f"--spm_model={spm_model}", *FNAPI])


def test_finished_output_is_protected_and_overwrite_replaces_it(tmp_path, spm_model,
                                                                 sample_lines):
    path = tmp_path / "c.txt"
    path.write_text("\n".join(sample_lines[:200]) + "\n", encoding="utf-8")
    out = str(tmp_path / "out")
    base = [f"--input={path}", f"--output_dir={out}", f"--spm_model={spm_model}", *FNAPI]
    job.run(base)
    before = read_records(os.path.join(out, "train-*"))
    with pytest.raises(job.JobError, match="already holds a finished dataset"):
        job.run(base)
    assert read_records(os.path.join(out, "train-*")) == before
    job.run([*base, "--overwrite", "--seed=99"])
    after = read_records(os.path.join(out, "train-*"))
    assert sorted(after) != sorted(before) and len(after) == len(before)
    assert load_json(os.path.join(out, "metadata.json"))["seed"] == 99


def test_failed_run_leaves_nothing_that_looks_finished(tmp_path, spm_model, sample_lines,
                                                       monkeypatch):
    path = tmp_path / "c.txt"
    path.write_text("\n".join(sample_lines[:200]) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    calls = collections.Counter()
    original = transforms.BuildExamplesFn.process

    def failing(self, *args, **kwargs):
        # Dies right after handing its first blob of records to the writer.
        for blob in original(self, *args, **kwargs):
            calls["records"] += len(wire_format.unframe_records(blob))
            yield blob
            raise RuntimeError("worker died")

    monkeypatch.setattr(transforms.BuildExamplesFn, "process", failing)
    with pytest.raises(Exception, match="worker died"):
        job.run([f"--input={path}", f"--output_dir={out}", f"--spm_model={spm_model}",
                 *FNAPI])
    assert calls["records"] > 0
    leftovers = os.listdir(out) if out.exists() else []
    assert leftovers == [], leftovers


def test_sdist_for_dataflow_setup_file_holds_the_packages(tmp_path):
    """Dataflow installs the job's code on workers from an sdist built by --setup_file."""
    import subprocess
    import sys
    import tarfile

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "setup.py", "-q", "sdist", "--dist-dir",
                           str(tmp_path)], cwd=repo, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    (tarball,) = list(tmp_path.glob("bertpipe-*.tar.gz"))
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
    for module in ("beam_jobs/transforms.py", "bertdata/pretraining.py", "bertdata/schema.py",
                   "bertmodel/model.py"):
        assert any(n.endswith(module) for n in names), module
