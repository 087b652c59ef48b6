"""bertpipe.sample_task: the 8-label task made from the bundled sample."""

import pathlib

from bertpipe import sample_task


def test_the_sample_task_splits_each_source_by_position(tmp_path, sample_lines):
    train, dev = sample_task.write_source_task(str(tmp_path), per_class=40)
    rows = {name: [line.split("\t") for line in
                   pathlib.Path(path).read_text(encoding="utf-8").splitlines()]
            for name, path in (("train", train), ("dev", dev))}
    labels = sorted({label for label, _ in rows["train"]})
    assert len(labels) == 8 and sorted({label for label, _ in rows["dev"]}) == labels
    index = {}  # where each line first occurs
    for i, line in enumerate(sample_lines):
        index.setdefault(line.strip(), i)
    for label in labels:
        train_at = [index[text] for lab, text in rows["train"] if lab == label]
        dev_at = [index[text] for lab, text in rows["dev"] if lab == label]
        assert 0 < len(train_at) <= 40 and 0 < len(dev_at) <= 16
        assert max(train_at) < min(dev_at)  # evaluation lines come after training lines
    assert not {text for _, text in rows["train"]} & {text for _, text in rows["dev"]}


def test_an_output_dir_that_is_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "a_file").write_text("x")
    assert sample_task.main([f"--output_dir={tmp_path / 'a_file'}"]) == 2
    assert capsys.readouterr().err == (
        f"error: --output_dir {tmp_path / 'a_file'} is a file, not a directory\n")


def test_the_sample_task_refuses_another_corpus(tmp_path, capsys):
    other = tmp_path / "other.txt"
    other.write_text("한 문장.\n\n두 문장.\n", encoding="utf-8")
    assert sample_task.main([f"--output_dir={tmp_path}", f"--corpus={other}"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: --corpus {other}: expected the bundled sample's 18 documents, found 2")
    missing = tmp_path / "missing.txt"
    assert sample_task.main([f"--output_dir={tmp_path}", f"--corpus={missing}"]) == 2
    assert capsys.readouterr().err.strip() == f"error: {missing}: No such file or directory"
