"""Corpus -> sharded TFRecords of masked-LM + next-sentence examples, with Apache Beam.

Usage (local, all cores):
    python -m beam_jobs.create_pretraining_data \
        --input='data/*.txt' --output_dir=runs/data --tokenizer=runs/ko.model \
        --max_seq_length=128 --max_predictions_per_seq=20 --eval_fraction=0.05 \
        --direct_num_workers=0 --direct_running_mode=multi_processing

Usage (Dataflow; the launcher may exit once the job is submitted):
    python -m beam_jobs.create_pretraining_data \
        --input='gs://BUCKET/corpus/*.txt' --output_dir=gs://BUCKET/data \
        --tokenizer=gs://BUCKET/ko.model --runner=DataflowRunner --project=PROJECT \
        --region=REGION --temp_location=gs://BUCKET/tmp --setup_file=./setup.py

Usage (Flink or Spark; see the README for the job-server jars):
    python -m beam_jobs.create_pretraining_data ... --runner=FlinkRunner \
        --flink_master=[local] --parallelism=2 --environment_type=LOOPBACK

Writes OUT/train-SSSSS-of-NNNNN.tfrecord[.gz], OUT/eval-... (with --eval_fraction),
OUT/stats.json and, last, OUT/metadata.json. The pipeline itself publishes them (see
beam_jobs.publish): shards are staged in OUT/.staging-RUN and moved into place, and
metadata.json is written, only when the train split is non-empty and every example was
written; a run that fails or is killed leaves nothing that looks finished, and the next run
on the same OUT removes its staging folder. Any flag the job does not know goes to Beam's
PipelineOptions; with no --runner the in-process FnApiRunner runs it.
"""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import re
import sys
import tempfile
import time
import uuid

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import (
    PipelineOptions,
    StandardOptions,
    TestOptions,
    TypeOptions,
)

import bertdata
from beam_jobs import inputs, progress
from beam_jobs.dedup import MarkDuplicates
from beam_jobs.examples import CreateRecordBlobs
from beam_jobs.publish import DatasetError, PublishDataset, read_json, remove_folder, retire_dataset
from beam_jobs.random_docs import SampleRandomDocuments
from beam_jobs.settings import DESCRIPTION, JobSettings, make_parser
from beam_jobs.shards import WriteShardPieces
from beam_jobs.stats import merge_counts
from bertcommon import cli, logs
from bertcommon.errors import BertpipeError
from bertcommon.files import FolderInUse, run_lock
from bertdata import schema
from bertdata.tokenizer_files import SENTENCEPIECE, TokenizerSource, read_tokenizer_source
from bertdata.vocabulary import Tokenizer

log = logging.getLogger("beam_jobs.create_pretraining_data")

STAGING_PREFIX = ".staging-"


class JobError(BertpipeError):
    """A problem with the job's inputs or flags, reported before any work starts."""


def check_inputs(globs) -> None:
    """Each glob must match a file; a directory is an error. Looks at one match per glob, so
    it costs the same for one file or a million."""
    for pattern in globs:
        if "://" not in pattern and os.path.isdir(pattern):
            raise JobError(f"--input {pattern} is a directory; give a glob of its files, "
                           f"such as '{os.path.join(pattern, '*.txt')}'")
        try:
            if "://" in pattern:
                found = FileSystems.match([pattern], limits=[1])[0].metadata_list
            else:
                found = [p for p in [next(glob.iglob(pattern), None)] if p]
        except Exception as e:  # Beam raises BeamIOError for a missing bucket or folder
            raise JobError(f"--input {pattern!r}: {e}") from None
        if not found:
            raise JobError(f"--input {pattern!r} matches no file")


def _open(path: str, mode: str = "rb"):
    try:
        return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    except Exception as e:  # Beam's file systems raise their own error types
        raise OSError(str(e)) from None


def _exists(path: str) -> bool:
    try:
        return FileSystems.exists(path)
    except Exception:  # noqa: BLE001 - a bucket that cannot be listed holds nothing usable
        return False


def load_tokenizer_source(options: JobSettings) -> tuple[TokenizerSource, Tokenizer]:
    """The tokenizer's files (what workers receive) and the checked, loaded tokenizer; the
    path may be on any of Beam's file systems."""
    flag, path = options.tokenizer_flag, options.tokenizer_path
    try:
        source = read_tokenizer_source(path, opener=_open, exists=_exists,
                                       join=FileSystems.join)
        if flag == "--spm_model" and source.kind != SENTENCEPIECE:
            raise ValueError(f"{path}: not a SentencePiece .model (give a tokenizer.json or "
                             "a model folder with --tokenizer)")
        return source, source.load(word_cache_size=options.word_cache_size)
    except ValueError as e:
        raise JobError(f"{flag} {e}") from None


