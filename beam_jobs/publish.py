"""The pipeline's last stages: it publishes its own output, whatever became of the launcher.

  1. PlanShards (one element, after every piece is written and every count summed): checks
     that the train split has at least one example and that each split's pieces hold exactly
     the records its examples were counted as, then retires an earlier dataset in
     output_dir (--overwrite; metadata.json first, so it never looks finished) and plans
     the shards.
  2. Materialize (in parallel): each shard is put in place (see beam_jobs.shards).
  3. WriteMetadata (one element): removes the staging folder, writes stats.json, then
     metadata.json last, with each shard's record count. Each is written to a temporary
     name and renamed, so neither is ever seen half-written.
A failed check raises DatasetError, which fails the pipeline before anything is moved.
"""

from __future__ import annotations

import json
import time

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from beam_jobs import shards, stats
from beam_jobs.settings import JobSettings
from bertcommon import files
from bertdata import schema


class DatasetError(Exception):
    """The job's output would be empty or incomplete; nothing was published."""


def write_json(obj, path: str) -> None:
    """Writes JSON to a temporary name, then renames it: readers see all of it or nothing.
    Through Beam's FileSystems, so it works on any of them (gs://, hdfs://), where
    bertcommon.files.atomic_path (local paths) cannot."""
    tmp = f"{path}.tmp"
    with FileSystems.create(tmp, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        f.write(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False).encode() + b"\n")
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([tmp], [path])


def read_json(path: str):
    """A JSON object the job wrote, through Beam's FileSystems; BadFile names it."""
    def opener(name, _mode):
        return FileSystems.open(name, compression_type=CompressionTypes.UNCOMPRESSED)

    return files.read_json(path, opener=opener)


def _matching(pattern: str) -> list[str]:
    return [m.path for m in FileSystems.match([pattern])[0].metadata_list]


def remove_folder(folder: str) -> None:
    """Deletes a folder and what it holds (on object stores, the objects under it)."""
    leftovers = _matching(FileSystems.join(folder, "*"))
    if leftovers:
        FileSystems.delete(leftovers)
    if FileSystems.exists(folder):
        FileSystems.delete([folder])


def retire_dataset(output_dir: str) -> None:
    """Removes a finished dataset: its metadata.json first, then its shards and stats."""
    meta = FileSystems.join(output_dir, schema.METADATA_FILE)
    if FileSystems.exists(meta):
        FileSystems.delete([meta])
    old = [p for split in schema.SPLITS
           for p in _matching(FileSystems.join(output_dir, schema.shard_glob(split)))]
    stats_file = FileSystems.join(output_dir, schema.STATS_FILE)
    old += [stats_file] if FileSystems.exists(stats_file) else []
    if old:
        FileSystems.delete(old)


def check_complete(options: JobSettings, pieces, counts: dict, skipped) -> None:
    """Raises DatasetError unless the output is non-empty and every example was written."""
    built = stats.split_examples(counts)
    if built[schema.TRAIN] == 0:
        skipped_counts = {k: counts[k] for k in stats.SKIPPED_OR_REPAIRED if counts.get(k)}
        names = ", ".join(f"{p} ({r})" for p, r in sorted(skipped)[:5])
        raise DatasetError(
            f"no training example was built from --input {','.join(options.inputs)}: "
            f"{counts.get(stats.FILES_READ, 0)} file(s) read, "
            f"{counts.get(stats.DOCUMENTS_READ, 0)} document(s), "
            f"skipped or repaired: {skipped_counts or 'nothing'}"
            + (f"; files not read: {names}" if names else "")
            + "; nothing was published")
    for split in options.splits:
        written = sum(p.records for p in pieces if p.split == split)
        if written != built[split]:
            raise DatasetError(f"{split}: {written} records were written but {built[split]} "
                               "examples were built; nothing was published")


class PlanShardsFn(beam.DoFn):
    def __init__(self, options: JobSettings):
        self.options = options

    def process(self, _, pieces, counts, skipped):
        opts = self.options
        check_complete(opts, pieces, counts, skipped)
        retire_dataset(opts.output_dir)
        for split in opts.splits:
            yield from shards.plan_shards(pieces, split, opts.compression, opts.shard_bytes,
                                          opts.num_shards)


class WriteMetadataFn(beam.DoFn):
    def __init__(self, options: JobSettings, staging_dir: str, dataset_facts: dict,
                 started_at: float):
        self.options = options
        self.staging_dir = staging_dir
        self.dataset_facts = dataset_facts  # tokenizer, vocabulary, version: from the launcher
        self.started_at = started_at

    def process(self, placed, counts, skipped):
        opts = self.options
        splits = {}
        for split in opts.splits:
            counted = {name: n for s, name, n in sorted(placed) if s == split}
            splits[split] = schema.SplitInfo(
                num_examples=sum(counted.values()), num_shards=len(counted), shards=counted)
        summary = stats.summarize(counts, opts.example.max_seq_length, skipped)
        summary["seconds"] = round(time.time() - self.started_at, 3)
        remove_folder(self.staging_dir)
        metadata = schema.DatasetMetadata.build(
            record_format=opts.record_format, masking=opts.example.masking,
            compression=opts.compression, example_config=opts.example, splits=splits,
            **self.dataset_facts)
        write_json(summary, FileSystems.join(opts.output_dir, schema.STATS_FILE))
        write_json(metadata.to_json(),
                   FileSystems.join(opts.output_dir, schema.METADATA_FILE))
        yield summary


class PublishDataset(beam.PTransform):
    """(pieces, counts, skipped files) -> the published dataset's stats (a singleton)."""

    def __init__(self, options: JobSettings, staging_dir: str, dataset_facts: dict,
                 started_at: float):
        super().__init__()
        self.options = options
        self.staging_dir = staging_dir
        self.dataset_facts = dataset_facts
        self.started_at = started_at

    def expand(self, inputs):
        pieces, counts, skipped = inputs
        side = (beam.pvalue.AsList(pieces), beam.pvalue.AsSingleton(counts),
                beam.pvalue.AsList(skipped))
        output_dir, staging = self.options.output_dir, self.staging_dir
        return (
            pieces.pipeline
            | "Once" >> beam.Create([None])
            | "PlanShards" >> beam.ParDo(PlanShardsFn(self.options), *side)
            | "SpreadShards" >> beam.Reshuffle()
            | "Materialize" >> beam.Map(shards.materialize, output_dir, staging)
            | "Placed" >> beam.combiners.ToList()
            | "WriteMetadata" >> beam.ParDo(
                WriteMetadataFn(self.options, staging, self.dataset_facts, self.started_at),
                side[1], side[2])
        )
