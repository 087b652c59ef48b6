"""Fine-tuning settings and seeds on one task: bertmodel.finetune's defaults against tuned
settings, and how far the fine-tuning seed alone moves the score.

    python -m benchmarks.finetune_settings --model_dir=runs/nsmc_curve/model \
        --train=runs/nsmc_curve/train.tsv --eval=runs/nsmc_curve/dev.tsv \
        --test=runs/nsmc_curve/test.tsv --workdir=runs/finetune_settings --seeds=1,2,3

Each --settings entry (defaults: `default`, the command's own defaults; `short`, two epochs
of 64 reviews at 64 pieces, what the NSMC benchmarks use; `short-warmup1` and
`short-warmup30`, `short` warming up over 1% or 30% of the steps) is run for every
--seeds, from the pretrained encoder and from random weights; every run a fresh
`bertmodel.finetune` (its weights best on --eval kept, scored once on --test). Prints each
run and, per setting, the median and range over the seeds.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import sys

from benchmarks.common import NsmcSettings
from bertcommon import cli
from bertmodel.tasks import classifier

_NSMC = {f.name: f.default for f in dataclasses.fields(NsmcSettings)}
SETTINGS = {
    "default": {},
    # What benchmarks.common.finetune_tuned runs with the NSMC benchmarks' default flags.
    "short": {"epochs": _NSMC["finetune_epochs"], "batch_size": _NSMC["finetune_batch_size"],
              "max_seq_length": _NSMC["finetune_seq_length"],
              "patience": _NSMC["finetune_epochs"]},
}
# The short setting with the warm-up at either side of the default 10%.
for _percent in (1, 30):
    SETTINGS[f"short-warmup{_percent}"] = dict(SETTINGS["short"], warmup_percent=_percent)


@dataclasses.dataclass(frozen=True)
class FinetuneSettingsBenchmark(cli.Settings):
    model_dir: str = cli.flag(help="a pretrained bertmodel.train run")
    train: str = cli.flag(help="TSV")
    eval: str = cli.flag(help="TSV the best epoch is chosen on")
    test: str = cli.flag(help="TSV scored once")
    workdir: str = cli.flag()
    settings: tuple[str, ...] = cli.flag(tuple(SETTINGS), help=f"from {', '.join(SETTINGS)}")
    seeds: tuple[int, ...] = cli.flag((1, 2, 3))

    def problems(self):
        unknown = [name for name in self.settings if name not in SETTINGS]
        if unknown:
            yield f"--settings: unknown {', '.join(unknown)}; known: {', '.join(SETTINGS)}"


def run(args: FinetuneSettingsBenchmark, setting: str, scratch: bool, seed: int) -> dict:
    out = os.path.join(args.workdir, f"{setting}-{'scratch' if scratch else 'pre'}-{seed}")
    config = classifier.FinetuneSettings(
        model_dir=args.model_dir, train=args.train, eval=args.eval, test=args.test,
        output_dir=out, from_scratch=scratch, seed=seed, export=False, overwrite=True,
        **SETTINGS[setting])
    return classifier.finetune(config)


def measure(args: FinetuneSettingsBenchmark) -> None:
    seeds = args.seeds
    rows = []
    for setting in args.settings:
        for scratch in (False, True):
            for seed in seeds:
                r = run(args, setting, scratch, seed)
                rows.append((setting, scratch, seed, r["eval_accuracy"], r["test_accuracy"],
                             r["best_epoch"], r["learning_rate"]))
                print(json.dumps(rows[-1]), flush=True)
    print("\n| settings | encoder | seeds | dev, median (range) | test, median (range) "
          "| best epochs |")
    print("| --- | --- | --- | --- | --- | --- |")
    for setting in args.settings:
        for scratch in (False, True):
            mine = [r for r in rows if r[0] == setting and r[1] == scratch]
            dev, test = [r[3] for r in mine], [r[4] for r in mine]
            print(f"| {setting} | {'random weights' if scratch else 'pretrained'} "
                  f"| {len(mine)} | {statistics.median(dev):.4f} ({min(dev):.4f}-{max(dev):.4f}) "
                  f"| {statistics.median(test):.4f} ({min(test):.4f}-{max(test):.4f}) "
                  f"| {', '.join(str(r[5]) for r in mine)} |")


def main(argv=None) -> int:
    return cli.run_command(FinetuneSettingsBenchmark, measure, argv,
                           description=__doc__.splitlines()[0], tensorflow=True)


if __name__ == "__main__":
    sys.exit(main())