def check_dataset_dir(output_dir: str, overwrite: bool) -> None:
    if "://" not in output_dir and os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise JobError(f"--output_dir {output_dir} is a file, not a directory")
    if FileSystems.exists(FileSystems.join(output_dir, schema.METADATA_FILE)) and not overwrite:
        raise JobError(f"--output_dir {output_dir} already holds a finished dataset "
                       f"({schema.METADATA_FILE}); pass --overwrite to replace it or choose "
                       "another directory")


def stale_staging_folders(output_dir: str) -> list[str]:
    """Staging folders that runs which did not finish left in output_dir."""
    if "://" not in output_dir:
        return sorted(p for p in glob.glob(os.path.join(output_dir, STAGING_PREFIX + "*"))
                      if os.path.isdir(p))
    inside = FileSystems.match([FileSystems.join(output_dir, STAGING_PREFIX + "*", "*")])
    return sorted({m.path.rsplit("/", 1)[0] for m in inside[0].metadata_list})


def remove_stale_staging(output_dir: str) -> None:
    """Removes what killed runs left in output_dir (two jobs must not share one)."""
    for folder in stale_staging_folders(output_dir):
        log.info("removing %s, left by a run that did not finish", folder)
        remove_folder(folder)


def build_pipeline(p: beam.Pipeline, options: JobSettings, source: TokenizerSource,
                   dataset_facts: dict, run_id: str, channel=None, started_at=None) -> None:
    """Wires the job; only options.inputs (the globs) says which files it reads."""
    staging = FileSystems.join(options.output_dir, f"{STAGING_PREFIX}{run_id}")
    files = (p | "Globs" >> beam.Create(list(options.inputs), reshuffle=False)
             | "MatchFiles" >> inputs.MatchInputFiles())
    planned = files | "PlanRanges" >> beam.ParDo(
        inputs.PlanRangesFn(options.split_bytes, channel)).with_outputs(
        inputs.SKIPPED, inputs.CountingDoFn.STATS, main="ranges")
    # Spread the ranges over workers; only these small descriptors are shuffled.
    ranges = planned.ranges | "SpreadRanges" >> beam.Reshuffle()
    to_build = ranges
    if options.dedup != "none":
        to_build = ranges | "MarkDuplicates" >> MarkDuplicates(options.max_line_bytes,
                                                               lines=options.dedup == "lines")
    pool = None
    if options.example.nsp_mode == "random_doc":
        pool = ranges | "RandomDocuments" >> SampleRandomDocuments(options, staging)
    records = to_build | "CreateRecords" >> CreateRecordBlobs(options, source, pool,
                                                              channel)
    pieces = [records[split] | f"Write{split.title()}" >> WriteShardPieces(
        staging, split, options.compression, options.shard_bytes, options.num_shards)
        for split in options.splits]
    all_pieces = pieces | "AllPieces" >> beam.Flatten()
    counts = ((records[inputs.CountingDoFn.STATS], planned[inputs.CountingDoFn.STATS])
              | "AllCounts" >> beam.Flatten()
              | "SumCounts" >> beam.CombineGlobally(merge_counts))
    _ = (all_pieces, counts, planned[inputs.SKIPPED]) | "Publish" >> PublishDataset(
        options, staging, dataset_facts, started_at or time.time())


def _is_local(pipeline_options: PipelineOptions) -> bool:
    runner = pipeline_options.view_as(StandardOptions).runner or ""
    return "Dataflow" not in str(runner)


def run_from_flags(argv=None) -> dict | None:
    """Parses flags into JobSettings and Beam's PipelineOptions, then `run_job`.

    Raises JobError for bad inputs or flags (before work starts); a pipeline failure raises
    what the runner raised (see `failure_message`).
    """
    args, beam_args = make_parser().parse_known_args(argv)
    try:
        options = cli.settings_from_args(JobSettings, args)
    except cli.SettingsError as e:
        raise JobError(f"invalid flags: {e}") from None
    return run_with_beam_flags(options, beam_args)


