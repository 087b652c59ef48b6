"""Where pretraining pays: NSMC accuracy against the labelled reviews a user has, for an
MLM-pretrained and an ELECTRA-pretrained encoder at the same CPU budget, beside the same
network from random weights and bag of words.

    python -m benchmarks.learning_curve --workdir=runs/learning_curve --corpus_mb=50 \\
        --mlm_steps=6000 --electra_steps=3200 --sizes=250,1000,4000,16000

Stages, each skipped when its output is already there (a rerun continues):
  1. a tokenizer of --vocab_size pieces and the data job (dynamic masking, no
     next-sentence task) on the first --corpus_mb of the NSMC corpus;
  2. `bertmodel.train --objective=mlm` for --mlm_steps and `--objective=electra` for
     --electra_steps, the two at once (one core each on a 2-core machine), same preset,
     batch and peak rate; choose the steps so that both take the same time: their seconds
     are in the table, and that is the budget;
  3. for each size N: the first N reviews of NSMC train (the dev split, 1 in 10 by id hash,
     carved out first); each encoder and random weights fine-tuned at each
     --learning_rates, the rate best on --dev_reviews dev reviews scored on the first
     --test_reviews of NSMC test; --seeds seeds (data order, classifier head, dropout) for
     sizes up to --seeded_up_to, one above; bag of words on the same reviews.
WORKDIR/curve.json and curve.png; the table prints as Markdown (mean over seeds, and their
range).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
import time
import zlib

from beam_jobs.create_pretraining_data import run_job
from beam_jobs.settings import JobSettings
from benchmarks.common import NSMC, corpus_slice, read_nsmc
from bertcommon import cli
from bertcommon.files import write_json
from bertdata.pretraining import ExampleSettings
from bertdata.tokenizer import train_tokenizer
from bertmodel.tasks import classifier
from bertmodel.training.plots import pyplot, save_figure

log = logging.getLogger("bertpipe.benchmarks.learning_curve")

ENCODERS = ("mlm", "electra", "scratch")


@dataclasses.dataclass(frozen=True)
class CurveSettings(cli.Settings):
    workdir: str = cli.flag("runs/learning_curve")
    corpus: str = cli.flag(os.path.join(NSMC, "nsmc_corpus.txt.gz"),
                           help="pretraining text, plain or .gz")
    corpus_mb: float = cli.flag(50.0, check=cli.positive, help="its first N MB")
    train: str = cli.flag(os.path.join(NSMC, "nsmc_train.txt.gz"))
    test: str = cli.flag(os.path.join(NSMC, "nsmc_test.txt.gz"))
    vocab_size: int = cli.flag(8000, check=cli.at_least(100))
    config: str = cli.flag("mini", help="the preset both objectives pretrain")
    batch_size: int = cli.flag(64, check=cli.positive)
    learning_rate: float | None = cli.flag(None, check=cli.positive,
                                           help="pretraining peak; default: the preset's")
    mlm_steps: int = cli.flag(6000, check=cli.positive)
    electra_steps: int = cli.flag(3200, check=cli.positive)
    sizes: tuple[int, ...] = cli.flag((250, 1000, 4000, 16000),
                                      help="labelled reviews to fine-tune on")
    learning_rates: tuple[float, ...] = cli.flag((3e-4, 1e-3),
                                                 help="fine-tuning rates tried on dev")
    seeds: int = cli.flag(3, check=cli.positive)
    seeded_up_to: int = cli.flag(1000, check=cli.positive,
                                 help="sizes up to this get --seeds seeds, larger ones one")
    dev_reviews: int = cli.flag(1000, check=cli.positive)
    test_reviews: int = cli.flag(10000, check=cli.positive)
    seq_length: int = cli.flag(64, check=cli.at_least(3), help="fine-tuning length")


def prepare_data(settings: CurveSettings) -> tuple[str, str]:
    """(records folder, tokenizer), made once."""
    from apache_beam.options.pipeline_options import PipelineOptions

    data = os.path.join(settings.workdir, "data")
    prefix = os.path.join(settings.workdir, "tokenizer")
    if os.path.isfile(os.path.join(data, "metadata.json")):
        return data, prefix + ".model"
    os.makedirs(settings.workdir, exist_ok=True)
    corpus = corpus_slice(settings.corpus, settings.corpus_mb,
                          os.path.join(settings.workdir, "corpus.txt"))
    train_tokenizer([corpus], prefix, settings.vocab_size)
    run_job(JobSettings(inputs=(corpus,), output_dir=data, spm_model=prefix + ".model",
                        example=ExampleSettings(nsp_mode="none", masking="dynamic", seed=7),
                        eval_fraction=0.02, overwrite=True),
            PipelineOptions([f"--direct_num_workers={os.cpu_count()}",
                             "--direct_running_mode=multi_processing"]))
    return data, prefix + ".model"


def pretrain_both(settings: CurveSettings, data: str) -> dict:
    """Both objectives' runs at once, as processes; {objective: seconds} (None when the
    run had finished before)."""
    seconds, running = {}, {}
    for objective, steps in (("mlm", settings.mlm_steps), ("electra", settings.electra_steps)):
        model_dir = os.path.join(settings.workdir, objective)
        if os.path.isfile(os.path.join(model_dir, "encoder.keras")):
            seconds[objective] = _recorded_seconds(model_dir)
            continue
        cmd = [sys.executable, "-m", "bertmodel.train", f"--tfrecords={data}",
               f"--eval_tfrecords={data}/eval-*", f"--model_dir={model_dir}",
               f"--config={settings.config}", f"--objective={objective}",
               f"--batch_size={settings.batch_size}", f"--train_steps={steps}",
               "--verbose=0", f"--eval_every_steps={max(100, steps // 10)}"]
        if settings.learning_rate:
            cmd.append(f"--learning_rate={settings.learning_rate}")
        log.info("pretraining: %s", " ".join(cmd[1:]))
        running[objective] = (subprocess.Popen(cmd, stdout=subprocess.DEVNULL),
                              time.time(), model_dir)
    while running:  # each run's seconds end when it does, whichever ends first
        time.sleep(1)
        for objective, (proc, start, model_dir) in list(running.items()):
            if proc.poll() is None:
                continue
            if proc.returncode:
                raise SystemExit(f"pretraining {objective} failed (exit {proc.returncode})")
            seconds[objective] = round(time.time() - start)
            write_json(os.path.join(model_dir, "seconds.json"), {"seconds": seconds[objective]})
            del running[objective]
    return seconds


def _recorded_seconds(model_dir: str):
    try:
        with open(os.path.join(model_dir, "seconds.json"), encoding="utf-8") as f:
            return json.load(f)["seconds"]
    except (OSError, ValueError, KeyError):
        return None


def write_task_files(settings: CurveSettings) -> dict:
    """dev.tsv, test.tsv, and train-N.tsv for each size: the first N training reviews."""
    folder = os.path.join(settings.workdir, "tasks")
    os.makedirs(folder, exist_ok=True)
    train = read_nsmc(settings.train)
    dev = [r for r in train if zlib.crc32(r[0].encode()) % 10 == 0][:settings.dev_reviews]
    train = [r for r in train if zlib.crc32(r[0].encode()) % 10 != 0]
    files = {"dev": dev, "test": read_nsmc(settings.test)[:settings.test_reviews],
             **{f"train-{n}": train[:n] for n in settings.sizes}}
    paths = {}
    for name, rows in files.items():
        paths[name] = os.path.join(folder, f"{name}.tsv")
        with open(paths[name], "w", encoding="utf-8") as f:
            f.writelines(f"{label}\t{text}\n" for _, text, label in rows)
    return paths


def epochs_for(size: int) -> int:
    """At least about 160 steps of 32 for the small sets (two epochs of 250 reviews would
    be 16 steps), two epochs from 8,000 reviews on: 250 -> 20, 1,000 -> 8, 4,000 -> 3."""
    return max(2, min(20, round(8_000 / size)))


def finetune_point(settings: CurveSettings, tasks: dict, encoder: str, size: int,
                   seed: int) -> dict:
    """The rate best on dev, its test figures and the bag of words' (cached as JSON)."""
    out = os.path.join(settings.workdir, "finetune", f"{encoder}-{size}-{seed}")
    cached = os.path.join(out, "point.json")
    if os.path.isfile(cached):
        with open(cached, encoding="utf-8") as f:
            return json.load(f)
    model_dir = os.path.join(settings.workdir, "mlm" if encoder == "scratch" else encoder)
    runs = []
    for rate in settings.learning_rates:
        runs.append(classifier.finetune(classifier.FinetuneSettings(
            model_dir=model_dir, train=tasks[f"train-{size}"], eval=tasks["dev"],
            test=tasks["test"], output_dir=os.path.join(out, f"rate-{rate:g}"),
            epochs=epochs_for(size), patience=epochs_for(size), batch_size=32,
            learning_rate=rate, max_seq_length=settings.seq_length,
            from_scratch=encoder == "scratch", export=False, overwrite=True, seed=seed)))
    best = max(runs, key=lambda r: r["eval_accuracy"])
    point = {"encoder": encoder, "size": size, "seed": seed,
             "learning_rate": best["learning_rate"], "dev_accuracy": best["eval_accuracy"],
             "test_accuracy": best["test_accuracy"],
             "bag_of_words_accuracy": best["test_bag_of_words_accuracy"]}
    write_json(cached, point)
    log.info("%s", json.dumps(point))
    return point


