"""Server events, parsed once at the edge into typed values.

Every frame the server sends becomes exactly one of these, never an exception: a frame that is
not JSON, or a known event whose fields have the wrong shape, becomes :class:`MalformedEvent`
with the reason; an event type nobody documented becomes :class:`UnknownEvent`. Everything past
this module reads attributes, not ``.get(...) or {}`` chains.

Slotted dataclasses over ``json.loads``: decoding into a schema library's structs is faster
per event (about 0.2 µs against 2.2 µs for a text delta here), but that is about 1 % of what one
delta costs once it is a frame in a Pipecat pipeline, and not worth a dependency.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from . import wire

# Events that carry an ``item_id`` and belong to the item it names.
_ITEM_EVENTS = frozenset(
    {
        wire.CONTENT_PART_ADDED,
        wire.CONTENT_PART_DONE,
        wire.OUTPUT_TEXT_DONE,
        wire.FUNCTION_CALL_ARGUMENTS_DELTA,
        wire.FUNCTION_CALL_ARGUMENTS_DONE,
        wire.REASONING_SUMMARY_PART_ADDED,
        wire.REASONING_SUMMARY_PART_DONE,
        wire.REASONING_SUMMARY_TEXT_DONE,
    }
)
# Documented events the client reads only for their lane and order.
_PLAIN_EVENTS = frozenset({wire.STEER_ACCEPTED, wire.STEER_FAILED, wire.STEER_PENDING})
EXCERPT_CHARS = 160
# How deep an event may nest. The documented events nest a few levels; a frame far deeper would
# overflow the stack wherever what it carries is walked later (sent back as context, logged).
MAX_NESTING = 64


@dataclass(slots=True)  # not frozen: one is made per word, and a frozen one costs three times as much to make
class TextDelta:
    """``response.output_text.delta``: words to speak."""

    stream_id: str | None
    sequence_number: int | None
    item_id: str | None
    delta: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """``response.reasoning_summary_text.delta``: a reasoning summary streaming."""

    stream_id: str | None
    sequence_number: int | None
    item_id: str | None
    delta: str


@dataclass(frozen=True, slots=True)
class ResponseCreated:
    """``response.created``: from here until its terminal, the lane's events are this response's."""

    stream_id: str | None
    sequence_number: int | None
    response_id: str


@dataclass(frozen=True, slots=True)
class ResponseProgress:
    """``response.queued`` or ``response.in_progress``."""

    stream_id: str | None
    sequence_number: int | None
    type: str
    response_id: str | None


@dataclass(frozen=True, slots=True)
class ResponseEnded:
    """A terminal event: ``response.completed``, ``.failed`` or ``.incomplete``."""

    stream_id: str | None
    sequence_number: int | None
    status: str  # completed | failed | incomplete
    response_id: str | None
    usage: dict[str, Any] | None
    output: tuple[dict[str, Any], ...]
    error_code: str | None
    error_message: str | None


@dataclass(frozen=True, slots=True)
class OutputItemAdded:
    stream_id: str | None
    sequence_number: int | None
    item_id: str | None
    item: dict[str, Any]


@dataclass(frozen=True, slots=True)
class OutputItemDone:
    stream_id: str | None
    sequence_number: int | None
    item_id: str | None
    item: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ServerError:
    """An ``error`` event: request-scoped on a named lane, connection-level without one."""

    stream_id: str | None
    sequence_number: int | None
    code: str | None
    message: str
    status: int | None
    param: str | None


@dataclass(frozen=True, slots=True)
class ItemEvent:
    """A documented event of one item that changes nothing for the client (parts, ``*.done``)."""

    stream_id: str | None
    sequence_number: int | None
    type: str
    item_id: str | None


@dataclass(frozen=True, slots=True)
class OtherEvent:
    """A documented event without an item that changes nothing for the client (steering)."""

    stream_id: str | None
    sequence_number: int | None
    type: str


@dataclass(frozen=True, slots=True)
class UnknownEvent:
    """An event type that is not documented: skipped, and logged once per type by the reader."""

    stream_id: str | None
    sequence_number: int | None
    type: str


@dataclass(frozen=True, slots=True)
class MalformedEvent:
    """A frame that is not an event, or an event whose fields have the wrong shape."""

    stream_id: str | None
    sequence_number: int | None
    reason: str
    excerpt: str


ServerEvent = (
    TextDelta
    | ReasoningDelta
    | ResponseCreated
    | ResponseProgress
    | ResponseEnded
    | OutputItemAdded
    | OutputItemDone
    | ServerError
    | ItemEvent
    | OtherEvent
    | UnknownEvent
    | MalformedEvent
)


_WIRE_NAMES: dict[type, str] = {
    TextDelta: wire.OUTPUT_TEXT_DELTA,
    ReasoningDelta: wire.REASONING_SUMMARY_TEXT_DELTA,
    ResponseCreated: wire.CREATED,
    OutputItemAdded: wire.OUTPUT_ITEM_ADDED,
    OutputItemDone: wire.OUTPUT_ITEM_DONE,
    ServerError: wire.ERROR,
    MalformedEvent: "a malformed event",
}


def event_name(event: ServerEvent) -> str:
    """The wire name of ``event``'s type, for log lines."""
    if isinstance(event, ResponseEnded):
        return f"response.{event.status}"
    return _WIRE_NAMES.get(type(event)) or str(getattr(event, "type", type(event).__name__))