def run_with_beam_flags(options: JobSettings, beam_args: list[str]) -> dict | None:
    """`run_job` with Beam's pipeline options parsed from BEAM_ARGS (checked first)."""
    pipeline_options = PipelineOptions(beam_args)
    check_beam_flags(pipeline_options, make_parser())
    return run_job(options, pipeline_options)


def check_beam_flags(pipeline_options: PipelineOptions, parser) -> None:
    """A flag that neither this job nor any of Beam's pipeline options knows (a typo such as
    --max_seq_lenght) is a JobError naming it and the nearest known flag, before any work;
    Beam itself would only log that it dropped it."""
    import difflib

    given = pipeline_options.get_all_options(retain_unknown_options=True)
    beam_logger = logging.getLogger("apache_beam.options.pipeline_options")
    level = beam_logger.level
    beam_logger.setLevel(logging.ERROR)  # its 'Discarding unparseable args' line
    try:
        known = pipeline_options.get_all_options(retain_unknown_options=False)
    finally:
        beam_logger.setLevel(level)
    unknown = sorted(set(given) - set(known))
    if unknown:
        flags = [f for action in parser._actions for f in action.option_strings] + [
            f"--{name}" for name in known]
        near = difflib.get_close_matches(f"--{unknown[0]}", flags, n=1)
        hint = f" (did you mean {near[0]}?)" if near else ""
        raise JobError(f"unknown flag --{unknown[0]}{hint}: neither this job nor Beam's "
                       "pipeline options know it")


def run_job(options: JobSettings, pipeline_options: PipelineOptions) -> dict | None:
    """Checks the inputs, runs the pipeline (which publishes the dataset) and returns the
    stats dict; None for a dry run or a launcher that does not wait."""
    check_inputs(options.inputs)
    source, tokenizer = load_tokenizer_source(options)
    check_dataset_dir(options.output_dir, options.overwrite)
    standard = pipeline_options.view_as(StandardOptions)
    if not standard.runner:
        standard.runner = "FnApiRunner"
    # The job's transforms declare no element types; Beam's type checking while the pipeline
    # is built only guesses them from lambdas, parsing the options again for each transform:
    # 0.2 to 0.5 s a job, up to a fifth of a small one. Off, every collection takes Beam's
    # generic coder (made deterministic for grouping keys); the records are the same bytes.
    pipeline_options.view_as(TypeOptions).pipeline_type_check = False
    if pipeline_options.view_as(TestOptions).dry_run:
        return _run_pipeline(options, pipeline_options, source, tokenizer)
    try:
        # Two jobs on one local folder would delete each other's staging: the second
        # is refused while the first lives.
        with run_lock(options.output_dir, "--output_dir"):
            try:
                return _run_pipeline(options, pipeline_options, source, tokenizer)
            except Exception:
                _remove_unpublished(options.output_dir)
                raise
    except FolderInUse as e:
        raise JobError(str(e)) from None


def _remove_unpublished(output_dir: str) -> None:
    """After a failed run: shards and stats.json that it put in place before metadata.json
    (written last) are not a dataset, and go, so nothing looks finished."""
    if not FileSystems.exists(FileSystems.join(output_dir, schema.METADATA_FILE)):
        retire_dataset(output_dir)


def _quiet_workers(pipeline_options: PipelineOptions):
    """Local SDK worker processes (multi-processing mode) keep their logs and tracebacks off
    the console unless the command runs with --verbosity=debug; the job still reports a
    failure in its own line."""
    from apache_beam.options.pipeline_options import DirectOptions

    mode = pipeline_options.view_as(DirectOptions).direct_running_mode
    verbosity = logs.configured_verbosity()
    if mode == "multi_processing" and verbosity not in (None, "debug"):
        return logs.child_processes_quiet()
    return contextlib.nullcontext()


