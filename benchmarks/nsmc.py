"""NSMC end to end: pretrain on Korean reviews, fine-tune on NSMC, score on its test set,
beside the same model from scratch and a bag-of-words baseline.

    python benchmarks/nsmc.py --train=../shared/corpus/nsmc/nsmc_train.txt.gz \
        --test=../shared/corpus/nsmc/nsmc_test.txt.gz \
        --corpus=../shared/corpus/nsmc/nsmc_corpus.txt.gz --workdir=runs/nsmc \
        --config=mini --pretrain_steps=20000

Works on these files and on the official NSMC files (`id<TAB>document<TAB>label`, a header
line; plain or .gz). Stages, each timed:
  1. tokenizer at the reference size (32,000 + 7) on the corpus;
  2. the data job on all local cores;
  3. pretraining (`bertmodel.train`, --pretrain_steps);
  4. fine-tuning (`bertmodel.finetune`) of the pretrained encoder and of the same
     architecture from random weights, each with its own learning rate and epochs chosen on
     a dev split carved from NSMC train by a hash of the review id (never the test set),
     then scored once on NSMC test;
  5. the bag-of-words baseline (bertmodel.tasks.bag_of_words) on the same split.
Fine-tuning reads --finetune_examples training reviews (0: all). Results go to
WORKDIR/results.json and print as a table.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import os
import sys
import time
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from bertcommon import logs  # noqa: E402

log = logging.getLogger("bertpipe.nsmc")


def _open(path):
    return gzip.open(path, "rt", encoding="utf-8") if path.endswith(".gz") else \
        open(path, encoding="utf-8")


def corpus_slice(path: str, megabytes: float, out: str) -> str:
    """The first MEGABYTES of PATH's text (plain or .gz), cut where a document ends."""
    budget = int(megabytes * 1e6)
    with _open(path) as src, open(out, "w", encoding="utf-8") as dst:
        written = 0
        for line in src:
            if written >= budget and not line.strip():
                break  # a document ends here
            dst.write(line)
            written += len(line.encode("utf-8"))
    return out


def read_nsmc(path: str) -> list[tuple[str, str, str]]:
    """(id, text, label) rows of an NSMC file; rows with an empty text are skipped."""
    with _open(path) as f:
        rows = [line.rstrip("\n").split("\t") for line in f]
    return [(r[0], r[1].strip(), r[2]) for r in rows[1:] if len(r) == 3 and r[1].strip()]


def write_tasks(args, work: str) -> dict:
    """train.tsv, dev.tsv (1 in 10 reviews of NSMC train by id hash) and test.tsv."""
    train = read_nsmc(args.train)
    dev = [r for r in train if zlib.crc32(r[0].encode()) % 10 == 0]
    train = [r for r in train if zlib.crc32(r[0].encode()) % 10 != 0]
    if args.finetune_examples:
        train = train[:args.finetune_examples]
    paths = {}
    for name, rows in (("train", train), ("dev", dev), ("test", read_nsmc(args.test))):
        paths[name] = os.path.join(work, f"{name}.tsv")
        with open(paths[name], "w", encoding="utf-8") as f:
            f.writelines(f"{label}\t{text}\n" for _, text, label in rows)
        log.info("%s: %d reviews", paths[name], len(rows))
    return paths


def pretrain(args, work: str) -> str:
    """Tokenizer, data job and pretraining in WORK; returns the model directory."""
    corpus = os.path.join(work, "corpus.txt")
    with _open(args.corpus) as src, open(corpus, "w", encoding="utf-8") as dst:
        dst.write(src.read())
    spm_model = train_reference_tokenizer(corpus, work)
    data = make_data(args, corpus, spm_model, os.path.join(work, "data"))
    model_dir = os.path.join(work, "model")
    RESULTS["pretraining"] = run_pretraining(args, data, spm_model, model_dir)
    return model_dir


def train_reference_tokenizer(corpus: str, work: str) -> str:
    from bertdata.tokenizer import train_tokenizer

    with timed("tokenizer"):
        train_tokenizer([corpus], os.path.join(work, "ko"), 32_000)
    return os.path.join(work, "ko.model")


def make_data(args, corpus: str, spm_model: str, output_dir: str) -> str:
    """The data job on all local cores with ARGS' example settings."""
    from apache_beam.options.pipeline_options import PipelineOptions

    from beam_jobs.create_pretraining_data import run_job
    from beam_jobs.settings import JobSettings
    from bertdata.pretraining import ExampleSettings

    with timed("data job"):
        example = ExampleSettings(max_seq_length=args.max_seq_length,
                                max_predictions_per_seq=args.max_predictions_per_seq,
                                masked_lm_prob=args.masked_lm_prob, nsp_mode=args.nsp_mode,
                                masking=args.masking, dupe_factor=args.dupe_factor)
        run_job(JobSettings(inputs=(corpus,), output_dir=output_dir, spm_model=spm_model,
                           example=example, eval_fraction=0.01, overwrite=True),
                PipelineOptions([f"--direct_num_workers={os.cpu_count()}",
                                 "--direct_running_mode=multi_processing"]))
    return output_dir


