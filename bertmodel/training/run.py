"""Running a planned pretraining run: devices, datasets, the model, fit, and its outputs.

`bertmodel.training.plan` checks the flags and the data and settles a Plan; `TrainingRun` runs
it, owning what the run builds (devices, datasets, model, state). A run
resumes from the last checkpoint of its --model_dir: the interrupted epoch's remaining steps
first, then the rest, so no finished step is trained again; a run whose training finished
only writes the outputs that are missing (each is written under a temporary name and
renamed, so none is ever half-written).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil

import tensorflow as tf

import bertdata
from bertcommon.files import (
    BadFile,
    atomic_path,
    read_json,
    remove,
    remove_leftovers,
    run_lock,
    write_json,
)
from bertdata.tfdata import dynamic_masking
from bertmodel.export.hf_import import init_pretrainer
from bertmodel.export.saved_model import export_saved_model
from bertmodel.model.bert import BertPretrainer, dummy_inputs
from bertmodel.model.electra import ElectraPretrainer, generator_config
from bertmodel.model.layers import KERAS3
from bertmodel.training import devices, flops
from bertmodel.training.callbacks import (
    Checkpointing,
    EvaluateEvery,
    KeepEncoders,
    RestoreEpochMetrics,
    StepCounter,
    StepLogger,
    write_history,
)
from bertmodel.training.checkpoints import RunState
from bertmodel.training.plan import DATA_METADATA, Plan, TrainError
from bertmodel.training.plots import save_plots
from bertmodel.training.schedule import WarmupCosine, make_optimizer
from bertmodel.training.settings import ELECTRA, TrainSettings

log = logging.getLogger("bertmodel.train")

OUTPUTS = ("model.keras", "encoder.keras", "export", "plots.png")


@dataclasses.dataclass
class Setup:
    strategy: object
    replicas: int
    precision: str
    jit: bool
    pad_to: str
    out_dir: str  # --model_dir on the chief, a scratch folder on other workers
    checkpoint_every_steps: int | None


def set_up_devices(config: TrainSettings) -> Setup:
    devices.split_cpu(config.cpu_devices)
    strategy = devices.make_strategy(config.strategy)
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise devices.DeviceError(f"--batch_size {config.batch_size} is not divisible by the "
                                  f"{replicas} replicas of the strategy")
    precision = devices.resolve_precision(config.mixed_precision)
    tf.keras.mixed_precision.set_global_policy(devices.KERAS_POLICIES[precision])
    jit = devices.resolve_jit(config.jit_compile, replicas, precision)
    tf.keras.utils.set_random_seed(config.seed)
    # Under multi-worker training every worker runs this code; only the chief writes into
    # --model_dir, the others into a scratch folder beside it (removed at the end).
    out_dir = config.model_dir if devices.is_chief(strategy) else os.path.join(
        config.model_dir, f".worker-{strategy.cluster_resolver.task_id}")
    every = config.checkpoint_every_steps
    if every is None and isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        every = 1000  # workers save together, so the cadence cannot be a clock's
    return Setup(strategy, replicas, precision, jit,
                 config.pad_to or ("buckets" if jit else "longest"), out_dir, every)


def make_datasets(config, plan, setup):
    """(train_from, eval_ds): train_from(step) is the training data from that step on."""

    masking = (dynamic_masking.masking_options(plan.tokenizer.load(word_cache_size=0))
               if plan.meta.masking == "dynamic" else None)

    def distributed(files, training, skip=0):
        def fn(ctx):
            ds = bertdata.make_dataset(
                files, config.batch_size, is_training=training, input_context=ctx,
                seed=config.seed, pad_to=setup.pad_to, shuffle_buffer=config.shuffle_buffer,
                dynamic_masking=masking, repeat=training)
            # Each step takes one batch per replica: skipping `skip` batches puts a resumed
            # run where the interrupted one was, in the same (seeded) order.
            return ds.skip(skip) if skip else ds
        return setup.strategy.distribute_datasets_from_function(fn)

    eval_ds = distributed(plan.eval_files, False) if plan.eval_files else None
    return (lambda step: distributed(plan.files, True, skip=step)), eval_ds


def make_pretrainer(config: TrainSettings, plan: Plan):
    """The objective's model, unbuilt."""
    if config.objective == ELECTRA:
        return ElectraPretrainer(config=plan.bert_config, generator_size=config.generator_size,
                                 mlm_loss_weight=config.mlm_weight,
                                 rtd_loss_weight=config.rtd_loss_weight,
                                 name="electra_pretrainer")
    return BertPretrainer(config=plan.bert_config, mlm_loss_weight=config.mlm_weight,
                          next_sentence=plan.meta.has_next_sentence, name="bert_pretrainer")