def _run_pipeline(options: JobSettings, pipeline_options: PipelineOptions, source: TokenizerSource,
                  tokenizer) -> dict | None:
    standard = pipeline_options.view_as(StandardOptions)
    dry_run = pipeline_options.view_as(TestOptions).dry_run
    facts = {"tokenizer_sha256": tokenizer.sha256, "tokenizer_path": options.tokenizer_path,
             "vocab_size": tokenizer.vocab_size, "special_ids": tokenizer.special,
             "package_version": bertdata.__version__}
    if not dry_run:
        remove_stale_staging(options.output_dir)
    with tempfile.TemporaryDirectory(prefix="bertpipe-progress-") as folder:
        channel = progress.ProgressChannel(folder) if _is_local(pipeline_options) else None
        started = time.time()
        p = beam.Pipeline(options=pipeline_options)
        build_pipeline(p, options, source, facts, uuid.uuid4().hex[:12], channel, started)
        log.info("running the pipeline on %s", standard.runner)
        if channel is None or dry_run:
            result = p.run()
        else:
            with progress.ProgressReporter(channel), _quiet_workers(pipeline_options):
                result = p.run()
                if not standard.no_wait_until_finish:
                    result.wait_until_finish()
    if dry_run:
        log.info("dry run: the job was translated and not run; nothing was written")
        return None
    if standard.no_wait_until_finish:
        log.info("the job runs on; it publishes %s itself when it finishes",
                 options.output_dir)
        return None
    result.wait_until_finish()
    return read_json(FileSystems.join(options.output_dir, schema.STATS_FILE))


_STEP = r"(?: \[while running '[^']*'\])*"
_OUR_ERRORS = re.compile(rf"(?:DatasetError|InputFileError): (.+?){_STEP}$", re.MULTILINE)
_NO_SPACE = re.compile(r"\[Errno 28\] No space left on device(?:: '([^']*)')?")


def failure_message(error: BaseException) -> str:
    """One line for a failed pipeline: the job's own message when it raised one, else the
    last line of the runner's error (which may hold a worker's whole traceback)."""
    text = str(error)
    if isinstance(error, (DatasetError, inputs.InputFileError)):
        return re.sub(_STEP + "$", "", text.splitlines()[0]).strip()
    mine = _OUR_ERRORS.findall(text)
    if mine:
        return mine[-1].strip()
    space = _NO_SPACE.search(text)
    if space:
        where = f" writing {space.group(1)}" if space.group(1) else ""
        return f"no space left on device{where}; nothing was published"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines[-1] if lines else type(error).__name__)[:500]


def is_input_error(error: BaseException) -> bool:
    """True when the pipeline failed on what the user can fix (exit code 2): bad input, or
    no space left where it writes; else the system failed (exit code 1)."""
    return isinstance(error, (DatasetError, inputs.InputFileError)) or bool(
        _OUR_ERRORS.search(str(error))) or bool(_NO_SPACE.search(str(error)))


# An [UNK] share above this says the tokenizer does not fit the corpus: a tokenizer trained
# on the corpus itself stays far below (0.07% on the sample, 0.12% on NSMC at 32,000 pieces).
UNK_RATE_WARNING = 0.05


def _log_summary(stats: dict) -> None:
    log.info("wrote %s train and %s eval examples (%s documents read) in %.1fs",
             f"{stats['train_examples']:,}", f"{stats['eval_examples']:,}",
             f"{stats['documents_read']:,}", stats["seconds"])
    if stats["skipped_or_repaired"]:
        log.info("skipped or repaired: %s", json.dumps(stats["skipped_or_repaired"]))
    for skipped in stats["skipped_files"]:
        log.warning("WARNING: input file not read: %s (%s)", skipped["path"],
                    skipped["reason"])
    if stats["unk_rate"] > UNK_RATE_WARNING:
        log.warning("WARNING: %.1f%% of the pieces are [UNK] (above %.0f%%): the tokenizer was "
                    "not trained on text like this corpus, or the corpus is not text",
                    100 * stats["unk_rate"], 100 * UNK_RATE_WARNING)


def _command(options: JobSettings, beam_args: list[str]) -> None:
    try:
        stats = run_with_beam_flags(options, beam_args)
    except JobError:
        raise
    except Exception as e:  # the pipeline failed: say why in one line
        where = f"--output_dir {options.output_dir}: " if _NO_SPACE.search(str(e)) else ""
        raise BertpipeError(f"{where}the data job failed: {failure_message(e)}",
                            2 if is_input_error(e) else 1) from None
    if stats is not None:
        _log_summary(stats)
        print(json.dumps({k: stats[k] for k in ("documents_read", "examples", "train_examples",
                                                "eval_examples", "masked_fraction",
                                                "not_next_fraction", "unk_rate", "seconds")}))


def main(argv=None) -> int:
    return cli.run_command(JobSettings, _command, argv, description=DESCRIPTION,
                           pass_unknown_flags=True)


if __name__ == "__main__":
    sys.exit(main())
