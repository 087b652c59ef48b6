"""Shared fixtures: a real tokenizer and a real Beam-built dataset from the sample corpus."""

import contextlib
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(REPO, "data", "ko_sample.txt")
FNAPI = ["--runner=FnApiRunner"]


def _split_cpu():
    # Two logical CPU devices for the distribution tests; must happen before TF runs an op.
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    # RuntimeError: already initialized by an earlier import; tests needing two devices skip.
    with contextlib.suppress(RuntimeError):
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)


_split_cpu()


@pytest.fixture(scope="session")
def sample_corpus():
    return SAMPLE


@pytest.fixture(scope="session")
def sample_lines():
    with open(SAMPLE, encoding="utf-8") as f:
        return f.read().splitlines()


@pytest.fixture(scope="session")
def spm_model(tmp_path_factory):
    """A SentencePiece model trained here on the sample corpus (1,000 + 7 pieces)."""
    from bertdata.tokenizer import train_tokenizer

    prefix = str(tmp_path_factory.mktemp("tok") / "ko")
    return train_tokenizer([SAMPLE], prefix, 1000, num_threads=1)


@pytest.fixture(scope="session")
def tokenizer(spm_model):
    from bertdata.tokenizer import Tokenizer

    return Tokenizer.load(spm_model)


@pytest.fixture(scope="session")
def sample_dataset(tmp_path_factory, spm_model):
    """The Beam job run in-process on the sample corpus: (output dir, stats)."""
    from beam_jobs import create_pretraining_data as job

    out = str(tmp_path_factory.mktemp("data") / "out")
    stats = job.run([f"--input={SAMPLE}", f"--output_dir={out}", f"--spm_model={spm_model}",
                     "--dupe_factor=3", "--eval_fraction=0.2", "--split_bytes=8192",
                     "--seed=7", *FNAPI])
    return out, stats


@pytest.fixture(autouse=True)
def _float32_policy():
    """The trainer sets the global Keras dtype policy; keep tests independent of it."""
    yield
    import tensorflow as tf

    tf.keras.mixed_precision.set_global_policy("float32")