def _summary(points: list[dict], encoder: str, size: int, key: str) -> tuple[float, str]:
    """(mean, "mean (min-max)") of KEY over the seeds of one cell."""
    values = [p[key] for p in points if p["encoder"] == encoder and p["size"] == size]
    mean = sum(values) / len(values)
    spread = f" ({min(values):.3f}-{max(values):.3f})" if len(values) > 1 else ""
    return mean, f"{mean:.3f}{spread}"


def print_table(settings: CurveSettings, seconds: dict, points: list[dict]) -> None:
    print(f"\nNSMC test accuracy (first {settings.test_reviews:,} test reviews) of `"
          f"{settings.config}` fine-tuned on N labelled reviews; pretrained on the first "
          f"{settings.corpus_mb:g} MB of the NSMC corpus: MLM {settings.mlm_steps:,} steps "
          f"in {seconds.get('mlm')} s, ELECTRA {settings.electra_steps:,} steps in "
          f"{seconds.get('electra')} s (batch {settings.batch_size}); mean over seeds "
          "(range)\n")
    print("| labelled reviews | MLM-pretrained | ELECTRA-pretrained | random weights "
          "| bag of words |")
    print("| --- | --- | --- | --- | --- |")
    for size in settings.sizes:
        cells = [_summary(points, e, size, "test_accuracy")[1] for e in ENCODERS]
        bow = _summary(points, "scratch", size, "bag_of_words_accuracy")[1]
        print(f"| {size:,} | {' | '.join(cells)} | {bow} |")