def build_model(config, plan, setup):

    accumulate = config.gradient_accumulation_steps
    with setup.strategy.scope():
        model = make_pretrainer(config, plan)
        model(dummy_inputs(plan.bert_config))
        checkpoint = plan.take_init_checkpoint()
        if checkpoint is not None:  # a resumed run's checkpoint overrides these afterwards
            init_pretrainer(model, checkpoint)
        # The schedule counts optimizer updates: one per `accumulate` batches.
        schedule = WarmupCosine(plan.learning_rate, plan.warmup_steps // accumulate,
                                max(1, plan.total_steps // accumulate))
        optimizer = make_optimizer(config.optimizer, schedule, weight_decay=config.weight_decay,
                                   clipnorm=config.clipnorm,
                                   gradient_accumulation_steps=accumulate,
                                   beta_2=config.adam_beta_2)
        model.compile(optimizer=optimizer, jit_compile=setup.jit)
        # Slots made now, not inside fit's first trace, which would then trace the step twice.
        model.optimizer.build(model.trainable_variables)
    return model


def write_settings(config, plan, setup) -> None:
    os.makedirs(setup.out_dir, exist_ok=True)
    settings = {"model": plan.bert_config.to_dict(), "training": {
        **dataclasses.asdict(config), "mlm_loss_weight": config.mlm_weight,
        "steps_per_epoch": plan.steps_per_epoch,
        "epochs": plan.epochs, "total_steps": plan.total_steps,
        "warmup_steps": plan.warmup_steps, "learning_rate": plan.learning_rate,
        "effective_batch_size": config.batch_size * config.gradient_accumulation_steps,
        "precision": setup.precision, "jit_compile": setup.jit, "pad_to": setup.pad_to,
        "replicas": setup.replicas}}
    _write_json(os.path.join(setup.out_dir, "config.json"), settings)
    _write_json(os.path.join(setup.out_dir, DATA_METADATA), plan.meta.to_json())
    if plan.tokenizer is not None:
        plan.tokenizer.write_files(setup.out_dir)


def _write_json(path, obj):
    write_json(path, obj, sort_keys=True, default=str)


def step_flops(config: TrainSettings, plan: Plan):
    """A training step's FLOPs per sequence of a padded length, for the objective."""
    cfg, preds = plan.bert_config, plan.meta.max_predictions_per_seq
    if config.objective == ELECTRA:
        generator = generator_config(cfg, config.generator_size)
        return lambda length: flops.electra_flops_per_sequence(cfg, generator, length, preds)
    return lambda length: flops.flops_per_sequence(cfg, length, preds)


def make_callbacks(config, plan, setup, state, eval_ds):
    monitor = "val_mlm_accuracy" if eval_ds is not None else "mlm_accuracy"
    checkpointing = Checkpointing(state, monitor, setup.checkpoint_every_steps,
                                  setup.out_dir, plan.total_steps)
    peak = config.peak_tflops * 1e12 if config.peak_tflops else None
    if peak is None and tf.config.list_physical_devices("GPU"):
        peak = flops.device_peak(setup.precision)[0]
    logs_dir = os.path.join(setup.out_dir, "logs")
    every = []
    if config.eval_every_steps and eval_ds is not None:  # before checkpointing (its doc)
        every = [EvaluateEvery(eval_ds, plan.eval_steps, config.eval_every_steps, state,
                               os.path.join(logs_dir, "steps"), checkpointing)]
    callbacks = [
        StepCounter(state),  # first: the callbacks after it read the step it counts
        *every,
        checkpointing,
        StepLogger(os.path.join(logs_dir, "steps"), config.log_every_steps, state,
                   global_batch=config.batch_size,
                   flops_per_sequence=step_flops(config, plan),
                   peak_flops=peak * setup.replicas if peak else None),
        tf.keras.callbacks.TensorBoard(logs_dir),
        tf.keras.callbacks.TerminateOnNaN(),
    ]
    if config.keep_encoder_every_steps:
        callbacks.append(KeepEncoders(state, config.keep_encoder_every_steps, setup.out_dir,
                                      plan.tokenizer))
    return callbacks


def fit(model, config, plan, state, train_from, eval_ds, callbacks) -> None:
    """Trains the steps not trained yet: the rest of an interrupted epoch, then the others.
    A resumed run reads the data from the step it stopped at, and its interrupted epoch
    starts from the metric sums saved with the checkpoint, so it ends as an uninterrupted
    run would."""
    epoch, done = divmod(state.progress.step, plan.steps_per_epoch)
    common = {"validation_data": eval_ds, "validation_steps": plan.eval_steps,
              "verbose": config.verbose, "shuffle": False}
    if done:
        log.info("resuming at step %d, in epoch %d", state.progress.step, epoch + 1)
        resumed = RestoreEpochMetrics(state.progress.metric_states)
        model.fit(train_from(state.progress.step), initial_epoch=epoch, epochs=epoch + 1,
                  steps_per_epoch=plan.steps_per_epoch - done,
                  callbacks=[resumed, *callbacks], **common)
        epoch += 1
    elif state.progress.step:
        log.info("resuming at step %d, epoch %d", state.progress.step, epoch + 1)
    if epoch < plan.epochs and not model.stop_training:
        model.fit(train_from(epoch * plan.steps_per_epoch), initial_epoch=epoch,
                  epochs=plan.epochs, steps_per_epoch=plan.steps_per_epoch,
                  callbacks=callbacks, **common)


OUTPUTS_MANIFEST = "outputs.json"


def _size(path: str) -> int:
    """Bytes of a file, or of every file under a folder."""
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path)
                   for f in fs)
    return os.path.getsize(path)


