import collections
import gzip
import io

import pytest

from bertdata import corpus


def read_all(data: bytes, split: int | None = None, **kw):
    counts = collections.Counter()
    if split is None:
        docs = [d for _, d in corpus.read_documents(io.BytesIO(data), counts=counts, **kw)]
        return docs, counts
    docs = []
    for start, end in corpus.split_ranges(len(data), split):
        docs += [d for _, d in corpus.read_documents(io.BytesIO(data), start, end,
                                                     counts=counts, **kw)]
    return docs, counts


def test_reference_layout():
    data = b"a1\na2\n\nb1\n\n\n  \nc1\nc2\nc3\n"
    docs, counts = read_all(data)
    assert docs == [["a1", "a2"], ["b1"], ["c1", "c2", "c3"]]
    assert counts[corpus.LINES_WHITESPACE_ONLY] == 1


@pytest.mark.parametrize("split", [1, 2, 3, 5, 7, 16, 100, 4096])
def test_any_split_reads_each_document_exactly_once(split, sample_lines):
    data = ("\n".join(sample_lines[:300]) + "\n").encode()
    whole, _ = read_all(data)
    parts, _ = read_all(data, split)
    assert parts == whole
    assert len(whole) > 3


def test_a_split_anywhere_in_crlf_separators_reads_the_same():
    data = b"x1\r\nx2\r\n \t \r\n\r\ny1\r\n\r\n\r\nz1\r\nz2"
    whole, _ = read_all(data)
    assert whole == [["x1", "x2"], ["y1"], ["z1", "z2"]]
    for split in range(1, len(data) + 1):
        assert read_all(data, split)[0] == whole, split


def test_invalid_utf8_is_counted_as_repaired():
    data = b"good\nbad \xff\xfe line\n\nnext\n"
    docs, counts = read_all(data)
    assert docs == [["good", "bad \ufffd\ufffd line"], ["next"]]
    assert counts[corpus.LINES_INVALID_UTF8] == 1


def test_huge_line_without_newline_is_counted_as_skipped():
    data = b"first\nsecond\n\n" + b"x" * (10 << 20)
    docs, counts = read_all(data, max_line_bytes=1 << 20)
    assert docs == [["first", "second"]]
    assert counts[corpus.LINES_TOO_LONG] == 1


def test_a_byte_order_mark_is_removed():
    assert read_all("\ufeffone\ntwo\n".encode())[0] == [["one", "two"]]


def test_long_documents_are_counted_as_cut():
    docs, counts = read_all(b"one\ntwo\nthree\nfour\nfive\n", max_document_lines=2)
    assert docs == [["one", "two"], ["three", "four"], ["five"]]
    assert counts[corpus.DOCUMENTS_SPLIT] == 2


def test_empty_input():
    assert read_all(b"")[0] == []
    assert read_all(b"\n\n  \n")[0] == []
    assert corpus.split_ranges(0, 10) == [(0, 0)]


def test_unicode_whitespace_lines_separate_documents_at_any_split():
    # U+3000 (ideographic space) and U+00A0 (no-break space) lines are blank lines.
    data = "가나\n다라\n\u3000\n마바\n \u00a0\u3000 \n사아\n자차\n".encode()
    whole, counts = read_all(data)
    assert whole == [["가나", "다라"], ["마바"], ["사아", "자차"]]
    assert counts[corpus.LINES_WHITESPACE_ONLY] == 2
    for split in range(1, len(data) + 1):
        assert read_all(data, split)[0] == whole, split


def test_lines_with_nul_bytes_are_counted_as_dropped():
    data = b"one\nt\x00w\x00o\nthree\n\nfour\n"
    docs, counts = read_all(data)
    assert docs == [["one", "three"], ["four"]]
    assert counts[corpus.LINES_WITH_NUL] == 1


@pytest.mark.parametrize("head,reason", [
    pytest.param("안녕\n".encode("utf-16"), "UTF-16 byte-order mark", id="utf16-bom"),
    pytest.param("안녕\n".encode("utf-16-be"), "NUL", id="utf16-no-bom"),
    pytest.param(b"\x00" * 100, "NUL", id="nul"),
    pytest.param("안녕하세요\n".encode(), None, id="utf8"),
    pytest.param("\ufeff안녕\n".encode(), None, id="utf8-bom"),  # a UTF-8 BOM is fine
    pytest.param(bytes(range(256)) * 64, "not valid UTF-8", id="binary"),
    # mtime=0: the same bytes in every process (pytest-xdist compares what each collects).
    pytest.param(gzip.compress("안녕하세요\n".encode() * 100, mtime=0), "gzip-compressed",
                 id="gzip"),
    pytest.param(("안녕\x07\x1b" * 100).encode(), "control characters", id="controls"),
    # A character cut in two at the end of the head is not counted as invalid.
    pytest.param(("안녕하세요 " * 100).encode()[:-1], None, id="cut-character"),
])
def test_files_that_are_not_utf8_text_are_recognised(head, reason):
    got = corpus.looks_like_text(head)
    assert (got is None) if reason is None else (reason in got)


def test_document_at_reads_the_document_read_documents_found_there(sample_lines):
    data = ("\ufeff" + "\n".join(sample_lines[:300]) + "\n").encode()
    found = list(corpus.read_documents(io.BytesIO(data)))
    assert len(found) > 3
    for offset, lines in found:
        assert corpus.document_at(io.BytesIO(data), offset) == lines
        assert corpus.document_at(io.BytesIO(data), offset, max_lines=2) == lines[:2]


# Every kind of line the reader repairs or drops, so some blocks take the line-by-line path.
_AWKWARD = [b"\n", b"\n\n", b"abc", "\uac00\ub098".encode(), b" ", "\u3000".encode(),
            b"\r\n", b"\x00", b"\xff\xfe", "\ud55c".encode()[:2], b"x" * 30, b"\t \n"]


@pytest.mark.parametrize("block_bytes", [1, 3, 64])
def test_the_read_block_size_changes_nothing_read(block_bytes, monkeypatch):
    import random

    rng = random.Random(block_bytes)
    for _ in range(300):
        data = b"\xef\xbb\xbf" + b"".join(rng.choice(_AWKWARD) for _ in range(40))
        kw = {"max_line_bytes": rng.choice([10, 40]), "max_document_lines": 3}
        split = rng.choice([None, 5, 17])
        whole_blocks = read_all(data, split, **kw)
        offsets = [o for o, _ in corpus.read_documents(io.BytesIO(data), **kw)]
        with monkeypatch.context() as m:
            m.setattr(corpus, "_BLOCK", block_bytes)
            m.setattr(corpus, "_DOCUMENT_BLOCK", block_bytes)
            assert read_all(data, split, **kw) == whole_blocks
            assert [o for o, _ in corpus.read_documents(io.BytesIO(data), **kw)] == offsets
            at = [corpus.document_at(io.BytesIO(data), o, max_line_bytes=kw["max_line_bytes"])
                  for o in offsets]
        assert at == [corpus.document_at(io.BytesIO(data), o, max_line_bytes=kw["max_line_bytes"])
                      for o in offsets]
