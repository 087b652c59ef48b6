"""What test_training.py's unit and integration tests share."""

import shutil
import signal
import subprocess
import time

import pytest

from tests.conftest import REPO

TINY = ["--config=tiny", "--batch_size=8", "--verbose=0", "--mixed_precision=fp32",
        "--jit_compile=false"]


def cut_shard(tmp_path, data):
    """A copy of the dataset whose first train shard lost its second half (mid-record)."""
    cut = tmp_path / "cut"
    shutil.copytree(data, cut)
    shard = sorted(cut.glob("train-*"))[0]
    shard.write_bytes(shard.read_bytes()[:shard.stat().st_size // 2])
    return cut, shard


def saved_step(model_dir) -> int:
    """The step of the last checkpoint a run in MODEL_DIR saved (0 before any)."""
    index = model_dir / "checkpoints" / "last" / "checkpoint"
    text = index.read_text() if index.exists() else ""
    return int(text.split("ckpt-")[1].split('"')[0]) if "ckpt-" in text else 0


def run_until(cmd, condition, seconds=180) -> None:
    """Runs the training command CMD until CONDITION() holds, then kills it (SIGKILL: no
    chance to save anything more)."""
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + seconds
        while time.time() < deadline and not condition():
            if proc.poll() is not None:
                pytest.fail(f"training exited early: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.1)
        assert condition(), "no checkpoint in time"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
