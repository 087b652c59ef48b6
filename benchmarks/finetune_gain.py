"""Does pretraining help? The sample's pretrained encoder against the same architecture from
random weights, fine-tuned with the same budget on the sample's 8-label task.

Usage:
    python benchmarks/finetune_gain.py --workdir=runs/gain --pretrain_epochs=3,8 \
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

import argparse
import logging
import os
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def pretrain(workdir: str, epochs: int) -> str:
    from bertdata.example_settings import ExampleSettings
    from bertpipe import end_to_end
    from bertpipe.sample_task import SAMPLE

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
    from bertmodel.tasks import classifier

    scores = {}
    for scratch in (False, True):
        config = classifier.FinetuneSettings(overwrite=True,
            model_dir=model_dir, train=task[0], eval=task[1],
            output_dir=os.path.join(out, f"lr{lr}-seed{seed}-{'scratch' if scratch else 'pre'}"),
            epochs=args.epochs, patience=args.epochs, batch_size=16, max_seq_length=64,
            learning_rate=lr, from_scratch=scratch, seed=seed, export=False)
        scores[scratch] = classifier.finetune(config)
    return scores


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", default="runs/finetune_gain")
    p.add_argument("--pretrain_epochs", default="3,8")
    p.add_argument("--learning_rates", default="2e-4,1e-3")
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--epochs", type=int, default=6, help="fine-tuning epochs")
    p.add_argument("--per_class", type=int, default=40, help="training lines per label, at most")
    args = p.parse_args(argv)
    from bertcommon import logs
    from bertpipe.sample_task import write_source_task

    logs.configure("info")
    logs.import_tensorflow_quietly()
    logging.getLogger("bertmodel").setLevel(logging.WARNING)  # fine-tuning's epoch lines
    task = write_source_task(os.path.join(args.workdir, "task"), per_class=args.per_class)
    with open(task[0], encoding="utf-8") as f:
        train_lines = sum(1 for _ in f)
    rows = []
    for epochs in [int(x) for x in args.pretrain_epochs.split(",")]:
        folder = os.path.join(args.workdir, f"pretrain-{epochs}")
        model_dir = pretrain(folder, epochs)
        for lr in [None if x == "default" else float(x) for x in args.learning_rates.split(",")]:
            runs = [finetune_both(model_dir, task, folder, args, lr, int(seed))
                    for seed in args.seeds.split(",")]
            row = [epochs, "default" if lr is None else f"{lr:g}"]
            for metric in ("eval_accuracy", "eval_macro_f1"):
                pre = statistics.median(r[False][metric] for r in runs)
                scratch = statistics.median(r[True][metric] for r in runs)
                row += [f"{pre:.3f}", f"{scratch:.3f}", f"{pre - scratch:+.3f}"]
            rows.append(row)
            print(" ".join(map(str, row)), file=sys.stderr, flush=True)
    print(f"\n{train_lines} training lines, 8 labels, {args.epochs} epochs, batch 16, seq 64; "
          f"medians over seeds {args.seeds}\n")
    print("| pretraining epochs | fine-tuning lr | accuracy, pretrained | from scratch | gap "
          "| macro-F1, pretrained | from scratch | gap |")
    print("| --- " * 8 + "|")
    for row in rows:
        print("| " + " | ".join(map(str, row)) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
