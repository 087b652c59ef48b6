"""Pretrain BERT on the TFRecords of the data job, with model.fit under tf.distribute.

Usage:
    python -m bertmodel.train --tfrecords=runs/data --eval_tfrecords='runs/data/eval-*' \
        --model_dir=runs/model --config=seed --batch_size=64 --epochs=2

Writes into --model_dir: config.json (model and training settings), data_metadata.json (the
dataset's metadata.json), tokenizer.model, checkpoints/last/ (resumable state: kill the run
and rerun the same command), checkpoints/best.weights.h5 (best by MLM accuracy), logs/
(TensorBoard: epoch scalars, and step scalars in logs/steps), history.csv, history.json,
plots.png, model.keras (the pretrainer), encoder.keras (the backbone, for fine-tuning) and
export/ (a SavedModel for serving), then outputs.json (the step and sizes of the outputs
written whole). A run that finished writes only what is missing, damaged or of another step.
"""

from __future__ import annotations

import json
import logging
import os
import sys

import tensorflow as tf

from bertcommon import cli
from bertcommon.files import FolderInUse
from bertdata.tfdata.integrity import read_error_message
from bertmodel.training import devices
from bertmodel.training.checkpoints import CheckpointError
from bertmodel.training.plan import TrainError, check_model_dir, plan_run
from bertmodel.training.run import TrainingRun
from bertmodel.training.settings import DESCRIPTION, TrainSettings, make_parser

log = logging.getLogger("bertmodel.train")


def train(config: TrainSettings) -> dict:
    """Trains (or resumes, or finishes) a run; returns a summary. Raises TrainError."""
    plan = plan_run(config)
    check_model_dir(config, plan)
    try:
        return TrainingRun(config, plan).run()
    except (devices.DeviceError, FolderInUse, CheckpointError) as e:
        raise TrainError(str(e)) from None
    except OSError as e:  # a full disk or a folder that cannot be written
        raise TrainError(_cannot_write(config, e.strerror or str(e))) from None
    except tf.errors.OpError as e:
        if NO_SPACE in str(e):  # TensorFlow's own writers: checkpoints, the SavedModel
            raise TrainError(_cannot_write(config, NO_SPACE)) from None
        # A shard found damaged while training reads it: one line naming the file.
        message = read_error_message(e)
        if message is None:
            raise
        raise TrainError(message) from None


NO_SPACE = "No space left on device"


def _cannot_write(config: TrainSettings, why: str) -> str:
    return (f"--model_dir {config.model_dir}: cannot write ({why}); the last complete "
            "checkpoint is kept, rerun the same command to resume")


def train_from_flags(argv=None) -> dict:
    """Parses flags into a TrainSettings and trains; raises TrainError for bad flags or data."""
    args = make_parser().parse_args(argv)
    try:
        config = cli.settings_from_args(TrainSettings, args)
    except cli.SettingsError as e:
        raise TrainError(str(e)) from None
    return train(config)


def _command(config: TrainSettings, argv: list[str], may_restart: bool) -> None:
    if devices.needs_legacy_keras(config.strategy):
        if not may_restart:
            raise TrainError("--strategy=multi_worker trains under tf-keras: set "
                             f"{devices.LEGACY_KERAS}=1 before TensorFlow is imported "
                             "(python -m bertmodel.train does it itself)")
        # TensorFlow is loaded with Keras 3 by now (importing bertmodel loads it): start
        # again with tf-keras chosen before it loads.
        os.environ[devices.LEGACY_KERAS] = "1"
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, [sys.executable, "-m", "bertmodel.train", *argv])
    summary = train(config)
    print(json.dumps({k: v for k, v in summary.items() if k != "history"}, indent=2))


def main(argv=None, *, may_restart: bool = False) -> int:
    """The command; MAY_RESTART lets it restart its own process under tf-keras when the
    strategy needs it (only when it is the process's command, never in library use)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    return cli.run_command(
        TrainSettings, lambda config: _command(config, argv, may_restart), argv,
        description=DESCRIPTION, tensorflow=True)


if __name__ == "__main__":
    sys.exit(main(may_restart=True))
