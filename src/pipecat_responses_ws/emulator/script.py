"""What tests tell the emulator to do: scripted replies and injected faults.

Both are consumed first in, first out by *generated* responses only; a ``generate: false``
warm-up takes neither, so scripting a conversation does not depend on whether the client warms up.

:func:`load_script` reads the same replies and faults from a JSON file (``serve --script FILE``),
so a client in any language can script a conversation::

    {
      "replies": [
        {"text": "Hello! How can I help?"},
        {"calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]},
        {"text": "It is sunny in Paris.", "fault": {"kind": "stall", "seconds": 0.5, "after_events": 4}}
      ],
      "faults": [{"kind": "fail", "code": "server_error", "count": 2}]
    }

Each entry of ``replies`` is a :class:`Reply`, of ``calls`` a :class:`ToolCall`, of ``faults``
(and each ``fault``) a :class:`Fault`: the same field names, JSON's types for theirs, and the
same checks. ``faults`` are queued as :meth:`Emulator.add_fault` does; both keys may be left out.
"""

from __future__ import annotations

import json
import types
from collections import deque
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

from .faults import FAULTS
from .options import check_options, close_code, not_negative, option, options_of, positive, positive_int_or_none

# Every kind of fault, with what it does: the table of :mod:`.faults`.
FAULT_KINDS = frozenset(FAULTS)


@dataclass
class ToolCall:
    """A function call the scripted response makes.

    A ``dict`` of arguments is sent as JSON; a ``str`` is sent verbatim, so a test can send
    arguments that do not parse.
    """

    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)


@dataclass
class Fault:
    """A misbehaviour injected into a generated response: a ``kind`` of :data:`.faults.FAULTS`.

    The table says what each kind does, when it fires (``after_events`` counts the events of the
    response already sent, ``0`` = before ``response.created``), which of the parameters below it
    reads, and what it does over HTTP. A parameter its kind does not read (but ``after_events``) is
    refused, as a misspelt one is.

    ``count`` is how many generated responses the fault applies to when added with
    ``Emulator.add_fault``. An HTTP request's response takes the next reply and fault like any other.
    """

    kind: str
    seconds: float = option(0.0, "how long the fault waits or stalls (inf = forever)", check=not_negative)
    after_events: int = option(0, "events of the response sent before the fault fires", check=not_negative)
    code: str | None = option(None, "the error code, or the reason of an incomplete response")
    close_code: int = option(1011, "the close code of a drop; 1006 aborts the transport", check=close_code)
    count: int = option(1, "how many generated responses the fault applies to")
    text: str = option("stray ", "the delta of a stray event")

    def __post_init__(self) -> None:
        if self.kind not in FAULTS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {sorted(FAULTS)}")
        reads = FAULTS[self.kind].parameters
        for f, _ in options_of(Fault):
            # after_events is every fault's, read or not (a fault that fires first fires first whatever it says).
            if f.name not in (*reads, "after_events") and getattr(self, f.name) != f.default:
                raise ValueError(f"fault {self.kind!r} takes {', '.join(reads)}; not {f.name}")
        if self.count < 1:
            raise ValueError("a fault must apply to at least one response (count >= 1)")
        check_options(self)


@dataclass
class Reply:
    """What one generated response does, in order: the reasoning, the text (if any), then the calls.

    ``reasoning`` makes the first output item a ``reasoning`` item whose summary streams as
    ``response.reasoning_summary_text.delta`` events and which carries ``encrypted_content``.
    ``ttft`` and ``tokens_per_second`` override the emulator's pacing for this response, and
    ``argument_delta_chars`` its cutting of call arguments (N characters per delta); a ``fault``
    here wins over any fault queued with ``Emulator.add_fault``.
    """

    text: str | None = None
    calls: list[ToolCall] = field(default_factory=list)
    # The emulator's pacing and cutting for this response; bound as the emulator's own options are.
    ttft: float | None = option(None, "seconds to the first delta", check=not_negative)
    tokens_per_second: float | None = option(None, "delta rate", check=positive)
    fault: Fault | None = None
    reasoning: str | None = None
    argument_delta_chars: int | None = option(None, "characters per argument delta", check=positive_int_or_none)

    def __post_init__(self) -> None:
        check_options(self)


