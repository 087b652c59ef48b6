"""Which peak learning rate suits a preset? Held-out MLM accuracy after the same steps.

Usage (real prose, see prose_corpus.py):
    python benchmarks/learning_rates.py --corpus=runs/bench/ko_prose.txt --configs=mini \
        --learning_rates=2.5e-4,1e-3,2e-3 --steps=1200

The Beam job builds one dataset from the corpus (seq 128, 20 predictions, --dupe_factor
passes, 5% of the documents held out); then `bertmodel.train` trains each preset at each
peak learning rate for --steps steps of --batch_size with the same seed, so every run sees
the same batches, and reports the held-out MLM accuracy next to always answering the most
frequent masked piece (the unigram plateau a model sits on before it learns context).
The presets' defaults (bertmodel/model/config.py) come from this table.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def build_dataset(args) -> str:
    from apache_beam.options.pipeline_options import PipelineOptions

    from beam_jobs.create_pretraining_data import run_job
    from beam_jobs.settings import JobSettings
    from bertdata.pretraining import ExampleSettings
    from bertdata.tokenizer import train_tokenizer

    data = os.path.join(args.workdir, "data")
    if os.path.isfile(os.path.join(data, "metadata.json")):
        return data
    spm_model = args.spm_model
    if spm_model is None:
        prefix = os.path.join(args.workdir, "tokenizer")
        train_tokenizer([args.corpus], prefix, args.vocab_size)
        spm_model = prefix + ".model"
    run_job(JobSettings(inputs=(args.corpus,), output_dir=data, spm_model=spm_model,
                       example=ExampleSettings(dupe_factor=args.dupe_factor, seed=7),
                       eval_fraction=0.05), PipelineOptions([]))
    return data


def train_once(data: str, args, config: str, learning_rate: float) -> tuple[float, float]:
    """(held-out MLM accuracy, seconds)."""
    from bertmodel.train import train
    from bertmodel.training.settings import TrainSettings

    start = time.perf_counter()
    summary = train(TrainSettings(
        tfrecords=data, eval_tfrecords=os.path.join(data, "eval-*"),
        model_dir=os.path.join(args.workdir, f"{config}-{learning_rate:g}"), config=config,
        batch_size=args.batch_size, train_steps=args.steps, learning_rate=learning_rate,
        seed=1, verbose=0, save_outputs=False))
    return summary["eval"]["mlm_accuracy"], time.perf_counter() - start


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", required=True, help="real prose (benchmarks/prose_corpus.py)")
    p.add_argument("--spm_model", default=None, help="default: trained on the corpus")
    p.add_argument("--vocab_size", type=int, default=8000)
    p.add_argument("--workdir", default="runs/learning_rates")
    p.add_argument("--configs", default="mini")
    p.add_argument("--learning_rates", default="2.5e-4,1e-3,2e-3")
    p.add_argument("--steps", type=int, default=1200)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--dupe_factor", type=int, default=3)
    args = p.parse_args(argv)
    from bertcommon import logs
    from bertpipe.end_to_end import majority_baselines

    logs.configure("warning")
    logs.import_tensorflow_quietly()
    data = build_dataset(args)
    plateau = majority_baselines(os.path.join(data, "train-*"),
                                 os.path.join(data, "eval-*"))["mlm_accuracy"]
    rows = []
    for config in args.configs.split(","):
        for lr in [float(x) for x in args.learning_rates.split(",")]:
            accuracy, seconds = train_once(data, args, config, lr)
            rows.append((config, lr, accuracy, seconds))
            print(f"  {config} {lr:g}: {accuracy:.4f} in {seconds:.0f} s", file=sys.stderr,
                  flush=True)
    print(f"\n{args.corpus}: {args.steps} steps of {args.batch_size}, seq 128; most frequent "
          f"piece on held-out data: {plateau:.4f}\n")
    print("| preset | peak learning rate | held-out MLM accuracy | above the plateau | seconds |")
    print("| --- | --- | --- | --- | --- |")
    for config, lr, accuracy, seconds in rows:
        print(f"| {config} | {lr:g} | {accuracy:.4f} | {accuracy - plateau:+.4f} "
              f"| {seconds:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