def save_plot(settings: CurveSettings, points: list[dict], path: str) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    labels = {"mlm": "MLM-pretrained", "electra": "ELECTRA-pretrained",
              "scratch": "random weights"}
    for encoder in ENCODERS:
        ax.plot(settings.sizes, [_summary(points, encoder, n, "test_accuracy")[0]
                                 for n in settings.sizes], "o-", label=labels[encoder])
    ax.plot(settings.sizes, [_summary(points, "scratch", n, "bag_of_words_accuracy")[0]
                             for n in settings.sizes], "s:", label="bag of words")
    ax.set_xscale("log")
    ax.set_xlabel("labelled NSMC reviews")
    ax.set_ylabel("NSMC test accuracy")
    ax.set_title(f"{settings.config}: where pretraining pays")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path)


def measure(settings: CurveSettings) -> int:
    data, _ = prepare_data(settings)
    seconds = pretrain_both(settings, data)
    tasks = write_task_files(settings)
    points = []
    for size in settings.sizes:
        seeds = range(1, settings.seeds + 1) if size <= settings.seeded_up_to else (1,)
        for seed in seeds:
            for encoder in ENCODERS:
                points.append(finetune_point(settings, tasks, encoder, size, seed))
    write_json(os.path.join(settings.workdir, "curve.json"),
               {"seconds": seconds, "settings": dataclasses.asdict(settings),
                "points": points})
    save_plot(settings, points, os.path.join(settings.workdir, "curve.png"))
    print_table(settings, seconds, points)
    return 0


def main(argv=None) -> int:
    return cli.run_command(CurveSettings, measure, argv,
                           description=__doc__.split("\n\n")[0], tensorflow=True)


if __name__ == "__main__":
    sys.exit(main())
