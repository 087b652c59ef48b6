"""Streaming corpus reading in the reference layout.

The layout: UTF-8 text, one sentence per line, documents separated by one or more blank
(empty or whitespace-only) lines. Reading is streaming and works on byte ranges of a file, so
a single large file can be split across workers: a document belongs to the range that holds
the first byte of its first line, and the reader of that range follows it past the range end.
Every repaired or dropped input is recorded in a `collections.Counter` the caller passes in.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Iterator
from typing import BinaryIO

# Limits that keep a worker's memory bounded whatever the input looks like.
DEFAULT_MAX_LINE_BYTES = 1 << 20  # a 10 MB "line" is a broken file, not a sentence
DEFAULT_MAX_DOCUMENT_LINES = 10_000  # longer documents are cut into parts of this many lines

_CHUNK = 1 << 16
_WHITESPACE = b" \t\r\f\v"

# Counter keys, one per reason; the Beam job exports them as metrics and in stats.json.
LINES_INVALID_UTF8 = "lines_invalid_utf8"
LINES_TOO_LONG = "lines_too_long"
LINES_WHITESPACE_ONLY = "lines_whitespace_only"
DOCUMENTS_SPLIT = "documents_split_too_many_lines"


def _decode(raw: bytes, counts: collections.Counter) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        # Invalid bytes become U+FFFD (the tokenizer maps it to [UNK]); the line is kept so
        # one bad byte does not cut a document in two.
        counts[LINES_INVALID_UTF8] += 1
        text = raw.decode("utf-8", errors="replace")
    return text.strip()


def _read_line(f: BinaryIO, max_line_bytes: int) -> tuple[bytes | None, int]:
    """Reads one line. Returns (content or None when too long, bytes consumed incl. newline).

    A line longer than max_line_bytes is consumed in chunks and not kept, so memory stays
    bounded even for a file with no newline at all.
    """
    raw = f.readline(max_line_bytes + 1)
    n = len(raw)
    if n <= max_line_bytes or raw.endswith(b"\n"):
        return raw, n
    while True:  # too long: skip the rest of it
        part = f.readline(_CHUNK)
        n += len(part)
        if not part or part.endswith(b"\n"):
            return None, n


def _line_before_is_blank(f: BinaryIO, pos: int) -> bool:
    """True when the line ending just before byte `pos` is blank (or `pos` starts the file)."""
    # Byte pos-1 is the '\n' ending the previous line; scan back over whitespace until the
    # newline before that line (blank) or any other byte (not blank).
    end = pos - 1
    while end > 0:
        begin = max(0, end - 256)
        f.seek(begin)
        chunk = f.read(end - begin)
        for b in reversed(chunk):
            if b == 0x0A:
                return True
            if b not in _WHITESPACE:
                return False
        end = begin
    return True


def read_documents(
    f: BinaryIO,
    start: int = 0,
    end: int | None = None,
    *,
    counts: collections.Counter | None = None,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    max_document_lines: int = DEFAULT_MAX_DOCUMENT_LINES,
) -> Iterator[tuple[int, list[str]]]:
    """Yields (offset, lines) for each document whose first line starts in [start, end).

    Args:
      f: a binary, seekable file object positioned anywhere.
      start, end: the byte range this reader owns; end=None means to the end of the file.
      counts: receives one count per repaired or dropped input (see the module constants).
      max_line_bytes: longer lines are dropped and counted.
      max_document_lines: longer documents are yielded in parts of this many lines.

    Lines are stripped of surrounding whitespace; a UTF-8 BOM at the start of a file is
    removed. Documents are never empty.
    """
    counts = counts if counts is not None else collections.Counter()
    if end is not None and end <= start:
        return
    if start == 0:
        pos, prev_blank = 0, True
        f.seek(0)
    else:
        # The first line that starts at or after `start`: skip the rest of the line that
        # holds byte start-1 (which ends exactly at `start` when that byte is a newline).
        f.seek(start - 1)
        _, skipped = _read_line(f, max_line_bytes)
        pos = start - 1 + skipped
        prev_blank = _line_before_is_blank(f, pos)
        f.seek(pos)

    doc: list[str] = []
    doc_offset = -1
    owned = False  # inside a document that this range owns
    while True:
        line_start = pos
        raw, n = _read_line(f, max_line_bytes)
        if n == 0:
            break
        pos += n
        if raw is not None and not raw.strip():
            if raw.strip(b"\r\n"):
                counts[LINES_WHITESPACE_ONLY] += 1
            if doc:
                yield doc_offset, doc
            doc, owned, prev_blank = [], False, True
            continue
        if not owned:
            if not prev_blank:
                continue  # the tail of a document that an earlier range owns
            if end is not None and line_start >= end:
                break
            owned, doc_offset = True, line_start
        prev_blank = False
        if raw is None:
            counts[LINES_TOO_LONG] += 1
            continue
        if line_start == 0 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        doc.append(_decode(raw, counts))
        if len(doc) >= max_document_lines:
            counts[DOCUMENTS_SPLIT] += 1
            yield doc_offset, doc
            doc = []
    if doc:
        yield doc_offset, doc


def documents_from_lines(lines: Iterable[str]) -> Iterator[list[str]]:
    """Groups already-decoded lines into documents (for in-memory text and tests)."""
    doc: list[str] = []
    for line in lines:
        line = line.strip()
        if line:
            doc.append(line)
        elif doc:
            yield doc
            doc = []
    if doc:
        yield doc


def split_ranges(size: int, split_bytes: int) -> list[tuple[int, int]]:
    """Cuts [0, size) into ranges of about split_bytes (at least one range, even when empty)."""
    if split_bytes <= 0 or size <= split_bytes:
        return [(0, size)]
    return [(s, min(s + split_bytes, size)) for s in range(0, size, split_bytes)]
