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

FAULT_KINDS = frozenset(
    {
        "delay_created",
        "stall",
        "drop",
        "fail",
        "incomplete",
        "stray_error",
        "malformed",
        "delay_terminal",
        "duplicate_delta",
        "duplicate_item_done",
        "stray_early_delta",
        "connection_limit",
        "connection_limit_lane",
        "stop_reading",
        "key_error",
        "malformed_event",
        "deep_json",
        "laneless_stray_delta",
        "laneless_stray_completed",
        "reorder_deltas",
        "lose_delta",
        "line_separators",
        "hold_open",
    }
)
# The faults that resend an event of the response rather than fire at one point of it.
DUPLICATING_FAULTS = frozenset({"duplicate_delta", "duplicate_item_done"})
# The faults that change the order or the number of the response's own text deltas from their trigger on.
DELTA_ORDER_FAULTS = frozenset({"reorder_deltas", "lose_delta"})


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
    """A misbehaviour injected into a generated response.

    ``after_events`` counts the events of the response already sent when the fault fires
    (``0`` = before ``response.created``). A response shorter than that fires the fault just
    before its terminal event, so a fault never silently misses. ``fail`` and ``incomplete``
    fire no earlier than after ``response.in_progress``: a terminal needs a created response.

    - ``delay_created``: wait ``seconds`` before ``response.created``.
    - ``stall``: go silent for ``seconds`` (``float("inf")`` = forever), then continue.
    - ``drop``: close the connection with ``close_code``; ``1006`` aborts the TCP transport
      without a close frame.
    - ``fail``: end with ``response.failed``, ``response.error.code = code`` (default
      ``server_error``; it must be a code the SDK's ``ResponseError`` knows).
    - ``incomplete``: end with ``response.incomplete``, reason ``code`` (default
      ``max_output_tokens``).
    - ``stray_error``: send a connection-level ``error`` (no ``stream_id``) with ``code``
      (default ``server_error``); the response continues.
    - ``malformed``: send a text frame that is not JSON; the response continues.
    - ``delay_terminal``: wait ``seconds`` before the terminal event.
    - ``duplicate_delta``: the first ``response.output_text.delta`` at or after ``after_events``
      is sent a second time right after itself, byte for byte (same JSON text, same
      ``sequence_number``), as a proxy replaying a frame would. A response whose text deltas all
      come earlier repeats its last one just before the terminal; one without text repeats nothing.
    - ``duplicate_item_done``: the same for the first ``response.output_item.done`` of a
      ``function_call`` item.
    - ``stray_early_delta``: before ``response.created`` (whatever ``after_events``), one
      ``response.output_text.delta`` on this response's lane (``stream_id`` when the lane is
      named) for an item id the response never announces (``msg_stray_<n>``), with
      ``sequence_number`` 0 and ``text`` as its delta; then the response goes on normally.
    - ``connection_limit``: a connection-level ``error`` with code
      ``websocket_connection_limit_reached`` (no ``stream_id``), and the response stops there
      without a terminal (past its end, the error takes the terminal's place). The connection
      stays open but expired: every later ``response.create`` on it, and any create still
      queued, gets the same error at once and no response; responses already streaming on other
      lanes finish.
    - ``connection_limit_lane``: the same, but each error echoes the ``stream_id`` of the
      request it refuses when that request's lane is named.
    - ``stop_reading``: the emulator stops reading the connection (its transport is paused), so
      a client send larger than the socket buffers blocks; the response streams to its end.
    - ``key_error``: a connection-level ``error`` (status 401, ``invalid_api_key``) whose message
      quotes the API key the client presented on the upgrade; the response continues.
    - ``malformed_event``: a connection-level frame that is JSON of the wrong shape,
      ``{"type": "error", "error": "<a string>", "status": "bad"}``; the response continues.
    - ``deep_json``: a frame on this response's lane that is JSON nested 1,000 levels deep (a
      ``response.output_text.delta`` whose ``delta`` is arrays within arrays); the response continues.
    - ``laneless_stray_delta``: one ``response.output_text.delta`` without ``stream_id`` (whatever
      the lane) or ``sequence_number``, of a response and item nobody started (``resp_stray_<n>``, ``msg_stray_<n>``),
      with ``text`` as its delta, as a proxy leaking another stream's frame would send; the
      response continues.
    - ``laneless_stray_completed``: the same for a ``response.completed`` of ``resp_stray_<n>``.
    - ``reorder_deltas``: from the first ``response.output_text.delta`` at or after
      ``after_events``, every two text deltas go out in swapped order (the second first), each
      with its own ``sequence_number``; an odd one left before a non-delta event goes out before it.
    - ``lose_delta``: the first ``response.output_text.delta`` at or after ``after_events`` is
      never sent (its ``sequence_number`` is a gap); a response without one there loses nothing.
    - ``line_separators``: the response's text has its first three word breaks made U+2028,
      U+2029 and U+0085 (as a model writes them), and they travel unescaped in the JSON, as
      OpenAI sends any character: a client that splits lines like ``str.splitlines`` cuts those
      deltas in two.
    - ``hold_open``: over HTTP, the stream stays open after its terminal event (and its
      ``[DONE]``) until the client closes it, as some gateways keep it; nothing over a WebSocket.

    Frames a fault adds (the duplicates, the stray events, the deep one and both malformed kinds)
    are left out of ``Records.sent``, which stays what the SDK validates; every fault that
    fires is listed in ``Records.faults``.

    ``count`` is how many generated responses the fault applies to when added with
    ``Emulator.add_fault``. An HTTP request's response takes the next reply and fault like any
    other; what each kind does over HTTP is in :mod:`.http`.
    """

    kind: str
    seconds: float = 0.0
    after_events: int = 0
    code: str | None = None
    close_code: int = 1011
    count: int = 1
    # The delta of ``stray_early_delta``.
    text: str = "stray "

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {sorted(FAULT_KINDS)}")
        if self.count < 1:
            raise ValueError("a fault must apply to at least one response (count >= 1)")
        if self.after_events < 0 or self.seconds < 0:
            raise ValueError("after_events and seconds must not be negative")


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
    ttft: float | None = None
    tokens_per_second: float | None = None
    fault: Fault | None = None
    reasoning: str | None = None
    argument_delta_chars: int | None = None

    def __post_init__(self) -> None:
        check_delta_chars(self.argument_delta_chars)


def check_delta_chars(value: int | None) -> None:
    """``argument_delta_chars`` is ``None`` (the default cutting) or a positive whole number of characters."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"argument_delta_chars must be None or a positive int, not {value!r}")


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