class _Shape(Exception):
    """A field of a known event has the wrong type."""


def _excerpt(raw: str | bytes) -> str:
    text = raw if isinstance(raw, str) else raw.decode("utf-8", errors="replace")
    return text[:EXCERPT_CHARS]


_TEXT_DELTA = wire.OUTPUT_TEXT_DELTA  # for the hot path: one global lookup per word, not a global and an attribute
_STR_OR_NONE = frozenset({str, type(None)})
_INT_OR_NONE = frozenset({int, type(None)})


def parse_event(raw: str | bytes) -> ServerEvent:
    """The typed event in one frame. Never raises."""
    try:
        data = json.loads(raw)
    except (TypeError, ValueError) as e:
        return MalformedEvent(None, None, f"not JSON ({e})", _excerpt(raw))
    except RecursionError:
        return MalformedEvent(None, None, "nested deeper than the JSON parser can follow", _excerpt(raw))
    if type(data) is dict and data.get("type") == _TEXT_DELTA:
        # The hot path, one event per word: every field checked in one go; a wrong one is named
        # by ``_parse_object``.
        get = data.get
        delta = get("delta")
        stream_id = get("stream_id")
        sequence_number = get("sequence_number")
        item_id = get("item_id")
        if (
            type(delta) is str
            and type(stream_id) in _STR_OR_NONE
            and type(sequence_number) in _INT_OR_NONE
            and type(item_id) in _STR_OR_NONE
        ):
            return TextDelta(stream_id, sequence_number, item_id, delta)
    return _parse_object(raw, data)


def _parse_object(raw: str | bytes, data: Any) -> ServerEvent:
    """Every event but a well-formed text delta: the typed event, or what is wrong with it."""
    if not isinstance(data, dict):
        return MalformedEvent(None, None, "not a JSON object", _excerpt(raw))
    event_type = data.get("type")
    stream_id = data.get("stream_id")
    sequence_number = data.get("sequence_number")
    if not isinstance(event_type, str):
        return MalformedEvent(None, None, "no event type", _excerpt(raw))
    if stream_id is not None and not isinstance(stream_id, str):
        return MalformedEvent(None, None, f"{event_type}: stream_id is not a string", _excerpt(raw))
    if sequence_number is not None and (type(sequence_number) is not int):
        return MalformedEvent(stream_id, None, f"{event_type}: sequence_number is not an integer", _excerpt(raw))
    if _opens(raw) > MAX_NESTING and _nested_deeper(data, MAX_NESTING):
        return MalformedEvent(
            stream_id, sequence_number, f"{event_type}: nested deeper than {MAX_NESTING} levels", _excerpt(raw)
        )
    if event_type == wire.OUTPUT_TEXT_DELTA:
        what = "delta" if not isinstance(data.get("delta"), str) else "item_id"
        return MalformedEvent(stream_id, sequence_number, f"{event_type}: {what} is not a string", _excerpt(raw))
    try:
        return _parse_other(event_type, data, stream_id, sequence_number)
    except _Shape as e:
        return MalformedEvent(stream_id, sequence_number, f"{event_type}: {e}", _excerpt(raw))


