"""Labelled text in TSV files: `label<TAB>text` or `label<TAB>text_a<TAB>text_b`, UTF-8.

A first row whose first column is `label` is a header and skipped; a byte-order mark is
ignored; blank lines are skipped and counted; every line of a file has the same number of
columns. Anything else is a FinetuneError naming the file and line.
"""

from __future__ import annotations

import dataclasses

from bertmodel.tasks import FinetuneError


@dataclasses.dataclass
class Examples:
    texts: list[str]
    texts_b: list[str] | None
    labels: list[str]
    lines: list[int]  # each example's line number, for messages
    skipped_blank: int = 0
    header: str | None = None  # a first row starting with "label", skipped

    def __len__(self) -> int:
        return len(self.labels)


def read_tsv(path: str, flag: str) -> Examples:
    """Examples of a TSV file; a malformed line is a FinetuneError naming file and line."""
    try:
        # utf-8-sig: a byte-order mark is not part of the first label.
        with open(path, encoding="utf-8-sig") as f:
            rows = f.read().split("\n")
    except (OSError, UnicodeDecodeError) as e:
        raise FinetuneError(f"{flag} {path}: cannot read ({e})") from None
    out = Examples([], None, [], [])
    columns = None
    for number, row in enumerate(rows, 1):
        if number == 1 and row.split("\t")[0].strip().lower() == "label":
            out.header = row  # a header row names its columns; it is not an example
            continue
        if not row.strip():
            out.skipped_blank += number < len(rows)  # the newline after the last line
            continue
        fields = row.rstrip("\r").split("\t")
        columns = columns or len(fields)
        if len(fields) not in (2, 3) or len(fields) != columns:
            want = columns if columns in (2, 3) else "2 or 3"
            raise FinetuneError(f"{path}:{number}: expected {want} tab-separated columns "
                                f"(label, text[, text_b]), got {len(fields)}")
        if not all(x.strip() for x in fields):
            raise FinetuneError(f"{path}:{number}: an empty label or text")
        out.labels.append(fields[0].strip())
        out.texts.append(fields[1])
        if columns == 3:
            out.texts_b = out.texts_b if out.texts_b is not None else []
            out.texts_b.append(fields[2])
        out.lines.append(number)
    if not out.labels:
        raise FinetuneError(f"{flag} {path}: no examples (an empty file?)")
    return out


def label_list(train: Examples, evaluation: Examples, train_path: str, eval_path: str):
    labels = sorted(set(train.labels))
    if len(labels) < 2:
        raise FinetuneError(f"{train_path}: only one label ({labels[0]!r}); a classifier "
                            "needs at least two")
    known = set(labels)
    for label, line in zip(evaluation.labels, evaluation.lines, strict=True):
        if label not in known:
            raise FinetuneError(f"{eval_path}:{line}: label {label!r} does not occur in "
                                f"{train_path}")
    if (train.texts_b is None) != (evaluation.texts_b is None):
        raise FinetuneError(f"{train_path} and {eval_path} differ: one holds sentence pairs, "
                            "the other single sentences")
    return labels
