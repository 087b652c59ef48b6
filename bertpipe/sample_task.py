"""A labelled task from the bundled sample corpus, to try fine-tuning on: which source a line
comes from, the Constitution or one of the seven bills (8 labels).

Usage:
    python -m bertpipe.sample_task --output_dir=runs/sample_task
    python -m bertmodel.finetune --model_dir=runs/sample/model \
        --train=runs/sample_task/train.tsv --eval=runs/sample_task/dev.tsv \
        --output_dir=runs/sample_classifier

The split is by position, not at random: of each source's lines that are longer than 10
characters and that no other source holds, each kept once, the first 60% are for training
(at most --per_class of them) and the rest for evaluation (at most --eval_per_class), so
that always answering one label scores little (0.15 with the defaults, 16 of 104 lines).
(The two civil-service bills amend two laws in the same words, so few of their lines are
theirs alone.) The pretrained encoder
has seen the evaluation lines as unlabelled text, as a user's encoder would have seen
their domain.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import sys

from bertcommon import cli
from bertcommon.errors import BertpipeError
from bertdata.corpus import documents_from_lines

SAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data",
                      "ko_sample.txt")
# The sample's layout (data/README.md): the Constitution's preamble and its ten chapters,
# then one document per bill.
CONSTITUTION_DOCUMENTS = 11
SOURCES = 8
MIN_CHARACTERS = 10


class SampleTaskError(ValueError):
    """The corpus does not have the bundled sample's layout."""


def source_task(corpus: str = SAMPLE, per_class: int = 15,
                eval_per_class: int = 16) -> tuple[list[str], list[str]]:
    """(train, eval) lines of `label<TAB>text`; labels are the sources' first words."""
    with open(corpus, encoding="utf-8") as f:
        docs = list(documents_from_lines(f.read().splitlines()))
    if len(docs) != CONSTITUTION_DOCUMENTS + SOURCES - 1:
        raise SampleTaskError(f"--corpus {corpus}: expected the bundled sample's "
                              f"{CONSTITUTION_DOCUMENTS + SOURCES - 1} documents, found "
                              f"{len(docs)}")
    sources = {"헌법": [line for doc in docs[:CONSTITUTION_DOCUMENTS] for line in doc]}
    sources.update({doc[0].split()[0]: doc for doc in docs[CONSTITUTION_DOCUMENTS:]})
    # A line is kept once, where it first occurs in its source (a bill restates articles),
    # and not at all when several sources hold it (the bills share sponsors and dates):
    # no evaluation line is also a training line, and no line has two labels.
    distinct = {label: list(dict.fromkeys(lines)) for label, lines in sources.items()}
    holders = collections.Counter(x for lines in distinct.values() for x in lines)
    train, dev = [], []
    for label, lines in distinct.items():
        lines = [x for x in lines if len(x) > MIN_CHARACTERS and holders[x] == 1]
        cut = int(len(lines) * 0.6)
        train += [f"{label}\t{x}" for x in lines[:cut][:per_class]]
        dev += [f"{label}\t{x}" for x in lines[cut:][:eval_per_class]]
    return train, dev


def write_source_task(output_dir: str, corpus: str = SAMPLE, per_class: int = 15,
                      eval_per_class: int = 16) -> tuple[str, str]:
    """Writes OUTPUT_DIR/train.tsv and dev.tsv; returns their paths."""
    train, dev = source_task(corpus, per_class, eval_per_class)
    os.makedirs(output_dir, exist_ok=True)
    paths = []
    for name, lines in (("train.tsv", train), ("dev.tsv", dev)):
        paths.append(os.path.join(output_dir, name))
        with open(paths[-1], "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    return paths[0], paths[1]


@dataclasses.dataclass(frozen=True)
class SampleTaskSettings(cli.Settings):
    output_dir: str = cli.flag(help="where train.tsv and eval.tsv go")
    corpus: str = cli.flag(SAMPLE, help="the bundled sample")
    per_class: int = cli.flag(15, check=cli.positive, help="training lines per label")
    eval_per_class: int = cli.flag(16, check=cli.positive)


def _command(settings: SampleTaskSettings) -> None:
    if os.path.exists(settings.output_dir) and not os.path.isdir(settings.output_dir):
        raise BertpipeError(f"--output_dir {settings.output_dir} is a file, not a directory")
    try:
        paths = write_source_task(settings.output_dir, settings.corpus, settings.per_class,
                                  settings.eval_per_class)
    except OSError as e:
        raise BertpipeError(f"{e.filename}: {e.strerror}") from None
    except SampleTaskError as e:
        raise BertpipeError(str(e)) from None
    print("\n".join(paths))


def main(argv=None) -> int:
    return cli.run_command(SampleTaskSettings, _command, argv,
                           description=__doc__.split("\n\n")[0])


if __name__ == "__main__":
    sys.exit(main())
