"""Every file a person or another tool may have written, fuzzed: the only outcomes allowed
are a correct value or the project's own one-line error. One reader per file kind; no other
module parses JSON."""

from __future__ import annotations

import ast
import json
import os
import pathlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bertcommon.errors import BertpipeError
from bertcommon.files import BadFile, _lock_holder, read_json
from bertdata import schema
from bertmodel.export.hf_import import read_hf_config
from bertmodel.export.hf_weights import HFFormatError, config_from_hf, hf_config
from bertmodel.model.config import PRESETS, BertConfig, load_config
from bertmodel.tasks.tsv import read_tsv
from tests.conftest import REPO
from tests.example_helpers import metadata

FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70)
                    | st.floats(allow_nan=False) | st.text(max_size=12),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)


def one_line(error: Exception) -> str:
    message = str(error)
    assert message and "\n" not in message
    return message


REFUSED = object()


def read_or_refused(read, errors, prefix: str):
    """READ()'s value, or REFUSED where it raised one of ERRORS with one line that starts
    with PREFIX (the file or flag it names): what every fuzzed reader must do."""
    try:
        return read()
    except errors as e:
        assert one_line(e).startswith(prefix)
        return REFUSED


def mutated(valid: dict):
    """VALID with some keys given any JSON value, some removed and some added."""
    keys = sorted(valid)
    return st.tuples(st.dictionaries(st.sampled_from(keys), JSON, max_size=3),
                     st.lists(st.sampled_from(keys), max_size=2, unique=True),
                     st.dictionaries(st.text(max_size=8), JSON, max_size=2)).map(
        lambda t: {**{k: v for k, v in valid.items() if k not in t[1]}, **t[2], **t[0]})


@FUZZ
@given(raw=st.binary(max_size=200) | JSON.map(lambda v: json.dumps(v).encode()))
def test_read_json_gives_a_value_or_names_the_file(tmp_path, raw):
    path = tmp_path / "f.json"
    path.write_bytes(raw)
    value = read_or_refused(lambda: read_json(str(path), expect=None), BadFile, str(path))
    if value is REFUSED:
        return
    assert value == json.loads(raw.decode("utf-8"))


@FUZZ
@given(data=mutated(BertConfig().to_dict()))
def test_a_config_file_is_a_bert_config_or_one_line(tmp_path, data):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    config = read_or_refused(lambda: load_config(str(path)), ValueError, f"--config {path}")
    if config is REFUSED:
        return
    assert config.to_dict() == {**BertConfig().to_dict(), **data}


@FUZZ
@given(data=mutated(hf_config(PRESETS["tiny"], "BertForPreTraining")))
def test_a_hugging_face_config_is_a_bert_config_or_names_the_field(data):
    config = read_or_refused(lambda: config_from_hf(data, "config.json"), HFFormatError,
                             "config.json: ")
    if config is REFUSED:
        return
    assert (config.hidden_size, config.num_layers) == (data["hidden_size"],
                                                        data["num_hidden_layers"])
    assert 0 <= config.dropout_rate < 1 and config.layer_norm_epsilon > 0


@FUZZ
@given(data=mutated({**hf_config(PRESETS["tiny"], "BertForSequenceClassification",
                                 ["neg", "pos"]), "bertpipe_tokenizer_sha256": "0" * 64}))
def test_a_classifiers_config_file_reads_or_names_the_field(tmp_path, data):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    hf = read_or_refused(lambda: read_hf_config(str(path)), HFFormatError, str(path))
    if hf is REFUSED:
        return
    assert hf.architecture in ("BertForSequenceClassification", "BertForPreTraining",
                               "BertForMaskedLM", "BertModel")
    if hf.labels is not None:
        assert [data["id2label"][str(i)] for i in range(len(hf.labels))] == hf.labels


@FUZZ
@given(data=mutated(metadata(splits={"train": {"train-00000-of-00001.tfrecord": 3}})
                    .to_json()))
def test_dataset_metadata_is_read_whole_or_refused_in_one_line(data):
    meta = read_or_refused(lambda: schema.DatasetMetadata.from_json(data, "metadata.json"),
                           ValueError, "metadata.json: ")
    if meta is REFUSED:
        return
    assert meta.max_seq_length == data["max_seq_length"]


@FUZZ
@given(raw=st.binary(max_size=80) | JSON.map(lambda v: json.dumps(v).encode()))
def test_a_lock_file_is_a_live_holder_or_none(tmp_path, raw):
    path = tmp_path / ".lock"
    path.write_bytes(raw)
    os.utime(path, (0, 0))  # old: a lock nobody is writing
    holder = _lock_holder(str(path))
    assert holder is None or (isinstance(holder, dict) and "pid" in holder)


@FUZZ
@given(raw=st.binary(max_size=120) | st.text(max_size=120).map(str.encode))
def test_a_tsv_is_examples_or_one_line_naming_it(tmp_path, raw):
    path = tmp_path / "t.tsv"
    path.write_bytes(raw)
    try:
        examples = read_tsv(str(path), "--train")
    except BertpipeError as e:
        assert str(path) in one_line(e)
        return
    assert len(examples.labels) == len(examples.texts) > 0


@FUZZ
@given(value=JSON)
def test_an_outputs_manifest_vouches_only_for_whole_outputs(tmp_path, value):
    from bertmodel.training.run import OUTPUTS_MANIFEST, _current_outputs

    (tmp_path / OUTPUTS_MANIFEST).write_text(json.dumps(value))
    assert _current_outputs(str(tmp_path), 7) == set()  # no output exists to vouch for


# The readers: each file kind is parsed in one place, through bertcommon.files.read_json
# (whose parse_json also serves readers that hold a file's bytes already). Besides it, JSON
# is parsed only where this project reads what it wrote itself in the same breath: a
# checkpoint's state variable and gpu_check's child-process protocol.
JSON_PARSERS = {("bertcommon/files.py", "parse_json"),
                ("bertmodel/training/checkpoints.py", "restore"),
                ("bertmodel/training/gpu_check.py", "run_in_child"),
                ("bertmodel/training/gpu_check.py", "_child")}


def json_parsing_functions(path: str) -> set[tuple[str, str]]:
    tree = ast.parse(pathlib.Path(path).read_text(encoding="utf-8"))
    found = set()
    for func in ast.walk(tree):
        if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(func):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                        and node.func.attr in ("load", "loads") \
                        and isinstance(node.func.value, ast.Name) and node.func.value.id == "json":
                    found.add((os.path.relpath(path, REPO), func.name))
    return found


def test_the_rule_sees_json_parsed_in_a_function(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("import json\ndef settings(f):\n    return json.load(f)\n")
    assert {name for _, name in json_parsing_functions(str(path))} == {"settings"}


def test_json_is_parsed_only_by_the_readers():
    found = set()
    for package in ("bertcommon", "bertdata", "beam_jobs", "bertmodel", "bertpipe"):
        for root, _, files in os.walk(os.path.join(REPO, package)):
            for name in files:
                if name.endswith(".py"):
                    found |= json_parsing_functions(os.path.join(root, name))
    assert found <= JSON_PARSERS, found - JSON_PARSERS