class Script:
    """The two FIFO queues, and the rule that pairs them with a generated response."""

    def __init__(self) -> None:
        self._replies: deque[Reply] = deque()
        self._faults: deque[Fault] = deque()
        # How many more responses the fault at the head of the queue still applies to.
        self._head_uses_left = 0

    def queue_replies(self, *replies: Reply) -> None:
        self._replies.extend(replies)

    def add_fault(self, fault: Fault) -> None:
        self._faults.append(fault)
        if len(self._faults) == 1:
            self._head_uses_left = fault.count

    @property
    def pending_replies(self) -> int:
        return len(self._replies)

    @property
    def pending_faults(self) -> int:
        return len(self._faults)

    def take(self) -> tuple[Reply | None, Fault | None]:
        """The reply (``None`` = let the default model answer) and fault for the next generated response."""
        reply = self._replies.popleft() if self._replies else None
        if reply is not None and reply.fault is not None:
            # The queued fault is kept for the next response rather than lost to this one.
            return reply, reply.fault
        return reply, self._take_fault()

    def _take_fault(self) -> Fault | None:
        if not self._faults:
            return None
        fault = self._faults[0]
        self._head_uses_left -= 1
        if self._head_uses_left <= 0:
            self._faults.popleft()
            self._head_uses_left = self._faults[0].count if self._faults else 0
        return fault


# -- script files -------------------------------------------------------------------------------


class ScriptFileError(ValueError):
    """A script file that does not read as replies and faults; the message names the file, the entry and the fault."""


@dataclass
class ScriptFile:
    """What a script file holds: replies to queue, then faults to add, each in the file's order."""

    replies: list[Reply] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)


def load_script(path: str | Path) -> ScriptFile:
    """The replies and faults of the JSON file at ``path`` (the shape is in the module doc)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScriptFileError(f"{path}: cannot be read: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ScriptFileError(f"{path}: not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    return parse_script(data, source=str(path))


def parse_script(data: Any, source: str = "script") -> ScriptFile:
    """Decoded JSON as a :class:`ScriptFile`; ``source`` starts every error message."""
    try:
        return _build(ScriptFile, data, "")
    except _Invalid as exc:
        raise ScriptFileError(f"{source}: {exc}") from None


class _Invalid(Exception):
    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}" if where else problem)


def _build(cls: type[Any], value: Any, where: str) -> Any:
    """An instance of the dataclass ``cls`` from a JSON object, its fields converted by their type hints."""
    if not isinstance(value, dict):
        raise _Invalid(where, f"expected an object, got {_json_kind(value)}")
    own = {f.name: f for f in fields(cls) if f.init}
    unknown = sorted(set(value) - set(own))
    if unknown:
        raise _Invalid(where, f"unknown field {unknown[0]!r}; expected one of {', '.join(own)}")
    missing = [n for n, f in own.items() if f.default is MISSING and f.default_factory is MISSING and n not in value]
    if missing:
        raise _Invalid(where, f"missing field {missing[0]!r}")
    hints = get_type_hints(cls)
    arguments = {}
    for name, item in value.items():
        arguments[name] = _convert(hints[name], item, f"{where}.{name}" if where else name)
    try:
        return cls(**arguments)
    except ValueError as exc:  # the dataclass's own checks (__post_init__)
        raise _Invalid(where, str(exc)) from None


def _convert(hint: Any, value: Any, where: str) -> Any:
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in get_args(hint):
            return None
        for option in get_args(hint):
            if option is not type(None) and _accepts(option, value):
                return _convert(option, value, where)
        raise _Invalid(where, f"expected {_describe(hint)}, got {_json_kind(value)}")
    if not _accepts(hint, value):
        raise _Invalid(where, f"expected {_describe(hint)}, got {_json_kind(value)}")
    if origin is list:
        (item,) = get_args(hint)
        return [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(hint, type) and is_dataclass(hint):
        return _build(hint, value, where)
    return float(value) if hint is float else value


def _accepts(hint: Any, value: Any) -> bool:
    """Whether ``value`` is of the JSON kind that ``hint`` is read from (its items are checked later)."""
    if hint is Any:
        return True
    if hint is str:
        return isinstance(value, str)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if get_origin(hint) is list:
        return isinstance(value, list)
    return isinstance(value, dict) and (get_origin(hint) is dict or (isinstance(hint, type) and is_dataclass(hint)))


def _describe(hint: Any) -> str:
    if get_origin(hint) in (Union, types.UnionType):
        return " or ".join(_describe(option) for option in get_args(hint))
    names = {str: "a string", int: "a whole number", float: "a number", type(None): "null"}
    if hint in names:
        return names[hint]
    return "a list" if get_origin(hint) is list else "an object"


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value!r}" if len(value) <= 40 else "a string"
    return "a list" if isinstance(value, list) else "an object"
