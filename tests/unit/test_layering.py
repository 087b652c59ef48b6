"""The import rule of docs/architecture.md, over every import in the source (in functions
too): the data side never loads TensorFlow, and no package imports one above it."""

import ast
import os
import pathlib

import pytest

from tests.conftest import REPO

TENSORFLOW = {"tensorflow", "keras", "tensorflow_text", "tf_keras", "keras_hub"}
PROJECT = {"bertcommon", "bertdata", "beam_jobs", "bertmodel", "bertpipe", "benchmarks", "tests"}


def imported_modules(path: str) -> set[str]:
    """Every module a file imports, anywhere in it, by its full dotted name."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def source_files(folder: str, *, skip: str | None = None) -> list[str]:
    """The .py files under FOLDER, less those under SKIP (a folder or a file)."""
    out = []
    for root, _, files in os.walk(os.path.join(REPO, folder)):
        out += [os.path.join(root, f) for f in files if f.endswith(".py")]
    if skip:
        out = [p for p in out if not os.path.relpath(p, REPO).startswith(skip)]
    return sorted(out)


def offenders(files, forbidden_roots) -> dict[str, list[str]]:
    found = {}
    for path in files:
        bad = sorted(m for m in imported_modules(path) if m.split(".")[0] in forbidden_roots)
        if bad:
            found[os.path.relpath(path, REPO)] = bad
    return found


def test_the_rule_sees_an_import_inside_a_function(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("def f():\n    from tensorflow import io\n    import bertmodel.train\n")
    assert imported_modules(str(path)) == {"tensorflow", "tensorflow.io", "bertmodel.train"}


# bertcommon.logs imports TensorFlow only when a command asks it to, quietly.
@pytest.mark.parametrize("folder, skip", [("bertdata", "bertdata/tfdata"), ("beam_jobs", None),
                                          ("bertcommon", "bertcommon/logs.py")])
def test_the_data_side_never_imports_tensorflow(folder, skip):
    assert offenders(source_files(folder, skip=skip), TENSORFLOW) == {}


@pytest.mark.parametrize("folder, above", [
    ("bertcommon", PROJECT - {"bertcommon"}),
    ("bertdata", {"beam_jobs", "bertmodel", "bertpipe", "benchmarks", "tests"}),
    ("beam_jobs", {"bertmodel", "bertpipe", "benchmarks", "tests"}),
    ("bertmodel", {"beam_jobs", "bertpipe", "benchmarks", "tests"}),
    ("bertpipe", {"benchmarks", "tests"}),
    ("benchmarks", {"tests"}),
])
def test_no_package_imports_one_above_it(folder, above):
    assert offenders(source_files(folder), above) == {}


def test_benchmarks_declare_flags_only_through_bertcommon_cli():
    # argparse is bertcommon.cli's business; a benchmark that builds its own parser has
    # flags without checks or one-line errors.
    assert offenders(source_files("benchmarks"), {"argparse"}) == {}


def test_no_module_changes_the_import_path():
    # Benchmarks run as `python -m benchmarks.NAME` from the checkout; sys.path edits would
    # let a module import what a user's installation does not have.
    changed = [os.path.relpath(path, REPO) for folder in PROJECT - {"tests"}
               for path in source_files(folder)
               if "sys.path.insert" in pathlib.Path(path).read_text(encoding="utf-8")]
    assert changed == []


def deferred_project_imports(path: str) -> list[str]:
    """'function: module' for each project module a function of PATH imports."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    found = []
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(function):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            found += [f"{function.name}: {n}" for n in names if n.split(".")[0] in PROJECT]
    return found


def test_the_rule_for_deferred_imports_sees_a_nested_one(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("def f(x):\n    if x:\n        from bertdata import schema\n")
    assert deferred_project_imports(str(path)) == ["f: bertdata"]


def test_project_modules_are_imported_at_the_top():
    # An import inside a function hides a dependency from the module's reader and from
    # this file's rules until the function runs. The one deliberate exception:
    # bertdata's PEP 562 hook, which keeps `import bertdata` free of TensorFlow.
    deferred = {os.path.relpath(path, REPO): found for folder in PROJECT - {"tests"}
                for path in source_files(folder) if (found := deferred_project_imports(path))}
    assert deferred == {"bertdata/__init__.py": ["__getattr__: bertdata.tfdata"]}
