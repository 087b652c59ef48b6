"""Does pretraining help? The sample's pretrained encoder against the same architecture from
random weights, fine-tuned with the same budget on the sample's 8-label task.

Usage:
    python -m benchmarks.finetune_gain --workdir=runs/gain --pretrain_epochs=3,8 \
        --learning_rates=2e-4,1e-3 --seeds=1,2,3 --epochs=6

For each --pretrain_epochs, `bertpipe.end_to_end` pretrains `mini` on the bundled sample as
the test suite does (seq 64, 5 passes, batches of 8, peak 2e-3; reused when
WORKDIR/pretrain-N/model exists); then `bertpipe.sample_task`'s lines (at most --per_class
training lines and 16 evaluation lines per source) are fine-tuned from that encoder and
with --from_scratch, for every learning rate and seed. `default` is finetune's default
learning rate (for `mini` the preset's 1e-3 since these figures; 2e-4, a fifth, before).
The table reports the median over seeds of the best epoch's eval accuracy and macro-F1,
and their gap. With every training line (--per_class=1000) the Constitution's 214 and one
bill's 190 lines dominate training (the smallest source has 8) and both models settled on
the largest classes (0.269 accuracy each at 2e-4, 3 pretraining epochs), so the default
keeps the classes closer to balanced.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import statistics
import sys
import time

from bertcommon import cli
from bertdata.example_settings import ExampleSettings
from bertmodel.tasks import classifier
from bertpipe import end_to_end
from bertpipe.sample_task import SAMPLE, write_source_task


@dataclasses.dataclass(frozen=True)
class FinetuneGainSettings(cli.Settings):
    workdir: str = cli.flag("runs/finetune_gain")
    pretrain_epochs: tuple[int, ...] = cli.flag((3, 8))
    learning_rates: tuple[str, ...] = cli.flag(
        ("2e-4", "1e-3"), help="numbers, or `default` for bertmodel.finetune's")
    seeds: tuple[int, ...] = cli.flag((1, 2, 3))
    epochs: int = cli.flag(6, check=cli.positive, help="fine-tuning epochs")
    per_class: int = cli.flag(40, check=cli.positive, help="training lines per label, at most")

    def problems(self):
        for rate in self.learning_rates:
            try:
                ok = rate == "default" or float(rate) > 0
            except ValueError:
                ok = False
            if not ok:
                yield f"--learning_rates: {rate!r} is neither a positive number nor `default`"


def pretrain(workdir: str, epochs: int) -> str:
    model_dir = os.path.join(workdir, "model")
    if not os.path.isfile(os.path.join(model_dir, "encoder.keras")):
        start = time.perf_counter()
        summary = end_to_end.run_pipeline(end_to_end.EndToEndSettings(
            corpus=SAMPLE, workdir=workdir, vocab_size=600,
        example=ExampleSettings(max_seq_length=64, dupe_factor=5, seed=3),
            eval_fraction=0.1, config="mini", batch_size=8, epochs=epochs,
            learning_rate=2e-3, workers=1))
        print(f"pretrained {epochs} epochs in {time.perf_counter() - start:.0f} s: MLM "
              f"accuracy {summary['mlm_accuracy']:.3f} (most frequent piece "
              f"{summary['mlm_accuracy_most_frequent_piece_baseline']:.3f}), NSP "
              f"{summary['nsp_accuracy']:.3f}", file=sys.stderr, flush=True)
    return model_dir


def finetune_both(model_dir: str, task: tuple[str, str], out: str, args, lr, seed) -> dict:
    scores = {}
    for scratch in (False, True):
        config = classifier.FinetuneSettings(overwrite=True,
            model_dir=model_dir, train=task[0], eval=task[1],
            output_dir=os.path.join(out, f"lr{lr}-seed{seed}-{'scratch' if scratch else 'pre'}"),
            epochs=args.epochs, patience=args.epochs, batch_size=16, max_seq_length=64,
            learning_rate=lr, from_scratch=scratch, seed=seed, export=False)
        scores[scratch] = classifier.finetune(config)
    return scores


def measure(args: FinetuneGainSettings) -> int:
    logging.getLogger("bertmodel").setLevel(logging.WARNING)  # fine-tuning's epoch lines
    task = write_source_task(os.path.join(args.workdir, "task"), per_class=args.per_class)
    with open(task[0], encoding="utf-8") as f:
        train_lines = sum(1 for _ in f)
    rows = []
    for epochs in args.pretrain_epochs:
        folder = os.path.join(args.workdir, f"pretrain-{epochs}")
        model_dir = pretrain(folder, epochs)
        for lr in [None if x == "default" else float(x) for x in args.learning_rates]:
            runs = [finetune_both(model_dir, task, folder, args, lr, int(seed))
                    for seed in args.seeds]
            row = [epochs, "default" if lr is None else f"{lr:g}"]
            for metric in ("eval_accuracy", "eval_macro_f1"):
                pre = statistics.median(r[False][metric] for r in runs)
                scratch = statistics.median(r[True][metric] for r in runs)
                row += [f"{pre:.3f}", f"{scratch:.3f}", f"{pre - scratch:+.3f}"]
            rows.append(row)
            print(" ".join(map(str, row)), file=sys.stderr, flush=True)
    print(f"\n{train_lines} training lines, 8 labels, {args.epochs} epochs, batch 16, seq 64; "
          f"medians over seeds {', '.join(map(str, args.seeds))}\n")
    print("| pretraining epochs | fine-tuning lr | accuracy, pretrained | from scratch | gap "
          "| macro-F1, pretrained | from scratch | gap |")
    print("| --- " * 8 + "|")
    for row in rows:
        print("| " + " | ".join(map(str, row)) + " |")
    return 0


def main(argv=None) -> int:
    return cli.run_command(FinetuneGainSettings, measure, argv,
                           description=__doc__.split("\n\n")[0], tensorflow=True)


if __name__ == "__main__":
    sys.exit(main())
