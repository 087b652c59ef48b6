"""The record schema: the one place that names every feature, split and file of a dataset.

A dataset is a directory of TFRecord shards, `SPLIT-SSSSS-of-NNNNN.tfrecord[.gz]`, with
`stats.json` and `metadata.json` beside them. Two record formats:
  compact (default): the variable-length lists stored unpadded; `input_mask`,
    `masked_lm_weights` and `segment_ids` are left out because the input function derives
    them (the mask and weights from the list lengths, the segments from the first [SEP]:
    0 up to and including it, 1 after). Parsing is the input function's main cost, and
    segment ids would be half of the values to parse.
  padded: google-research/bert's exact fixed-length layout (every list padded with 0 to
    max_seq_length or max_predictions_per_seq, plus input_mask and masked_lm_weights), for
    models built on that format.

The bytes of a record are written by `bertdata.wire_format`; this module says what they
hold and what `metadata.json` records (bertdata.tfdata.dataset_files parses them with
TensorFlow).
"""

from __future__ import annotations

import dataclasses
import enum
import os
from collections.abc import Sequence

from bertdata.vocabulary import SpecialIds

# Feature names follow google-research/bert's create_pretraining_data.py.
INPUT_IDS = "input_ids"
INPUT_MASK = "input_mask"
SEGMENT_IDS = "segment_ids"
MASKED_LM_POSITIONS = "masked_lm_positions"
MASKED_LM_IDS = "masked_lm_ids"
MASKED_LM_WEIGHTS = "masked_lm_weights"
NEXT_SENTENCE_LABELS = "next_sentence_labels"

# What a pretraining model reads (features) and what its losses compare against (labels).
MODEL_INPUTS = (INPUT_IDS, INPUT_MASK, SEGMENT_IDS, MASKED_LM_POSITIONS)
LABELS = (MASKED_LM_IDS, MASKED_LM_WEIGHTS, NEXT_SENTENCE_LABELS)

# Features stored per format (and per masking mode for compact records).
COMPACT_FEATURES = (INPUT_IDS, MASKED_LM_POSITIONS, MASKED_LM_IDS, NEXT_SENTENCE_LABELS)
COMPACT_UNMASKED_FEATURES = (INPUT_IDS, NEXT_SENTENCE_LABELS)
PADDED_FEATURES = (INPUT_IDS, INPUT_MASK, SEGMENT_IDS, MASKED_LM_POSITIONS, MASKED_LM_IDS,
                   MASKED_LM_WEIGHTS, NEXT_SENTENCE_LABELS)

RECORD_FORMATS = ("compact", "padded")
MASKING_MODES = ("static", "dynamic")
# How make_dataset pads a batch: to its longest example, to the next of a few bucket
# lengths (few shapes for XLA to compile), or always to max_seq_length.
PAD_MODES = ("longest", "buckets", "max")

TRAIN, EVAL = "train", "eval"
SPLITS = (TRAIN, EVAL)

METADATA_FILE = "metadata.json"
STATS_FILE = "stats.json"
METADATA_VERSION = 1

# 1 = "B is NOT the true continuation of A", as in google-research/bert.
NSP_LABEL_CONVENTION = "1 = B is not the continuation of A (swapped or random); 0 = B follows A"


class Compression(enum.Enum):
    """How shards are compressed; each place that names it derives its spelling from here."""

    NONE = "none"
    GZIP = "gzip"

    @property
    def flag(self) -> str:
        """The spelling of the data job's --compression flag."""
        return self.value

    @property
    def tensorflow(self) -> str:
        """`compression_type` of tf.data.TFRecordDataset and tf.io.TFRecordWriter."""
        return "GZIP" if self is Compression.GZIP else ""

    @property
    def metadata(self) -> str:
        """What metadata.json's "compression" holds (TensorFlow's spelling)."""
        return self.tensorflow

    @property
    def suffix(self) -> str:
        return ".tfrecord.gz" if self is Compression.GZIP else ".tfrecord"

    @classmethod
    def from_metadata(cls, value: str) -> Compression:
        for c in cls:
            if c.metadata == value:
                return c
        raise ValueError(f"compression {value!r} is not one of "
                         f"{[c.metadata for c in cls]}")

    @classmethod
    def of_path(cls, path: str) -> Compression:
        return cls.GZIP if path.endswith(".gz") else cls.NONE


