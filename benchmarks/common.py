"""What several benchmarks share: slices of the NSMC corpus, the NSMC task files, and the
stages of an NSMC run (tokenizer, data job, pretraining, fine-tuning at several rates)."""

from __future__ import annotations

import dataclasses
import gzip
import logging
import os
import time
import zlib

from beam_jobs.create_pretraining_data import run_job
from beam_jobs.settings import JobSettings
from bertcommon import cli
from bertdata.pretraining import ExampleSettings
from bertdata.tokenizer import train_tokenizer
from bertmodel.tasks import classifier
from bertmodel.train import train
from bertmodel.training.settings import TrainSettings

log = logging.getLogger("bertpipe.benchmarks")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The team's copy of the NSMC corpus and task (its README says where they come from).
NSMC = os.path.normpath(os.path.join(REPO, "..", "shared", "corpus", "nsmc"))


def open_text(path: str):
    """A text file, plain or gzip-compressed, for reading."""
    return gzip.open(path, "rt", encoding="utf-8") if path.endswith(".gz") else \
        open(path, encoding="utf-8")


def corpus_slice(path: str, megabytes: float, out: str) -> str:
    """The first MEGABYTES of PATH's text (plain or .gz), cut where a document ends."""
    budget = int(megabytes * 1e6)
    with open_text(path) as src, open(out, "w", encoding="utf-8") as dst:
        written = 0
        for line in src:
            if written >= budget and not line.strip():
                break  # a document ends here
            dst.write(line)
            written += len(line.encode("utf-8"))
    return out


def read_nsmc(path: str) -> list[tuple[str, str, str]]:
    """(id, text, label) rows of an NSMC file; rows with an empty text are skipped."""
    with open_text(path) as f:
        rows = [line.rstrip("\n").split("\t") for line in f]
    return [(r[0], r[1].strip(), r[2]) for r in rows[1:] if len(r) == 3 and r[1].strip()]


@dataclasses.dataclass(frozen=True)
class NsmcSettings(cli.Settings):
    """The flags every NSMC benchmark shares: the files, the recipe, the budget."""
    workdir: str = cli.flag(help="where every stage writes")
    train: str = cli.flag(os.path.join(NSMC, "nsmc_train.txt.gz"),
                          help="NSMC train (id<TAB>document<TAB>label, a header; plain or .gz)")
    test: str = cli.flag(os.path.join(NSMC, "nsmc_test.txt.gz"), help="NSMC test, the same")
    corpus: str = cli.flag(os.path.join(NSMC, "nsmc_corpus.txt.gz"),
                           help="the pretraining text (plain or .gz)")
    config: str = cli.flag("mini", help="the preset pretrained")
    pretrain_steps: int = cli.flag(20_000, check=cli.positive)
    batch_size: int = cli.flag(64, check=cli.positive)
    max_seq_length: int = cli.flag(128, check=cli.at_least(8))
    max_predictions_per_seq: int = cli.flag(20, check=cli.positive)
    masked_lm_prob: float = cli.flag(0.15, check=cli.between(0.0, 1.0))
    nsp_mode: str = cli.flag("swap")
    masking: str = cli.flag("static")
    dupe_factor: int = cli.flag(5, check=cli.positive)
    keep_encoder_every_steps: int | None = cli.flag(
        None, check=cli.positive, help="keep the encoder every N pretraining steps")
    finetune_examples: int = cli.flag(0, check=cli.non_negative, help="0: every review")
    finetune_epochs: int = cli.flag(2, check=cli.positive)
    finetune_batch_size: int = cli.flag(64, check=cli.positive)
    finetune_seq_length: int = cli.flag(64, check=cli.at_least(3))
    learning_rates: tuple[float, ...] = cli.flag(
        (1e-4, 3e-4, 1e-3), help="fine-tuning rates; the best on the dev split is kept")


def write_tasks(settings: NsmcSettings, work: str) -> dict:
    """train.tsv, dev.tsv (1 in 10 reviews of NSMC train by id hash) and test.tsv."""
    train = read_nsmc(settings.train)
    dev = [r for r in train if zlib.crc32(r[0].encode()) % 10 == 0]
    train = [r for r in train if zlib.crc32(r[0].encode()) % 10 != 0]
    if settings.finetune_examples:
        train = train[:settings.finetune_examples]
    paths = {}
    for name, rows in (("train", train), ("dev", dev), ("test", read_nsmc(settings.test))):
        paths[name] = os.path.join(work, f"{name}.tsv")
        with open(paths[name], "w", encoding="utf-8") as f:
            f.writelines(f"{label}\t{text}\n" for _, text, label in rows)
        log.info("%s: %d reviews", paths[name], len(rows))
    return paths


