"""Exact deduplication. --dedup=documents: a document whose lines, as the job reads them,
equal another's is built once. --dedup=lines: a line equal to an earlier one (anywhere in
the corpus) is left out of its document.

Only small descriptors travel: each document's (or line's) content hash and location
(file, the document's byte offset, the line's index, the range that reads it) are grouped
by hash, every copy but the first location in (file, offset, line) order is marked, and
each range receives the locations it must skip. So memory stays bounded per worker on any
corpus, the job's description stays of constant size, and the kept copy is the same on
every runner and for any split of the files. Examples derive
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


class _LocateFn(beam.DoFn):
    """File range -> (content hash, (path, where, range key)) of each of its documents
    (where: the document's offset) or lines (where: (offset, line index))."""

    def __init__(self, max_line_bytes: int, lines: bool):
        self.max_line_bytes, self.lines = max_line_bytes, lines

    def process(self, file_range):
        counts = collections.Counter()  # the build stage reads the range again and counts
        path, key = file_range[0], range_key(file_range)
        for offset, lines in read_range(file_range, counts, self.max_line_bytes):
            if not self.lines:
                yield pretraining.document_key(lines), (path, offset, key)
                continue
            for index, line in enumerate(lines):
                yield pretraining.document_key([line]), (path, (offset, index), key)


def _later_copies(element):
    """(hash, locations) -> (range key, where) of every copy after the first location."""
    _, locations = element
    first = min((path, where) for path, where, _ in locations)
    for path, where, key in locations:  # a grouped iterable may be read twice
        if (path, where) != first:
            yield key, where


class MarkDuplicates(beam.PTransform):
    """File ranges -> (file range, what it must skip: document offsets, or with LINES
    (offset, line index) pairs)."""

    def __init__(self, max_line_bytes: int, lines: bool = False):
        super().__init__()
        self.max_line_bytes, self.lines = max_line_bytes, lines

    def expand(self, ranges):
        skips = (ranges
                 | "Locate" >> beam.ParDo(_LocateFn(self.max_line_bytes, self.lines))
                 | "GroupCopies" >> beam.GroupByKey()
                 | "LaterCopies" >> beam.FlatMap(_later_copies))
        keyed = ranges | "KeyRanges" >> beam.Map(lambda r: (range_key(r), r))
        return ({"range": keyed, "skip": skips}
                | "JoinSkips" >> beam.CoGroupByKey()
                | "RangeWithSkips" >> beam.Map(
                    lambda kv: (list(kv[1]["range"])[0], frozenset(kv[1]["skip"]))))
