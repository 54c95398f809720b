"""A dataclass field declared once as an option: its help, its bounds, and the ``serve`` flag it becomes.

:func:`option` puts an :class:`Option` in a field's metadata. :func:`check_options` holds an
instance to every bound (the emulator's settings, a reply's overrides and a fault's parameters
share the checks here), and :func:`add_flags` turns the fields into command-line flags, so the
constructor's keywords, the flags and the script keys are one list.
"""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable, Collection
from dataclasses import Field, dataclass, field, fields
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, get_args, get_type_hints

from websockets.frames import EXTERNAL_CLOSE_CODES

OPTION = "option"
# The close code that aborts the transport without a close frame, as a network failure does.
ABORT = 1006

P = ParamSpec("P")
Self_ = TypeVar("Self_")

# A bound: the problem with a value (read after the option's name), or None when it is within.
Check = Callable[[Any], str | None]


@dataclass(frozen=True)
class Option:
    help: str
    choices: Collection[str] = ()
    check: Check | None = None
    # The flag, when it is not the field's name with dashes.
    flag: str | None = None
    metavar: str | None = None
    # What "(default: ...)" says on the command line, when the default itself would say nothing useful.
    default_text: str | None = None
    # The flag's argparse type, when the command line words it apart from the check.
    parse: Callable[[str], Any] | None = None
    # Never shown: the repr says <redacted>.
    secret: bool = False


def option(default: Any, help: str, **declared: Any) -> Any:
    """A field with ``default`` and its :class:`Option` (typed ``Any`` so it stands for any field type)."""
    return field(default=default, metadata={OPTION: Option(help, **declared)})


def options_of(cls: type[Any]) -> list[tuple[Field[Any], Option]]:
    return [(f, f.metadata[OPTION]) for f in fields(cls) if OPTION in f.metadata]


def choices_of(cls: type[Any], name: str) -> list[str]:
    """The values option ``name`` of ``cls`` may take, sorted (for a flag of another command that sets it)."""
    return sorted(next(declared.choices for f, declared in options_of(cls) if f.name == name))


# -- bounds ---------------------------------------------------------------------------------------


def positive(value: float) -> str | None:
    return None if value > 0 else f"must be positive, not {value!r}"


def not_negative(value: float) -> str | None:
    return None if value >= 0 else f"must not be negative, not {value!r}"  # also refuses nan


def fraction(value: float) -> str | None:
    return None if 0 <= value <= 1 else f"must be within [0, 1], not {value!r}"


def port_number(value: int) -> str | None:
    return None if 0 <= value <= 65535 else f"must be 0 to 65535 (0 picks a free one), not {value!r}"


def close_code(value: int) -> str | None:
    if value == ABORT or value in EXTERNAL_CLOSE_CODES or 3000 <= value < 5000:
        return None
    return f"must be 1006 (abort) or a close code a server sends (1000-1003, 1007-1014, 3000-4999), not {value!r}"


def positive_int_or_none(value: int) -> str | None:
    """A whole number of 1 or more (``True`` is not one, though Python counts it an ``int``)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return f"must be None or a positive int, not {value!r}"
    return None


def check_options(instance: Any) -> None:
    """Raise ``ValueError`` (one line, naming the option) for the first value out of its bounds.

    ``None`` is within the bounds of an option whose default is ``None`` (its "not set").
    """
    for f, declared in options_of(type(instance)):
        value = getattr(instance, f.name)
        if value is None and f.default is None:
            continue
        if declared.choices and value not in declared.choices:
            raise ValueError(f"{f.name} must be one of {sorted(declared.choices)}, not {value!r}")
        problem = declared.check(value) if declared.check is not None else None
        if problem is not None:
            raise ValueError(f"{f.name} {problem}")


def redacted_repr(instance: Any) -> str:
    """``Cls(name=value, ...)`` with every secret option shown as ``<redacted>`` when set."""
    parts = []
    for f in fields(instance):
        value = getattr(instance, f.name)
        secret = OPTION in f.metadata and f.metadata[OPTION].secret
        parts.append(f"{f.name}={'<redacted>' if secret and value is not None else repr(value)}")
    return f"{type(instance).__name__}({', '.join(parts)})"


# -- the constructor's keywords --------------------------------------------------------------------


class keywords_of(Generic[P]):
    """Give an ``__init__(self, *args, **options)`` the signature of ``source`` for type checkers and ``help()``."""

    def __init__(self, source: Callable[P, object]) -> None:
        self._signature = inspect.signature(source)

    def __call__(self, init: Callable[Concatenate[Self_, ...], None]) -> Callable[Concatenate[Self_, P], None]:
        self_parameter = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
        init.__signature__ = self._signature.replace(  # type: ignore[attr-defined]
            parameters=[self_parameter, *self._signature.parameters.values()], return_annotation=None
        )
        return init


def unknown_names(cls: type[Any], given: Collection[str], what: str) -> None:
    """Raise ``TypeError`` (one line, naming the valid ones) for the first name that is no field of ``cls``."""
    names = [f.name for f in fields(cls) if f.init]
    for name in given:
        if name not in names:
            raise TypeError(f"unknown {what} {name!r}; expected one of {', '.join(names)}")


# -- command-line flags ---------------------------------------------------------------------------


def flag_of(f: Field[Any], declared: Option) -> str:
    return declared.flag or "--" + f.name.replace("_", "-")


def add_flags(parser: argparse.ArgumentParser, cls: type[Any], defaults: dict[str, Any] | None = None) -> None:
    """One flag per option of ``cls``, its value checked as it is read; ``defaults`` replace the fields' own."""
    hints = get_type_hints(cls)
    for f, declared in options_of(cls):
        default = (defaults or {}).get(f.name, f.default)
        shown = declared.default_text or ("%(default)s" if default is not None else None)
        described: dict[str, Any] = {"choices": sorted(declared.choices)} if declared.choices else {}
        if not declared.choices:
            described["type"] = declared.parse or _flag_type(hints[f.name], declared.check)
        parser.add_argument(
            flag_of(f, declared),
            dest=f.name,
            default=default,
            metavar=declared.metavar,
            help=declared.help + (f" (default: {shown})" if shown else ""),
            **described,
        )


def _flag_type(hint: Any, check: Check | None) -> Callable[[str], Any]:
    kind = next((t for t in (int, float, str) if t is hint or t in get_args(hint)), str)
    what = {int: "a whole number", float: "a number"}.get(kind)

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        problem = check(value) if check is not None else None
        if problem is not None:
            raise argparse.ArgumentTypeError(problem)
        return value

    return parse