def _current_outputs(out: str, step: int) -> set[str]:
    """The outputs OUTPUTS_MANIFEST says were written whole at this step and that are still
    as written (same size); anything else is rewritten, so a rerun never mixes outputs of
    different steps or keeps a damaged one."""
    path = os.path.join(out, OUTPUTS_MANIFEST)
    try:
        manifest = read_json(path)
    except BadFile:  # missing or damaged: it vouches for nothing
        return set()
    sizes = manifest.get("sizes")
    if manifest.get("step") != step or not isinstance(sizes, dict):
        return set()
    return {name for name in OUTPUTS if os.path.exists(os.path.join(out, name))
            and sizes.get(name) == _size(os.path.join(out, name))}


def write_outputs(model, plan, setup, state, only_missing: bool) -> None:
    """The outputs of a finished run, each under a temporary name first, then
    OUTPUTS_MANIFEST (the step they belong to and their sizes), last. With only_missing
    (nothing was trained now), only the outputs that the manifest does not vouch for. The
    best weights are restored before (as the reference keeps them). The export takes raw
    text when the run has a tokenizer with a graph counterpart; it trims to the model's
    positions, as the fill_mask command does."""

    out = setup.out_dir
    step = state.progress.step
    current = _current_outputs(out, step) if only_missing else set()
    remove(os.path.join(out, OUTPUTS_MANIFEST))  # no manifest while outputs change
    remove_leftovers(out)  # a killed run's half-written or replaced output
    if os.path.exists(state.best_weights) and (KERAS3 or setup.replicas == 1):
        # (tf-keras cannot assign loaded weights to multi-worker variables.)
        with setup.strategy.scope():
            model.load_weights(state.best_weights)
    writers = {"model.keras": model.save, "encoder.keras": model.backbone.save,
               # Texts up to the model's positions, as `python -m bertmodel.fill_mask` reads
               # them, so the two give the same answers on any text.
               "export": lambda path: export_saved_model(model, path,
                                                              tokenizer=plan.tokenizer),
               "plots.png": lambda path: save_plots(state.progress.history, path)}
    for name in OUTPUTS:
        if name in current:
            continue
        with atomic_path(os.path.join(out, name)) as tmp:
            writers[name](tmp)
    write_history(state.progress, out)
    _write_json(os.path.join(out, OUTPUTS_MANIFEST), {
        "step": step, "sizes": {name: _size(os.path.join(out, name)) for name in OUTPUTS}})


