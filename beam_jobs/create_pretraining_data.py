"""Corpus -> sharded TFRecords of masked-LM + next-sentence examples, with Apache Beam.

Usage (local, all cores):
    python -m beam_jobs.create_pretraining_data \
        --input='data/*.txt' --output_dir=runs/data --spm_model=runs/ko.model \
        --max_seq_length=128 --max_predictions_per_seq=20 --eval_fraction=0.05 \
        --direct_num_workers=0 --direct_running_mode=multi_processing

Usage (Dataflow):
    python -m beam_jobs.create_pretraining_data \
        --input='gs://BUCKET/corpus/*.txt' --output_dir=gs://BUCKET/data \
        --spm_model=gs://BUCKET/ko.model --runner=DataflowRunner --project=PROJECT \
        --region=REGION --temp_location=gs://BUCKET/tmp --setup_file=./setup.py

Writes OUT/train-SSSSS-of-NNNNN.tfrecord[.gz], OUT/eval-... (with --eval_fraction),
OUT/stats.json and, last, OUT/metadata.json. Shards are written to a staging folder and
moved into OUT only after the pipeline succeeded, so a failed run never leaves files that
look like a finished dataset. Any flag the job does not know goes to Beam's PipelineOptions;
with no --runner the in-process FnApiRunner is used (it never reaches for the network).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import uuid

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

import bertdata
from beam_jobs import transforms
from bertdata import corpus, pretraining, schema
from bertdata.tokenizer import DEFAULT_WORD_CACHE_SIZE, Tokenizer

log = logging.getLogger("beam_jobs.create_pretraining_data")

STAGING_PREFIX = ".staging-"


class JobError(Exception):
    """A problem with the job's inputs or flags, reported before any work starts."""


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Build BERT pretraining TFRecords from a text corpus with Apache Beam.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--input", required=True,
                   help="corpus file glob(s), comma-separated; local or gs://")
    p.add_argument("--output_dir", required=True, help="where shards and metadata go")
    p.add_argument("--spm_model", required=True, help="SentencePiece .model file")
    d = pretraining.ExampleConfig()
    p.add_argument("--max_seq_length", type=int, default=d.max_seq_length)
    p.add_argument("--max_predictions_per_seq", type=int, default=d.max_predictions_per_seq)
    p.add_argument("--masked_lm_prob", type=float, default=d.masked_lm_prob)
    p.add_argument("--short_seq_prob", type=float, default=d.short_seq_prob)
    p.add_argument("--dupe_factor", type=int, default=d.dupe_factor)
    p.add_argument("--nsp_mode", choices=pretraining.NSP_MODES, default=d.nsp_mode,
                   help="swap: B is A's continuation, swapped half the time (reference); "
                        "random_doc: half the time B comes from another document")
    p.add_argument("--masking", choices=schema.MASKING_MODES, default=d.masking,
                   help="dynamic writes unmasked records; make_dataset masks every epoch")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--record_format", choices=schema.RECORD_FORMATS, default="compact")
    p.add_argument("--compression", choices=("none", "gzip"), default="none")
    p.add_argument("--eval_fraction", type=float, default=0.0,
                   help="share of documents (by content hash) written to eval- shards")
    p.add_argument("--num_shards", type=int, default=0,
                   help="shards per split; 0 lets the runner choose (one per bundle, no "
                        "shuffle, bounded memory)")
    p.add_argument("--split_bytes", type=int, default=1 << 20,
                   help="input files are read in byte ranges of this size, in parallel")
    p.add_argument("--max_line_bytes", type=int, default=corpus.DEFAULT_MAX_LINE_BYTES,
                   help="longer lines are skipped and counted")
    p.add_argument("--word_cache_size", type=int, default=DEFAULT_WORD_CACHE_SIZE,
                   help="distinct words each worker keeps tokenized (0: always run the "
                        "SentencePiece encoder); ids are the same either way")
    p.add_argument("--random_doc_pool_size", type=int, default=10_000,
                   help="documents sampled corpus-wide for random_doc's random B segments")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a finished dataset already in --output_dir")
    return p


