"""The trainer and the export on a real full filesystem (a small tmpfs): one line naming the
flag, exit 2, and nothing that looks finished (the data job's case is in test_beam_job.py).
Mounting needs root (CI runs the suite as root); elsewhere these tests skip and say why."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bertmodel import train
from tests.conftest import REPO
from tests.training_helpers import TINY


@pytest.fixture
def small_filesystem(tmp_path):
    """A factory: small_filesystem("400k") mounts a tmpfs of that size under tmp_path."""
    mounted = []

    def mount(size: str):
        point = tmp_path / f"fs-{size}"
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                               str(point)], capture_output=True, text=True)
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or 'not root'})")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", str(point)], check=False)


def command(module: str, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *flags, "--verbosity=warning"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)


def one_line(done: subprocess.CompletedProcess) -> str:
    err = done.stderr.strip()
    assert done.returncode == 2 and len(err.splitlines()) == 1, (done.returncode, err[-2000:])
    return err


@pytest.mark.parametrize("size", ["400k", "1100k"])
def test_training_onto_a_full_disk_is_one_line_and_no_finished_run(small_filesystem,
                                                                  sample_dataset, size):
    # 400k: the best weights (HDF5, which takes the process down on a failed write) do not
    # fit; 1100k: they do, and TensorFlow's step checkpoint does not.
    data, _ = sample_dataset
    model_dir = small_filesystem(size) / "m"
    err = one_line(command("bertmodel.train", f"--tfrecords={data}", f"--model_dir={model_dir}",
                           *TINY, "--train_steps=4", "--checkpoint_every_steps=2"))
    assert err.startswith(f"error: --model_dir {model_dir}: cannot write (No space left on")
    assert not {"model.keras", "outputs.json"} & set(os.listdir(model_dir))


def test_an_export_onto_a_full_disk_is_one_line_and_leaves_nothing(small_filesystem, tmp_path,
                                                                   sample_dataset):
    data, _ = sample_dataset
    train.train_from_flags([f"--tfrecords={data}", f"--model_dir={tmp_path / 'm'}", *TINY,
                            "--train_steps=2"])
    disk = small_filesystem("150k")
    err = one_line(command("bertmodel.export_hf", f"--model_dir={tmp_path / 'm'}",
                           f"--output_dir={disk / 'hf'}"))
    assert err == f"error: --output_dir {disk / 'hf'}: cannot write (No space left on device)"
    assert os.listdir(disk) == []

