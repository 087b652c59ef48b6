"""Input files on the workers: match the globs, plan byte ranges, read a range's documents.

Only the globs travel in the pipeline; matching and planning happen on workers, so the job's
description has the same size for one file or a million. A range is the tuple
(path, start, end, nbytes): `end` is None for a compressed file, which cannot be entered in
the middle and is read whole by one worker; `nbytes` is what the range counts towards
progress.
"""

from __future__ import annotations

import bz2
import collections
import contextlib
import gzip
import lzma
import os
import zlib

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import GlobalWindows

from beam_jobs import stats
from bertdata import corpus

SKIPPED = "skipped"  # tagged output of PlanRangesFn: (path, reason)
_HEAD_BYTES = 4096
_DECOMPRESSION_ERRORS = (zlib.error, EOFError, lzma.LZMAError, OSError)


class InputFileError(Exception):
    """An input file that cannot be read (a corrupt compressed file); names the file."""


def is_compressed(path: str) -> bool:
    return CompressionTypes.detect_compression_type(path) != CompressionTypes.UNCOMPRESSED


def canonical_path(path: str) -> str:
    """One spelling per file, so a file matched by two globs is read once."""
    return path if "://" in path else os.path.realpath(path)


class CountingDoFn(beam.DoFn):
    """Counts into self.counts, flushed once per bundle as Beam counters and as a stats dict.

    Counting in a plain Counter keeps the per-record cost to a dict increment; the emitted
    dicts are summed into stats.json, and the same totals appear as Beam counters.
    """

    STATS = "stats"

    def start_bundle(self):
        self.counts = collections.Counter()

    def finish_bundle(self):
        counts = {k: int(v) for k, v in self.counts.items() if v}
        for key, value in counts.items():
            Metrics.counter(stats.METRICS_NAMESPACE, key).inc(value)
        if counts:
            yield beam.pvalue.TaggedOutput(self.STATS, GlobalWindows.windowed_value(counts))
        self.counts = collections.Counter()


class MatchInputFiles(beam.PTransform):
    """Globs -> distinct (path, size) of every file they match (an empty glob is an error)."""

    def expand(self, globs):
        return (
            globs
            | "Match" >> fileio.MatchAll(fileio.EmptyMatchTreatment.DISALLOW)
            | "PathAndSize" >> beam.Map(lambda m: (canonical_path(m.path), m.size_in_bytes))
            | "Distinct" >> beam.Distinct()
        )


def file_head_problem(path: str) -> str | None:
    """Why a file is not read (a directory, not UTF-8 text), or None. Raises InputFileError
    when a compressed file cannot be decompressed."""
    try:
        with FileSystems.open(path, compression_type=CompressionTypes.AUTO) as f:
            head = f.read(_HEAD_BYTES)
    except IsADirectoryError:
        return "a directory"
    except _DECOMPRESSION_ERRORS as e:
        raise InputFileError(f"{path}: corrupt or not a {_kind(path)} file ({e})") from None
    return corpus.looks_like_text(head)


def _kind(path: str) -> str:
    return CompressionTypes.detect_compression_type(path)


class PlanRangesFn(CountingDoFn):
    """(path, size) -> byte ranges of about split_bytes; files not read go to SKIPPED."""

    def __init__(self, split_bytes: int, progress=None):
        self.split_bytes = split_bytes
        self.progress = progress

    def process(self, file):
        path, size = file
        if size == 0:
            self.counts[stats.FILES_EMPTY] += 1
            return
        problem = file_head_problem(path)
        if problem is not None:
            key = stats.FILES_DIRECTORIES if problem == "a directory" else stats.FILES_NOT_TEXT
            self.counts[key] += 1
            yield beam.pvalue.TaggedOutput(SKIPPED, (path, problem))
            return
        self.counts[stats.FILES_READ] += 1
        self.counts[stats.INPUT_BYTES] += size
        if self.progress is not None:
            self.progress.add(planned_bytes=size)
        if is_compressed(path):
            yield path, 0, None, size
            return
        for start, end in corpus.split_ranges(size, self.split_bytes):
            yield path, start, end, end - start


