"""The data job beyond one process: its size, the portable runner, Dataflow, Flink, Spark.

The Flink and Spark tests carry the `engines` marker: each starts a JVM job server (built by
tests/job_server_jars.py, cached outside the repository) and takes tens of seconds. They
skip, saying why, where Java or Maven is missing.
"""

import os
import socket
import subprocess
import sys

import apache_beam as beam
import pytest
import tensorflow as tf
from apache_beam.io.filesystem import FileMetadata, FileSystem
from apache_beam.options.pipeline_options import PipelineOptions

from beam_jobs import create_pretraining_data as job
from beam_jobs.settings import JobSettings
from tests import job_server_jars
from tests.conftest import FNAPI, REPO
from tests.services import Service, interpreter_env, wait_for

# gRPC threads of a finished portable job may outlive the services they talked to and
# report "Multiplexer hanging up"; the job itself has finished and been checked by then.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")


def read_records(pattern):
    files = sorted(tf.io.gfile.glob(pattern))
    return sorted(r.numpy() for f in files for r in tf.data.TFRecordDataset(f))


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory, sample_lines):
    path = tmp_path_factory.mktemp("engines") / "c.txt"
    path.write_text("\n".join(sample_lines[:500]) + "\n", encoding="utf-8")
    return path


JOB_FLAGS = ["--dupe_factor=2", "--eval_fraction=0.2", "--seed=11", "--split_bytes=20000"]


@pytest.fixture(scope="module")
def in_process_records(tmp_path_factory, small_corpus, spm_model):
    """The records of the in-process runner, which every engine must reproduce."""
    out = str(tmp_path_factory.mktemp("in_process") / "out")
    job.run_from_flags(
        [f"--input={small_corpus}", f"--output_dir={out}", f"--spm_model={spm_model}",
         *JOB_FLAGS, *FNAPI])
    return {split: read_records(os.path.join(out, f"{split}-*")) for split in ("train", "eval")}


def assert_same_records(out, want):
    got = {split: read_records(os.path.join(out, f"{split}-*")) for split in want}
    assert got == want and len(want["train"]) > 50
    assert os.path.exists(os.path.join(out, "metadata.json"))


class SyntheticListing(FileSystem):
    """A Beam filesystem ('synthetic://') whose one folder lists FILES files, lazily."""

    FILES = 1
    listed = 0

    @classmethod
    def scheme(cls):
        return "synthetic"

    def join(self, base, *paths):
        return "/".join([base.rstrip("/"), *paths])

    def split(self, path):
        head, _, tail = path.rpartition("/")
        return head, tail

    def has_dirs(self):
        return False

    def _list(self, prefix):
        for i in range(SyntheticListing.FILES):
            SyntheticListing.listed += 1
            yield FileMetadata(f"synthetic://corpus/doc-{i:07d}.txt", 100_000, 0.0)

    def exists(self, path):
        return path.startswith("synthetic://corpus")

    def _unsupported(self, *args, **kwargs):
        raise NotImplementedError("a listing only")

    mkdirs = create = open = copy = rename = size = last_updated = _unsupported
    checksum = metadata = delete = _unsupported


def test_the_job_description_does_not_grow_with_the_corpus(spm_model, tmp_path):
    source, tok = job.load_tokenizer_source(JobSettings(inputs=("-",), output_dir="-",
                                                        spm_model=spm_model))
    facts = {"tokenizer_sha256": tok.sha256, "tokenizer_path": spm_model,
             "vocab_size": tok.vocab_size, "special_ids": tok.special,
             "package_version": "test"}
    sizes = {}
    for files in (1, 1_000_000):
        SyntheticListing.FILES, SyntheticListing.listed = files, 0
        job.check_inputs(["synthetic://corpus/*.txt"])
        assert SyntheticListing.listed <= 2  # the launcher looked at one match, not all
        options = JobSettings(inputs=("synthetic://corpus/*.txt",),
                             output_dir=str(tmp_path / "out"), spm_model=spm_model)
        p = beam.Pipeline(options=PipelineOptions(FNAPI))
        job.build_pipeline(p, options, source, facts, run_id="fixed", started_at=1.0)
        description = p.to_runner_api()
        sizes[files] = len(description.SerializeToString())
        names = [t.unique_name for t in description.components.transforms.values()]
        # The range descriptors are shuffled once; the globs are not shuffled at all.
        assert sum(1 for n in names if n == "SpreadRanges") == 1
        assert not [n for n in names if n.startswith("Globs/MaybeReshuffle/")]
    # Beam pickles closures and Shared handles a little differently each time: two builds
    # of the very same job differ by ~150 bytes. A listing in the job would add ~50 MB.
    assert abs(sizes[1] - sizes[1_000_000]) < 1024, sizes


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _port_open(port):
    with socket.socket() as s:
        return s.connect_ex(("localhost", port)) == 0


