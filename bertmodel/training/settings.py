"""The trainer's settings: one validated dataclass, filled from the command line.

`bertmodel.train.train(TrainSettings(...))` does the work; `python -m bertmodel.train` only
parses its flags into a TrainSettings. Every check of a setting on its own is made here, with
a message naming the flag; checks against the data are made by the trainer before training.

Step counts (steps per epoch, warm-up, checkpoint, log and eval cadences) count batches of
`batch_size` examples. With gradient accumulation the optimizer updates every
`gradient_accumulation_steps` batches, the effective batch is their product, and the
learning-rate schedule counts those updates.
"""

from __future__ import annotations

import dataclasses

from bertcommon import cli
from bertdata.schema import PAD_MODES
from bertmodel.model.config import (
    DEFAULT_GENERATOR_SIZE,
    DEFAULT_MLM_LOSS_WEIGHT,
    DEFAULT_RTD_LOSS_WEIGHT,
    ELECTRA_MLM_LOSS_WEIGHT,
)
from bertmodel.training.devices import PRECISIONS, STRATEGIES

OPTIMIZERS = ("adam", "adamw", "lamb")
MLM, ELECTRA = "mlm", "electra"
OBJECTIVES = (MLM, ELECTRA)
DESCRIPTION = ("Pretrain BERT: masked LM (and next-sentence prediction if the records have "
               "it), or ELECTRA's replaced-token detection.")


