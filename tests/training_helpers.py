"""What test_training.py's unit and integration tests share."""

import shutil

TINY = ["--config=tiny", "--batch_size=8", "--verbose=0", "--mixed_precision=fp32",
        "--jit_compile=false"]


def cut_shard(tmp_path, data):
    """A copy of the dataset whose first train shard lost its second half (mid-record)."""
    cut = tmp_path / "cut"
    shutil.copytree(data, cut)
    shard = sorted(cut.glob("train-*"))[0]
    shard.write_bytes(shard.read_bytes()[:shard.stat().st_size // 2])
    return cut, shard
