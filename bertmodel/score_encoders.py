"""What pretraining buys as it goes: fine-tune and score every encoder a run kept.

    python -m bertmodel.train ... --keep_encoder_every_steps=500
    python -m bertmodel.score_encoders --model_dir=runs/model --train=train.tsv \
        --eval=dev.tsv --output_dir=runs/model/scores --epochs=2 --learning_rate=1e-3

Each encoder in MODEL_DIR/encoders/step-* is fine-tuned as `bertmodel.finetune` would, with
the same settings, and so is the same architecture from random weights (step 0): the
budget and the rate are the same for all, so the curve shows what the pretraining steps
add. OUTPUT_DIR gets scores.csv (step, eval accuracy and macro-F1, best epoch, the
bag-of-words baseline) and scores.png (accuracy against steps, from scratch and bag of
words as lines), written whole.
"""

from __future__ import annotations

import csv
import dataclasses
import glob
import logging
import os
import sys

from bertcommon import cli
from bertcommon.errors import BertpipeError
from bertcommon.files import atomic_path, output_dir_problem
from bertmodel.tasks import classifier
from bertmodel.training.callbacks import ENCODERS_DIR
from bertmodel.training.plots import save_score_plot

log = logging.getLogger("bertmodel.score_encoders")

COLUMNS = ("step", "eval_accuracy", "eval_macro_f1", "best_epoch", "bag_of_words_accuracy")


@dataclasses.dataclass(frozen=True)
class ScoreSettings(cli.Settings):
    model_dir: str = cli.flag(help="a bertmodel.train run with --keep_encoder_every_steps")
    train: str = cli.flag(help="TSV: label<TAB>text[<TAB>text_b]")
    eval: str = cli.flag(help="TSV the accuracies are measured on")
    output_dir: str = cli.flag(help="where scores.csv, scores.png and each fine-tuning go")
    epochs: int = cli.flag(2, check=cli.positive)
    batch_size: int = cli.flag(32, check=cli.positive)
    learning_rate: float | None = cli.flag(
        None, check=cli.positive, help="default: bertmodel.finetune's for the model's width")
    max_seq_length: int = cli.flag(128, check=cli.at_least(3))
    seed: int = cli.flag(1)
    overwrite: bool = cli.flag(False, help="replace a non-empty --output_dir")


def kept_encoders(model_dir: str) -> list[tuple[int, str]]:
    """(step, folder) of every encoder the run kept, by step."""
    folders = glob.glob(os.path.join(model_dir, ENCODERS_DIR, "step-*"))
    return sorted((int(os.path.basename(f).split("-")[1]), f) for f in folders
                  if os.path.basename(f).split("-")[1].isdigit())


def score(settings: ScoreSettings) -> list[dict]:
    """Fine-tunes random weights (step 0) and every kept encoder; returns the rows."""
    encoders = kept_encoders(settings.model_dir)
    if not encoders:
        raise BertpipeError(f"--model_dir {settings.model_dir} holds no encoders/step-*: "
                               "train with --keep_encoder_every_steps=N")
    problem = output_dir_problem(settings.output_dir, settings.overwrite)
    if problem:
        raise BertpipeError(problem)
    rows = []
    with atomic_path(settings.output_dir) as tmp:
        os.makedirs(tmp)
        for step, folder in [(0, encoders[0][1]), *encoders]:
            log.info("=== step %d%s", step, " (random weights)" if step == 0 else "")
            result = classifier.finetune(classifier.FinetuneSettings(
                model_dir=folder, train=settings.train, eval=settings.eval,
                output_dir=os.path.join(tmp, f"step-{step:07d}"), epochs=settings.epochs,
                batch_size=settings.batch_size, learning_rate=settings.learning_rate,
                max_seq_length=settings.max_seq_length, from_scratch=step == 0,
                patience=settings.epochs, seed=settings.seed, export=False))
            rows.append({"step": step, **{k: result[k] for k in COLUMNS[1:]}})
        with open(os.path.join(tmp, "scores.csv"), "w", newline="") as f:
            writer = csv.DictWriter(f, COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        save_score_plot(rows, os.path.join(tmp, "scores.png"),
                        f"{os.path.basename(os.path.abspath(settings.model_dir))}: "
                        f"{os.path.basename(settings.eval)}")
    return rows


def _command(settings: ScoreSettings) -> None:
    for row in score(settings):
        print(",".join(str(row[k]) for k in COLUMNS))


def main(argv=None) -> int:
    return cli.run_command(ScoreSettings, _command, argv, tensorflow=True,
                           description=__doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
