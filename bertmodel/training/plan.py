"""What a training run will do, settled before anything runs: the data checked against the
tokenizer, the model and the flags (`check_data`), the step counts and schedule
(`plan_run`), and the folder (`check_model_dir`). Every problem is a TrainError naming the
flag or file, raised before TensorFlow starts a device."""

from __future__ import annotations

import dataclasses
import math
import os

from bertcommon.errors import BertpipeError
from bertcommon.files import BadFile, read_json
from bertdata import schema
from bertdata.tfdata import dataset_files
from bertdata.tokenizer_files import TokenizerSource, read_tokenizer_source
from bertmodel.export.hf_import import HFFormatError, read_hf_folder
from bertmodel.model.config import PRESETS, BertConfig, default_learning_rate, load_config
from bertmodel.training.schedule import default_warmup_steps
from bertmodel.training.settings import ELECTRA, MLM, TrainSettings

# The run folder's copy of its dataset's metadata.json: what the folder was made from.
DATA_METADATA = "data_metadata.json"


class TrainError(BertpipeError):
    """A problem with the flags or the data, found before training starts."""


@dataclasses.dataclass
class Plan:
    """What the run will do, settled from the config and the data before anything runs."""

    files: list
    meta: schema.DatasetMetadata
    bert_config: object
    steps_per_epoch: int
    epochs: int
    warmup_steps: int
    learning_rate: float
    eval_files: list | None = None
    eval_steps: int | None = None
    # The records' tokenizer, when one was given or found (see records_tokenizer).
    tokenizer: TokenizerSource | None = None
    # --init_from's folder, read once (bertmodel.export.hf_import.HFModel); see
    # take_init_checkpoint.
    init_checkpoint: object | None = None

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.epochs

    def take_init_checkpoint(self):
        """The --init_from checkpoint (None without one), handed over once, so that its
        tensors are not held for the whole run once the model has them."""
        checkpoint, self.init_checkpoint = self.init_checkpoint, None
        return checkpoint


def _dataset(pattern, flag: str, split: str):
    """(files, validated metadata) of a dataset's split; errors name the flag. Every file
    must be a shard of that split: a glob that also matches the other split's shards would
    train on held-out data, or evaluate on training data."""
    try:
        files, meta = dataset_files.dataset_metadata(pattern)
    except ValueError as e:
        raise TrainError(f"{flag}: {e}") from None
    if meta is None:
        raise TrainError(f"{flag}: no {schema.METADATA_FILE} beside {files[0]}; train on the "
                         "output of beam_jobs.create_pretraining_data")
    other = [f for f in files if schema.split_of(f) != split]
    if other:
        raise TrainError(f"{flag} matches {other[0]}, which is not one of the {split} shards; give "
                         f"the {split} shards only (DIR/{schema.shard_glob(split)})")
    return files, meta


def examples_in(files, meta: schema.DatasetMetadata) -> int:
    """Examples in these shards, by metadata.json's per-shard counts."""
    return sum(meta.records_in(f) or 0 for f in files)


def check_data(config: TrainSettings):
    """The train and eval datasets and the tokenizer, checked against each other."""
    files, meta = _dataset(config.tfrecords, "--tfrecords", schema.TRAIN)
    if examples_in(files, meta) == 0:
        raise TrainError(f"--tfrecords: {schema.metadata_path(files)} says the train shards "
                         "given hold 0 examples")
    eval_files = eval_meta = None
    if config.eval_tfrecords:
        eval_files, eval_meta = _dataset(config.eval_tfrecords, "--eval_tfrecords",
                                         schema.EVAL)
        for field, mine, theirs in meta.objective_differences(eval_meta)[:1]:
            raise TrainError(f"--eval_tfrecords {schema.metadata_path(eval_files)} has "
                             f"{field} {theirs}, but --tfrecords {schema.metadata_path(files)} "
                             f"has {mine}: its figures would measure another task")
    return files, meta, eval_files, eval_meta


def records_tokenizer(config: TrainSettings, files, meta: schema.DatasetMetadata,
                      init_tokenizer: TokenizerSource | None = None) -> TokenizerSource | None:
    """The records' tokenizer: --tokenizer (or --spm_model) and --init_from's
    (INIT_TOKENIZER, read with its folder), which must be it, else the one metadata.json
    names where that path still holds it. None where none is found: only unmasked records
    (--masking=dynamic) need one."""
    where = schema.metadata_path(files)
    given = [(flag, path) for flag, path in ((config.tokenizer_flag, config.tokenizer_path),
                                             ("--init_from", config.init_from)) if path]
    found = None
    for flag, path in given:
        if flag == "--init_from" and init_tokenizer is not None:
            source = init_tokenizer
        else:
            try:
                source = read_tokenizer_source(path)
                source.load(word_cache_size=0)
            except (OSError, ValueError) as e:
                raise TrainError(f"{flag} {e}") from None  # the reader names the file
        if source.sha256 != meta.tokenizer.sha256:
            raise TrainError(f"{flag} {path} is not the tokenizer the records were made with "
                             f"({source.name}; {where}: sha256 {meta.tokenizer.sha256})")
        found = found or source
    recorded = meta.tokenizer.path
    if found is None and recorded and os.path.exists(recorded):
        try:
            source = read_tokenizer_source(recorded)
        except ValueError:
            source = None
        if source is not None and source.sha256 == meta.tokenizer.sha256:
            found = source
    if found is None and meta.masking == "dynamic":
        raise TrainError("these records are unmasked (--masking=dynamic): pass --tokenizer "
                         "(the tokenizer they were made with)")
    return found