def _join(directory: str, name: str) -> str:
    return FileSystems.join(directory, name)


def expand_inputs(patterns: str) -> list[tuple[str, int]]:
    """(path, size) of every file the comma-separated globs match; errors name the glob."""
    files = []
    for pattern in [x for x in patterns.split(",") if x]:
        try:
            matched = FileSystems.match([pattern])[0].metadata_list
        except Exception as e:  # Beam raises BeamIOError for a missing directory
            raise JobError(f"--input {pattern!r}: {e}") from None
        if not matched:
            raise JobError(f"--input {pattern!r} matches no file")
        files.extend((m.path, m.size_in_bytes) for m in matched)
    files = sorted(set(files))
    if not files:
        raise JobError(f"--input {patterns!r} names no file")
    return files


def plan_ranges(files, split_bytes: int) -> list[tuple[str, int, int | None]]:
    """Cuts files into byte ranges; compressed files are one range each."""
    ranges = []
    for path, size in files:
        if size == 0:
            continue
        if transforms.is_compressed(path):
            ranges.append((path, 0, None))
        else:
            ranges.extend((path, s, e) for s, e in corpus.split_ranges(size, split_bytes))
    return ranges


def load_model_proto(path: str) -> tuple[bytes, Tokenizer]:
    """The model's bytes (what workers receive) and the checked, loaded tokenizer."""
    try:
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            proto = f.read()
    except Exception as e:
        raise JobError(f"--spm_model {path}: cannot read ({e})") from None
    try:
        return proto, Tokenizer(proto, name=path)
    except ValueError as e:
        raise JobError(f"--spm_model {e}") from None


def check_output_dir(output_dir: str, overwrite: bool) -> None:
    meta = _join(output_dir, schema.METADATA_FILE)
    if FileSystems.exists(meta) and not overwrite:
        raise JobError(f"--output_dir {output_dir} already holds a finished dataset "
                       f"({schema.METADATA_FILE}); pass --overwrite to replace it or choose "
                       "another directory")


def build_pipeline(p: beam.Pipeline, ranges, model_proto: bytes,
                   config: pretraining.ExampleConfig, args, staging_dir: str) -> None:
    """Wires the job: ranges -> examples -> sharded TFRecords + stats, all under staging_dir."""
    gzip = args.compression == "gzip"
    suffix = ".tfrecord.gz" if gzip else ".tfrecord"
    compression = CompressionTypes.GZIP if gzip else CompressionTypes.UNCOMPRESSED
    examples = (
        p
        | "FileRanges" >> beam.Create(ranges)
        # Spread the ranges over workers; only these small descriptors are shuffled.
        | "Distribute" >> beam.Reshuffle()
        | "CreateExamples" >> transforms.CreateExamples(
            model_proto, config, record_format=args.record_format,
            eval_fraction=args.eval_fraction, max_line_bytes=args.max_line_bytes,
            random_doc_pool_size=args.random_doc_pool_size,
            word_cache_size=args.word_cache_size)
    )
    splits = [transforms.TRAIN] + ([transforms.EVAL] if args.eval_fraction > 0 else [])
    for split in splits:
        _ = examples[split] | f"Write{split.capitalize()}" >> transforms.WriteFramedTFRecords(
            _join(staging_dir, split), file_name_suffix=suffix, num_shards=args.num_shards,
            compression_type=compression)
    _ = (
        examples[transforms.STATS]
        | "SumStats" >> beam.CombineGlobally(transforms.merge_counts)
        | "WriteStats" >> beam.Map(_write_json, _join(staging_dir, schema.STATS_FILE))
    )


def _write_json(obj, path: str) -> None:
    with FileSystems.create(path) as f:
        f.write(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False).encode() + b"\n")


def _read_json(path: str):
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        return json.loads(f.read().decode())