def _parse_other(event_type: str, data: dict[str, Any], stream_id: str | None, sequence: int | None) -> ServerEvent:
    if event_type in _ITEM_EVENTS:
        return ItemEvent(stream_id, sequence, event_type, _optional_str(data, "item_id"))
    if event_type == wire.OUTPUT_ITEM_ADDED or event_type == wire.OUTPUT_ITEM_DONE:
        item = _object(data, "item")
        item_id = _optional_str(item, "id")
        if event_type == wire.OUTPUT_ITEM_ADDED:
            return OutputItemAdded(stream_id, sequence, item_id, item)
        return OutputItemDone(stream_id, sequence, item_id, item)
    if event_type == wire.REASONING_SUMMARY_TEXT_DELTA:
        delta = data.get("delta")
        if not isinstance(delta, str):
            raise _Shape("delta is not a string")
        return ReasoningDelta(stream_id, sequence, _optional_str(data, "item_id"), delta)
    if event_type == wire.CREATED:
        response_id = _optional_str(_object(data, "response"), "id")
        if not response_id:
            raise _Shape("response without an id")
        return ResponseCreated(stream_id, sequence, response_id)
    if event_type == wire.QUEUED or event_type == wire.IN_PROGRESS:
        return ResponseProgress(stream_id, sequence, event_type, _optional_str(_object(data, "response"), "id"))
    if event_type in wire.TERMINAL_EVENTS:
        return _ended(event_type, data, stream_id, sequence)
    if event_type == wire.ERROR:
        return _error(data, stream_id, sequence)
    if event_type in _PLAIN_EVENTS:
        return OtherEvent(stream_id, sequence, event_type)
    return UnknownEvent(stream_id, sequence, event_type)


def _ended(event_type: str, data: dict[str, Any], stream_id: str | None, sequence: int | None) -> ResponseEnded:
    response = _object(data, "response")
    error = _object(response, "error", optional=True)
    incomplete = _object(response, "incomplete_details", optional=True)
    usage = _object(response, "usage", optional=True) or None
    output = response.get("output") or []
    if not isinstance(output, list) or not all(isinstance(item, dict) for item in output):
        raise _Shape("response.output is not a list of items")
    reason = _optional_str(incomplete, "reason")
    message = _optional_str(error, "message")
    return ResponseEnded(
        stream_id,
        sequence,
        status=event_type.rsplit(".", 1)[-1],
        response_id=_optional_str(response, "id"),
        usage=usage,
        output=tuple(output),
        error_code=_optional_str(error, "code") or reason,
        error_message=message or (f"response incomplete: {reason}" if reason else None),
    )


def _error(data: dict[str, Any], stream_id: str | None, sequence: int | None) -> ServerError:
    error = data.get("error")
    if isinstance(error, dict):
        code, message, param = error.get("code"), error.get("message"), error.get("param")
    elif error is None and isinstance(data.get("code"), str):
        # The flat shape some servers use: ``{"type": "error", "code": ..., "message": ...}``.
        code, message, param = data.get("code"), data.get("message"), data.get("param")
    else:
        raise _Shape("error is not an object")
    status = data.get("status")
    if code is not None and not isinstance(code, str):
        raise _Shape("error.code is not a string")
    if status is not None and type(status) is not int:
        raise _Shape("status is not an integer")
    return ServerError(
        stream_id,
        sequence,
        code=code,
        message=str(message) if message else "unknown error",
        status=status,
        param=param if isinstance(param, str) else None,
    )


def _opens(raw: str | bytes) -> int:
    """How many arrays and objects ``raw`` could open at most: no frame nests deeper than that (the
    count, at C speed, spares nearly every frame the walk of :func:`_nested_deeper`)."""
    if isinstance(raw, str):
        return raw.count("[") + raw.count("{")
    return raw.count(b"[") + raw.count(b"{")


def _nested_deeper(value: Any, levels: int) -> bool:
    """Whether ``value`` nests more than ``levels`` arrays and objects deep (walked without recursion)."""
    level: list[Any] = [value]
    for _ in range(levels):
        level = [
            child
            for container in level
            for child in (container.values() if type(container) is dict else container)
            if type(child) is dict or type(child) is list
        ]
        if not level:
            return False
    return True


def _object(data: dict[str, Any], name: str, *, optional: bool = False) -> dict[str, Any]:
    value = data.get(name)
    if isinstance(value, dict):
        return value
    if value is None and optional:
        return {}
    raise _Shape(f"{name} is not an object")


def _optional_str(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is None or isinstance(value, str):
        return value
    raise _Shape(f"{name} is not a string")
