"""Dynamic (RoBERTa-style) whole-word masking inside the tf.data pipeline.

Records written with `--masking=dynamic` keep the unmasked ids; every pass over the data
draws new masks here, with the same rules as the Beam job: candidates are ordinary pieces
(never [CLS]/[SEP]/[PAD] or another special piece), a '▁' piece starts a word and the pieces
after it belong to it, whole words are chosen, each chosen word draws once between [MASK]
(80%), unchanged (10%) and a random ordinary piece per piece (10%), and random pieces never
are special pieces or [UNK].

One difference from the Beam job, on purpose: the Beam job skips a word that would overflow
the budget and keeps looking for smaller ones; here words are taken in random order while
they fit, which vectorizes (the masked share is at most one word short of the budget).

tensorflow-text's `mask_language_model` was not used: its selector budgets by number of
words rather than pieces and its value chooser draws per piece and from the whole
vocabulary, special pieces included, which would break the rules above.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from bertdata.tokenizer_files import load_tokenizer
from bertdata.vocabulary import Tokenizer


def masking_options(tokenizer: str | Tokenizer, *, masked_lm_prob: float = 0.15,
                    mask_token_rate: float = 0.8, random_token_rate: float = 0.1) -> dict:
    """The `dynamic_masking=` argument of make_dataset, from a tokenizer (or its path: a
    .model, a tokenizer.json or a folder)."""
    tok = tokenizer if isinstance(tokenizer, Tokenizer) else load_tokenizer(tokenizer)
    return {
        "mask_id": tok.special.mask,
        "sep_id": tok.special.sep,
        "word_start": tok.word_start.astype(np.bool_),
        "is_special": tok.is_special.astype(np.bool_),
        "replacement_ids": tok.replacement_ids.astype(np.int32),
        "masked_lm_prob": masked_lm_prob,
        "mask_token_rate": mask_token_rate,
        "random_token_rate": random_token_rate,
        # Checked by make_dataset against the records' metadata.json.
        "tokenizer_sha256": tok.sha256,
    }


def check_masking_tokenizer(options: dict, meta, source: str) -> None:
    """Raises ValueError unless the masking options come from the records' tokenizer: a
    larger vocabulary would mask silently wrong, a smaller one fail inside a gather."""
    if meta is None:
        return
    vocab = len(options["word_start"])
    if vocab != meta.vocab_size:
        raise ValueError(f"dynamic_masking's tokenizer has {vocab} pieces, but {source} says "
                         f"the records were made with a {meta.vocab_size}-piece tokenizer")
    sha = options.get("tokenizer_sha256")
    if sha is not None and sha != meta.tokenizer.sha256:
        raise ValueError(f"dynamic_masking's tokenizer is not the one the records were made "
                         f"with ({source}: sha256 {meta.tokenizer.sha256})")


def mask_padded_batch(ids, mask, *, num_preds, word_start, is_special, replacement_ids,
                      mask_id, sep_id, masked_lm_prob, mask_token_rate, random_token_rate,
                      seeds=None):
    """Masks a padded batch in the graph. ids, mask: int32 (B, L).

    Returns (masked ids (B, L), positions (B, P), original ids (B, P), weights (B, P)).
    """
    if seeds is None:
        seeds = tf.random.uniform([2], maxval=2**31 - 1, dtype=tf.int64)
    seeds = tf.cast(seeds, tf.int64)
    selected, word = _select_whole_words(
        ids, mask, num_preds=num_preds, word_start=tf.constant(word_start),
        is_special=tf.constant(is_special), sep_id=sep_id, masked_lm_prob=masked_lm_prob,
        seeds=seeds)
    b, n = tf.shape(ids)[0], tf.shape(ids)[1]
    draw_word = tf.random.stateless_uniform([b, n + 1], seed=seeds + 1)
    draw = tf.gather(draw_word, word, batch_dims=1)  # one draw per word, for all its pieces
    to_mask = tf.logical_and(selected, draw < mask_token_rate)
    to_random = tf.logical_and(selected, tf.logical_and(
        draw >= mask_token_rate, draw < mask_token_rate + random_token_rate))
    replacement_ids = tf.constant(replacement_ids)
    random_ids = tf.gather(replacement_ids, tf.random.stateless_uniform(
        [b, n], seed=seeds + 2, maxval=tf.shape(replacement_ids)[0], dtype=tf.int32))
    masked_ids = tf.where(to_mask, mask_id, tf.where(to_random, random_ids, ids))
    # Positions of the selected pieces, ascending, padded to num_preds.
    positions = tf.ragged.boolean_mask(tf.broadcast_to(tf.range(n)[None, :], [b, n]), selected)
    weights = tf.sequence_mask(positions.row_lengths(), num_preds, dtype=tf.float32)
    positions = positions.to_tensor(default_value=0, shape=[None, num_preds])
    original = tf.gather(ids, positions, batch_dims=1) * tf.cast(weights, tf.int32)
    return masked_ids, positions, original, weights


def _select_whole_words(ids, mask, *, num_preds, word_start, is_special, sep_id,
                        masked_lm_prob, seeds):
    """Which pieces to mask: whole words in a random order while they fit the budget.

    Returns (selected (B, L) bool, the word index of every piece (B, L)).
    """
    shape = tf.shape(ids)
    b, n = shape[0], shape[1]
    lengths = tf.reduce_sum(mask, axis=1)
    # Ordinary pieces: less [CLS] and the [SEP]s, two in a pair, one in an MLM-only span.
    seps = tf.reduce_sum(tf.cast(tf.logical_and(tf.equal(ids, sep_id), mask > 0),
                                 tf.int32), axis=1)
    ordinary = lengths - 1 - tf.minimum(seps, 2)
    budget = tf.minimum(num_preds, tf.cast(
        tf.floor(tf.cast(ordinary, tf.float32) * masked_lm_prob), tf.int32))
    budget = tf.maximum(budget, 0)
    candidate = tf.logical_and(mask > 0, tf.logical_not(tf.gather(is_special, ids)))
    prev_candidate = tf.pad(candidate[:, :-1], [[0, 0], [1, 0]])
    starts = tf.logical_and(candidate, tf.logical_or(tf.gather(word_start, ids),
                                                      tf.logical_not(prev_candidate)))
    # Word index per position within the row; non-candidates go to a dummy word n.
    word = tf.cumsum(tf.cast(starts, tf.int32), axis=1) - 1
    word = tf.where(candidate, word, n)
    flat_word = word + tf.range(b)[:, None] * (n + 1)  # (B, L) ids in [0, B * (n + 1))
    word_len = tf.math.unsorted_segment_sum(tf.cast(candidate, tf.int32), flat_word,
                                            b * (n + 1))
    word_len = tf.reshape(word_len, [b, n + 1])
    exists = tf.logical_and(word_len > 0, tf.range(n + 1)[None, :] < n)
    score = tf.random.stateless_uniform([b, n + 1], seed=seeds)
    score = tf.where(exists, score, 2.0)  # absent words sort last
    order = tf.argsort(score, axis=1)
    sorted_len = tf.gather(word_len, order, batch_dims=1)
    taken_sorted = tf.logical_and(tf.cumsum(sorted_len, axis=1) <= budget[:, None],
                                  tf.gather(exists, order, batch_dims=1))
    # Scatter the decision back from sorted order to word order.
    taken_word = tf.gather(taken_sorted, tf.argsort(order, axis=1), batch_dims=1)
    selected = tf.logical_and(candidate, tf.gather(taken_word, word, batch_dims=1))
    return selected, word