def summarize_stats(counts: dict, config: pretraining.ExampleConfig) -> dict:
    """stats.json: raw counts plus the rates a user checks before training."""
    counts = dict(counts)
    # How the run went rather than what the data is: these depend on the workers.
    words = counts.pop(transforms.WORDS, 0)
    misses = counts.pop(transforms.WORD_CACHE_MISSES, 0)
    examples = counts.get(pretraining.EXAMPLES, 0)
    tokens = counts.get(transforms.TOKENS, 0)
    histogram = {k[len("length_"):]: v for k, v in sorted(counts.items())
                 if k.startswith("length_")}
    skipped = {k: v for k, v in counts.items()
               if k in (corpus.LINES_INVALID_UTF8, corpus.LINES_TOO_LONG,
                        corpus.LINES_WHITESPACE_ONLY, corpus.DOCUMENTS_SPLIT,
                        pretraining.DOCUMENTS_SINGLE_LINE, pretraining.LINES_TRAILING_DROPPED,
                        pretraining.RANDOM_DOC_UNAVAILABLE)}
    return {
        "documents_read": counts.get(transforms.DOCUMENTS_READ, 0),
        "lines_read": counts.get(transforms.LINES_READ, 0),
        "skipped_or_repaired": skipped,
        "examples": examples,
        "eval_examples": counts.get(transforms.EVAL_EXAMPLES, 0),
        "train_examples": examples - counts.get(transforms.EVAL_EXAMPLES, 0),
        "tokens": tokens,
        "masked_tokens": counts.get(transforms.MASKED_TOKENS, 0),
        "masked_fraction": counts.get(transforms.MASKED_TOKENS, 0) / max(1, tokens),
        "not_next_fraction": counts.get(pretraining.EXAMPLES_NOT_NEXT, 0) / max(1, examples),
        "unk_rate": counts.get(transforms.UNK_TOKENS, 0) / max(1, tokens),
        "truncation_rate": counts.get(pretraining.EXAMPLES_TRUNCATED, 0) / max(1, examples),
        "examples_without_masked_tokens": counts.get(pretraining.EXAMPLES_NO_MASK, 0),
        "mean_length": tokens / max(1, examples),
        "length_histogram": histogram,
        "max_seq_length": config.max_seq_length,
        "counts": dict(sorted(counts.items())),
        "tokenizer": {"words": words, "word_cache_misses": misses,
                      "word_cache_hit_rate": 1 - misses / max(1, words)},
    }


def _finalize(staging_dir: str, output_dir: str, splits) -> dict:
    """Moves finished shards into place; stats.json, then metadata.json, are written last."""
    # Remove an earlier finished run only now that the new one exists (--overwrite).
    old_meta = _join(output_dir, schema.METADATA_FILE)
    if FileSystems.exists(old_meta):
        FileSystems.delete([old_meta])
    old = [m.path for split in ("train", "eval")
           for m in FileSystems.match([_join(output_dir, f"{split}-*-of-*")])[0].metadata_list]
    if old:
        FileSystems.delete(old)
    info = {}
    for split in splits:
        staged = sorted(m.path for m in
                        FileSystems.match([_join(staging_dir, f"{split}-*")])[0].metadata_list)
        dest = [_join(output_dir, os.path.basename(s)) for s in staged]
        if staged:
            FileSystems.rename(staged, dest)
        info[split] = {"pattern": f"{split}-*-of-*", "num_shards": len(dest)}
    return info


