"""Shared fixtures: a real tokenizer, a real Beam-built dataset and one real pretraining run
of the whole pipeline, all from the sample corpus."""

import contextlib
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

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
                     "--seed=7", "--max_seq_length=64", *FNAPI])
    return out, stats


@pytest.fixture(scope="session")
def pipeline_run(tmp_path_factory):
    """The README's main command, scaled down, run once: (workdir, summary).

    `mini` pretrained for 5 epochs of 107 steps on the sample at a 2e-3 peak: enough for its
    encoder to beat random weights when fine-tuned (tests/test_finetune.py; with 3 epochs, or
    3 at 4e-3, it did not on every seed), in about a minute on two cores.
    """
    from bertpipe import end_to_end

    work = tmp_path_factory.mktemp("pipeline") / "work"
    summary = end_to_end.run(end_to_end.EndToEndConfig(
        corpus=SAMPLE, workdir=str(work), vocab_size=600, max_seq_length=64, dupe_factor=10,
        eval_fraction=0.1, config="mini", batch_size=32, epochs=5, learning_rate=2e-3,
        workers=1, seed=3))
    return work, summary


def write_task(folder, per_class=15):
    """A labelled task from the sample corpus: which source a line comes from, the
    Constitution or one of the seven bills (8 labels); the first 60% of each source's lines
    are for training (at most per_class), the rest for evaluation."""
    from bertdata.corpus import documents_from_lines

    with open(SAMPLE, encoding="utf-8") as f:
        docs = list(documents_from_lines(f.read().splitlines()))
    sources = {"헌법": [line for doc in docs[:11] for line in doc]}
    sources.update({doc[0][:12]: doc for doc in docs[11:]})
    train, dev = [], []
    for label, lines in sources.items():
        lines = [x for x in lines if len(x) > 10]
        cut = int(len(lines) * 0.6)
        train += [f"{label}\t{x}" for x in lines[:cut][:per_class]]
        dev += [f"{label}\t{x}" for x in lines[cut:]]
    (folder / "train.tsv").write_text("\n".join(train) + "\n", encoding="utf-8")
    (folder / "dev.tsv").write_text("\n".join(dev) + "\n", encoding="utf-8")
    return folder / "train.tsv", folder / "dev.tsv"


@pytest.fixture(scope="session")
def finetuned(pipeline_run, tmp_path_factory):
    """The sample's pretrained encoder and the same architecture from random weights,
    fine-tuned on the 8-label task with the same budget: {"pretrained", "scratch": dir}."""
    from bertmodel import finetune

    work, _ = pipeline_run
    folder = tmp_path_factory.mktemp("finetune")
    train, dev = write_task(folder)
    out = {}
    for name, scratch in (("pretrained", False), ("scratch", True)):
        out[name] = folder / name
        finetune.finetune(finetune.FinetuneConfig(
            model_dir=str(work / "model"), train=str(train), eval=str(dev),
            output_dir=str(out[name]), epochs=10, patience=10, batch_size=16,
            learning_rate=1e-3, from_scratch=scratch, seed=1))
    return out


@pytest.fixture(autouse=True)
def _float32_policy():
    """The trainer sets the global Keras dtype policy; keep tests independent of it."""
    yield
    import tensorflow as tf

    tf.keras.mixed_precision.set_global_policy("float32")