def shard_name(split: str, index: int, count: int, compression: Compression) -> str:
    return f"{split}-{index:05d}-of-{count:05d}{compression.suffix}"


def shard_glob(split: str) -> str:
    return f"{split}-*-of-*"


def features_for(record_format: str, masking: str) -> tuple[str, ...]:
    """The features a record of this format and masking mode stores."""
    if record_format == "padded":
        return PADDED_FEATURES
    return COMPACT_FEATURES if masking == "static" else COMPACT_UNMASKED_FEATURES


# ---- metadata.json -------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class SplitInfo:
    """One split of a dataset: its shards (file name -> records) and their sum."""

    num_examples: int
    num_shards: int
    shards: dict[str, int]


@dataclasses.dataclass(frozen=True)
class TokenizerInfo:
    """The tokenizer the records were made with; readers compare its sha256."""

    sha256: str
    path: str | None = None


@dataclasses.dataclass(frozen=True)
class DatasetMetadata:
    """metadata.json: what a finished dataset holds, checked by every reader before use.

    Built by the data job (`build`), read back with `read_metadata` / `from_json`, which
    check every field and name the file; `to_json` writes the file's layout."""

    record_format: str
    masking: str
    compression: Compression
    max_seq_length: int
    max_predictions_per_seq: int
    vocab_size: int
    special_ids: SpecialIds
    tokenizer: TokenizerInfo
    splits: dict[str, SplitInfo]
    seed: int
    # How examples were cut and masked; None in files from before they were recorded.
    masked_lm_prob: float | None = None
    short_seq_prob: float | None = None
    dupe_factor: int | None = None
    nsp_mode: str | None = None
    package_version: str | None = None

    @classmethod
    def build(cls, *, record_format: str, masking: str, compression: Compression,
              example_config, tokenizer_sha256: str, tokenizer_path: str, vocab_size: int,
              special_ids: SpecialIds, splits: dict[str, SplitInfo],
              package_version: str) -> DatasetMetadata:
        cfg = example_config
        return cls(record_format=record_format, masking=masking, compression=compression,
                   max_seq_length=cfg.max_seq_length,
                   max_predictions_per_seq=cfg.max_predictions_per_seq,
                   masked_lm_prob=cfg.masked_lm_prob, short_seq_prob=cfg.short_seq_prob,
                   dupe_factor=cfg.dupe_factor, nsp_mode=cfg.nsp_mode, seed=cfg.seed,
                   vocab_size=vocab_size, special_ids=special_ids,
                   tokenizer=TokenizerInfo(sha256=tokenizer_sha256, path=tokenizer_path),
                   splits=splits, package_version=package_version)

    @property
    def features(self) -> tuple[str, ...]:
        return features_for(self.record_format, self.masking)

    @property
    def has_next_sentence(self) -> bool:
        """False for MLM-only records (--nsp_mode=none): the model has no NSP head."""
        return self.nsp_mode != "none"

    def objective_differences(self, other: DatasetMetadata) -> list[tuple[str, object, object]]:
        """(field, mine, theirs) wherever OTHER's examples ask a model something else than
        these do: another tokenizer, another next-sentence task, another masking rate. Two
        datasets that differ here cannot share a model or a metric; sizes, shard counts and
        seeds may differ. A field a file from an older version lacks is not compared."""
        fields = {"tokenizer sha256": (self.tokenizer.sha256, other.tokenizer.sha256),
                  "vocab_size": (self.vocab_size, other.vocab_size),
                  "special_ids": (self.special_ids, other.special_ids),
                  "nsp_mode": (self.nsp_mode, other.nsp_mode),
                  "masked_lm_prob": (self.masked_lm_prob, other.masked_lm_prob)}
        return [(name, mine, theirs) for name, (mine, theirs) in fields.items()
                if mine != theirs and None not in (mine, theirs)]

    def num_examples(self, split: str) -> int | None:
        info = self.splits.get(split)
        return None if info is None else info.num_examples

    def records_in(self, path: str) -> int | None:
        """The record count this metadata gives for one shard file (None: none given)."""
        info = self.splits.get(split_of(path) or "")
        return None if info is None else info.shards.get(os.path.basename(path))

    def to_json(self) -> dict:
        """metadata.json's layout (keys as google-research/bert's readers know them)."""
        return {
            "metadata_version": METADATA_VERSION,
            "package_version": self.package_version,
            "record_format": self.record_format,
            "masking": self.masking,
            "compression": self.compression.metadata,
            "max_seq_length": self.max_seq_length,
            "max_predictions_per_seq": self.max_predictions_per_seq,
            "masked_lm_prob": self.masked_lm_prob,
            "short_seq_prob": self.short_seq_prob,
            "dupe_factor": self.dupe_factor,
            "nsp_mode": self.nsp_mode,
            "seed": self.seed,
            "next_sentence_labels": NSP_LABEL_CONVENTION,
            "vocab_size": self.vocab_size,
            "special_ids": self.special_ids.as_dict(),
            "tokenizer": dataclasses.asdict(self.tokenizer),
            "features": list(self.features),
            "splits": {name: {"pattern": shard_glob(name),
                              "num_shards": info.num_shards,
                              "num_examples": info.num_examples, "shards": info.shards}
                       for name, info in self.splits.items()},
        }

    @classmethod
    def from_json(cls, data, source: str = METADATA_FILE) -> DatasetMetadata:
        """The metadata of a parsed metadata.json; ValueError naming SOURCE and every
        problem."""
        problems = _json_problems(data)
        if problems:
            raise ValueError(f"{source}: invalid metadata: " + "; ".join(problems))
        try:
            splits = {name: SplitInfo(num_examples=int(info["num_examples"]),
                                      num_shards=int(info.get("num_shards", 0)),
                                      shards={k: int(v) for k, v in
                                              info.get("shards", {}).items()})
                      for name, info in data["splits"].items()}
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ValueError(f"{source}: invalid metadata: splits ({e!r})") from None
        optional = {name: data.get(name) for name in (
            "masked_lm_prob", "short_seq_prob", "dupe_factor", "nsp_mode", "package_version")}
        return cls(record_format=data["record_format"], masking=data["masking"],
                   compression=Compression.from_metadata(data["compression"]),
                   max_seq_length=data["max_seq_length"],
                   max_predictions_per_seq=data["max_predictions_per_seq"],
                   vocab_size=data["vocab_size"],
                   special_ids=SpecialIds.from_json(data["special_ids"], source),
                   tokenizer=TokenizerInfo(sha256=data["tokenizer"]["sha256"],
                                           path=data["tokenizer"].get("path")),
                   splits=splits, seed=data["seed"], **optional)


