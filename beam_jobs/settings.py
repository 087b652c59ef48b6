"""The data job's settings: one validated dataclass, built from the command line.

`JobSettings` travels unchanged from the command line through the pipeline's transforms to
its DoFns; every setting is read from it, and every check of a setting is made here, before
the pipeline is built.
"""

from __future__ import annotations

import dataclasses

from bertcommon import cli
from bertdata import corpus, pretraining, schema
from bertdata.schema import Compression
from bertdata.word_cache import DEFAULT_WORD_CACHE_SIZE

# Shards of about this size (before compression). Large enough that cloud storage reads them
# at full speed and a dataset of Korean Wikipedia's size (about 1 GB of records per pass)
# still gives the input function several files to interleave and to shard across hosts.
DEFAULT_SHARD_SIZE_MB = 128
DEDUP_MODES = ("none", "documents", "lines")


@dataclasses.dataclass(frozen=True)
class JobSettings(cli.Settings):
    """Everything the data job needs besides Beam's own pipeline options; flags this job
    does not know go to Beam's PipelineOptions."""

    inputs: tuple[str, ...] = cli.flag(
        name="input", help="corpus file glob(s), comma-separated; local or any Beam "
                           "filesystem (gs://...)")
    output_dir: str = cli.flag(help="where the shards, stats.json and metadata.json go")
    tokenizer: str | None = cli.flag(
        None, help="what the job tokenizes with: this project's SentencePiece .model, a Hugging "
                   "Face tokenizer.json, or a model folder holding either")
    spm_model: str | None = cli.flag(None, help="a SentencePiece .model: --tokenizer's older "
                                                "name, kept for existing commands")
    example: pretraining.ExampleSettings = pretraining.ExampleSettings()
    record_format: str = cli.flag(
        "compact", choices=schema.RECORD_FORMATS,
        help="compact (derived features left out) or padded (google-research/bert's layout)")
    compression: Compression = cli.flag(Compression.NONE)
    eval_fraction: float = cli.flag(
        0.0, check=cli.between(0.0, 1.0),
        help="share of documents (by content hash) written to eval- shards")
    num_shards: int = cli.flag(
        0, check=cli.non_negative,
        help="shards per split (adds a shuffle); 0: shards of about --shard_size_mb each")
    shard_size_mb: float = cli.flag(
        DEFAULT_SHARD_SIZE_MB, check=cli.positive,
        help="target shard size (records before compression) when --num_shards=0")
    split_bytes: int = cli.flag(
        1 << 20, check=cli.positive,
        help="input files are read in byte ranges of this size, in parallel")
    max_line_bytes: int = cli.flag(corpus.DEFAULT_MAX_LINE_BYTES, check=cli.positive,
                                   help="longer lines are skipped and counted")
    word_cache_size: int = cli.flag(
        DEFAULT_WORD_CACHE_SIZE, check=cli.non_negative,
        help="distinct words each worker keeps tokenized (0: always run the SentencePiece "
             "encoder); ids are the same either way")
    random_doc_pool_size: int = cli.flag(
        10_000, check=cli.positive,
        help="documents sampled corpus-wide for random_doc's random B segments")
    dedup: str = cli.flag(
        "none", choices=DEDUP_MODES,
        help="documents: a document identical to another (its lines as read) is built once; "
             "lines: a line identical to an earlier one in the corpus is left out; the same "
             "copy is kept on every runner. Costs a second read of the corpus and a shuffle "
             "of one hash per document (or line)")
    overwrite: bool = cli.flag(False, help="replace a finished dataset already in --output_dir")

    @property
    def tokenizer_flag(self) -> str:
        """The flag naming the tokenizer, for messages."""
        return "--spm_model" if self.spm_model else "--tokenizer"

    @property
    def tokenizer_path(self) -> str:
        return self.spm_model or self.tokenizer or ""

    def problems(self):
        if not (self.inputs and all(self.inputs)):
            yield "--input names no file glob"
        if bool(self.tokenizer) == bool(self.spm_model):
            yield "give the tokenizer once: --tokenizer=PATH (or the older --spm_model=PATH)"
        if not self.output_dir:
            yield "--output_dir is empty"
        ex = self.example
        if ex.masking == "dynamic" and self.record_format == "padded":
            yield "--masking=dynamic needs --record_format=compact"
        # The longest example's masking budget: with none, every example is unmasked and
        # the model would have nothing to predict.
        ordinary = ex.max_seq_length - (2 if ex.nsp_mode == "none" else 3)
        budget = min(ex.max_predictions_per_seq, int(ordinary * ex.masked_lm_prob))
        if budget < 1:
            yield (f"nothing to predict: --max_seq_length {ex.max_seq_length}, "
                   f"--masked_lm_prob {ex.masked_lm_prob} and --max_predictions_per_seq "
                   f"{ex.max_predictions_per_seq} let no example mask a piece "
                   f"(min({ex.max_predictions_per_seq}, int({ordinary} x "
                   f"{ex.masked_lm_prob})) = {budget})")

    @property
    def splits(self) -> tuple[str, ...]:
        return (schema.TRAIN, schema.EVAL) if self.eval_fraction > 0 else (schema.TRAIN,)

    @property
    def shard_bytes(self) -> int:
        return int(self.shard_size_mb * (1 << 20))


DESCRIPTION = ("Build BERT pretraining TFRecords from a text corpus with Apache Beam. Flags "
               "this job does not know go to Beam's PipelineOptions.")


def make_parser():
    """The data job's flags (its own; Beam's are checked by the job)."""
    return cli.make_parser(JobSettings, DESCRIPTION)
