"""bertcommon.cli: a settings dataclass declares its flags once; parsing, checks and errors."""

from __future__ import annotations

import dataclasses
import enum

import pytest

from bertcommon import cli
from bertcommon.errors import BertpipeError


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclasses.dataclass(frozen=True)
class Inner(cli.Settings):
    rate: float = cli.flag(0.5, check=cli.between(0.0, 1.0), help="a share")


@dataclasses.dataclass(frozen=True)
class Example(cli.Settings):
    inputs: tuple[str, ...] = cli.flag(name="input", help="files")
    count: int = cli.flag(3, check=cli.positive)
    limit: int | None = cli.flag(None, check=cli.non_negative)
    mode: str = cli.flag("a", choices=("a", "b"))
    color: Color = cli.flag(Color.RED)
    fast: bool = cli.flag(False)
    inner: Inner = Inner()

    def problems(self):
        if self.fast and self.count > 10:
            yield "--fast allows at most 10 --count"


def parse(argv):
    return cli.settings_from_args(Example, cli.make_parser(Example, "test").parse_args(argv))


def test_flags_take_the_field_types():
    s = parse(["--input=a.txt,b.txt", "--count=7", "--limit=0", "--mode=b", "--color=blue",
               "--fast", "--rate=0.25"])
    assert s == Example(inputs=("a.txt", "b.txt"), count=7, limit=0, mode="b",
                        color=Color.BLUE, fast=True, inner=Inner(rate=0.25))


def test_defaults_are_the_fields_defaults():
    assert parse(["--input=x"]) == Example(inputs=("x",))


def test_a_boolean_flag_can_be_turned_off():
    @dataclasses.dataclass(frozen=True)
    class On(cli.Settings):
        save: bool = cli.flag(True)

    args = cli.make_parser(On, "test").parse_args(["--no-save"])
    assert cli.settings_from_args(On, args).save is False


def test_a_field_without_default_is_a_required_flag(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.make_parser(Example, "test").parse_args([])
    assert exit_info.value.code == 2 and "--input" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--input=x", "--mode=c"], "argument --mode: invalid choice: 'c'"),
    (["--input=x", "--count=many"], "argument --count: invalid int value: 'many'"),
    ([], "the following arguments are required: --input"),
])
def test_a_flag_the_parser_refuses_is_one_line(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        cli.make_parser(Example, "test").parse_args(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith(f"error: {message}")
    assert err.count("\n") == 1


@pytest.mark.parametrize("argv, message", [
    (["--count=0"], "--count must be positive, got 0"),
    (["--limit=-1"], "--limit must be >= 0, got -1"),
    (["--rate=1.5"], "--rate must be in [0.0, 1.0), got 1.5"),
    (["--fast", "--count=11"], "--fast allows at most 10 --count"),
])
def test_a_bad_value_is_named_by_its_flag(argv, message):
    with pytest.raises(cli.SettingsError) as error:
        parse(["--input=x", *argv])
    assert str(error.value) == message


def test_checks_also_guard_settings_made_in_code():
    with pytest.raises(cli.SettingsError, match="--mode must be one of a, b, got 'c'"):
        Example(inputs=("x",), mode="c")


def test_every_problem_is_reported_at_once():
    with pytest.raises(cli.SettingsError) as error:
        Example(inputs=("x",), count=0, limit=-2)
    assert str(error.value) == "--count must be positive, got 0; --limit must be >= 0, got -2"


def test_run_command_reports_a_bad_setting_in_one_line_with_exit_2(capsys):
    ran = []
    code = cli.run_command(Example, ran.append, ["--input=x", "--count=0"], description="t")
    err = capsys.readouterr().err
    assert code == 2 and err == "error: --count must be positive, got 0\n" and ran == []


def test_run_command_reports_a_command_error_with_its_exit_code(capsys):
    def fails(settings):
        raise BertpipeError(f"{settings.inputs[0]}: damaged", exit_code=1)

    code = cli.run_command(Example, fails, ["--input=x"], description="t")
    assert code == 1 and capsys.readouterr().err == "error: x: damaged\n"


def test_run_command_passes_unknown_flags_when_asked():
    seen = []
    code = cli.run_command(Example, lambda s, rest: seen.append((s.count, rest)),
                           ["--input=x", "--count=4", "--runner=Other"], description="t",
                           pass_unknown_flags=True)
    assert code == 0 and seen == [(4, ["--runner=Other"])]


def test_run_command_returns_the_bodys_status():
    assert cli.run_command(Example, lambda s: 3, ["--input=x"], description="t") == 3


@dataclasses.dataclass(frozen=True)
class Outer(cli.Settings):
    inner: Inner = Inner(rate=0.25)


def test_a_nested_fields_default_instance_gives_its_flags_defaults():
    settings = cli.settings_from_args(Outer, cli.make_parser(Outer, "test").parse_args([]))
    assert settings.inner.rate == 0.25


def test_a_nested_flag_given_replaces_the_outer_default():
    parser = cli.make_parser(Outer, "test")
    assert cli.settings_from_args(Outer, parser.parse_args(["--rate=0.75"])).inner.rate == 0.75


@dataclasses.dataclass(frozen=True)
class Rates(cli.Settings):
    rates: tuple[float, ...] = cli.flag((1e-3, 2e-3))


def test_a_tuple_flag_parses_each_element_with_its_type():
    args = cli.make_parser(Rates, "test").parse_args(["--rates=5e-4,4e-3"])
    assert cli.settings_from_args(Rates, args).rates == (5e-4, 4e-3)


def test_a_tuple_flags_default_is_its_fields_default():
    args = cli.make_parser(Rates, "test").parse_args([])
    assert cli.settings_from_args(Rates, args).rates == (1e-3, 2e-3)


def test_a_tuple_flag_with_a_bad_element_is_one_line_naming_the_flag(capsys):
    code = cli.run_command(Rates, lambda s: 0, ["--rates=1e-3,fast"], description="t")
    err = capsys.readouterr().err
    assert (code, err.count("\n")) == (2, 1)
    assert "--rates" in err and "float value: '1e-3,fast'" in err


def test_a_flag_given_with_one_dash_is_told_it_needs_two(capsys):
    code = cli.run_command(Example, lambda s: 0, ["--input=x", "-count=4"], description="t")
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: -count: a flag takes two dashes: --count=4")