def run_pretraining(args, data: str, spm_model: str, model_dir: str) -> dict:
    """`bertmodel.train` for --pretrain_steps; returns the steps and held-out figures."""
    from bertmodel.train import train
    from bertmodel.training.settings import TrainSettings

    with timed("pretraining"):
        summary = train(TrainSettings(
            tfrecords=data, model_dir=model_dir, config=args.config,
            eval_tfrecords=os.path.join(data, "eval-*"), batch_size=args.batch_size,
            train_steps=args.pretrain_steps, spm_model=spm_model, verbose=0,
            keep_encoder_every_steps=args.keep_encoder_every_steps))
    return {"steps": summary["steps"], "eval": summary.get("eval")}


def finetune_tuned(args, model_dir: str, tasks: dict, scratch: bool) -> dict:
    """Fine-tunes once per learning rate, keeps the rate best on dev, reports its test score."""
    from bertmodel.tasks import classifier

    runs = []
    for rate in args.learning_rates:
        out = os.path.join(os.path.dirname(model_dir), f"{'scratch' if scratch else 'pre'}-{rate}")
        with timed(f"fine-tuning {'from scratch' if scratch else 'pretrained'} at {rate}"):
            result = classifier.finetune(classifier.FinetuneSettings(overwrite=True,
                model_dir=model_dir, train=tasks["train"], eval=tasks["dev"],
                test=tasks["test"], output_dir=out, epochs=args.finetune_epochs,
                batch_size=args.finetune_batch_size, learning_rate=rate,
                max_seq_length=args.finetune_seq_length, from_scratch=scratch, export=False,
                patience=args.finetune_epochs))
        runs.append(result)
    best = max(runs, key=lambda r: r["eval_accuracy"])
    return {"chosen_learning_rate": best["learning_rate"], "dev_accuracy": best["eval_accuracy"],
            "test_accuracy": best["test_accuracy"], "test_macro_f1": best["test_macro_f1"],
            "best_epoch": best["best_epoch"],
            "test_bag_of_words_accuracy": best["test_bag_of_words_accuracy"],
            "all": [{k: r[k] for k in ("learning_rate", "eval_accuracy", "test_accuracy",
                                       "best_epoch")} for r in runs]}


RESULTS: dict = {"seconds": {}}


class timed:
    def __init__(self, what):
        self.what = what

    def __enter__(self):
        log.info("=== %s", self.what)
        self.start = time.time()

    def __exit__(self, *exc):
        RESULTS["seconds"][self.what] = round(time.time() - self.start, 1)
        log.info("    %s: %.0f s", self.what, time.time() - self.start)


def parser(description: str) -> argparse.ArgumentParser:
    """The flags every NSMC benchmark shares (data, model, budget, fine-tuning)."""
    p = argparse.ArgumentParser(description=description)
    for name in ("train", "test", "corpus", "workdir"):
        p.add_argument(f"--{name}", required=True)
    p.add_argument("--config", default="mini")
    p.add_argument("--pretrain_steps", type=int, default=20_000)
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--max_seq_length", type=int, default=128)
    p.add_argument("--max_predictions_per_seq", type=int, default=20)
    p.add_argument("--masked_lm_prob", type=float, default=0.15)
    p.add_argument("--nsp_mode", default="swap")
    p.add_argument("--masking", default="static")
    p.add_argument("--dupe_factor", type=int, default=5)
    p.add_argument("--keep_encoder_every_steps", type=int, default=None,
                   help="keep the encoder every N pretraining steps (bertmodel.train's flag)")
    p.add_argument("--finetune_examples", type=int, default=0)
    p.add_argument("--finetune_epochs", type=int, default=2)
    p.add_argument("--finetune_batch_size", type=int, default=64)
    p.add_argument("--finetune_seq_length", type=int, default=64)
    p.add_argument("--learning_rates", type=lambda s: [float(x) for x in s.split(",")],
                   default=[1e-4, 3e-4, 1e-3])
    return p


def main():
    p = parser(__doc__.splitlines()[0])
    args = p.parse_args()
    logs.configure("info")
    logs.import_tensorflow_quietly()
    os.makedirs(args.workdir, exist_ok=True)
    RESULTS["settings"] = {k: v for k, v in vars(args).items()}
    tasks = write_tasks(args, args.workdir)
    model_dir = pretrain(args, args.workdir)
    RESULTS["pretrained"] = finetune_tuned(args, model_dir, tasks, scratch=False)
    RESULTS["scratch"] = finetune_tuned(args, model_dir, tasks, scratch=True)
    with open(os.path.join(args.workdir, "results.json"), "w") as f:
        json.dump(RESULTS, f, indent=2, default=str)
    pre, scratch = RESULTS["pretrained"], RESULTS["scratch"]
    print(f"NSMC test accuracy ({args.config}, {args.pretrain_steps} pretraining steps of "
          f"{args.batch_size}, {args.nsp_mode}/{args.masked_lm_prob}/{args.masking}):")
    print(f"  pretrained   {pre['test_accuracy']:.4f} (lr {pre['chosen_learning_rate']})")
    print(f"  from scratch {scratch['test_accuracy']:.4f} "
          f"(lr {scratch['chosen_learning_rate']})")
    print(f"  bag of words {pre['test_bag_of_words_accuracy']:.4f}")
    print(json.dumps(RESULTS["seconds"]))


if __name__ == "__main__":
    main()
