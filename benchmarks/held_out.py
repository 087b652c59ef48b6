"""A finished pretraining run's figures on held-out records, with this version's metrics.

    python -m benchmarks.held_out --model_dir=runs/learning_curve/electra \\
        --eval_tfrecords='runs/learning_curve/data/eval-*'

Loads MODEL_DIR/model.keras (a BERT or ELECTRA pretrainer) and evaluates it once over the
records (dynamic-masking records are masked with the run's tokenizer, as in training).
Prints every metric, and for ELECTRA the detection loss of always answering the share of
replaced tokens: a discriminator that has learned nothing scores exactly that, and its
`rtd_auc` is 0.5. Use it on runs older than a metric (`rtd_auc` came after the first
ELECTRA runs) or on records the run never evaluated.
"""

from __future__ import annotations

import dataclasses
import math
import os

import bertdata
from bertcommon import cli
from bertcommon.errors import BertpipeError
from bertdata.tfdata import dataset_files
from bertdata.tfdata.dynamic_masking import masking_options
from bertdata.tokenizer_files import read_tokenizer_source
from bertmodel import load_pretrainer


@dataclasses.dataclass(frozen=True)
class HeldOutSettings(cli.Settings):
    model_dir: str = cli.flag(help="a finished bertmodel.train run")
    eval_tfrecords: str = cli.flag(help="records to score, a glob or a dataset folder")
    batch_size: int = cli.flag(64, check=cli.positive)
    seed: int = cli.flag(1, help="of the dynamic masks (and so of the figures)")


def prior_loss(replaced: float) -> float:
    """Binary cross-entropy of always answering probability REPLACED."""
    if replaced in (0.0, 1.0):
        return 0.0
    return -(replaced * math.log(replaced) + (1 - replaced) * math.log(1 - replaced))


def replaced_share(accuracy: float, precision: float, recall: float) -> float:
    """The share of positives, from accuracy a, precision p and recall r at one threshold:
    1 - a = P/N (1 - r (2 - 1/p)); with no positive answer (p = 0, r = 0), 1 - a."""
    if precision == 0.0:
        return 1.0 - accuracy
    return (1.0 - accuracy) / (1.0 - recall * (2.0 - 1.0 / precision))


def held_out_records(settings: HeldOutSettings):
    """The records as training evaluates them; ValueError names the flag or file at fault."""
    try:
        folder = os.path.dirname(dataset_files.list_files(settings.eval_tfrecords)[0])
    except ValueError as e:
        raise ValueError(f"--eval_tfrecords: {e}") from None
    meta = dataset_files.read_metadata(folder)
    masking = None
    if meta is not None and meta.masking == "dynamic":
        masking = masking_options(read_tokenizer_source(settings.model_dir).load(
            word_cache_size=0))
    return bertdata.make_dataset(settings.eval_tfrecords, settings.batch_size,
                                 is_training=False, dynamic_masking=masking, repeat=False,
                                 seed=settings.seed)


def measure(settings: HeldOutSettings) -> None:
    try:
        model = load_pretrainer(os.path.join(settings.model_dir, "model.keras"))
        records = held_out_records(settings)
    except (ValueError, OSError) as e:  # a missing run or records: one line, no traceback
        raise BertpipeError(str(e)) from None
    model.compile()
    scores = model.evaluate(records, verbose=0, return_dict=True)
    for name, value in sorted(scores.items()):
        print(f"{name}: {float(value):.4f}")
    if "rtd_auc" in scores:
        replaced = replaced_share(*(float(scores[f"rtd_{k}"])
                                    for k in ("accuracy", "precision", "recall")))
        print(f"replaced share: {replaced:.4f}; detection loss of always answering it: "
              f"{prior_loss(replaced):.4f}")


def main(argv=None) -> int:
    return cli.run_command(HeldOutSettings, measure, argv, description=__doc__.split("\n")[0],
                           tensorflow=True)


if __name__ == "__main__":
    raise SystemExit(main())
