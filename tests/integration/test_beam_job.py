"""The Beam data job run in-process (FnApiRunner): records, publishing, inputs, errors."""

import json
import os
import re
import subprocess
import sys

import pytest

from tests.beam_job_helpers import (
    corpus_file,
    multi_line_documents,
    read_records,
    run_job,
    write_documents,
)
from tests.conftest import REPO


@pytest.mark.slow
def test_same_records_whatever_the_workers_splits_and_shards(tmp_path, spm_model,
                                                             sample_corpus):
    common = ["--seed=5", "--dupe_factor=2", "--eval_fraction=0.1"]
    a, sa = run_job(tmp_path, sample_corpus, spm_model, *common, "--split_bytes=1000000000",
                    out="one")
    b, sb = run_job(tmp_path, sample_corpus, spm_model, *common, "--split_bytes=7000",
                    "--direct_num_workers=2", "--direct_running_mode=multi_processing",
                    out="two")
    c, _ = run_job(tmp_path, sample_corpus, spm_model, *common, "--split_bytes=7000",
                   "--num_shards=3", out="three_shards")
    assert len([f for f in os.listdir(c) if f.startswith("train-")]) == 3
    for split in ("train", "eval"):
        ra = sorted(read_records(os.path.join(a, f"{split}-*")))
        rb = sorted(read_records(os.path.join(b, f"{split}-*")))
        rc = sorted(read_records(os.path.join(c, f"{split}-*")))
        assert ra == rb == rc and len(ra) > 0
    assert sa["counts"] == sb["counts"]


