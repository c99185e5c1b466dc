"""Each option declared once: a config dataclass's field carries its command-line flag, help,
type and choices (`option`), and `add_options` makes the argparse options from the fields.

    @dataclass
    class TextData:
        bptt: int = option(128, "time steps per batch", type=positive_int, metavar="N")

    add_options(parser.add_argument_group("data"), TextData)   # --bptt N ... (default: 128)
    given(args, TextData)                                       # {"bptt": 64} when --bptt 64

An option left out on the command line is None in the namespace (argparse default=None), so
`given` hands on only what the user gave: the dataclass, or a resumed run's checkpoint, fills
in the rest. The help ends with "(default: X)", X the field's default unless `shown` says
otherwise; a task whose default differs from the dataclass's passes it once, in `defaults`.

Also here: the argparse types that reject a bad value as one error line (positive_int, ...).
"""

from __future__ import annotations

import argparse
import contextlib
import contextvars
import re
from dataclasses import MISSING, Field, dataclass, field, fields, replace
from typing import Any

KEY = "rnnkit.option"  # the key of a field's metadata that holds its Option
_command_line = contextvars.ContextVar("rnnkit_command_line", default=False)


def spelled(python: str, flag: str) -> str:
    """An option as a message names it: `flag` ("--fill") while the command line runs
    (`command_line`), else the Python argument ("fill=True")."""
    return flag if _command_line.get() else python


def encoding_example() -> str:
    """The example a message on undecodable text gives of passing an encoding."""
    return spelled("encoding='latin-1' (--encoding latin-1)", "--encoding latin-1")


@contextlib.contextmanager
def command_line():
    """While open, messages name options by their flags (`spelled`)."""
    token = _command_line.set(True)
    try:
        yield
    finally:
        _command_line.reset(token)


@dataclass(frozen=True)
class Option:
    """What argparse needs to know of one field, besides its name and default."""

    help: str
    flag: str | None = None  # default: --name-with-dashes
    type: Any = None
    metavar: str | None = None
    choices: tuple | None = None
    action: Any = None  # "store_true" for a switch; argparse.BooleanOptionalAction: --x/--no-x
    required: bool = False
    shown: str | None = None  # the "(default: ...)" text; None: the field's default


def option(default: Any = None, help: str = "", *, factory=None, **how) -> Field:
    """A dataclass field that is also a command-line option (see Option for `how`)."""
    meta = {KEY: Option(help, **how)}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def option_fields(cls) -> list[Field]:
    """The fields of the dataclass `cls` that are command-line options, in declaration order."""
    return [f for f in fields(cls) if KEY in f.metadata]


def add_options(
    group, cls, *, defaults: dict | None = None, shown: dict | None = None, skip: tuple = ()
) -> None:
    """Add an option to `group` (a parser or argument group) for each option field of `cls`
    but those in `skip`. `defaults` overrides a field's default (the task passes the same
    values to its config); `shown`, the text of a "(default: ...)"."""
    defaults, shown = defaults or {}, shown or {}
    for f in option_fields(cls):
        if f.name in skip:
            continue
        how: Option = f.metadata[KEY]
        if f.name in shown:
            how = replace(how, shown=shown[f.name])
        value = defaults.get(f.name, _field_default(f))
        kwargs = {"dest": f.name, "help": _help(how, value)}
        if how.action is not None:
            kwargs.update(action=how.action, default=None)
        else:
            kwargs.update(type=how.type, metavar=how.metavar, choices=how.choices)
        if how.required:
            kwargs["required"] = True
        group.add_argument(how.flag or "--" + f.name.replace("_", "-"), **kwargs)


def given(args: argparse.Namespace, *classes) -> dict:
    """{name: value} of the option fields of `classes` the command line gave (not None)."""
    names = [f.name for cls in classes for f in option_fields(cls)]
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def resolved(args: argparse.Namespace, cls) -> dict:
    """{name: value} of every option field of `cls`: the command line's, else the default."""
    return {f.name: _field_default(f) for f in option_fields(cls)} | given(args, cls)


def _field_default(f: Field):
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return None


def _help(how: Option, default) -> str:
    shown = how.shown
    switch = how.action is not None and how.action is not argparse.BooleanOptionalAction
    if shown is None and default is not None and not switch and not how.required:
        shown = ",".join(map(str, default)) if isinstance(default, (list, tuple)) else default
    if shown is None or shown == "":
        return how.help
    return f"{how.help} (default: {shown})" if how.help else f"(default: {shown})"


def _number(kind, text: str, ok, what: str):
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not ok(value):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    return _number(int, text, lambda v: v >= 1, "a positive integer")


def nonnegative_int(text: str) -> int:
    return _number(int, text, lambda v: v >= 0, "an integer >= 0")


def positive_float(text: str) -> float:
    return _number(float, text, lambda v: 0 < v < float("inf"), "a positive number")


def nonnegative_float(text: str) -> float:
    return _number(float, text, lambda v: 0 <= v < float("inf"), "a number >= 0")


def fraction(text: str) -> float:
    return _number(float, text, lambda v: 0 <= v < 1, "a number in [0, 1)")


def probability(text: str) -> float:
    return _number(float, text, lambda v: 0 < v <= 1, "a number in (0, 1]")


UNITS = {"s": 1, "m": 60, "h": 3600}


def duration(text: str) -> float:
    """Seconds from '90', '90s', '30m', '1.5h' or '1h30m'."""
    spec = text.strip().lower()
    parts = re.findall(r"(\d+(?:\.\d+)?)([smh])", spec)
    if re.fullmatch(r"\d+(?:\.\d+)?", spec):
        seconds = float(spec)
    elif parts and re.fullmatch(r"(?:\d+(?:\.\d+)?[smh])+", spec):
        seconds = sum(float(n) * UNITS[unit] for n, unit in parts)
    else:
        seconds = 0.0
    if not seconds > 0:
        raise argparse.ArgumentTypeError(
            f"expected a positive duration such as 90s, 30m, 2h or 1h30m, got {text!r}"
        )
    return seconds