def run(argv=None) -> dict:
    """Parses flags, checks inputs, runs the pipeline, and publishes the dataset.

    Returns the stats dict. Raises JobError for bad inputs or flags (before work starts).
    """
    args, beam_args = make_parser().parse_known_args(argv)
    try:
        config = pretraining.ExampleConfig(
            max_seq_length=args.max_seq_length,
            max_predictions_per_seq=args.max_predictions_per_seq,
            masked_lm_prob=args.masked_lm_prob, short_seq_prob=args.short_seq_prob,
            dupe_factor=args.dupe_factor, nsp_mode=args.nsp_mode, masking=args.masking,
            seed=args.seed)
    except ValueError as e:
        raise JobError(f"invalid flags: {e}") from None
    if not 0.0 <= args.eval_fraction < 1.0:
        raise JobError(f"--eval_fraction must be in [0, 1), got {args.eval_fraction}")
    if args.split_bytes < 1:
        raise JobError(f"--split_bytes must be positive, got {args.split_bytes}")
    if args.max_line_bytes < 1:
        raise JobError(f"--max_line_bytes must be positive, got {args.max_line_bytes}")
    if args.word_cache_size < 0:
        raise JobError(f"--word_cache_size must be >= 0, got {args.word_cache_size}")
    if args.masking == "dynamic" and args.record_format == "padded":
        raise JobError("--masking=dynamic needs --record_format=compact")

    files = expand_inputs(args.input)
    ranges = plan_ranges(files, args.split_bytes)
    if not ranges:
        raise JobError(f"--input {args.input!r}: every matched file is empty "
                       f"({', '.join(p for p, _ in files[:5])})")
    model_proto, tokenizer = load_model_proto(args.spm_model)
    check_output_dir(args.output_dir, args.overwrite)

    options = PipelineOptions(beam_args)
    if not options.view_as(StandardOptions).runner:
        options.view_as(StandardOptions).runner = "FnApiRunner"
    staging_dir = _join(args.output_dir, f"{STAGING_PREFIX}{uuid.uuid4().hex[:12]}")
    splits = ["train"] + (["eval"] if args.eval_fraction > 0 else [])
    empty_files = sum(1 for _, size in files if size == 0)
    log.info("%d file(s), %d empty, %d range(s); staging in %s", len(files), empty_files,
             len(ranges), staging_dir)
    started = time.time()
    try:
        with beam.Pipeline(options=options) as p:
            build_pipeline(p, ranges, model_proto, config, args, staging_dir)
        stats_path = _join(staging_dir, schema.STATS_FILE)
        counts = _read_json(stats_path) if FileSystems.exists(stats_path) else {}
        counts["files_empty"] = empty_files
        stats = summarize_stats(counts, config)
        stats["seconds"] = round(time.time() - started, 3)
        split_info = _finalize(staging_dir, args.output_dir, splits)
        split_info.get("train", {})["num_examples"] = stats["train_examples"]
        if "eval" in split_info:
            split_info["eval"]["num_examples"] = stats["eval_examples"]
        metadata = schema.build_metadata(
            record_format=args.record_format, masking=args.masking,
            compression=schema.Compression(args.compression),
            example_config=config, tokenizer_sha256=tokenizer.sha256,
            tokenizer_path=args.spm_model, vocab_size=tokenizer.vocab_size,
            special_ids=tokenizer.special.as_dict(), splits=split_info,
            package_version=bertdata.__version__)
        _write_json(stats, _join(args.output_dir, schema.STATS_FILE))
        _write_json(metadata, _join(args.output_dir, schema.METADATA_FILE))
    finally:
        try:
            leftovers = [m.path for m in
                         FileSystems.match([_join(staging_dir, "*")])[0].metadata_list]
            if leftovers:
                FileSystems.delete(leftovers)
            if FileSystems.exists(staging_dir):
                FileSystems.delete([staging_dir])
        except Exception as e:  # cleanup must not hide the real error
            log.warning("could not remove staging folder %s: %s", staging_dir, e)
    log.info("wrote %d examples (%d eval) to %s in %.1fs", stats["examples"],
             stats["eval_examples"], args.output_dir, stats["seconds"])
    return stats


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    try:
        stats = run(argv)
    except JobError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({k: stats[k] for k in ("documents_read", "examples", "masked_fraction",
                                            "not_next_fraction", "unk_rate", "seconds")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
