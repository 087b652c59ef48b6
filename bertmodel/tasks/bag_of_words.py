"""A bag-of-words baseline for text classification: what a BERT must beat to be worth it.

Multinomial Naive Bayes over character n-grams (1 to 3 characters, spaces included, so
word boundaries count), hashed into 2**20 buckets, with add-one smoothing and class priors
from the training labels. No tokenizer and no training loop: it reads each text once, so it
runs in seconds on the whole NSMC training set. Character n-grams suit Korean, whose words
carry their particles and endings inside them.
"""

from __future__ import annotations

import zlib

import numpy as np

from bertmodel.tasks.metrics import macro_f1
from bertmodel.tasks.tsv import Examples

BUCKETS = 1 << 20
MAX_N = 3


def ngram_ids(text: str) -> np.ndarray:
    """Hashed ids of the character 1..MAX_N-grams of text (spaces collapsed, padded)."""
    text = " " + " ".join(text.split()) + " "
    grams = [text[i:i + n] for n in range(1, MAX_N + 1) for i in range(len(text) - n + 1)]
    return np.fromiter((zlib.crc32(g.encode("utf-8")) & (BUCKETS - 1) for g in grams),
                       np.int64, len(grams))


class NaiveBayes:
    """fit(texts, label ids) then predict(texts) -> label ids."""

    def __init__(self, num_labels: int):
        self.num_labels = num_labels
        self.log_prob = None
        self.log_prior = None

    def fit(self, texts, labels) -> NaiveBayes:
        labels = np.asarray(labels, np.int64)
        counts = np.zeros((self.num_labels, BUCKETS))
        for label in range(self.num_labels):
            ids = [ngram_ids(t) for t, y in zip(texts, labels, strict=True) if y == label]
            if ids:
                counts[label] = np.bincount(np.concatenate(ids), minlength=BUCKETS)
        counts += 1.0
        self.log_prob = np.log(counts / counts.sum(axis=1, keepdims=True))
        prior = np.bincount(labels, minlength=self.num_labels) + 1.0
        self.log_prior = np.log(prior / prior.sum())
        return self

    def predict(self, texts, chunk: int = 4096) -> np.ndarray:
        return np.concatenate([self._predict(texts[i:i + chunk])
                               for i in range(0, len(texts), chunk)] or [np.zeros(0, np.int64)])

    def _predict(self, texts) -> np.ndarray:
        ids = [ngram_ids(t) for t in texts]  # never empty: the padding spaces count
        starts = np.cumsum([0] + [len(x) for x in ids[:-1]])
        # Each text's summed n-gram log-probabilities under each label.
        scores = np.add.reduceat(self.log_prob[:, np.concatenate(ids)], starts, axis=1)
        return np.argmax(scores + self.log_prior[:, None], axis=0)


def bag_of_words_baseline(train: Examples, evaluation: Examples, labels) -> dict:
    """Accuracy and macro-F1 of the Naive Bayes above on the same split (a pair is read as its
    two texts joined by a tab)."""

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
