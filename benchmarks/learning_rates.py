"""Which peak learning rate suits a preset? Held-out MLM loss after the same steps.

    python -m benchmarks.learning_rates --workdir=runs/learning_rates --configs=mini \
        --learning_rates=5e-4,1e-3,2e-3,4e-3 --steps=1000 --batch_size=64

One tokenizer and one dataset from the first --corpus_mb of the corpus (the NSMC corpus by
default; seq 128, 20 predictions, --dupe_factor passes, 5% of the documents held out), kept
in WORKDIR for later invocations; then `bertmodel.train` trains each preset at each peak
rate (and each Adam β2 of --adam_beta_2s) for --steps steps of --batch_size with the same
seed, so every run sees the same batches. Prints held-out MLM loss and accuracy next to
always answering the most frequent masked piece (the unigram plateau a model sits on before
it learns context), and marks each preset's lowest loss. The presets' default rates
(bertmodel/model/config.py) come from this table.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import time

from beam_jobs.create_pretraining_data import run_job
from beam_jobs.settings import JobSettings
from benchmarks.common import NSMC, corpus_slice
from bertcommon import cli
from bertdata.pretraining import ExampleSettings
from bertdata.tokenizer import train_tokenizer
from bertmodel.train import train
from bertmodel.training.settings import TrainSettings
from bertpipe.end_to_end import majority_baselines


@dataclasses.dataclass(frozen=True)
class LearningRateSettings(cli.Settings):
    corpus: str = cli.flag(os.path.join(NSMC, "nsmc_corpus.txt.gz"),
                           help="Korean text, plain or .gz")
    corpus_mb: float = cli.flag(10.0, check=cli.positive, help="its first N MB")
    vocab_size: int = cli.flag(8000, check=cli.at_least(100))
    workdir: str = cli.flag("runs/learning_rates")
    configs: tuple[str, ...] = cli.flag(("mini",))
    learning_rates: tuple[float, ...] = cli.flag((5e-4, 1e-3, 2e-3, 4e-3))
    adam_beta_2s: tuple[float, ...] = cli.flag((0.98,))
    steps: int = cli.flag(1000, check=cli.positive)
    batch_size: int = cli.flag(64, check=cli.positive)
    dupe_factor: int = cli.flag(1, check=cli.positive)


def build_dataset(settings: LearningRateSettings) -> str:
    """WORKDIR/data, made once: a tokenizer and the data job on the corpus slice."""
    from apache_beam.options.pipeline_options import PipelineOptions

    data = os.path.join(settings.workdir, "data")
    if os.path.isfile(os.path.join(data, "metadata.json")):
        return data
    os.makedirs(settings.workdir, exist_ok=True)
    corpus = corpus_slice(settings.corpus, settings.corpus_mb,
                          os.path.join(settings.workdir, "corpus.txt"))
    prefix = os.path.join(settings.workdir, "tokenizer")
    train_tokenizer([corpus], prefix, settings.vocab_size)
    run_job(JobSettings(inputs=(corpus,), output_dir=data, spm_model=prefix + ".model",
                        example=ExampleSettings(dupe_factor=settings.dupe_factor, seed=7),
                        eval_fraction=0.05), PipelineOptions([]))
    return data


def train_once(data: str, settings: LearningRateSettings, config: str, rate: float,
               beta_2: float) -> dict:
    """Held-out figures and seconds of one run."""
    model_dir = os.path.join(settings.workdir, f"{config}-{rate:g}-{beta_2:g}-{settings.steps}")
    shutil.rmtree(model_dir, ignore_errors=True)  # a fresh run, never a resumed one
    start = time.perf_counter()
    summary = train(TrainSettings(
        tfrecords=data, eval_tfrecords=os.path.join(data, "eval-*"), model_dir=model_dir,
        config=config, batch_size=settings.batch_size, train_steps=settings.steps,
        learning_rate=rate, adam_beta_2=beta_2, seed=1, verbose=0, save_outputs=False))
    return {**summary["eval"], "seconds": time.perf_counter() - start}


def print_table(settings: LearningRateSettings, plateau: float, rows: list) -> None:
    best = {}
    for config, _, _, result in rows:
        best[config] = min(best.get(config, float("inf")), result["mlm_loss"])
    print(f"\n{settings.corpus}, first {settings.corpus_mb:g} MB: {settings.steps} steps of "
          f"{settings.batch_size}, seq 128; most frequent piece on held-out data: "
          f"{plateau:.4f}\n")
    print("| preset | peak rate | Adam β2 | held-out MLM loss | held-out MLM accuracy "
          "| seconds |")
    print("| --- | --- | --- | --- | --- | --- |")
    for config, rate, beta_2, result in rows:
        mark = " (best)" if result["mlm_loss"] == best[config] else ""
        print(f"| {config} | {rate:g} | {beta_2:g} | {result['mlm_loss']:.4f}{mark} "
              f"| {result['mlm_accuracy']:.4f} | {result['seconds']:.0f} |")


def measure(settings: LearningRateSettings) -> int:
    data = build_dataset(settings)
    plateau = majority_baselines(os.path.join(data, "train-*"),
                                 os.path.join(data, "eval-*"))["mlm_accuracy"]
    rows = []
    for config in settings.configs:
        for beta_2 in settings.adam_beta_2s:
            for rate in settings.learning_rates:
                result = train_once(data, settings, config, rate, beta_2)
                rows.append((config, rate, beta_2, result))
                print(f"  {config} {rate:g} β2 {beta_2:g}: loss {result['mlm_loss']:.4f}, "
                      f"accuracy {result['mlm_accuracy']:.4f} in {result['seconds']:.0f} s",
                      file=sys.stderr, flush=True)
    print_table(settings, plateau, rows)
    return 0


def main(argv=None) -> int:
    return cli.run_command(LearningRateSettings, measure, argv,
                           description=__doc__.split("\n\n")[0], tensorflow=True)


if __name__ == "__main__":
    sys.exit(main())
