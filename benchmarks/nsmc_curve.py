"""NSMC accuracy against pretraining steps: what each stretch of pretraining buys.

    python -m benchmarks.nsmc_curve --workdir=runs/nsmc_curve --corpus_mb=10 \
        --dupe_factor=1 --nsp_mode=random_doc --pretrain_steps=1200 \
        --keep_encoder_every_steps=200 --finetune_examples=10000 --learning_rates=0.001

One reference-size tokenizer on the first --corpus_mb of the corpus, the data job with the
recipe the flags name, `bertmodel.train` keeping its encoder every
--keep_encoder_every_steps, then `bertmodel.score_encoders`: every kept encoder and random
weights (step 0) fine-tuned on the NSMC training reviews with the same settings (the first
--learning_rates, --finetune_epochs) and scored on the dev split carved from NSMC train.
WORKDIR/scores/ gets scores.csv and scores.png (accuracy against steps, with the
from-scratch and bag-of-words lines); the CSV prints as a Markdown table.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import os
import sys

from benchmarks.common import (
    TIMINGS,
    NsmcSettings,
    corpus_slice,
    make_data,
    run_pretraining,
    train_reference_tokenizer,
    write_tasks,
)
from bertcommon import cli
from bertmodel import score_encoders

log = logging.getLogger("bertpipe.benchmarks.nsmc_curve")


@dataclasses.dataclass(frozen=True)
class CurveSettings(cli.Settings):
    nsmc: NsmcSettings
    corpus_mb: float = cli.flag(10.0, check=cli.positive, help="the corpus's first N MB")

    def problems(self):
        if not self.nsmc.keep_encoder_every_steps:
            yield "--keep_encoder_every_steps: required, the curve's step"


def measure(settings: CurveSettings) -> None:
    args = settings.nsmc
    os.makedirs(args.workdir, exist_ok=True)
    tasks = write_tasks(args, args.workdir)
    corpus = corpus_slice(args.corpus, settings.corpus_mb,
                          os.path.join(args.workdir, "corpus.txt"))
    spm_model = train_reference_tokenizer(corpus, args.workdir)
    data = make_data(args, corpus, spm_model, os.path.join(args.workdir, "data"))
    model_dir = os.path.join(args.workdir, "model")
    pretraining = run_pretraining(args, data, spm_model, model_dir)
    log.info("pretraining: %s", json.dumps(pretraining))

    scores = os.path.join(args.workdir, "scores")
    with TIMINGS.stage("scoring the kept encoders"):
        score_encoders.score(score_encoders.ScoreSettings(
            model_dir=model_dir, train=tasks["train"], eval=tasks["dev"], output_dir=scores,
            epochs=args.finetune_epochs, batch_size=args.finetune_batch_size,
            learning_rate=args.learning_rates[0], max_seq_length=args.finetune_seq_length,
            overwrite=True))
    with open(os.path.join(scores, "scores.csv")) as f:
        rows = list(csv.DictReader(f))
    print(f"\n{args.config}, {args.nsp_mode} {args.masked_lm_prob} {args.masking}, "
          f"{args.pretrain_steps} steps of {args.batch_size}; NSMC dev accuracy after "
          f"fine-tuning on {args.finetune_examples or 'all'} reviews:")
    print("| pretraining steps | NSMC dev accuracy | macro-F1 | bag of words |")
    print("| --- | --- | --- | --- |")
    for r in rows:
        step = "0 (random weights)" if r["step"] == "0" else f"{int(r['step']):,}"
        print(f"| {step} | {float(r['eval_accuracy']):.4f} | {float(r['eval_macro_f1']):.4f} "
              f"| {float(r['bag_of_words_accuracy']):.4f} |")
    print(json.dumps(TIMINGS.seconds))


def main(argv=None) -> int:
    return cli.run_command(CurveSettings, measure, argv, description=__doc__.splitlines()[0],
                           tensorflow=True)


if __name__ == "__main__":
    sys.exit(main())
