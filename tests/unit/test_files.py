"""bertcommon.files: whole outputs and one run per folder, with real processes."""

import os

import pytest

from bertcommon.files import atomic_path, remove_leftovers


def test_an_atomic_path_replaces_the_old_folder_only_when_complete(tmp_path):
    final = tmp_path / "out"
    final.mkdir()
    (final / "old").write_text("old")
    with pytest.raises(RuntimeError), atomic_path(str(final)) as tmp:
        os.makedirs(tmp)
        (tmp_path / os.path.basename(tmp) / "new").write_text("new")
        raise RuntimeError("killed half way")
    assert os.listdir(final) == ["old"] and os.listdir(tmp_path) == ["out"]
    with atomic_path(str(final)) as tmp:
        os.makedirs(tmp)
        (tmp_path / os.path.basename(tmp) / "new").write_text("new")
    assert os.listdir(final) == ["new"] and os.listdir(tmp_path) == ["out"]


def test_remove_leftovers_takes_only_what_a_killed_atomic_path_left(tmp_path):
    (tmp_path / ".tmp-1a2b3c4d-encoder.keras").write_bytes(b"half")
    (tmp_path / ".old-export-5e6f7a8b").mkdir()
    (tmp_path / "encoder.keras").write_bytes(b"whole")
    (tmp_path / ".lock").write_text("{}")
    remove_leftovers(str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "encoder.keras"]
