"""The data job's settings: one validated dataclass, built from the command line.

`JobOptions` travels unchanged from the command line through the pipeline's transforms to
its DoFns; every setting is read from it, and every check of a setting is made here, before
the pipeline is built.
"""

from __future__ import annotations

import argparse
import dataclasses

from bertcommon import logs
from bertdata import corpus, pretraining, schema
from bertdata.schema import Compression
from bertdata.tokenizer import DEFAULT_WORD_CACHE_SIZE

# Shards of about this size (before compression). Large enough that cloud storage reads them
# at full speed and a dataset of Korean Wikipedia's size (about 1 GB of records per pass)
# still gives the input function several files to interleave and to shard across hosts.
DEFAULT_SHARD_SIZE_MB = 128


@dataclasses.dataclass(frozen=True)
class JobOptions:
    """Everything the data job needs besides Beam's own pipeline options."""

    # Corpus file globs (local or any Beam filesystem, e.g. gs://).
    inputs: tuple[str, ...]
    # Where the shards, stats.json and metadata.json go.
    output_dir: str
    # The SentencePiece model the job tokenizes with.
    spm_model: str
    # How examples are cut and masked.
    example: pretraining.ExampleConfig = pretraining.ExampleConfig()
    # 'compact' (derived features left out) or 'padded' (google-research/bert's layout).
    record_format: str = "compact"
    compression: Compression = Compression.NONE
    # Share of documents (by content hash) written to the eval split.
    eval_fraction: float = 0.0
    # 0: shards of about shard_size_mb each; N: exactly N shards per split (adds a shuffle).
    num_shards: int = 0
    shard_size_mb: float = DEFAULT_SHARD_SIZE_MB
    # Files are read in byte ranges of this size, in parallel.
    split_bytes: int = 1 << 20
    # Longer lines are skipped and counted.
    max_line_bytes: int = corpus.DEFAULT_MAX_LINE_BYTES
    # Distinct words each worker keeps tokenized (0: always the SentencePiece encoder).
    word_cache_size: int = DEFAULT_WORD_CACHE_SIZE
    # Documents sampled corpus-wide for random_doc's random B segments.
    random_doc_pool_size: int = 10_000
    # Replace a finished dataset already in output_dir.
    overwrite: bool = False

    def __post_init__(self):
        problems = []

        def need(ok, message):
            if not ok:
                problems.append(message)

        need(self.inputs and all(self.inputs), "--input names no file glob")
        need(self.output_dir, "--output_dir is empty")
        need(0.0 <= self.eval_fraction < 1.0,
             f"--eval_fraction must be in [0, 1), got {self.eval_fraction}")
        need(self.num_shards >= 0, f"--num_shards must be >= 0, got {self.num_shards}")
        need(self.shard_size_mb > 0, f"--shard_size_mb must be positive, got {self.shard_size_mb}")
        need(self.split_bytes >= 1, f"--split_bytes must be positive, got {self.split_bytes}")
        need(self.max_line_bytes >= 1,
             f"--max_line_bytes must be positive, got {self.max_line_bytes}")
        need(self.word_cache_size >= 0,
             f"--word_cache_size must be >= 0, got {self.word_cache_size}")
        need(self.random_doc_pool_size >= 1,
             f"--random_doc_pool_size must be >= 1, got {self.random_doc_pool_size}")
        need(self.record_format in schema.RECORD_FORMATS,
             f"--record_format must be one of {schema.RECORD_FORMATS}")
        need(not (self.example.masking == "dynamic" and self.record_format == "padded"),
             "--masking=dynamic needs --record_format=compact")
        ex = self.example
        # The longest example's masking budget: with none, every example is unmasked and
        # the model would have nothing to predict.
        ordinary = ex.max_seq_length - (2 if ex.nsp_mode == "none" else 3)
        budget = min(ex.max_predictions_per_seq, int(ordinary * ex.masked_lm_prob))
        need(budget >= 1, f"nothing to predict: --max_seq_length {ex.max_seq_length}, "
             f"--masked_lm_prob {ex.masked_lm_prob} and --max_predictions_per_seq "
             f"{ex.max_predictions_per_seq} let no example mask a piece "
             f"(min({ex.max_predictions_per_seq}, int({ordinary} x {ex.masked_lm_prob})) = "
             f"{budget})")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def splits(self) -> tuple[str, ...]:
        return (schema.TRAIN, schema.EVAL) if self.eval_fraction > 0 else (schema.TRAIN,)

    @property
    def shard_bytes(self) -> int:
        return int(self.shard_size_mb * (1 << 20))


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Build BERT pretraining TFRecords from a text corpus with Apache Beam. "
                    "Flags this job does not know go to Beam's PipelineOptions.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    d = pretraining.ExampleConfig()
    o = JobOptions(inputs=("-",), output_dir="-", spm_model="-")
    p.add_argument("--input", required=True,
                   help="corpus file glob(s), comma-separated; local or gs://")
    p.add_argument("--output_dir", required=True, help="where shards and metadata go")
    p.add_argument("--spm_model", required=True, help="SentencePiece .model file")
    p.add_argument("--max_seq_length", type=int, default=d.max_seq_length)
    p.add_argument("--max_predictions_per_seq", type=int, default=d.max_predictions_per_seq)
    p.add_argument("--masked_lm_prob", type=float, default=d.masked_lm_prob)
    p.add_argument("--short_seq_prob", type=float, default=d.short_seq_prob)
    p.add_argument("--dupe_factor", type=int, default=d.dupe_factor)
    p.add_argument("--nsp_mode", choices=pretraining.NSP_MODES, default=d.nsp_mode,
                   help="swap: B is A's continuation, swapped half the time (the reference); "
                        "random_doc: half the time B comes from another document")
    p.add_argument("--masking", choices=schema.MASKING_MODES, default=d.masking,
                   help="dynamic writes unmasked records; make_dataset masks every epoch")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--record_format", choices=schema.RECORD_FORMATS, default=o.record_format)
    p.add_argument("--compression", choices=[c.flag for c in Compression],
                   default=o.compression.flag)
    p.add_argument("--eval_fraction", type=float, default=o.eval_fraction,
                   help="share of documents (by content hash) written to eval- shards")
    p.add_argument("--num_shards", type=int, default=o.num_shards,
                   help="shards per split; 0: shards of about --shard_size_mb each")
    p.add_argument("--shard_size_mb", type=float, default=o.shard_size_mb,
                   help="target shard size (records before compression) when --num_shards=0")
    p.add_argument("--split_bytes", type=int, default=o.split_bytes,
                   help="input files are read in byte ranges of this size, in parallel")
    p.add_argument("--max_line_bytes", type=int, default=o.max_line_bytes,
                   help="longer lines are skipped and counted")
    p.add_argument("--word_cache_size", type=int, default=o.word_cache_size,
                   help="distinct words each worker keeps tokenized (0: always run the "
                        "SentencePiece encoder); ids are the same either way")
    p.add_argument("--random_doc_pool_size", type=int, default=o.random_doc_pool_size,
                   help="documents sampled corpus-wide for random_doc's random B segments")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a finished dataset already in --output_dir")
    logs.add_verbosity_flag(p)
    return p


def options_from_args(args: argparse.Namespace) -> JobOptions:
    """The validated options; raises ValueError naming the flag at fault."""
    example = pretraining.ExampleConfig(
        max_seq_length=args.max_seq_length,
        max_predictions_per_seq=args.max_predictions_per_seq,
        masked_lm_prob=args.masked_lm_prob, short_seq_prob=args.short_seq_prob,
        dupe_factor=args.dupe_factor, nsp_mode=args.nsp_mode, masking=args.masking,
        seed=args.seed)
    return JobOptions(
        inputs=tuple(x for x in args.input.split(",") if x), output_dir=args.output_dir,
        spm_model=args.spm_model, example=example, record_format=args.record_format,
        compression=Compression(args.compression), eval_fraction=args.eval_fraction,
        num_shards=args.num_shards, shard_size_mb=args.shard_size_mb,
        split_bytes=args.split_bytes, max_line_bytes=args.max_line_bytes,
        word_cache_size=args.word_cache_size, random_doc_pool_size=args.random_doc_pool_size,
        overwrite=args.overwrite)
