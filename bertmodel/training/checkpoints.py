"""A training run's state on disk: what the same command resumes from after a kill.

MODEL_DIR/checkpoints/last/ holds TensorFlow checkpoints (`ckpt-STEP`, the last two kept) of
the model, the optimizer (its slots and step count) and the run's progress, as JSON in one
string variable: the batches trained, the history of every finished epoch, the best value
of the monitored metric and whether training finished. They are saved together, and
TensorFlow writes a checkpoint before it points to it, so a kill at any moment leaves the
previous complete one. MODEL_DIR/checkpoints/best.weights.h5 holds the model's weights at
the best monitored value; it is replaced by renaming, only by a better value.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os

import tensorflow as tf

from bertcommon.files import atomic_path, check_free_space

LAST = "last"
BEST_WEIGHTS = "best.weights.h5"


class CheckpointError(Exception):
    """A checkpoint that cannot resume this run; names it."""


@dataclasses.dataclass
class Progress:
    """How far a run got; saved inside every checkpoint."""

    step: int = 0  # batches trained
    history: dict = dataclasses.field(default_factory=dict)  # metric -> one value per epoch
    best_value: float | None = None  # of the monitored metric
    best_step: int | None = None
    finished: bool = False  # every step trained; what is left is writing the outputs
    # Mid-epoch: each metric's variables (its running sums), so that a resumed epoch
    # reports the mean over all of its steps; None at an epoch's end.
    metric_states: dict | None = None
    # The held-out figures of --eval_every_steps: {"step": N, "val_<metric>": value, ...}.
    evaluations: list = dataclasses.field(default_factory=list)

    @property
    def epochs_done(self) -> int:
        return len(self.history.get("loss", []))


class RunState:
    """The model, its optimizer and the run's Progress, saved and restored together.

    `restore_from` is where to resume from when it is not `directory`: under multi-worker
    training every worker resumes from the chief's checkpoints and saves into its own folder.
    """

    def __init__(self, directory: str, model, optimizer, restore_from: str | None = None):
        self.directory = directory
        self.restore_from = restore_from or directory
        os.makedirs(directory, exist_ok=True)
        self.progress = Progress()
        self._json = tf.Variable("{}", trainable=False, name="progress")
        # Every model variable by position, not only what `model=` reaches: TensorFlow's
        # object graph does not follow the list Keras 3 keeps the encoder blocks in, so
        # their trainable weights were saved only through the optimizer and their dropout
        # counters not at all, and a resumed run drew other dropout masks from then on.
        self._checkpoint = tf.train.Checkpoint(model=model, model_variables=list(model.variables),
                                               optimizer=optimizer, progress=self._json)
        self._manager = tf.train.CheckpointManager(
            self._checkpoint, os.path.join(directory, LAST), max_to_keep=2)

    def restore(self) -> bool:
        """Loads the latest checkpoint, if any; True when there was one."""
        path = tf.train.latest_checkpoint(os.path.join(self.restore_from, LAST))
        if not path:
            return False
        try:
            self._checkpoint.restore(path).assert_existing_objects_matched()
        except AssertionError:
            raise CheckpointError(
                f"checkpoint {path} lacks variables of this model: it was written for another "
                "model, or by an earlier bertpipe, which left the encoder's dropout state out; "
                "resume it with the bertpipe that wrote it, or train into a new "
                "--model_dir") from None
        self.progress = Progress(**json.loads(self._json.numpy().decode()))
        return True

    def save(self) -> None:
        self._json.assign(json.dumps(dataclasses.asdict(self.progress)))
        self._manager.save(checkpoint_number=self.progress.step)

    def improves(self, value) -> bool:
        """Whether a monitored value beats the best so far (a NaN never does)."""
        if value is None or not math.isfinite(value):
            return False
        return self.progress.best_value is None or value > self.progress.best_value

    @property
    def best_weights(self) -> str:
        return os.path.join(self.directory, BEST_WEIGHTS)

    def save_best(self, model, value: float) -> None:
        # The weights' bytes, and HDF5's own few kilobytes per variable.
        needed = sum(math.prod(v.shape) * tf.as_dtype(v.dtype).size + 4096
                     for v in model.weights) + 65_536
        check_free_space(self.directory, needed)
        with atomic_path(self.best_weights) as tmp:
            model.save_weights(tmp)
        self.progress.best_value, self.progress.best_step = float(value), self.progress.step
