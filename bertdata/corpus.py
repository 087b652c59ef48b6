"""Streaming corpus reading in the layout the data job reads.

The layout: UTF-8 text, one sentence per line, documents separated by one or more blank
lines. A blank line is empty or holds only white space, Unicode's included (an ideographic
space U+3000 or a no-break space is as blank as an ASCII one). Reading is streaming and works
on byte ranges of a file, so a single large file can be split across workers: a document
belongs to the range that holds the first byte of its first line, and the reader of that
range follows it past the range end. Every repaired or dropped input is recorded in a
`collections.Counter` the caller passes in.
"""

from __future__ import annotations

import codecs
import collections
from collections.abc import Iterable, Iterator
from typing import BinaryIO

# Limits that keep a worker's memory bounded whatever the input looks like.
DEFAULT_MAX_LINE_BYTES = 1 << 20  # a 10 MB "line" is a broken file, not a sentence
DEFAULT_MAX_DOCUMENT_LINES = 10_000  # longer documents are cut into parts of this many lines

_CHUNK = 1 << 16
_BLOCK = 1 << 18  # bytes read at a time by the line reader
_DOCUMENT_BLOCK = 1 << 13  # the same for one document at a known offset
_UTF8_BOM = b"\xef\xbb\xbf"

# Counter keys, one per reason; the Beam job exports them as metrics and in stats.json.
LINES_INVALID_UTF8 = "lines_invalid_utf8"
LINES_TOO_LONG = "lines_too_long"
LINES_WHITESPACE_ONLY = "lines_whitespace_only"
LINES_WITH_NUL = "lines_with_nul_bytes"
DOCUMENTS_SPLIT = "documents_split_too_many_lines"

# A line read from the file: its stripped text, or one of these markers.
_TOO_LONG = object()
_HAS_NUL = object()


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
    return None, n + _skip_line(f)


def _line_text(raw: bytes | None, at_file_start: bool, counts: collections.Counter):
    """The stripped text of a line ("" when blank), or _TOO_LONG / _HAS_NUL."""
    if raw is None:
        return _TOO_LONG
    if b"\x00" in raw:
        # NUL bytes are not text: most likely a UTF-16 or binary file read as UTF-8.
        return _HAS_NUL
    if at_file_start and raw.startswith(_UTF8_BOM):
        raw = raw[len(_UTF8_BOM):]
    return _decode(raw, counts)


def _previous_line_is_blank(f: BinaryIO, pos: int, max_line_bytes: int) -> bool:
    """True when the line ending just before byte `pos` is blank (or `pos` starts the file).

    Byte pos-1 is the '\\n' ending the previous line; its start is found by scanning back.
    A line longer than max_line_bytes is not blank (the forward reader skips it whole).
    """
    end = pos - 1
    begin = end
    while begin > 0 and end - begin <= max_line_bytes:
        lo = max(0, begin - 4096)
        f.seek(lo)
        newline = f.read(begin - lo).rfind(b"\n")
        if newline >= 0:
            begin = lo + newline + 1
            break
        begin = lo
    if end - begin > max_line_bytes:
        return False
    f.seek(begin)
    raw = f.read(end - begin)
    return b"\x00" not in raw and not raw.decode("utf-8", errors="replace").strip()


def _range_start(f: BinaryIO, start: int, max_line_bytes: int) -> tuple[int, bool]:
    """(position of the first line starting at or after `start`, whether the line before
    it is blank), with `f` positioned there."""
    if start == 0:
        f.seek(0)
        return 0, True
    # Skip the rest of the line that holds byte start-1 (it ends exactly at `start` when
    # that byte is a newline).
    f.seek(start - 1)
    _, skipped = _read_line(f, max_line_bytes)
    pos = start - 1 + skipped
    prev_blank = _previous_line_is_blank(f, pos, max_line_bytes)
    f.seek(pos)
    return pos, prev_blank


def _lines(f: BinaryIO, pos: int, max_line_bytes: int, counts: collections.Counter,
           block_bytes: int = _BLOCK) -> Iterator[tuple[int, bytes | None, object]]:
    """Yields (line start, raw bytes or None when too long, _line_text) for each line from
    `pos`, where `f` is positioned, to the end of the file.

    The file is read in blocks cut at their last newline. A block of valid UTF-8 without NUL
    bytes, a byte-order mark or an over-long line (nearly every block of real text) is
    decoded in one call and split once: the byte 0x0A is only ever a newline in UTF-8, so its
    bytes and its text split into the same lines. Any other block goes line by line through
    _line_text, lazily, so a line is only counted (invalid UTF-8) when the caller reads it.
    """
    pending = b""
    while True:
        data = f.read(block_bytes)
        pending += data
        cut = len(pending) if not data else pending.rfind(b"\n") + 1
        if not pending:
            return
        if not cut:
            if len(pending) > max_line_bytes:  # no newline in sight: an over-long line
                yield pos, None, _TOO_LONG
                pos += len(pending) + _skip_line(f)
                pending = b""
            continue
        block, pending = pending[:cut], pending[cut:]
        raws = block.split(b"\n")
        if block.endswith(b"\n"):
            raws.pop()  # the empty piece after the last newline
        texts = _clean_block_texts(block, raws, pos, max_line_bytes)
        if texts is not None:
            for raw, text in zip(raws, texts, strict=True):
                yield pos, raw, text.strip()
                pos += len(raw) + 1
        else:
            for raw in raws:
                kept = raw if len(raw) <= max_line_bytes else None
                yield pos, kept, _line_text(kept, pos == 0, counts)
                pos += len(raw) + 1
        if not data:
            return


