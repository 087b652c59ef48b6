"""The data job's counts: one key per reason, summed over workers into stats.json.

DoFns count in a plain `collections.Counter` and flush it once per bundle, as Beam counters
(namespace METRICS_NAMESPACE, visible in the runner's UI) and as a dict that the pipeline
sums into stats.json. The keys of bertdata.corpus and bertdata.pretraining are counted the
same way.
"""

from __future__ import annotations

import collections

from bertdata import corpus, pretraining

METRICS_NAMESPACE = "bertpipe"

# Input files (planning).
FILES_READ = "files_read"
FILES_EMPTY = "files_empty"
FILES_NOT_TEXT = "files_skipped_not_utf8_text"
FILES_DIRECTORIES = "files_skipped_directories"
INPUT_BYTES = "input_bytes"
# Documents and examples.
DOCUMENTS_READ = "documents_read"
DOCUMENTS_DUPLICATE = "documents_duplicate_dropped"
LINES_DUPLICATE = "lines_duplicate_dropped"
LINES_READ = "lines_read"
TOKENS = "tokens"
UNK_TOKENS = "unk_tokens"
MASKED_TOKENS = "masked_tokens"
EVAL_EXAMPLES = "eval_examples"
# How the run went rather than what the data is: these depend on the workers.
WORDS = "tokenizer_words"
WORD_CACHE_MISSES = "tokenizer_word_cache_misses"

LENGTH_BUCKET = 16  # histogram bucket width, in tokens
_LENGTH_PREFIX = "length_"

SKIPPED_OR_REPAIRED = (
    FILES_EMPTY, FILES_NOT_TEXT, FILES_DIRECTORIES, corpus.LINES_INVALID_UTF8,
    corpus.LINES_TOO_LONG, corpus.LINES_WHITESPACE_ONLY, corpus.LINES_WITH_NUL,
    corpus.DOCUMENTS_SPLIT, DOCUMENTS_DUPLICATE, LINES_DUPLICATE, pretraining.DOCUMENTS_SINGLE_LINE,
    pretraining.LINES_TRAILING_DROPPED, pretraining.RANDOM_DOC_UNAVAILABLE)


def length_bucket_key(length: int) -> str:
    lo = (length // LENGTH_BUCKET) * LENGTH_BUCKET
    return f"{_LENGTH_PREFIX}{lo:04d}_{lo + LENGTH_BUCKET - 1:04d}"


def merge_counts(dicts) -> dict:
    total = collections.Counter()
    for d in dicts:
        total.update(d)
    return dict(total)


def split_examples(counts: dict) -> dict[str, int]:
    """Examples built per split, from the counts."""
    examples = counts.get(pretraining.EXAMPLES, 0)
    return {"train": examples - counts.get(EVAL_EXAMPLES, 0),
            "eval": counts.get(EVAL_EXAMPLES, 0)}


def summarize(counts: dict, max_seq_length: int, skipped_files=()) -> dict:
    """stats.json: raw counts plus the rates a user checks before training.

    skipped_files: (path, reason) of input files that were not read, named (the first 100)
    so a user can find them.
    """
    counts = dict(counts)
    words = counts.pop(WORDS, 0)
    misses = counts.pop(WORD_CACHE_MISSES, 0)
    examples = counts.get(pretraining.EXAMPLES, 0)
    tokens = counts.get(TOKENS, 0)
    per_split = split_examples(counts)
    histogram = {k[len(_LENGTH_PREFIX):]: v for k, v in sorted(counts.items())
                 if k.startswith(_LENGTH_PREFIX)}
    skipped_files = sorted(skipped_files)
    return {
        "files_read": counts.get(FILES_READ, 0),
        "input_bytes": counts.get(INPUT_BYTES, 0),
        "documents_read": counts.get(DOCUMENTS_READ, 0),
        "lines_read": counts.get(LINES_READ, 0),
        "skipped_or_repaired": {k: counts[k] for k in SKIPPED_OR_REPAIRED if counts.get(k)},
        "skipped_files": [{"path": p, "reason": r} for p, r in skipped_files[:100]],
        "examples": examples,
        "train_examples": per_split["train"],
        "eval_examples": per_split["eval"],
        "tokens": tokens,
        "masked_tokens": counts.get(MASKED_TOKENS, 0),
        "masked_fraction": counts.get(MASKED_TOKENS, 0) / max(1, tokens),
        "not_next_fraction": counts.get(pretraining.EXAMPLES_NOT_NEXT, 0) / max(1, examples),
        "unk_rate": counts.get(UNK_TOKENS, 0) / max(1, tokens),
        "truncation_rate": counts.get(pretraining.EXAMPLES_TRUNCATED, 0) / max(1, examples),
        "examples_without_masked_tokens": counts.get(pretraining.EXAMPLES_NO_MASK, 0),
        "mean_length": tokens / max(1, examples),
        "length_histogram": histogram,
        "max_seq_length": max_seq_length,
        "counts": dict(sorted(counts.items())),
        "tokenizer": {"words": words, "word_cache_misses": misses,
                      "word_cache_hit_rate": 1 - misses / max(1, words)},
    }
