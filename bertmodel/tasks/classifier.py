"""Fine-tune a pretrained encoder into a classifier of sentences or sentence pairs.

The text goes through the in-graph preprocessor (bertmodel.model.preprocessing) inside the
tf.data pipeline. Schedule: linear warm-up over the first --warmup_percent of the steps, then
cosine decay; AdamW. After each epoch the eval set is scored (accuracy and macro-F1); the
weights of the best epoch by accuracy are kept, and training stops after --patience epochs
without a better one. The bag-of-words baseline is scored on the same split.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os

import numpy as np
import tensorflow as tf

import bertmodel
from bertcommon import cli
from bertcommon.files import BadFile, atomic_path, output_dir_problem
from bertdata.tokenizer_files import TokenizerSource, read_tokenizer_source
from bertmodel.export.hf_import import HFFormatError, is_hf_folder, load_backbone, read_hf_folder
from bertmodel.export.saved_model import export_classifier
from bertmodel.model.bert import BertBackbone, BertClassifier, dummy_inputs
from bertmodel.model.config import default_finetune_learning_rate
from bertmodel.model.preprocessing import BertPreprocessor
from bertmodel.tasks import FinetuneError
from bertmodel.tasks.bag_of_words import bag_of_words_baseline
from bertmodel.tasks.metrics import macro_f1
from bertmodel.tasks.tsv import Examples, label_list, read_tsv
from bertmodel.training.schedule import NO_DECAY, WarmupCosine

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class FinetuneSettings(cli.Settings):
    model_dir: str = cli.flag(help="a bertmodel.train output directory, or a Hugging Face "
                                   "BERT folder (bertmodel.export_hf)")
    train: str = cli.flag(help="TSV: label<TAB>text[<TAB>text_b]")
    eval: str = cli.flag(help="TSV; the weights best on it are kept")
    output_dir: str = cli.flag(help="where the classifier, its history and export go")
    test: str | None = cli.flag(
        None, help="a held-out TSV scored once with the weights kept on --eval")
    epochs: int = cli.flag(5, check=cli.positive)
    batch_size: int = cli.flag(32, check=cli.positive)
    learning_rate: float | None = cli.flag(
        None, check=cli.positive,
        help="peak learning rate; default by width, measured on NSMC where it could be: "
             "1e-3 (tiny, mini), 5e-4 (seed), 2e-5 (base, large)")
    max_seq_length: int = cli.flag(128, check=cli.at_least(3))
    from_scratch: bool = cli.flag(
        False, help="the same architecture from random weights, for comparison")
    patience: int = cli.flag(2, check=cli.positive,
                             help="epochs without a better eval accuracy before stopping")
    warmup_percent: int = cli.flag(
        10, check=cli.between(0, 100, high_included=True),
        help="the percentage of all steps the learning rate climbs to its peak over "
             "(at least one step)")
    dropout_rate: float = cli.flag(0.1, check=cli.between(0, 1))
    weight_decay: float = cli.flag(0.01, check=cli.non_negative)
    pooling: str = cli.flag("cls", choices=("cls", "mean"),
                            help="the pooled [CLS] vector, or the mean of the token vectors")
    export: bool = cli.flag(True, help="write OUT/export, the classify SavedModel (not needed "
                                       "for a comparison run)")
    overwrite: bool = cli.flag(False, help="replace a non-empty --output_dir")
    seed: int = cli.flag(1)
    verbose: int = cli.flag(0, choices=(0, 1, 2), help="Keras progress bar")


def _read_encoder(model_dir: str) -> tuple[BertBackbone, TokenizerSource]:
    """(backbone, tokenizer) of a bertmodel.train output or a Hugging Face folder."""
    if is_hf_folder(model_dir):
        try:
            hf = read_hf_folder(model_dir)
        except HFFormatError as e:
            raise FinetuneError(f"--model_dir: {e}") from None
        return load_backbone(hf), hf.tokenizer
    try:
        tokenizer = read_tokenizer_source(model_dir)
    except BadFile:
        raise FinetuneError(f"--model_dir {model_dir} holds no tokenizer: is it a "
                            "bertmodel.train output directory or a Hugging Face folder?"
                            ) from None
    try:
        return bertmodel.load_encoder(os.path.join(model_dir, "encoder.keras")), tokenizer
    except bertmodel.ModelFileError as e:
        raise FinetuneError(f"--model_dir: {e}") from None


def encoder_for_finetuning(model_dir: str, from_scratch: bool, seed: int):
    """(backbone, tokenizer): the pretrained encoder, or the same architecture with fresh
    random weights."""
    encoder, tokenizer = _read_encoder(model_dir)
    if from_scratch:
        tf.keras.utils.set_random_seed(seed)
        encoder = BertBackbone(encoder.config, name="backbone")
        encoder(dummy_inputs(encoder.config))
    return encoder, tokenizer


def labelled_text_dataset(examples: Examples, labels, preprocessor, batch_size, *, training, seed):
    """Batches of (features, label ids); the text is preprocessed inside the pipeline."""
    index = {label: i for i, label in enumerate(labels)}
    ids = np.array([index[x] for x in examples.labels], np.int32)
    columns = (examples.texts,) + ((examples.texts_b,) if examples.texts_b else ())
    ds = tf.data.Dataset.from_tensor_slices((*columns, ids))
    if training:
        ds = ds.shuffle(len(examples), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    # Traced as written (no autograph rewrite): the preprocessor branches on settings only.
    plain = tf.autograph.experimental.do_not_convert
    if examples.texts_b:
        ds = ds.map(plain(lambda a, b, y: (preprocessor(a, b), y)))
    else:
        ds = ds.map(plain(lambda a, y: (preprocessor(a), y)))
    return ds.prefetch(tf.data.AUTOTUNE)


def _make_scorer(eval_ds, truth, num_labels, patience, keras):
    class ScoreEachEpoch(keras.callbacks.Callback):
        """Eval accuracy and macro-F1 after each epoch; keeps the best weights; stops after
        `patience` epochs without a better accuracy."""

        def __init__(self):
            super().__init__()
            self.scores, self.best, self.best_weights, self.best_epoch = [], -1.0, None, 0

        def on_epoch_end(self, epoch, logs=None):
            predicted = np.argmax(self.model.predict(eval_ds, verbose=0), axis=-1)
            accuracy = float(np.mean(predicted == truth))
            f1 = macro_f1(truth, predicted, num_labels)
            self.scores.append({"epoch": epoch + 1, "eval_accuracy": accuracy,
                                "eval_macro_f1": f1, "loss": float((logs or {}).get("loss"))})
            log.info("epoch %d: loss %.4f, eval accuracy %.4f, macro-F1 %.4f", epoch + 1,
                     self.scores[-1]["loss"], accuracy, f1)
            if accuracy > self.best:
                self.best, self.best_epoch = accuracy, epoch + 1
                self.best_weights = self.model.get_weights()
            elif epoch + 1 - self.best_epoch >= patience:
                self.model.stop_training = True

    return ScoreEachEpoch()


def learning_rate_schedule(config: FinetuneSettings, steps: int, peak: float):
    """Linear warm-up over --warmup_percent of STEPS (at least one), then cosine decay."""
    return WarmupCosine(peak, max(1, steps * config.warmup_percent // 100), steps)


def finetune(config: FinetuneSettings) -> dict:
    """Trains and exports a classifier; returns the results. Raises FinetuneError."""
    _check_output_dir(config)
    train, evaluation = read_tsv(config.train, "--train"), read_tsv(config.eval, "--eval")
    labels = label_list(train, evaluation, config.train, config.eval)
    test = None
    if config.test:  # checked before any training, like every other input
        test = read_tsv(config.test, "--test")
        label_list(train, test, "--train", config.test)
    tf.keras.utils.set_random_seed(config.seed)
    encoder, tokenizer = encoder_for_finetuning(config.model_dir, config.from_scratch,
                                                config.seed)
    positions = encoder.config.max_position_embeddings
    if config.max_seq_length > positions:
        log.warning("--max_seq_length %d is more than the model's %d positions: texts are cut "
                    "to %d pieces", config.max_seq_length, positions, positions)
    try:
        preprocessor = BertPreprocessor(tokenizer, min(config.max_seq_length, positions))
    except ValueError as e:  # NotInGraph, or a tokenizer that does not load
        raise FinetuneError(f"--model_dir: {e}") from None
    train_ds = labelled_text_dataset(train, labels, preprocessor, config.batch_size, training=True,
                            seed=config.seed)
    eval_ds = labelled_text_dataset(evaluation, labels, preprocessor, config.batch_size,
                           training=False, seed=config.seed)
    steps = math.ceil(len(train) / config.batch_size) * config.epochs
    peak = config.learning_rate or default_finetune_learning_rate(encoder.config)
    model = BertClassifier(encoder, num_labels=len(labels), dropout_rate=config.dropout_rate,
                           pooling=config.pooling)
    model(dummy_inputs(encoder.config))
    optimizer = tf.keras.optimizers.AdamW(learning_rate_schedule(config, steps, peak),
                                          weight_decay=config.weight_decay)
    optimizer.exclude_from_weight_decay(var_names=NO_DECAY)
    model.compile(optimizer=optimizer,
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    # Slots made now, not inside fit's first trace, which would then trace the step twice.
    model.optimizer.build(model.trainable_variables)
    truth = np.array([labels.index(x) for x in evaluation.labels])
    scorer = _make_scorer(eval_ds, truth, len(labels), config.patience, tf.keras)
    model.fit(train_ds, epochs=config.epochs, callbacks=[scorer], verbose=config.verbose,
              shuffle=False)
    model.set_weights(scorer.best_weights)
    best = scorer.scores[scorer.best_epoch - 1]
    results = {"eval_accuracy": best["eval_accuracy"], "eval_macro_f1": best["eval_macro_f1"],
               "best_epoch": scorer.best_epoch, "epochs_trained": len(scorer.scores)}
    baseline = bag_of_words_baseline(train, evaluation, labels)
    log.info("bag-of-words baseline (Naive Bayes on character 1-3-grams): eval accuracy %.4f, "
             "macro-F1 %.4f; this model: %.4f, %.4f", baseline["bag_of_words_accuracy"],
             baseline["bag_of_words_macro_f1"], results["eval_accuracy"],
             results["eval_macro_f1"])
    results.update(baseline)
    if test is not None:
        results.update(score_test(test, model, labels, preprocessor, train, config.batch_size))
    results.update(num_labels=len(labels), train_examples=len(train),
                   eval_examples=len(evaluation), train_skipped_blank_lines=train.skipped_blank,
                   eval_skipped_blank_lines=evaluation.skipped_blank, learning_rate=peak,
                   max_seq_length=preprocessor.max_seq_length,
                   header_rows_skipped=int(train.header is not None) + int(
                       evaluation.header is not None),
                   from_scratch=config.from_scratch)
    write_outputs(config, model, tokenizer, labels, {**results, "epochs": scorer.scores})
    return results


def _check_output_dir(config: FinetuneSettings) -> None:
    """--output_dir, checked before any work (bertcommon.files.output_dir_problem)."""
    problem = output_dir_problem(config.output_dir, config.overwrite)
    if problem:
        raise FinetuneError(problem)


def write_outputs(config, model, tokenizer: TokenizerSource, labels, results) -> None:
    """The whole folder under a temporary name, renamed when complete (replacing an old one
    only then), so a kill or a full disk never leaves a partial folder under its name."""
    try:
        with atomic_path(config.output_dir) as tmp:
            os.makedirs(tmp)
            model.save(os.path.join(tmp, "classifier.keras"))
            with open(os.path.join(tmp, "labels.json"), "w", encoding="utf-8") as f:
                json.dump(labels, f, ensure_ascii=False)
            tokenizer.write_files(tmp)
            if config.export:
                export_classifier(model, os.path.join(tmp, "export"), tokenizer=tokenizer,
                                  max_seq_length=results["max_seq_length"], labels=labels)
            with open(os.path.join(tmp, "results.json"), "w") as f:
                json.dump(results, f, indent=2)
    except OSError as e:
        raise FinetuneError(f"--output_dir {config.output_dir}: cannot write "
                            f"({e.strerror or e}); nothing was written") from None


def score_test(test: Examples, model, labels, preprocessor, train: Examples,
               batch_size: int) -> dict:
    """Accuracy and macro-F1 on held-out examples, the model's and the bag-of-words
    baseline's."""
    data = labelled_text_dataset(test, labels, preprocessor, batch_size, training=False, seed=0)
    truth = np.array([labels.index(x) for x in test.labels])
    predicted = np.argmax(model.predict(data, verbose=0), axis=-1)
    baseline = bag_of_words_baseline(train, test, labels)
    out = {"test_examples": len(test), "test_accuracy": float(np.mean(predicted == truth)),
           "test_macro_f1": macro_f1(truth, predicted, len(labels)),
           "test_bag_of_words_accuracy": baseline["bag_of_words_accuracy"],
           "test_bag_of_words_macro_f1": baseline["bag_of_words_macro_f1"]}
    log.info("test (%d examples): accuracy %.4f, macro-F1 %.4f; bag-of-words %.4f, %.4f",
             len(test), out["test_accuracy"], out["test_macro_f1"],
             out["test_bag_of_words_accuracy"], out["test_bag_of_words_macro_f1"])
    return out