def _clean_block_texts(block: bytes, raws: list[bytes], pos: int, max_line_bytes: int
                       ) -> list[str] | None:
    """The lines of a block as text when it needs none of _line_text's repairs, else None."""
    if b"\x00" in block or (pos == 0 and block.startswith(_UTF8_BOM)):
        return None
    if len(block) > max_line_bytes and max(map(len, raws), default=0) > max_line_bytes:
        return None
    try:
        texts = block.decode("utf-8").split("\n")
    except UnicodeDecodeError:
        return None
    if block.endswith(b"\n"):
        texts.pop()
    return texts


def _skip_line(f: BinaryIO) -> int:
    """Consumes the rest of an over-long line, a chunk at a time; returns the bytes consumed
    (its newline included)."""
    n = 0
    while True:
        part = f.readline(_CHUNK)
        n += len(part)
        if not part or part.endswith(b"\n"):
            return n


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
    removed; lines holding NUL bytes are dropped and counted (they do not end a document).
    Documents are never empty.
    """
    counts = counts if counts is not None else collections.Counter()
    if end is not None and end <= start:
        return
    pos, prev_blank = _range_start(f, start, max_line_bytes)
    doc: list[str] = []
    doc_offset = -1
    owned = False  # inside a document that this range owns
    for line_start, raw, text in _lines(f, pos, max_line_bytes, counts):
        if text == "":
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
        if text is _TOO_LONG or text is _HAS_NUL:
            counts[LINES_TOO_LONG if text is _TOO_LONG else LINES_WITH_NUL] += 1
            continue
        doc.append(text)
        if len(doc) >= max_document_lines:
            counts[DOCUMENTS_SPLIT] += 1
            yield doc_offset, doc
            doc = []
    if doc:
        yield doc_offset, doc


def document_at(f: BinaryIO, offset: int, *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
                max_lines: int = DEFAULT_MAX_DOCUMENT_LINES) -> list[str]:
    """The lines of the document that starts at `offset`, an offset `read_documents` yielded
    (so no range bookkeeping is needed), read the same way; at most max_lines of them."""
    f.seek(offset)
    counts: collections.Counter = collections.Counter()  # counted when first read
    doc: list[str] = []
    for _, _, text in _lines(f, offset, max_line_bytes, counts, _DOCUMENT_BLOCK):
        if text == "" or len(doc) >= max_lines:
            break
        if text is not _TOO_LONG and text is not _HAS_NUL:
            doc.append(text)
    return doc


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


# Compressed data named as plain text (Beam picks the codec by the file's extension).
_MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz"),
          (b"\x28\xb5\x2f\xfd", "zstd"), (b"PK\x03\x04", "zip"))
# Shares of a file's first bytes above which it is not text. Real UTF-8 text has no invalid
# sequences and no control characters but tab, newline and carriage return; random bytes
# have about half of their characters invalid, and binary formats many controls.
MAX_INVALID_UTF8_SHARE = 0.01
MAX_CONTROL_SHARE = 0.01


def looks_like_text(head: bytes) -> str | None:
    """None when the first bytes of a file look like UTF-8 text, else the reason they do not
    (a UTF-16 or UTF-32 byte-order mark, NUL bytes, compressed data, invalid UTF-8 or
    control characters above MAX_INVALID_UTF8_SHARE / MAX_CONTROL_SHARE)."""
    for bom, name in ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"),
                      (b"\xff\xfe", "UTF-16"), (b"\xfe\xff", "UTF-16")):
        if head.startswith(bom):
            return f"starts with a {name} byte-order mark; convert it to UTF-8"
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return (f"holds {name}-compressed data; give it the extension of its compression "
                    "(.gz, .bz2, .xz, .zst) or decompress it")
    nul = head.count(b"\x00")
    if head and nul > len(head) // 100:
        return (f"{nul} of its first {len(head)} bytes are NUL: UTF-16 text or a binary "
                "file, not UTF-8 text")
    # Not final: a character cut in two at the end of the head is held back, not counted.
    text = codecs.getincrementaldecoder("utf-8")(errors="replace").decode(head, final=False)
    if text:
        invalid = text.count("\ufffd") / len(text)
        controls = sum(1 for c in text if c < " " and c not in "\t\n\r") / len(text)
        if invalid > MAX_INVALID_UTF8_SHARE:
            return (f"{invalid:.0%} of its first characters are not valid UTF-8: not UTF-8 "
                    "text")
        if controls > MAX_CONTROL_SHARE:
            return f"{controls:.0%} of its first characters are control characters: not text"
    return None
