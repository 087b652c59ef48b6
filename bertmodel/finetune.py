"""Fine-tune a pretrained encoder to classify sentences or sentence pairs.

Usage:
    python -m bertmodel.finetune --model_dir=runs/sample/model --train=train.tsv \
        --eval=dev.tsv --output_dir=runs/classifier [--epochs=5 --batch_size=32 \
        --learning_rate=2e-4 --max_seq_length=128 --from_scratch]

TSV files, UTF-8: `label<TAB>text` for single sentences, `label<TAB>text_a<TAB>text_b`
for pairs (a first row whose first column is `label` is a header and skipped; a byte-order
mark is ignored); every line of a file has the same number of columns. Labels are any
strings; their sorted list is saved with the model. Blank lines are skipped and counted;
any other malformed line is an error naming the file and line.

--model_dir is a bertmodel.train output (encoder.keras, tokenizer.model) or a Hugging Face
BERT folder with this project's tokenizer (bertmodel.export_hf writes one). --from_scratch
trains the same architecture from random weights with the same budget, to see what
pretraining brought. Text goes through the in-graph preprocessor (bertmodel.preprocessing),
inside the tf.data pipeline. Schedule: linear warm-up over the first 10% of the steps
(--warmup_percent), then cosine decay; AdamW. After each epoch the eval set is scored
(accuracy and macro-F1); the weights of the best epoch by accuracy are kept, and training
stops after --patience epochs without a better one. Beside the results it prints a
bag-of-words baseline on the same split (bertmodel.bag_of_words: Naive Bayes on character
n-grams), so a user sees at once whether the BERT is worth its cost.

Writes OUT/classifier.keras, OUT/labels.json, OUT/tokenizer.model, OUT/results.json and
OUT/export, a SavedModel whose `classify` signature takes `text` strings (`classify_pair`
takes `text` and `text_b`) and returns `probabilities` (batch x labels) and `label`. Prints
one line per epoch, then one JSON line with the results. OUT is checked before training (a
non-empty one needs --overwrite), written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import sys

import numpy as np

from bertcommon import cli, logs

log = logging.getLogger("bertmodel.finetune")


class FinetuneError(cli.CommandError):
    """Bad flags or data, found before training starts; names the flag, file or line."""


DESCRIPTION = "Fine-tune a pretrained encoder to classify text."


@dataclasses.dataclass(frozen=True)
class FinetuneConfig(cli.Settings):
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


@dataclasses.dataclass
class Examples:
    texts: list[str]
    texts_b: list[str] | None
    labels: list[str]
    lines: list[int]  # each example's line number, for messages
    skipped_blank: int = 0
    header: str | None = None  # a first row starting with "label", skipped

    def __len__(self) -> int:
        return len(self.labels)


def read_tsv(path: str, flag: str) -> Examples:
    """Examples of a TSV file; a malformed line is a FinetuneError naming file and line."""
    try:
        # utf-8-sig: a byte-order mark is not part of the first label.
        with open(path, encoding="utf-8-sig") as f:
            rows = f.read().split("\n")
    except (OSError, UnicodeDecodeError) as e:
        raise FinetuneError(f"{flag} {path}: cannot read ({e})") from None
    out = Examples([], None, [], [])
    columns = None
    for number, row in enumerate(rows, 1):
        if number == 1 and row.split("\t")[0].strip().lower() == "label":
            out.header = row  # a header row names its columns; it is not an example
            continue
        if not row.strip():
            out.skipped_blank += number < len(rows)  # the newline after the last line
            continue
        fields = row.rstrip("\r").split("\t")
        columns = columns or len(fields)
        if len(fields) not in (2, 3) or len(fields) != columns:
            want = columns if columns in (2, 3) else "2 or 3"
            raise FinetuneError(f"{path}:{number}: expected {want} tab-separated columns "
                                f"(label, text[, text_b]), got {len(fields)}")
        if not all(x.strip() for x in fields):
            raise FinetuneError(f"{path}:{number}: an empty label or text")
        out.labels.append(fields[0].strip())
        out.texts.append(fields[1])
        if columns == 3:
            out.texts_b = out.texts_b if out.texts_b is not None else []
            out.texts_b.append(fields[2])
        out.lines.append(number)
    if not out.labels:
        raise FinetuneError(f"{flag} {path}: no examples (an empty file?)")
    return out


def label_list(train: Examples, evaluation: Examples, train_path: str, eval_path: str):
    labels = sorted(set(train.labels))
    if len(labels) < 2:
        raise FinetuneError(f"{train_path}: only one label ({labels[0]!r}); a classifier "
                            "needs at least two")
    known = set(labels)
    for label, line in zip(evaluation.labels, evaluation.lines, strict=True):
        if label not in known:
            raise FinetuneError(f"{eval_path}:{line}: label {label!r} does not occur in "
                                f"{train_path}")
    if (train.texts_b is None) != (evaluation.texts_b is None):
        raise FinetuneError(f"{train_path} and {eval_path} differ: one holds sentence pairs, "
                            "the other single sentences")
    return labels


def macro_f1(truth: np.ndarray, predicted: np.ndarray, num_labels: int) -> float:
    """Mean over labels of F1 (a label that never occurs and is never predicted is left out)."""
    scores = []
    for label in range(num_labels):
        tp = np.sum((predicted == label) & (truth == label))
        fp = np.sum((predicted == label) & (truth != label))
        fn = np.sum((predicted != label) & (truth == label))
        if tp + fp + fn:
            scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else 0.0


def _read_encoder(model_dir: str):
    """(backbone, tokenizer bytes) of a bertmodel.train output or a Hugging Face folder."""
    import bertmodel
    from bertmodel.hf_import import HFFormatError, is_hf_folder, load_backbone, read_hf_folder

    if is_hf_folder(model_dir):
        try:
            hf = read_hf_folder(model_dir)
            return load_backbone(hf), hf.model_proto
        except HFFormatError as e:
            raise FinetuneError(f"--model_dir: {e}") from None
    tokenizer = os.path.join(model_dir, "tokenizer.model")
    if not os.path.isfile(tokenizer):
        raise FinetuneError(f"--model_dir {model_dir} holds no tokenizer.model: is it a "
                            "bertmodel.train output directory or a Hugging Face folder?")
    with open(tokenizer, "rb") as f:
        proto = f.read()
    try:
        return bertmodel.load_encoder(os.path.join(model_dir, "encoder.keras")), proto
    except bertmodel.ModelFileError as e:
        raise FinetuneError(f"--model_dir: {e}") from None


def bag_of_words_baseline(train: Examples, evaluation: Examples, labels) -> dict:
    """Accuracy and macro-F1 of bertmodel.bag_of_words' Naive Bayes on the same split (a
    pair is read as its two texts joined by a tab)."""
    from bertmodel.bag_of_words import NaiveBayes

    def texts(examples):
        if examples.texts_b is None:
            return examples.texts
        return [f"{a}\t{b}" for a, b in zip(examples.texts, examples.texts_b, strict=True)]

    index = {label: i for i, label in enumerate(labels)}
    model = NaiveBayes(len(labels)).fit(texts(train), [index[x] for x in train.labels])
    truth = np.array([index[x] for x in evaluation.labels])
    predicted = model.predict(texts(evaluation))
    return {"bag_of_words_accuracy": float(np.mean(predicted == truth)),
            "bag_of_words_macro_f1": macro_f1(truth, predicted, len(labels))}


def load_encoder(model_dir: str, from_scratch: bool, seed: int):
    """(backbone, tokenizer bytes): the pretrained encoder, or the same architecture with
    fresh random weights."""
    import tensorflow as tf

    from bertmodel.model import BertBackbone, dummy_inputs

    encoder, proto = _read_encoder(model_dir)
    if from_scratch:
        tf.keras.utils.set_random_seed(seed)
        encoder = BertBackbone(encoder.config, name="backbone")
        encoder(dummy_inputs(encoder.config))
    return encoder, proto


def make_dataset(examples: Examples, labels, preprocessor, batch_size, *, training, seed):
    """Batches of (features, label ids); the text is preprocessed inside the pipeline."""
    import tensorflow as tf

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


def learning_rate_schedule(config: FinetuneConfig, steps: int, peak: float):
    """Linear warm-up over --warmup_percent of STEPS (at least one), then cosine decay."""
    from bertmodel.schedule import WarmupCosine

    return WarmupCosine(peak, max(1, steps * config.warmup_percent // 100), steps)


def finetune(config: FinetuneConfig) -> dict:
    """Trains and exports a classifier; returns the results. Raises FinetuneError."""
    check_output_dir(config)
    train, evaluation = read_tsv(config.train, "--train"), read_tsv(config.eval, "--eval")
    labels = label_list(train, evaluation, config.train, config.eval)
    tf = logs.import_tensorflow_quietly()
    from bertmodel.config import default_finetune_learning_rate
    from bertmodel.model import BertClassifier, dummy_inputs
    from bertmodel.preprocessing import BertPreprocessor
    from bertmodel.schedule import NO_DECAY

    tf.keras.utils.set_random_seed(config.seed)
    encoder, proto = load_encoder(config.model_dir, config.from_scratch, config.seed)
    positions = encoder.config.max_position_embeddings
    if config.max_seq_length > positions:
        log.warning("--max_seq_length %d is more than the model's %d positions: texts are cut "
                    "to %d pieces", config.max_seq_length, positions, positions)
    preprocessor = BertPreprocessor(proto, min(config.max_seq_length, positions))
    train_ds = make_dataset(train, labels, preprocessor, config.batch_size, training=True,
                            seed=config.seed)
    eval_ds = make_dataset(evaluation, labels, preprocessor, config.batch_size,
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
    if config.test:
        results.update(score_test(config.test, model, labels, preprocessor, train,
                                  config.batch_size))
    results.update(num_labels=len(labels), train_examples=len(train),
                   eval_examples=len(evaluation), train_skipped_blank_lines=train.skipped_blank,
                   eval_skipped_blank_lines=evaluation.skipped_blank, learning_rate=peak,
                   max_seq_length=preprocessor.max_seq_length,
                   header_rows_skipped=int(train.header is not None) + int(
                       evaluation.header is not None),
                   from_scratch=config.from_scratch)
    write_outputs(config, model, proto, labels, {**results, "epochs": scorer.scores})
    return results


def check_output_dir(config: FinetuneConfig) -> None:
    """--output_dir, checked before any work (bertcommon.files.output_dir_problem)."""
    from bertcommon.files import output_dir_problem

    problem = output_dir_problem(config.output_dir, config.overwrite)
    if problem:
        raise FinetuneError(problem)


def write_outputs(config, model, proto, labels, results) -> None:
    """The whole folder under a temporary name, renamed when complete (replacing an old one
    only then), so a kill or a full disk never leaves a partial folder under its name."""
    from bertcommon.files import atomic_path
    from bertmodel.export import export_classifier

    try:
        with atomic_path(config.output_dir) as tmp:
            os.makedirs(tmp)
            model.save(os.path.join(tmp, "classifier.keras"))
            with open(os.path.join(tmp, "labels.json"), "w", encoding="utf-8") as f:
                json.dump(labels, f, ensure_ascii=False)
            with open(os.path.join(tmp, "tokenizer.model"), "wb") as f:
                f.write(proto)
            if config.export:
                export_classifier(model, os.path.join(tmp, "export"), model_proto=proto,
                                  max_seq_length=results["max_seq_length"], labels=labels)
            with open(os.path.join(tmp, "results.json"), "w") as f:
                json.dump(results, f, indent=2)
    except OSError as e:
        raise FinetuneError(f"--output_dir {config.output_dir}: cannot write "
                            f"({e.strerror or e}); nothing was written") from None


def score_test(path: str, model, labels, preprocessor, train: Examples, batch_size: int) -> dict:
    """Accuracy and macro-F1 on a held-out TSV, the model's and the bag-of-words baseline's."""
    test = read_tsv(path, "--test")
    label_list(train, test, "--train", path)
    data = make_dataset(test, labels, preprocessor, batch_size, training=False, seed=0)
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


def _command(config: FinetuneConfig) -> None:
    print(json.dumps(finetune(config)))


def main(argv=None) -> int:
    return cli.run_command(FinetuneConfig, _command, argv, description=DESCRIPTION)


if __name__ == "__main__":
    sys.exit(main())