# Python's own readers raise EOFError on a truncated stream and support readline(limit).
_STDLIB_READERS = {CompressionTypes.GZIP: lambda raw: gzip.GzipFile(fileobj=raw, mode="rb"),
                   CompressionTypes.BZIP2: bz2.BZ2File, CompressionTypes.LZMA: lzma.LZMAFile}


class _CompressedLines:
    """readline(limit) and read(n) over Beam's CompressedFile (deflate, zstd), whose
    readline takes no limit and which does not notice a stream cut short; only seek(0)
    before reading is supported (a compressed range starts at 0)."""

    def __init__(self, f):
        self._f = f
        self._buffer = bytearray()
        self._eof = False
        self._started = False

    def seek(self, pos: int) -> None:
        if pos != 0 or self._started:
            raise ValueError("a compressed corpus file is read from its start only")

    def _fill(self, want: int) -> None:
        while len(self._buffer) < want and not self._eof:
            block = self._f.read(1 << 16)
            if not block:
                self._eof = True
                if not getattr(getattr(self._f, "_decompressor", None), "eof", True):
                    raise EOFError("the stream ended before its end-of-stream marker")
            self._buffer += block

    def readline(self, limit: int = -1) -> bytes:
        self._started = True
        scanned = 0
        while True:
            newline = self._buffer.find(b"\n", scanned)
            if newline >= 0:
                end = newline + 1
                break
            scanned = len(self._buffer)
            if self._eof or (0 <= limit <= scanned):
                end = len(self._buffer)
                break
            self._fill(len(self._buffer) + (1 << 16))
        if 0 <= limit < end:
            end = limit
        line = bytes(self._buffer[:end])
        del self._buffer[:end]
        return line

    def read(self, n: int) -> bytes:
        self._started = True
        self._fill(n)
        out = bytes(self._buffer[:n])
        del self._buffer[:n]
        return out

    def close(self):
        self._f.close()


@contextlib.contextmanager
def open_range(path: str, start: int, end: int | None):
    """(file object, start, end) for reading a range with bertdata.corpus."""
    kind = _kind(path)
    with contextlib.ExitStack() as stack:
        if kind == CompressionTypes.UNCOMPRESSED:
            yield stack.enter_context(FileSystems.open(path, compression_type=kind)), start, end
        elif kind in _STDLIB_READERS:
            raw = stack.enter_context(FileSystems.open(
                path, compression_type=CompressionTypes.UNCOMPRESSED))
            yield stack.enter_context(_STDLIB_READERS[kind](raw)), 0, None
        else:
            f = _CompressedLines(FileSystems.open(path, compression_type=kind))
            stack.callback(f.close)
            yield f, 0, None


def read_range(file_range, counts, max_line_bytes: int):
    """Yields (offset, lines) of the documents of one range (see bertdata.corpus)."""
    path, start, end, _ = file_range
    try:
        with open_range(path, start, end) as (f, start, end):
            yield from corpus.read_documents(f, start, end, counts=counts,
                                             max_line_bytes=max_line_bytes)
    except _DECOMPRESSION_ERRORS as e:
        if not is_compressed(path):
            raise
        raise InputFileError(f"{path}: corrupt or truncated {_kind(path)} file ({e})") from None


def read_documents_at(path: str, offsets, max_line_bytes: int,
                      max_lines: int = corpus.DEFAULT_MAX_DOCUMENT_LINES
                      ) -> dict[int, list[str]]:
    """The first max_lines lines of the documents that begin at the given byte offsets of a
    file (one pass for a compressed file, one seek per document otherwise)."""
    wanted = set(offsets)
    if is_compressed(path):
        counts = collections.Counter()  # already counted when the job read the whole corpus
        return {offset: lines[:max_lines] for offset, lines in read_range(
            (path, 0, None, 0), counts, max_line_bytes) if offset in wanted}
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        return {offset: corpus.document_at(f, offset, max_line_bytes=max_line_bytes,
                                           max_lines=max_lines)
                for offset in sorted(wanted)}