class Timings:
    """Seconds of each named stage, logged as they end."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    def stage(self, what: str) -> _Stage:
        return _Stage(self, what)


class _Stage:
    def __init__(self, timings: Timings, what: str):
        self.timings, self.what = timings, what

    def __enter__(self):
        log.info("=== %s", self.what)
        self.start = time.time()

    def __exit__(self, *exc):
        self.timings.seconds[self.what] = round(time.time() - self.start, 1)
        log.info("    %s: %.0f s", self.what, self.timings.seconds[self.what])


TIMINGS = Timings()


def train_reference_tokenizer(corpus: str, work: str, vocab_size: int = 32_000) -> str:
    """A SentencePiece model of VOCAB_SIZE pieces (+ the 7 specials) on CORPUS."""
    with TIMINGS.stage("tokenizer"):
        train_tokenizer([corpus], os.path.join(work, "ko"), vocab_size)
    return os.path.join(work, "ko.model")


def make_data(settings: NsmcSettings, corpus: str, spm_model: str, output_dir: str,
              eval_fraction: float = 0.01) -> str:
    """The data job on all local cores with SETTINGS' example recipe."""
    from apache_beam.options.pipeline_options import PipelineOptions

    with TIMINGS.stage("data job"):
        example = ExampleSettings(max_seq_length=settings.max_seq_length,
                                  max_predictions_per_seq=settings.max_predictions_per_seq,
                                  masked_lm_prob=settings.masked_lm_prob,
                                  nsp_mode=settings.nsp_mode, masking=settings.masking,
                                  dupe_factor=settings.dupe_factor)
        run_job(JobSettings(inputs=(corpus,), output_dir=output_dir, spm_model=spm_model,
                            example=example, eval_fraction=eval_fraction, overwrite=True),
                PipelineOptions([f"--direct_num_workers={os.cpu_count()}",
                                 "--direct_running_mode=multi_processing"]))
    return output_dir


def run_pretraining(settings: NsmcSettings, data: str, spm_model: str, model_dir: str) -> dict:
    """`bertmodel.train` for --pretrain_steps; returns the steps and held-out figures."""
    with TIMINGS.stage("pretraining"):
        summary = train(TrainSettings(
            tfrecords=data, model_dir=model_dir, config=settings.config,
            eval_tfrecords=os.path.join(data, "eval-*"), batch_size=settings.batch_size,
            train_steps=settings.pretrain_steps, spm_model=spm_model, verbose=0,
            keep_encoder_every_steps=settings.keep_encoder_every_steps))
    return {"steps": summary["steps"], "eval": summary.get("eval")}


def finetune_tuned(settings: NsmcSettings, model_dir: str, tasks: dict, scratch: bool) -> dict:
    """Fine-tunes once per learning rate, keeps the rate best on dev, reports its test score."""
    runs = []
    kind = "scratch" if scratch else "pre"
    for rate in settings.learning_rates:
        out = os.path.join(os.path.dirname(model_dir), f"{kind}-{rate}")
        with TIMINGS.stage(f"fine-tuning {'from scratch' if scratch else 'pretrained'} "
                           f"at {rate}"):
            result = classifier.finetune(classifier.FinetuneSettings(
                overwrite=True, model_dir=model_dir, train=tasks["train"], eval=tasks["dev"],
                test=tasks["test"], output_dir=out, epochs=settings.finetune_epochs,
                batch_size=settings.finetune_batch_size, learning_rate=rate,
                max_seq_length=settings.finetune_seq_length, from_scratch=scratch,
                export=False, patience=settings.finetune_epochs))
        runs.append(result)
    best = max(runs, key=lambda r: r["eval_accuracy"])
    return {"chosen_learning_rate": best["learning_rate"], "dev_accuracy": best["eval_accuracy"],
            "test_accuracy": best["test_accuracy"], "test_macro_f1": best["test_macro_f1"],
            "best_epoch": best["best_epoch"],
            "test_bag_of_words_accuracy": best["test_bag_of_words_accuracy"],
            "all": [{k: r[k] for k in ("learning_rate", "eval_accuracy", "test_accuracy",
                                       "best_epoch")} for r in runs]}

