"""The README's main command at a tiny size, the fill-mask and inspect CLIs, and resuming a
killed training run."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO, SAMPLE


def test_main_pipeline_tiny(tmp_path):
    from bertmodel import end_to_end

    work = tmp_path / "work"
    code = end_to_end.main([f"--corpus={SAMPLE}", f"--workdir={work}", "--vocab_size=600",
                            "--dupe_factor=2", "--config=tiny", "--epochs=2",
                            "--batch_size=16", "--workers=1", "--max_seq_length=64"])
    assert code == 0
    summary = json.loads((work / "summary.json").read_text())
    for key in ("model", "encoder", "plots", "tokenizer"):
        assert os.path.exists(summary[key]), key
    assert os.listdir(summary["tensorboard_logs"])
    assert 0.0 <= summary["mlm_accuracy"] <= 1.0 and summary["eval_examples"] > 0
    assert 0.0 < summary["mlm_accuracy_most_frequent_piece_baseline"] < 0.5
    meta = json.loads((work / "data" / "metadata.json").read_text())
    assert meta["max_seq_length"] == 64 and meta["vocab_size"] == 607

    # fill-mask on the model just trained: k pieces for each [MASK].
    from bertmodel import fill_mask

    model, tok = fill_mask.load(str(work / "model"))
    results = fill_mask.fill_mask(model, tok, "대한민국은 [MASK] 공화국이다. [MASK]", top_k=4)
    assert len(results) == 2 and all(len(r) == 4 for r in results)
    assert all(not p.startswith("[") for r in results for p, _ in r)
    assert all(abs(sum(p for _, p in r)) <= 1.0 for r in results)
    with pytest.raises(ValueError, match="no \\[MASK\\]"):
        fill_mask.fill_mask(model, tok, "마스크 없음")

    # inspect prints the right counts.
    out = subprocess.run([sys.executable, "-m", "bertdata.inspect", str(work / "data"),
                          "--num_examples=2"], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    stats = json.loads((work / "data" / "stats.json").read_text())
    assert f"total: {stats['examples']} records" in out.stdout
    assert f"examples={stats['examples']}" in out.stdout
    assert out.stdout.count("\nexample ") == 2 and "[MASK]:" in out.stdout


def test_killed_training_resumes_where_it_stopped(tmp_path, sample_dataset):
    data, _ = sample_dataset
    model_dir = tmp_path / "model"
    cmd = [sys.executable, "-m", "bertmodel.train", f"--tfrecords={data}",
           f"--model_dir={model_dir}", "--config=tiny", "--batch_size=8", "--epochs=40",
           "--steps_per_epoch=5", "--verbose=0", "--mixed_precision=fp32"]
    history = model_dir / "history.csv"
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            if history.exists() and len(history.read_text().splitlines()) >= 4:
                break  # three epochs done (and backed up)
            if proc.poll() is not None:
                pytest.fail(f"training exited early: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.2)
        else:
            pytest.fail("no epoch finished in time")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done = [int(r["epoch"]) for r in csv.DictReader(history.open())]
    assert not (model_dir / "model.keras").exists()
    resumed = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    epochs = [int(r["epoch"]) for r in csv.DictReader(history.open())]
    after = epochs[len(done):]
    # The rerun starts at the first epoch the killed run had not backed up, and ends at 40.
    assert after[0] <= max(done) + 1 and after[0] >= max(done) - 1 and after[0] > 0
    assert after[-1] == 39
    assert (model_dir / "model.keras").exists()


def _free_ports(n):
    import socket

    socks = [socket.socket() for _ in range(n)]
    for sock in socks:
        sock.bind(("localhost", 0))
    ports = [sock.getsockname()[1] for sock in socks]
    for sock in socks:
        sock.close()
    return ports


def test_two_workers_train_together_on_loopback(tmp_path, sample_dataset):
    data, _ = sample_dataset
    cluster = {"worker": [f"localhost:{p}" for p in _free_ports(2)]}
    procs = []
    for index in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster,
                                                       "task": {"type": "worker",
                                                                "index": index}})}
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "bertmodel.train", f"--tfrecords={data}",
             f"--model_dir={tmp_path / 'model'}", "--config=tiny", "--batch_size=8",
             "--epochs=2", "--steps_per_epoch=4", "--verbose=2", "--mixed_precision=fp32",
             "--strategy=multi_worker"], cwd=REPO, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True))
    logs = []
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        logs.append(out)
        assert proc.returncode == 0, out[-3000:]
    for out in logs:
        assert "2 replica(s)" in out
    # One model, written by the chief; the workers' epoch losses agree (one global batch).
    model_dir = tmp_path / "model"
    assert (model_dir / "model.keras").exists()
    assert not [p for p in os.listdir(model_dir) if p.startswith(".worker-")]
    losses = [[line.split("- loss: ")[1].split(" ")[0] for line in out.splitlines()
               if "- loss: " in line] for out in logs]
    assert len(losses[0]) == 2 and losses[0] == losses[1]