@dataclasses.dataclass(frozen=True)
class TrainSettings(cli.Settings):
    tfrecords: str = cli.flag(help="training shards: a glob or the data job's output directory")
    model_dir: str = cli.flag(help="where checkpoints, logs, the model and its exports go")
    eval_tfrecords: str | None = cli.flag(
        None, help="held-out shards (a glob); the best checkpoint is then chosen by "
                   "val_mlm_accuracy")
    config: str = cli.flag("seed", help="a preset (tiny, mini, seed, base, large) or a JSON "
                                        "file of BertConfig fields")
    batch_size: int = cli.flag(64, check=cli.positive,
                               help="the GLOBAL batch, split over replicas")
    epochs: int = cli.flag(2, check=cli.positive)
    steps_per_epoch: int | None = cli.flag(
        None, check=cli.positive,
        help="default: the train split's examples (metadata.json) // batch_size")
    train_steps: int | None = cli.flag(
        None, check=cli.positive,
        help="total steps; overrides --epochs (as many epochs as an epoch's steps make it, "
             "sharing the total evenly; rounded up to a multiple of them)")
    eval_steps: int | None = cli.flag(None, check=cli.positive,
                                      help="batches per evaluation; default: the whole split")
    eval_every_steps: int | None = cli.flag(None, check=cli.positive,
                                            help="also evaluate within epochs, every N steps")
    learning_rate: float | None = cli.flag(
        None, check=cli.positive,
        help="peak of the warm-up + cosine schedule; default: the preset's (see the README)")
    warmup_steps: int | None = cli.flag(None, check=cli.non_negative,
                                        help="default: max(100, total_steps // 10)")
    optimizer: str = cli.flag("adam", choices=OPTIMIZERS)
    weight_decay: float = cli.flag(0.01, check=cli.non_negative, help="adamw and lamb")
    clipnorm: float | None = cli.flag(None, check=cli.positive, help="global norm clip")
    adam_beta_2: float = cli.flag(0.98, check=cli.between(0.0, 1.0),
                                  help="the second-moment decay of adam, adamw and lamb")
    gradient_accumulation_steps: int = cli.flag(1, check=cli.positive,
                                                help="batches per optimizer update")
    objective: str = cli.flag(
        MLM, choices=OBJECTIVES,
        help="mlm: BERT's masked LM; electra: a small generator fills the masked positions "
             "and the model learns to tell every replaced piece (docs/training.md)")
    mlm_loss_weight: float | None = cli.flag(
        None, check=cli.positive,
        help=f"weight of the (generator's) MLM loss; default {DEFAULT_MLM_LOSS_WEIGHT:g} "
             f"against NSP for mlm, {ELECTRA_MLM_LOSS_WEIGHT:g} for electra")
    generator_size: float = cli.flag(
        DEFAULT_GENERATOR_SIZE, check=cli.Check(lambda v: 0 < v <= 1, "in (0, 1]"),
        help="electra: the generator's width, heads and feed-forward as a fraction of the "
             "model's")
    rtd_loss_weight: float = cli.flag(
        DEFAULT_RTD_LOSS_WEIGHT, check=cli.positive,
        help="electra: weight of replaced-token detection against the generator's MLM loss")
    mixed_precision: str = cli.flag("auto", choices=PRECISIONS)
    strategy: str = cli.flag("auto", choices=STRATEGIES)
    jit_compile: str = cli.flag("auto", choices=("auto", "true", "false"))
    pad_to: str | None = cli.flag(None, choices=PAD_MODES,
                                  help="default: buckets with XLA (few shapes to compile), "
                                       "else longest")
    shuffle_buffer: int = cli.flag(10_000, check=cli.non_negative)
    tokenizer: str | None = cli.flag(
        None, help="the records' tokenizer (a .model, a tokenizer.json or a folder), checked "
                   "against them; default: --init_from's, or the one metadata.json names")
    spm_model: str | None = cli.flag(None, help="--tokenizer's older name")
    init_from: str | None = cli.flag(
        None, help="a Hugging Face BERT folder (a published checkpoint, or bertmodel.export_hf's) "
                   "whose weights start the run; its config.json sets the sizes (--config is "
                   "ignored) and its tokenizer must be the records'")
    seed: int = cli.flag(1)
    cpu_devices: int = cli.flag(
        0, check=cli.non_negative,
        help="split the CPU into N logical devices (to try strategies without GPUs)")
    checkpoint_every_steps: int | None = cli.flag(
        None, check=cli.positive,
        help="save a resumable checkpoint every N steps (and at every epoch's end); default: "
             "about every 5 minutes (every 1,000 steps under multi_worker)")
    keep_encoder_every_steps: int | None = cli.flag(
        None, check=cli.positive,
        help="also keep the encoder every N steps, as MODEL_DIR/encoders/step-NNNNNNN (a "
             "folder bertmodel.finetune and bertmodel.score_encoders read): what pretraining "
             "buys as it goes")
    log_every_steps: int = cli.flag(100, check=cli.positive,
                                    help="write step-level scalars to TensorBoard every N steps")
    peak_tflops: float | None = cli.flag(
        None, check=cli.positive,
        help="dense peak TFLOP/s of one device, for MFU; default: looked up by GPU name")
    verbose: int = cli.flag(1, choices=(0, 1, 2), help="Keras progress bar: 0, 1 (per step) "
                                                       "or 2 (per epoch)")
    save_outputs: bool = cli.flag(
        True, help="write model.keras, encoder.keras, export/ and plots.png at the end (off "
                   "for runs that only measure throughput)")

    @property
    def mlm_weight(self) -> float:
        """--mlm_loss_weight, or the objective's default."""
        if self.mlm_loss_weight is not None:
            return self.mlm_loss_weight
        return ELECTRA_MLM_LOSS_WEIGHT if self.objective == ELECTRA else DEFAULT_MLM_LOSS_WEIGHT

    @property
    def tokenizer_flag(self) -> str:
        """The flag naming the tokenizer, for messages."""
        return "--spm_model" if self.spm_model else "--tokenizer"

    @property
    def tokenizer_path(self) -> str | None:
        return self.spm_model or self.tokenizer

    def problems(self):
        if self.tokenizer and self.spm_model:
            yield "give the tokenizer once: --tokenizer (or the older --spm_model), not both"
        if self.objective != ELECTRA and (self.generator_size != DEFAULT_GENERATOR_SIZE or
                                          self.rtd_loss_weight != DEFAULT_RTD_LOSS_WEIGHT):
            yield "--generator_size and --rtd_loss_weight apply to --objective=electra only"


def make_parser():
    return cli.make_parser(TrainSettings, DESCRIPTION)
