"""bertmodel.gpu_check's flags: what it cannot run is refused before anything starts."""

from __future__ import annotations

from bertmodel import gpu_check


def test_an_unknown_preset_is_one_line_naming_the_flag(capsys):
    code = gpu_check.main(["--cpu", "--configs=tiny,huge"])
    err = capsys.readouterr().err
    assert (code, err.count("\n")) == (2, 1)
    assert "--configs: huge" in err


def test_an_xla_setting_other_than_true_or_false_is_refused(capsys):
    code = gpu_check.main(["--cpu", "--xla=yes"])
    assert code == 2 and "--xla: yes" in capsys.readouterr().err
