"""Running tests/hf_consumer.py: transformers, in a fresh process without this package,
computing on an export what the request asks."""

import json
import os
import subprocess
import sys

import numpy as np

from tests.conftest import REPO


def run_consumer(request: dict, folder) -> dict:
    """What hf_consumer computes for REQUEST, run in FOLDER (a pathlib.Path)."""
    (folder / "request.json").write_text(json.dumps(request, ensure_ascii=False))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, os.path.join(REPO, "tests", "hf_consumer.py"),
                           str(folder / "request.json"), str(folder / "result.json")],
                          cwd=str(folder), env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return read_result(folder / "result.json")


def read_result(path):
    """What hf_consumer.save wrote: the JSON with its arrays put back at their key paths."""
    result = json.loads(path.read_text())
    with np.load(f"{path}.npz") as arrays:
        for key in arrays.files:
            *parents, leaf = key.split("/")
            node = result
            for parent in parents:
                node = node[parent]
            node[leaf] = arrays[key]
    return result