class TrainingRun:
    """One planned run: trains it (or resumes it, or finishes it) and writes its outputs,
    holding --model_dir's lock so that a second run on the same folder is refused while
    this one lives."""

    def __init__(self, config: TrainSettings, plan: Plan):
        self.config, self.plan = config, plan
        self.setup = set_up_devices(config)

    def run(self) -> dict:
        with run_lock(self.setup.out_dir, "--model_dir"):
            return self._run()

    def _run(self) -> dict:
        config, plan, setup = self.config, self.plan, self.setup
        write_settings(config, plan, setup)
        train_from, eval_ds = make_datasets(config, plan, setup)
        model = build_model(config, plan, setup)
        state = RunState(os.path.join(setup.out_dir, "checkpoints"), model, model.optimizer,
                         restore_from=os.path.join(config.model_dir, "checkpoints"))
        state.restore()
        if state.progress.finished and state.progress.step < plan.total_steps:
            log.info("extending the finished run from %d to %d steps", state.progress.step,
                     plan.total_steps)
            state.progress.finished = False
        self._log_start(model)
        trained_now = not state.progress.finished
        if trained_now:
            fit(model, config, plan, state, train_from, eval_ds,
                make_callbacks(config, plan, setup, state, eval_ds))
            if model.stop_training or not state.progress.finished:
                # TerminateOnNaN stopped the run: keep the last good state, publish nothing.
                raise TrainError("training stopped on a non-finite loss at step "
                                 f"{state.progress.step}; the last good checkpoint and the "
                                 f"best weights are kept in {state.directory}")
        else:
            log.info("training had finished; writing the outputs that are missing")
        if config.save_outputs:
            write_outputs(model, plan, setup, state, only_missing=not trained_now)
        summary = self._summary(model, state, eval_ds)
        if setup.out_dir != config.model_dir:
            shutil.rmtree(setup.out_dir, ignore_errors=True)
        return summary

    def _log_start(self, model) -> None:
        config, plan, setup = self.config, self.plan, self.setup
        log.info("model: %s parameters; %d replica(s); precision %s; XLA %s; %d steps "
                 "(%d epochs x %d), warm-up %d, peak learning rate %g, effective batch %d",
                 f"{model.count_params():,}", setup.replicas, setup.precision, setup.jit,
                 plan.total_steps, plan.epochs, plan.steps_per_epoch, plan.warmup_steps,
                 plan.learning_rate, config.batch_size * config.gradient_accumulation_steps)

    def _summary(self, model, state, eval_ds) -> dict:
        model_dir = self.config.model_dir
        summary = {"model_dir": model_dir, "history": state.progress.history,
                   "parameters": int(model.count_params()), "steps": state.progress.step,
                   "optimizer_updates": int(model.optimizer.iterations.numpy()),
                   "best_checkpoint": state.best_weights,
                   "plots": os.path.join(model_dir, "plots.png"),
                   "logs": os.path.join(model_dir, "logs")}
        if eval_ds is not None:
            summary["eval"] = {k: float(v) for k, v in model.evaluate(
                eval_ds, steps=self.plan.eval_steps, verbose=0, return_dict=True).items()}
        return summary
