"""NSMC end to end: pretrain on Korean reviews, fine-tune on NSMC, score on its test set,
beside the same model from scratch and a bag-of-words baseline.

    python -m benchmarks.nsmc --workdir=runs/nsmc --config=mini --pretrain_steps=20000

Works on these files and on the official NSMC files (`id<TAB>document<TAB>label`, a header
line; plain or .gz; the team's copies by default). Stages, each timed:
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

import dataclasses
import json
import os
import sys

from benchmarks.common import (
    TIMINGS,
    NsmcSettings,
    finetune_tuned,
    make_data,
    open_text,
    run_pretraining,
    train_reference_tokenizer,
    write_tasks,
)
from bertcommon import cli
from bertcommon.files import write_json


@dataclasses.dataclass(frozen=True)
class NsmcRunSettings(cli.Settings):
    nsmc: NsmcSettings


def pretrain(settings: NsmcSettings, work: str) -> tuple[str, dict]:
    """Tokenizer, data job and pretraining in WORK: (the model directory, its figures)."""
    corpus = os.path.join(work, "corpus.txt")
    with open_text(settings.corpus) as src, open(corpus, "w", encoding="utf-8") as dst:
        dst.write(src.read())
    spm_model = train_reference_tokenizer(corpus, work)
    data = make_data(settings, corpus, spm_model, os.path.join(work, "data"))
    model_dir = os.path.join(work, "model")
    return model_dir, run_pretraining(settings, data, spm_model, model_dir)


def measure(run: NsmcRunSettings) -> None:
    settings = run.nsmc
    os.makedirs(settings.workdir, exist_ok=True)
    results: dict = {"settings": dataclasses.asdict(settings)}
    tasks = write_tasks(settings, settings.workdir)
    model_dir, results["pretraining"] = pretrain(settings, settings.workdir)
    results["pretrained"] = pre = finetune_tuned(settings, model_dir, tasks, scratch=False)
    results["scratch"] = scratch = finetune_tuned(settings, model_dir, tasks, scratch=True)
    results["seconds"] = TIMINGS.seconds
    write_json(os.path.join(settings.workdir, "results.json"), results, default=str)
    print(f"NSMC test accuracy ({settings.config}, {settings.pretrain_steps} pretraining steps "
          f"of {settings.batch_size}, {settings.nsp_mode}/{settings.masked_lm_prob}/"
          f"{settings.masking}):")
    print(f"  pretrained   {pre['test_accuracy']:.4f} (lr {pre['chosen_learning_rate']})")
    print(f"  from scratch {scratch['test_accuracy']:.4f} "
          f"(lr {scratch['chosen_learning_rate']})")
    print(f"  bag of words {pre['test_bag_of_words_accuracy']:.4f}")
    print(json.dumps(TIMINGS.seconds))


def main(argv=None) -> int:
    return cli.run_command(NsmcRunSettings, measure, argv, description=__doc__.splitlines()[0],
                           tensorflow=True)


if __name__ == "__main__":
    sys.exit(main())
