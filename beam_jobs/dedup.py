"""Exact document deduplication (--dedup=documents): a document whose lines, as the job
reads them, equal another's is built once.

Only small descriptors travel: each document's content hash and location (file, byte
offset, the range that reads it) are grouped by hash, every copy but the first location in
(file, offset) order is marked, and each range receives the offsets it must skip. So memory
stays bounded per worker on any corpus, the job's description stays of constant size, and
the kept copy is the same on every runner and for any split of the files. Examples derive
their random streams from the content alone, so whichever copy is kept gives the same
records.
"""

from __future__ import annotations

import collections

import apache_beam as beam

from beam_jobs.inputs import read_range
from bertdata import pretraining


def range_key(file_range) -> str:
    path, start, _, _ = file_range
    return f"{path}\0{start}"


class _LocateDocumentsFn(beam.DoFn):
    """File range -> (content hash, (path, offset, range key)) of each of its documents."""

    def __init__(self, max_line_bytes: int):
        self.max_line_bytes = max_line_bytes

    def process(self, file_range):
        counts = collections.Counter()  # the build stage reads the range again and counts
        for offset, lines in read_range(file_range, counts, self.max_line_bytes):
            yield pretraining.document_key(lines), (file_range[0], offset,
                                                    range_key(file_range))


def _later_copies(element):
    """(hash, locations) -> (range key, offset) of every copy after the first location."""
    _, locations = element
    first = min((path, offset) for path, offset, _ in locations)
    for path, offset, key in locations:  # a grouped iterable may be read twice
        if (path, offset) != first:
            yield key, offset


class MarkDuplicates(beam.PTransform):
    """File ranges -> (file range, offsets of the documents it must skip)."""

    def __init__(self, max_line_bytes: int):
        super().__init__()
        self.max_line_bytes = max_line_bytes

    def expand(self, ranges):
        skips = (ranges
                 | "LocateDocuments" >> beam.ParDo(_LocateDocumentsFn(self.max_line_bytes))
                 | "GroupCopies" >> beam.GroupByKey()
                 | "LaterCopies" >> beam.FlatMap(_later_copies))
        keyed = ranges | "KeyRanges" >> beam.Map(lambda r: (range_key(r), r))
        return ({"range": keyed, "skip": skips}
                | "JoinSkips" >> beam.CoGroupByKey()
                | "RangeWithSkips" >> beam.Map(
                    lambda kv: (list(kv[1]["range"])[0], frozenset(kv[1]["skip"]))))
