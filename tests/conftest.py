"""Shared fixtures: a real tokenizer, a real Beam-built dataset and one real pretraining run
of the whole pipeline, all from the sample corpus."""

import collections
import contextlib
import gc
import os
import shutil

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Two pytest-xdist workers share two cores: one thread per op each (their child processes
# too) rather than two threads per op in each, which only made them wait for each other.
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")

import pytest  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(REPO, "data", "ko_sample.txt")
FNAPI = ["--runner=FnApiRunner"]
# The pytest-xdist group of the tests that need the shared pretraining run.
SHARED_RUN_GROUP = "pretraining_run"


def _split_cpu():
    # Two logical CPU devices for the distribution tests; must happen before TF runs an op.
    from bertmodel.training.devices import split_cpu

    # RuntimeError: already initialized by an earlier import; tests needing two devices skip.
    with contextlib.suppress(RuntimeError):
        split_cpu(2)


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
    from bertdata.tokenizer import SentencePieceTokenizer

    return SentencePieceTokenizer.load(spm_model)


@pytest.fixture(scope="session")
def published_tokenizer(tmp_path_factory):
    """LAYOUT -> a folder with a tokenizer in that published layout, trained here on the
    sample corpus (tests/published_layouts.py), made once per session."""
    from tests.published_layouts import write_tokenizer_folder

    made = {}

    def folder(layout: str) -> str:
        if layout not in made:
            made[layout] = write_tokenizer_folder(str(tmp_path_factory.mktemp(layout)), SAMPLE,
                                                  layout)
        return made[layout]

    return folder


@pytest.fixture(scope="session")
def sample_dataset(tmp_path_factory, spm_model):
    """The Beam job run in-process on the sample corpus: (output dir, stats)."""
    from beam_jobs import create_pretraining_data as job

    out = str(tmp_path_factory.mktemp("data") / "out")
    stats = job.run_from_flags(
        [f"--input={SAMPLE}", f"--output_dir={out}", f"--spm_model={spm_model}",
         "--dupe_factor=3", "--eval_fraction=0.2", "--split_bytes=8192",
         "--seed=7", "--max_seq_length=64", *FNAPI])
    return out, stats


@pytest.fixture(scope="session")
def pipeline_run(tmp_path_factory):
    """The README's main command, scaled down, run once: (workdir, summary).

    `mini` pretrained for 3 epochs of 212 steps of 8 examples on the sample at a 2e-3 peak,
    about 30 s on two cores: its held-out MLM accuracy clears the most-frequent-piece
    baseline by 4-5 points, and its encoder beats random weights when fine-tuned
    (tests/test_finetune.py). Batches of 8 learn more per second here than batches of 32:
    4 epochs at 32 (212 steps, about 25 s) ended only 0.014 above that baseline.
    """
    from bertdata.example_settings import ExampleSettings
    from bertpipe import end_to_end

    work = tmp_path_factory.mktemp("pipeline") / "work"
    summary = end_to_end.run_pipeline(end_to_end.EndToEndSettings(
        corpus=SAMPLE, workdir=str(work), vocab_size=600,
        example=ExampleSettings(max_seq_length=64, dupe_factor=5, seed=3),
        eval_fraction=0.1, config="mini", batch_size=8, epochs=3, learning_rate=2e-3,
        workers=1))
    return work, summary


@pytest.fixture(scope="session")
def finetuned(pipeline_run, tmp_path_factory):
    """The sample's pretrained encoder and the same architecture from random weights,
    fine-tuned on the 8-label task with the same budget at 2e-4: {"pretrained", "scratch":
    dir}. At the default 1e-3 the gap is smaller after so short a pretraining
    (benchmarks/finetune_gain.py shows both), too small for one seed to show reliably."""
    from bertmodel.tasks import classifier
    from bertpipe.sample_task import write_source_task

    work, _ = pipeline_run
    folder = tmp_path_factory.mktemp("finetune")
    train, dev = write_source_task(str(folder))
    out = {}
    for name, scratch in (("pretrained", False), ("scratch", True)):
        out[name] = folder / name
        classifier.finetune(classifier.FinetuneSettings(
            model_dir=str(work / "model"), train=str(train), eval=str(dev),
            output_dir=str(out[name]), epochs=6, patience=6, batch_size=16, learning_rate=2e-4,
            max_seq_length=64, from_scratch=scratch, seed=1, export=not scratch,
            test=None if scratch else str(dev)))
    return out


def pytest_collection_modifyitems(items):
    """Longest work first. pytest-xdist hands tests out in this order, so the shared run's
    group and the modules with the most slow tests start at once, and quick tests fill the
    workers' last minutes (in file order, test_training.py's long tests came last, and one
    worker idled while the other finished them). A module's tests stay together, so that
    its fixtures are made once per worker."""
    slow = collections.Counter(item.module.__name__ for item in items
                               if item.get_closest_marker("slow"))

    def shared_run(item):
        group = item.get_closest_marker("xdist_group")
        return group is not None and group.args == (SHARED_RUN_GROUP,)

    items.sort(key=lambda item: (not shared_run(item), -slow[item.module.__name__]))


def pytest_itemcollected(item):
    """The tests that share the pretraining run are slow (they need it), and under
    pytest-xdist (--dist loadgroup) they go to one worker, so that it is made once."""
    if {"pipeline_run", "finetuned"} & set(item.fixturenames):
        item.add_marker(pytest.mark.slow)
        item.add_marker(pytest.mark.xdist_group(SHARED_RUN_GROUP))


@pytest.fixture(autouse=True)
def _float32_policy():
    """The trainer sets the global Keras dtype policy; keep tests independent of it."""
    yield
    import tensorflow as tf

    tf.keras.mixed_precision.set_global_policy("float32")


@pytest.fixture(autouse=True)
def _collect_each_tests_garbage():
    """Free each test's cyclic garbage right after it. Keras models and tf.data iterators sit
    in reference cycles; left to the automatic collector, an iterator one test left behind
    was freed in the middle of a later in-process Beam job on the same worker, where its
    destructor waited over 12 s for the iterator's threads (caught in native stacks). Freeing
    it where it was made took under a second. What survives is frozen, so that each
    collection reads only what the next test makes: a full one, with TensorFlow loaded, reads
    millions of objects (0.3 to 0.6 s each on this project's 2-core machine); after each test
    it took 2.5 s per worker over a whole run."""
    yield
    gc.collect()
    gc.freeze()


@pytest.fixture
def tiny_run(tmp_path, spm_model, tokenizer, sample_lines):
    """A bertmodel.train-like folder with a tiny random encoder, and a two-label TSV."""
    import dataclasses

    from bertmodel.model.bert import BertBackbone, dummy_inputs
    from bertmodel.model.config import PRESETS

    config = dataclasses.replace(PRESETS["tiny"], vocab_size=tokenizer.vocab_size)
    encoder = BertBackbone(config, name="backbone")
    encoder(dummy_inputs(config))
    run = tmp_path / "run"
    run.mkdir()
    encoder.save(str(run / "encoder.keras"))
    shutil.copyfile(spm_model, run / "tokenizer.model")
    rows = [f"{'ab'[i % 2]}\t{line}" for i, line in enumerate(sample_lines[:24]) if line]
    (tmp_path / "t.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return run, tmp_path / "t.tsv"


@pytest.fixture(scope="module")
def held_back(tmp_path_factory, sample_lines):
    """A tokenizer trained on 80% of the sample's lines (loaded, and its files), and the
    other 20%."""
    from bertdata.tokenizer import train_tokenizer
    from bertdata.tokenizer_files import read_tokenizer_source

    lines = [x for x in sample_lines if x.strip()]
    cut = int(len(lines) * 0.8)
    corpus = tmp_path_factory.mktemp("held") / "train.txt"
    corpus.write_text("\n".join(lines[:cut]) + "\n", encoding="utf-8")
    model = train_tokenizer([str(corpus)], str(corpus.parent / "ko"), 800, num_threads=1)
    source = read_tokenizer_source(model)
    return source.load(), source, lines[cut:]