_REQUIRED = {
    "metadata_version": int, "record_format": str, "masking": str, "compression": str,
    "max_seq_length": int, "max_predictions_per_seq": int, "vocab_size": int,
    "special_ids": dict, "tokenizer": dict, "splits": dict, "seed": int,
    "next_sentence_labels": str,
}


def _json_problems(data) -> list[str]:
    if not isinstance(data, dict):
        return [f"not a JSON object: {type(data).__name__}"]
    problems = []
    for key, typ in _REQUIRED.items():
        if key not in data:
            problems.append(f"missing {key!r}")
        elif not isinstance(data[key], typ):
            problems.append(f"{key!r} should be {typ.__name__}, got {data[key]!r}")
    if problems:
        return problems
    if data["metadata_version"] != METADATA_VERSION:
        problems.append(f"metadata_version {data['metadata_version']} is not "
                        f"{METADATA_VERSION}")
    if data["record_format"] not in RECORD_FORMATS:
        problems.append(f"record_format {data['record_format']!r} not in {RECORD_FORMATS}")
    if data["masking"] not in MASKING_MODES:
        problems.append(f"masking {data['masking']!r} not in {MASKING_MODES}")
    try:
        Compression.from_metadata(data["compression"])
    except ValueError as e:
        problems.append(str(e))
    if data["next_sentence_labels"] != NSP_LABEL_CONVENTION:
        problems.append("next_sentence_labels convention differs from this package's")
    if "sha256" not in data["tokenizer"]:
        problems.append("tokenizer.sha256 missing")
    return problems


def metadata_path(files: Sequence[str]) -> str:
    return os.path.join(os.path.dirname(files[0]), METADATA_FILE)


def split_of(path: str) -> str | None:
    """The split a shard file belongs to, from its name (None for other files)."""
    name = os.path.basename(path)
    return next((s for s in SPLITS if name.startswith(f"{s}-")), None)