def plan_run(config: TrainSettings) -> Plan:
    """Checks everything that can be checked before training; raises TrainError."""
    files, meta, eval_files, eval_meta = check_data(config)
    checkpoint = _read_init_from(config.init_from) if config.init_from else None
    tokenizer = records_tokenizer(config, files, meta,
                                  checkpoint.tokenizer if checkpoint else None)
    if checkpoint is not None:
        bert = checkpoint.config
    else:
        try:
            bert = load_config(config.config)
        except ValueError as e:
            raise TrainError(str(e)) from None
    if config.config in PRESETS and not config.init_from:
        bert = dataclasses.replace(bert, vocab_size=meta.vocab_size)
    elif bert.vocab_size != meta.vocab_size:
        raise TrainError(f"--config {config.config} has vocab_size={bert.vocab_size} but the "
                         f"records were made with a {meta.vocab_size}-piece tokenizer")
    if meta.max_seq_length > bert.max_position_embeddings:
        raise TrainError(f"records are {meta.max_seq_length} tokens long but the model has "
                         f"{bert.max_position_embeddings} positions")
    steps_per_epoch = config.steps_per_epoch or max(
        1, examples_in(files, meta) // config.batch_size)
    epochs = config.epochs
    if config.train_steps is not None:
        # The epochs share the total: ceil(train_steps / epochs) steps each.
        epochs = max(1, math.ceil(config.train_steps / steps_per_epoch))
        steps_per_epoch = math.ceil(config.train_steps / epochs)

    total = steps_per_epoch * epochs
    warmup = config.warmup_steps if config.warmup_steps is not None else \
        default_warmup_steps(total)
    if warmup > total:
        raise TrainError(f"--warmup_steps {warmup} is more than the {total} steps of the run")
    if config.gradient_accumulation_steps > total:
        raise TrainError(f"--gradient_accumulation_steps {config.gradient_accumulation_steps} "
                         f"is more than the {total} steps of the run: the optimizer would "
                         "never update the model")
    eval_steps = config.eval_steps
    if eval_files and eval_steps is None:
        count = examples_in(eval_files, eval_meta)
        eval_steps = math.ceil(count / config.batch_size) if count else None
    return Plan(files, meta, bert, steps_per_epoch, epochs, warmup,
                config.learning_rate or default_learning_rate(bert), eval_files, eval_steps,
                tokenizer, checkpoint)


def _read_init_from(folder: str):
    """The --init_from folder, read whole and checked (its tokenizer against the records by
    records_tokenizer)."""
    try:
        return read_hf_folder(folder)
    except HFFormatError as e:
        raise TrainError(f"--init_from: {e}") from None


def check_model_dir(config: TrainSettings, plan: Plan) -> None:
    """--model_dir must be a directory, and a rerun must train the same model."""
    path = config.model_dir
    if os.path.exists(path) and not os.path.isdir(path):
        raise TrainError(f"--model_dir {path} is a file, not a directory")
    settings = os.path.join(path, "config.json")
    if os.path.exists(settings):
        recorded = _read_run_file(settings)
        earlier = recorded.get("model")
        if earlier is not None and _model_of(earlier, settings) != plan.bert_config:
            raise TrainError(f"--model_dir {path} holds a run of another model ({settings}); "
                             "use another directory to train this one")
        objective = _objective_of(recorded.get("training"))
        if objective != _objective_of(dataclasses.asdict(config)):
            raise TrainError(f"--model_dir {path} holds a run of another objective "
                             f"({objective[0]}, generator size {objective[1]}; {settings}): "
                             "use another directory to train this one")
    data = os.path.join(path, DATA_METADATA)
    if os.path.exists(data):
        try:
            made_from = schema.DatasetMetadata.from_json(_read_run_file(data), data)
        except ValueError as e:
            raise TrainError(str(e)) from None
        for field, mine, theirs in made_from.objective_differences(plan.meta)[:1]:
            raise TrainError(f"--model_dir {path} was trained on records with {field} "
                             f"{mine} ({data}); --tfrecords have {theirs}: use another "
                             "directory to train on them")


def _objective_of(training) -> tuple:
    """(objective, generator size or None) of a run's recorded training settings (a run
    from before ELECTRA trained BERT's MLM)."""
    training = training if isinstance(training, dict) else {}
    objective = training.get("objective", MLM)
    return objective, training.get("generator_size") if objective == ELECTRA else None


def _model_of(fields, path: str):
    """The BertConfig a run folder's config.json records (a field it predates takes its
    default); None when it records no model this version can build."""
    try:
        return BertConfig.from_dict(fields, path) if isinstance(fields, dict) else None
    except ValueError:
        return None


def _read_run_file(path: str) -> dict:
    try:
        return read_json(path)
    except BadFile as e:
        raise TrainError(f"--model_dir: {e}") from None
