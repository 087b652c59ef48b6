"""The docs a newcomer reads first: every relative link resolves, and every command line in
the README names a real module and flags its settings class accepts."""

import importlib
import os
import re
import shlex

import pytest

from bertcommon import cli
from tests.conftest import REPO

DOCS = ["README.md", *(os.path.join("docs", f) for f in sorted(os.listdir(os.path.join(REPO,
                                                                                      "docs"))))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")

# Each command the README may name, and the settings class that declares its flags.
COMMANDS = {
    "bertpipe.end_to_end": ("bertpipe.end_to_end", "EndToEndSettings"),
    "bertpipe.sample_task": ("bertpipe.sample_task", "SampleTaskSettings"),
    "bertdata.tokenizer": ("bertdata.tokenizer", "TokenizerSettings"),
    "bertdata.tfdata.inspect_dataset": ("bertdata.tfdata.inspect_dataset", "InspectSettings"),
    "beam_jobs.create_pretraining_data": ("beam_jobs.settings", "JobSettings"),
    "bertmodel.train": ("bertmodel.training.settings", "TrainSettings"),
    "bertmodel.finetune": ("bertmodel.tasks.classifier", "FinetuneSettings"),
    "bertmodel.fill_mask": ("bertmodel.fill_mask", "FillMaskSettings"),
    "bertmodel.export_hf": ("bertmodel.export_hf", "ExportSettings"),
    "bertmodel.score_encoders": ("bertmodel.score_encoders", "ScoreSettings"),
}


def _read(name):
    with open(os.path.join(REPO, name), encoding="utf-8") as f:
        return f.read()


def heading_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces
    as hyphens."""
    anchors = set()
    for title in re.findall(r"^#+ (.+)$", markdown, flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


def relative_links(name):
    return [t for t in LINK.findall(_read(name)) if not re.match(r"[a-z]+:", t)]


def _resolves(name, target) -> bool:
    path, _, anchor = target.partition("#")
    file = os.path.normpath(os.path.join(REPO, os.path.dirname(name), path)) if path \
        else os.path.join(REPO, name)
    if not os.path.exists(file):
        return False
    if not anchor or not file.endswith(".md"):
        return True
    return anchor in heading_anchors(_read(os.path.relpath(file, REPO)))


@pytest.mark.parametrize("name", DOCS)
def test_every_relative_link_resolves(name):
    broken = [target for target in relative_links(name) if not _resolves(name, target)]
    assert not broken, f"{name}: {broken}"


def test_the_link_check_sees_a_broken_anchor():
    assert "results-on-nsmc-korean-movie-review-sentiment" in heading_anchors(
        "# Results on NSMC (Korean movie-review sentiment)\n")
    assert "the-data-job-against-google-researchbert" in heading_anchors(
        "## The data job against google-research/bert\n")


def readme_commands() -> list[list[str]]:
    """Each `python -m MODULE ...` in the README's code blocks, as argv from MODULE on."""
    commands = []
    for block in re.findall(r"```\n(.*?)```", _read("README.md"), flags=re.S):
        text = block.replace("\\\n", " ")
        for line in text.splitlines():
            for part in line.split("&&"):
                words = shlex.split(part, comments=True)
                if words[:2] == ["python", "-m"]:
                    commands.append(words[2:])
    return commands


def test_the_readme_names_commands():
    modules = {argv[0] for argv in readme_commands()}
    assert {"bertpipe.end_to_end", "pytest", "bertmodel.fill_mask"} <= modules


@pytest.mark.parametrize("argv", [c for c in readme_commands() if c[0] != "pytest"],
                         ids=lambda argv: argv[0])
def test_a_readme_command_parses_with_its_settings(argv):
    assert argv[0] in COMMANDS, f"the README names {argv[0]}, which is not a known command"
    importlib.import_module(argv[0])
    module, name = COMMANDS[argv[0]]
    settings_type = getattr(importlib.import_module(module), name)
    args = cli.make_parser(settings_type, "").parse_args(argv[1:])
    settings = cli.settings_from_args(settings_type, args)
    given = {a.split("=")[0].lstrip("-") for a in argv[1:] if a.startswith("--")}
    assert given <= {f.name for f in _all_fields(settings)} | {"verbosity"}


def _all_fields(settings):
    for field in settings.__dataclass_fields__.values():
        value = getattr(settings, field.name)
        if isinstance(value, cli.Settings):
            yield from _all_fields(value)
        else:
            yield field


def test_every_test_the_guarantees_name_exists():
    text = _read(os.path.join("docs", "guarantees.md"))
    named = re.findall(r"`(tests/[\w/]+\.py)(?:::(\w+))?`", text)
    assert len(named) >= 10
    for path, function in named:
        source = _read(path)
        assert not function or f"def {function}(" in source, f"{path}::{function}"
