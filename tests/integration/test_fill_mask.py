"""bertmodel.fill_mask's command: bad input is one line."""

import shutil

from bertmodel import fill_mask


def test_a_bad_top_k_is_one_line_before_any_model_is_read(tmp_path, capsys):
    code = fill_mask.main([f"--model_dir={tmp_path}", "--text=[MASK]", "--top_k=-1"])
    assert code == 2
    assert capsys.readouterr().err == "error: --top_k must be at least 1, got -1\n"


def test_a_damaged_model_is_one_line_naming_the_file(pipeline_run, tmp_path, capsys):
    work, _ = pipeline_run
    damaged = tmp_path / "model"
    shutil.copytree(work / "model", damaged, ignore=shutil.ignore_patterns("export", "logs"))
    data = (damaged / "model.keras").read_bytes()
    (damaged / "model.keras").write_bytes(data[:len(data) // 2])
    assert fill_mask.main([f"--model_dir={damaged}", "--text=[MASK]"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {damaged / 'model.keras'}: not a Keras model file")


def test_a_line_that_is_not_utf8_fails_alone_and_the_others_are_answered(pipeline_run,
                                                                         monkeypatch, capsys):
    import io
    import sys

    work, _ = pipeline_run
    lines = b"\xff\xfe\x80 [MASK] \xc3\n" + bytes(range(128, 256)) + \
        "\n대한민국은 [MASK] 공화국이다.\n".encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(lines)))
    code = fill_mask.main([f"--model_dir={work / 'model'}", "--top_k=2"])
    out, err = capsys.readouterr()
    assert code == 2 and err.count("error: not UTF-8 text") == 2
    assert "대한민국은 [MASK] 공화국이다.\n  [MASK] 1:" in out