@pytest.mark.slow
def test_portable_runner_with_workers_in_other_processes(tmp_path, small_corpus, spm_model,
                                                         in_process_records):
    job_port, worker_port = _free_port(), _free_port()
    services = [
        Service("the job service",
                [sys.executable, "-m", "apache_beam.runners.portability.local_job_service_main",
                 f"--port={job_port}"], cwd=REPO),
        Service("the worker pool",
                [sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main",
                 f"--service_port={worker_port}"], cwd=REPO),
    ]
    out = str(tmp_path / "out")
    log = tmp_path / "job.log"
    try:
        for port, service in zip((job_port, worker_port), services, strict=True):
            wait_for(lambda p=port: _port_open(p), services, 60, f"{service.name}'s port")
        with open(log, "w") as log_file:
            launcher = subprocess.Popen(
                [sys.executable, "-m", "beam_jobs.create_pretraining_data",
                 f"--input={small_corpus}", f"--output_dir={out}", f"--spm_model={spm_model}",
                 *JOB_FLAGS, "--runner=PortableRunner", f"--job_endpoint=localhost:{job_port}",
                 "--environment_type=EXTERNAL", f"--environment_config=localhost:{worker_port}"],
                cwd=REPO, env=interpreter_env(), stdout=log_file, stderr=subprocess.STDOUT)
            try:
                wait_for(lambda: launcher.poll() is not None, services, 300, "the job")
            finally:
                launcher.kill()
                launcher.wait()
    finally:
        for service in services:
            service.stop()
    assert launcher.returncode == 0, log.read_text()[-3000:]
    assert_same_records(out, in_process_records)


def test_dataflow_dry_run_translates_the_job_and_publishes_nothing(tmp_path, small_corpus,
                                                                   spm_model):
    out = tmp_path / "out"
    result = job.run_from_flags([f"--input={small_corpus}", f"--output_dir={out}",
                                 f"--spm_model={spm_model}", "--nsp_mode=random_doc",
                                 "--runner=DataflowRunner", "--dry_run=True",
                                 "--project=bertpipe-test", "--region=us-central1", "--temp_location=gs://bertpipe-test/tmp",
                                 f"--setup_file={os.path.join(REPO, 'setup.py')}"])
    assert result is None
    assert not out.exists()


@pytest.fixture
def local_job_server(monkeypatch):
    """What a job server started for one small job needs here.

    Its JVM compiles with the quick compiler only and collects with the serial collector:
    the job is over before the optimizing compiler pays off (Flink 9.3 s against 6.3 s,
    Spark 8.6 s against 7.1 s, one at a time on two cores).

    FlinkRunner and SparkRunner leave the JVM to an exit hook, which a pytest-xdist worker
    never runs: without the teardown, each run of the suite left two JVMs behind. Beam keeps
    the servers it started in one registry; stop them all."""
    monkeypatch.setenv("JAVA_TOOL_OPTIONS", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
    yield
    from apache_beam.utils.subprocess_server import SubprocessServer

    registry = SubprocessServer._cache
    for key in list(registry._cache):
        registry.force_remove(*key)


def _engine_jar(engine):
    try:
        return job_server_jars.job_server_jar(engine)
    except job_server_jars.Unavailable as e:
        pytest.skip(f"{engine} job server unavailable: {e}")


@pytest.mark.engines
@pytest.mark.slow
def test_flink_gives_the_in_process_records(tmp_path, small_corpus, spm_model,
                                            in_process_records, local_job_server):
    jar = _engine_jar("flink")
    out = str(tmp_path / "out")
    job.run_from_flags(
        [f"--input={small_corpus}", f"--output_dir={out}", f"--spm_model={spm_model}",
         *JOB_FLAGS, "--runner=FlinkRunner", "--flink_master=[local]", "--parallelism=2",
         "--flink_version=1.19", f"--flink_job_server_jar={jar}",
         "--environment_type=LOOPBACK"])
    assert_same_records(out, in_process_records)


@pytest.mark.engines
@pytest.mark.slow
def test_spark_gives_the_in_process_records(tmp_path, small_corpus, spm_model,
                                            in_process_records, local_job_server):
    jar = _engine_jar("spark")
    out = str(tmp_path / "out")
    job.run_from_flags(
        [f"--input={small_corpus}", f"--output_dir={out}", f"--spm_model={spm_model}",
         *JOB_FLAGS, "--runner=SparkRunner", "--spark_master_url=local[2]",
         f"--spark_job_server_jar={jar}", "--environment_type=LOOPBACK"])
    assert_same_records(out, in_process_records)
