"""The one way a bertpipe command is declared and run.

A command's settings are a frozen dataclass deriving from `Settings`; each field is a flag,
declared once with `flag` (default, help, choices, check):

    @dataclasses.dataclass(frozen=True)
    class ExportSettings(cli.Settings):
        model_dir: str = cli.flag(help="a bertmodel.train output directory")
        overwrite: bool = cli.flag(False, help="replace a non-empty --output_dir")

The field's type gives the flag's: int, float, str, bool (--name / --no-name), an Enum (its
values), `X | None` (default None), `tuple[T, ...]` (comma-separated Ts). A field whose type is
itself a Settings dataclass contributes its flags. A field without a default is a required
flag. The same checks run whether the settings come from the command line or from code: a
bad value is a `SettingsError` (a ValueError) naming the flag.

`run_command` parses the flags, configures the package's logging (`--verbosity`), builds the
settings, runs the command's body and turns the library's `BertpipeError` (its exit code) or a
`SettingsError` (exit code 2) into one line on stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import re
import sys
import types
import typing
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from bertcommon import logs
from bertcommon.errors import BertpipeError


class SettingsError(ValueError):
    """A setting that cannot work, named by its flag."""


@dataclasses.dataclass(frozen=True)
class Check:
    """A rule for one value: `ok(value)`, and how the message says what it must be."""

    ok: Callable[[Any], bool]
    wording: str


positive = Check(lambda v: v > 0, "positive")
non_negative = Check(lambda v: v >= 0, ">= 0")


def at_least(low) -> Check:
    return Check(lambda v: v >= low, f"at least {low}")


def between(low, high, *, high_included: bool = False) -> Check:
    """low <= value < high (or <= high)."""
    if high_included:
        return Check(lambda v: low <= v <= high, f"in [{low}, {high}]")
    return Check(lambda v: low <= v < high, f"in [{low}, {high})")


_MISSING = dataclasses.MISSING


def flag(default=_MISSING, *, help: str = "", choices: Sequence | None = None,
         check: Check | None = None, name: str | None = None, positional: bool = False,
         default_factory=_MISSING):
    """A settings field that is also a command-line flag (see the module's docstring).
    `name` spells the flag when it differs from the field; None values are never checked."""
    metadata = {"help": help, "choices": tuple(choices) if choices else None, "check": check,
                "flag": name, "positional": positional}
    return dataclasses.field(default=default, default_factory=default_factory,
                             metadata=metadata)


def flag_name(field: dataclasses.Field) -> str:
    return field.metadata.get("flag") or field.name


class Settings:
    """Base of every command's settings: checks each flag's value, then `problems()`."""

    def __post_init__(self):
        problems = [*_field_problems(self), *self.problems()]
        if problems:
            raise SettingsError("; ".join(problems))

    def problems(self) -> Iterable[str]:
        """Checks between settings (each field's own checks are declared with `flag`)."""
        return ()


def _field_problems(settings: Settings) -> list[str]:
    problems = []
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        if value is None or not field.metadata:
            continue
        choices, check = field.metadata.get("choices"), field.metadata.get("check")
        if choices and value not in choices:
            problems.append(f"--{flag_name(field)} must be one of {', '.join(map(str, choices))}"
                            f", got {value!r}")
        elif check is not None and not check.ok(value):
            problems.append(f"--{flag_name(field)} must be {check.wording}, got {value!r}")
    return problems


def _types(settings_type: type) -> dict[str, Any]:
    return typing.get_type_hints(settings_type)


def _value_type(annotation):
    """(type, optional) of an annotation: `int | None` -> (int, True)."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0], True
    return annotation, False


def _is_settings(annotation) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, Settings) \
        and dataclasses.is_dataclass(annotation)


def _comma_list(value_type) -> Callable[[str], tuple]:
    """The parser of a `tuple[T, ...]` flag: comma-separated values, each a T."""
    element = typing.get_args(value_type)[0] if typing.get_args(value_type) else str

    def parse(text: str) -> tuple:
        return tuple(element(part) for part in text.split(",") if part)

    parse.__name__ = f"comma-separated {element.__name__}"  # argparse names it in errors
    return parse


def _add_flag(parser: argparse.ArgumentParser, field: dataclasses.Field, annotation,
              default) -> None:
    value_type, _ = _value_type(annotation)
    meta = field.metadata
    required = default is _MISSING
    default = None if required else default
    kwargs: dict[str, Any] = {"help": meta.get("help") or None}
    if value_type is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    elif isinstance(value_type, type) and issubclass(value_type, enum.Enum):
        kwargs["choices"] = [m.value for m in value_type]
        kwargs["type"] = str
        default = default.value if isinstance(default, enum.Enum) else default
    elif typing.get_origin(value_type) is tuple:
        kwargs["type"] = _comma_list(value_type)
        kwargs["metavar"] = "A,B,..."
        default = ",".join(str(v) for v in default) if default else default
    else:
        kwargs["type"] = value_type
        if meta.get("choices"):
            kwargs["choices"] = meta["choices"]
    if meta.get("positional"):
        parser.add_argument(field.name, **kwargs)
        return
    kwargs["dest"] = field.name
    if required:
        kwargs["required"] = True
    else:
        kwargs["default"] = default
    parser.add_argument(f"--{flag_name(field)}", **kwargs)


def _own_default(field: dataclasses.Field):
    if field.default is not _MISSING:
        return field.default
    return field.default_factory() if field.default_factory is not _MISSING else _MISSING


def _fields(settings_type: type, defaults: Settings | None = None):
    """(field, annotation, default) of every flag, nested Settings flattened. A nested
    field's default instance gives its flags' defaults (an outer command may change some)."""
    hints = _types(settings_type)
    for field in dataclasses.fields(settings_type):
        default = getattr(defaults, field.name) if defaults is not None else _own_default(field)
        if _is_settings(hints[field.name]):
            yield from _fields(hints[field.name], None if default is _MISSING else default)
        else:
            yield field, hints[field.name], default


class _OneLineErrors(argparse.ArgumentParser):
    """argparse's parser, whose errors (an unknown choice, a missing flag, a word where a
    number goes) are one line, as every other error of a command, not a usage block."""

    def error(self, message):
        for word in message.removeprefix("unrecognized arguments: ").split():
            name = word.split("=")[0]
            if re.fullmatch(r"-\w\w+", name) and f"-{name}" in self._option_string_actions:
                message = f"{name}: a flag takes two dashes: -{word}"
                break
        self.exit(2, f"error: {message} (--help lists the flags)\n")


def make_parser(settings_type: type, description: str) -> argparse.ArgumentParser:
    """The command's parser: one flag per field, and --verbosity."""
    parser = _OneLineErrors(description=description,
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for field, annotation, default in _fields(settings_type):
        _add_flag(parser, field, annotation, default)
    parser.add_argument("--verbosity", choices=logs.VERBOSITIES, default="info",
                        help="info: this package's progress and summary; debug: also the "
                             "libraries' logs (Beam, TensorFlow, Keras, Beam's workers); "
                             "warning: problems only")
    return parser


def settings_from_args(settings_type: type, args: argparse.Namespace):
    """The validated settings; raises SettingsError naming the flags at fault."""
    hints = _types(settings_type)
    values = {}
    for field in dataclasses.fields(settings_type):
        annotation = hints[field.name]
        if _is_settings(annotation):
            values[field.name] = settings_from_args(annotation, args)
            continue
        value = getattr(args, field.name)
        value_type, _ = _value_type(annotation)
        if value is not None and isinstance(value_type, type) and issubclass(value_type,
                                                                              enum.Enum):
            value = value_type(value)
        values[field.name] = value
    return settings_type(**values)


def run_command(settings_type: type, body: Callable, argv: Sequence[str] | None = None, *,
                description: str, tensorflow: bool = False,
                pass_unknown_flags: bool = False) -> int:
    """Parses ARGV into SETTINGS_TYPE and runs `body(settings)` (with `pass_unknown_flags`,
    `body(settings, unknown_flags)`). Returns body's exit status (None: 0), or 2 after one
    line on stderr for bad settings or a BertpipeError."""
    parser = make_parser(settings_type, description)
    try:
        if pass_unknown_flags:
            args, unknown = parser.parse_known_args(argv)
        else:
            args, unknown = parser.parse_args(argv), []
    except SystemExit as e:  # --help (0), or the parser's one-line error (2)
        return e.code if isinstance(e.code, int) else 2
    logs.configure(args.verbosity)
    if tensorflow:
        logs.import_tensorflow_quietly(args.verbosity)
    try:
        settings = settings_from_args(settings_type, args)
        status = body(settings, unknown) if pass_unknown_flags else body(settings)
    except SettingsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BertpipeError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    return status or 0
