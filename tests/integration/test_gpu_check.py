"""bertmodel.gpu_check on a CPU: two logical devices stand in for GPUs, so the check cannot rot
between the rare runs on GPU machines."""

from __future__ import annotations

import pytest

from bertdata.synthetic import write_synthetic_dataset
from bertmodel import gpu_check
from bertmodel.training import gpu_check as parts


def _table_rows(out: str) -> list[list[str]]:
    return [line.split(" | ") for line in out.splitlines() if line.startswith("| tiny |")]


@pytest.mark.slow
def test_gpu_check_measures_every_strategy_on_a_cpu(monkeypatch, capsys):
    # All combinations in this process, on the two logical CPU devices conftest made. Its
    # 1-vs-2-replica comparison is bertmodel.training.replica_check, which the unit tier
    # runs on a harder batch.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # restored after; the command sets it
    code = gpu_check.main(["--cpu", "--configs=tiny", "--steps=4", "--precisions=fp32",
                           "--xla=false", "--vocab_size=1007", "--same_process",
                           "--skip_replica_check"])
    out, err = capsys.readouterr()
    assert code == 0, err[-3000:]
    rows = _table_rows(out)
    assert [(r[1], r[2]) for r in rows] == [("default", "1"), ("mirrored", "2")]
    for r in rows:  # seq/s and tokens/s measured: full-length records, 128 tokens each
        seq, tokens = float(r[6].replace(",", "")), float(r[7].replace(",", ""))
        assert seq > 0 and tokens == pytest.approx(128 * seq, rel=0.01)


@pytest.mark.slow
def test_a_combination_run_in_its_own_process_reports_its_speed(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    data = tmp_path / "data"
    data.mkdir()
    write_synthetic_dataset(str(data), 512, vocab_size=1007)
    job = parts.Job(parts.Row("tiny", "default", 1, "fp32", False, 16), str(data),
                    str(tmp_path), steps=4, vocab_size=1007)
    row = parts.run_in_child(job)
    assert row.note == "" and row.seq_per_s > 0
    assert row.tokens_per_s == pytest.approx(128 * row.seq_per_s, rel=0.01)
