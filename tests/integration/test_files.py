"""bertcommon.files: whole outputs and one run per folder, with real processes."""

import os
import signal
import subprocess
import sys

import pytest

from bertcommon.files import LOCK_FILE, FolderInUse, run_lock

HOLD = """
import sys, time
from bertcommon.files import run_lock
with run_lock(sys.argv[1], "--model_dir"):
    print("held", flush=True)
    time.sleep(120)
"""


@pytest.fixture
def holder(tmp_path):
    """Another process holding tmp_path/folder's lock; killed (SIGKILL) afterwards."""
    folder = tmp_path / "folder"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "held"
    yield folder, proc
    proc.kill()
    proc.wait()


@pytest.mark.slow
def test_a_second_run_on_a_held_folder_is_refused_naming_the_first(holder):
    folder, proc = holder
    message = f"in use by another run \\(process {proc.pid} "
    with pytest.raises(FolderInUse, match=message), run_lock(str(folder), "--model_dir"):
        pass


@pytest.mark.slow
def test_a_killed_runs_lock_is_taken_over(holder):
    folder, proc = holder
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (folder / LOCK_FILE).exists()  # the killed run could not remove it
    with run_lock(str(folder), "--model_dir"):
        assert (folder / LOCK_FILE).read_text().startswith(f'{{"pid": {os.getpid()}')
    assert not (folder / LOCK_FILE).exists()


@pytest.mark.slow
def test_train_refuses_a_model_dir_in_use(holder, sample_dataset, capsys):
    from bertmodel import train

    folder, proc = holder
    data, _ = sample_dataset
    code = train.main([f"--tfrecords={data}", f"--model_dir={folder}", "--config=tiny",
                       "--verbosity=warning"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and f"process {proc.pid}" in err and len(err.splitlines()) == 1, err
    assert not (folder / "config.json").exists()


@pytest.mark.slow
def test_the_data_job_refuses_an_output_dir_in_use(holder, sample_corpus, spm_model, capsys):
    from beam_jobs import create_pretraining_data as job

    folder, proc = holder
    code = job.main([f"--input={sample_corpus}", f"--output_dir={folder}",
                     f"--spm_model={spm_model}", "--runner=FnApiRunner"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and f"process {proc.pid}" in err and len(err.splitlines()) == 1, err
    assert sorted(os.listdir(folder)) == [LOCK_FILE]