@pytest.mark.slow
def test_a_full_disk_is_one_line_and_publishes_nothing(tmp_path, spm_model, sample_corpus):
    if os.geteuid() != 0 or subprocess.run(["unshare", "-m", "true"]).returncode:
        pytest.skip("needs root and unshare to mount a small private tmpfs")
    out = tmp_path / "full"
    out.mkdir()
    script = (f"mount -t tmpfs -o size=256k tmpfs {out} && exec {sys.executable} -m "
              f"beam_jobs.create_pretraining_data --input={sample_corpus} "
              f"--output_dir={out}/data --spm_model={spm_model} --dupe_factor=10 "
              "--runner=FnApiRunner")
    done = subprocess.run(["unshare", "-m", "sh", "-c", script], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    # Exit 2: the user can fix it (more space, another --output_dir), as with bad input.
    assert done.returncode == 2, done.stderr[-2000:]
    assert len(errors) == 1 and "no space left on device" in errors[0], done.stderr[-2000:]
    assert errors[0].startswith(f"error: --output_dir {out}/data: the data job failed")
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_progress_and_summary_show_and_beams_chatter_does_not(tmp_path, spm_model,
                                                              sample_corpus):
    def cli(*extra):
        return subprocess.run(
            [sys.executable, "-m", "beam_jobs.create_pretraining_data",
             f"--input={sample_corpus}", f"--output_dir={tmp_path / extra[0]}",
             f"--spm_model={spm_model}", "--runner=FnApiRunner", *extra[1:]],
            cwd=REPO, capture_output=True, text=True, timeout=120)

    quiet = cli("a")
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    assert "MB read (100%)" in quiet.stderr
    assert "wrote " in quiet.stderr and " train and 0 eval examples" in quiet.stderr
    assert "INFO:" not in quiet.stderr and "apache_beam" not in quiet.stderr
    summary = json.loads(quiet.stdout.strip().splitlines()[-1])
    assert summary["documents_read"] == 18
    loud = cli("b", "--verbosity=debug")
    assert loud.returncode == 0 and "apache_beam" in loud.stderr


@pytest.mark.slow
def test_sdist_for_dataflow_holds_the_packages_and_not_tensorflow(tmp_path):
    """--setup_file installs this package on workers from an sdist: it must not pull in
    TensorFlow, tensorflow-text or matplotlib, which the data job never imports."""
    done = subprocess.run([sys.executable, "setup.py", "-q", "sdist", "--dist-dir",
                           str(tmp_path)], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    (tarball,) = list(tmp_path.glob("bertpipe-*.tar.gz"))
    import tarfile

    with tarfile.open(tarball) as tar:
        names = tar.getnames()
        (requires,) = [n for n in names if n.endswith(".egg-info/requires.txt")]
        # What pip installs without extras: the lines before the first [extra] section.
        base = tar.extractfile(requires).read().decode().split("\n[", 1)[0].split()
    for module in ("beam_jobs/examples.py", "beam_jobs/publish.py", "bertdata/pretraining.py",
                   "bertdata/wire_format.py"):
        assert any(n.endswith(module) for n in names), module
    assert any(r.startswith("apache-beam") for r in base)
    assert not [r for r in base if any(heavy in r for heavy in
                                       ("tensorflow", "matplotlib", "keras"))], base


@pytest.mark.slow
def test_the_data_job_runs_without_tensorflow(tmp_path, spm_model, sample_lines):
    """What a worker imports: beam_jobs and everything it pulls in, with TensorFlow absent."""
    path = corpus_file(tmp_path, sample_lines[:120])
    script = f"""
import importlib.abc, sys
class NoHeavyLibraries(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "tensorflow_text", "matplotlib", "keras"):
            raise ImportError(f"{{name}} is not installed here")
sys.meta_path.insert(0, NoHeavyLibraries())
from beam_jobs import create_pretraining_data as job
stats = job.run_from_flags(["--input={path}", "--output_dir={tmp_path / 'out'}",
                            "--spm_model={spm_model}", "--runner=FnApiRunner"])
heavy = [m for m in sys.modules if m.split(".")[0] in ("tensorflow", "matplotlib")]
print(stats["train_examples"], heavy)
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    examples_written, heavy = done.stdout.split(maxsplit=1)
    assert int(examples_written) > 0 and heavy.strip() == "[]"


@pytest.mark.slow
def test_every_core_and_no_gcp_extra_the_console_shows_only_the_jobs_lines(tmp_path, spm_model,
                                                                            sample_corpus):
    """The README's main command installs Beam without its gcp extra; there, importing Beam
    logs through the root logger and the SDK worker processes log at INFO. A package that
    cannot be imported stands in for the missing Google client (in the workers too)."""
    missing = tmp_path / "no_gcp" / "apitools"
    missing.mkdir(parents=True)
    (missing / "__init__.py").write_text("raise ImportError('not installed')\n")
    env = {**os.environ, "PYTHONPATH": str(missing.parent)}

    def cli(*extra):
        return subprocess.run(
            [sys.executable, "-m", "beam_jobs.create_pretraining_data",
             f"--input={sample_corpus}", f"--output_dir={tmp_path / extra[0]}",
             f"--spm_model={spm_model}", "--direct_num_workers=2",
             "--direct_running_mode=multi_processing", *extra[1:]],
            cwd=REPO, capture_output=True, text=True, timeout=300, env=env)

    quiet = cli("a")
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    lines = quiet.stderr.splitlines()
    own = re.compile(r"^\d\d:\d\d:\d\d ")  # the package's log format
    assert lines and all(own.match(line) for line in lines), lines
    loud = cli("b", "--verbosity=debug")
    assert loud.returncode == 0 and "sdk_worker" in loud.stderr


@pytest.mark.slow
def test_dedup_keeps_the_same_records_on_every_worker_count(tmp_path, spm_model, sample_lines):
    docs = multi_line_documents(sample_lines, 6)
    write_documents(tmp_path / "a.txt", docs + docs[:3])
    write_documents(tmp_path / "b.txt", docs[2:] + docs[::2])
    corpus = str(tmp_path / "[ab].txt")
    one, s1 = run_job(tmp_path, corpus, spm_model, "--dedup=documents",
                      "--split_bytes=100000000", out="one")
    two, s2 = run_job(tmp_path, corpus, spm_model, "--dedup=documents", "--split_bytes=500",
                      "--direct_num_workers=2", "--direct_running_mode=multi_processing",
                      out="two")
    assert sorted(read_records(os.path.join(one, "train-*"))) == sorted(
        read_records(os.path.join(two, "train-*")))
    dropped = (len(docs) + 3) + (len(docs) - 2 + 3) - len(docs)  # read minus distinct
    assert s1["counts"]["documents_duplicate_dropped"] == dropped
    assert s1["counts"] == s2["counts"]
