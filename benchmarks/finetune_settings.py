"""Fine-tuning settings and seeds on one task: bertmodel.finetune's defaults against tuned
settings, and how far the fine-tuning seed alone moves the score.

    python benchmarks/finetune_settings.py --model_dir=runs/nsmc_curve/model \
        --train=runs/nsmc_curve/train.tsv --eval=runs/nsmc_curve/dev.tsv \
        --test=runs/nsmc_curve/test.tsv --workdir=runs/finetune_settings --seeds=1,2,3

Each --settings entry (defaults: `default`, the command's own defaults; `short`, two epochs
of 64 reviews at 64 pieces, what benchmarks/nsmc_recipes.py uses; `short-warmup1` and
`short-warmup30`, `short` warming up over 1% or 30% of the steps) is run for every
--seeds, from the pretrained encoder and from random weights; every run a fresh
`bertmodel.finetune` (its weights best on --eval kept, scored once on --test). Prints each
run and, per setting, the median and range over the seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import nsmc  # noqa: E402

from bertcommon import logs  # noqa: E402

_RECIPES = nsmc.parser("").get_default
SETTINGS = {
    "default": {},
    # What nsmc.finetune_tuned runs with the NSMC benchmarks' default flags.
    "short": {"epochs": _RECIPES("finetune_epochs"), "batch_size": _RECIPES("finetune_batch_size"),
              "max_seq_length": _RECIPES("finetune_seq_length"),
              "patience": _RECIPES("finetune_epochs")},
}
# The short setting with the warm-up at either side of the default 10%.
for _percent in (1, 30):
    SETTINGS[f"short-warmup{_percent}"] = dict(SETTINGS["short"], warmup_percent=_percent)


def run(args, setting: str, scratch: bool, seed: int) -> dict:
    from bertmodel.tasks import classifier

    out = os.path.join(args.workdir, f"{setting}-{'scratch' if scratch else 'pre'}-{seed}")
    config = classifier.FinetuneSettings(
        model_dir=args.model_dir, train=args.train, eval=args.eval, test=args.test,
        output_dir=out, from_scratch=scratch, seed=seed, export=False, overwrite=True,
        **SETTINGS[setting])
    return classifier.finetune(config)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("model_dir", "train", "eval", "test", "workdir"):
        p.add_argument(f"--{name}", required=True)
    p.add_argument("--settings", default=",".join(SETTINGS))
    p.add_argument("--seeds", default="1,2,3")
    args = p.parse_args()
    logs.configure("info")
    logs.import_tensorflow_quietly()
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    for setting in args.settings.split(","):
        for scratch in (False, True):
            for seed in seeds:
                r = run(args, setting, scratch, seed)
                rows.append((setting, scratch, seed, r["eval_accuracy"], r["test_accuracy"],
                             r["best_epoch"], r["learning_rate"]))
                print(json.dumps(rows[-1]), flush=True)
    print("\n| settings | encoder | seeds | dev, median (range) | test, median (range) "
          "| best epochs |")
    print("| --- | --- | --- | --- | --- | --- |")
    for setting in args.settings.split(","):
        for scratch in (False, True):
            mine = [r for r in rows if r[0] == setting and r[1] == scratch]
            dev, test = [r[3] for r in mine], [r[4] for r in mine]
            print(f"| {setting} | {'random weights' if scratch else 'pretrained'} "
                  f"| {len(mine)} | {statistics.median(dev):.4f} ({min(dev):.4f}-{max(dev):.4f}) "
                  f"| {statistics.median(test):.4f} ({min(test):.4f}-{max(test):.4f}) "
                  f"| {', '.join(str(r[5]) for r in mine)} |")


if __name__ == "__main__":
    main()
