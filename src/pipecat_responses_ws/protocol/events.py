"""Server events, declared once and decoded at the edge into typed values.

Every frame the server sends becomes exactly one of these, never an exception: a frame that is
not JSON, or a known event whose fields have the wrong shape, becomes :class:`MalformedEvent`
with the reason; an event type nobody documented becomes :class:`UnknownEvent`. Everything past
this module reads attributes, not ``.get(...) or {}`` chains.

The events are msgspec structs tagged by their ``type``: one call in C decodes a frame into its
struct and checks every field on the way (about 0.2 µs for a text delta, against 2.2 µs for
``json.loads`` and dataclasses), so the declarations below are the whole of the parser. Only a
frame that does not decode is looked at again, to say why.
"""

from __future__ import annotations

import functools
import json
import operator
from typing import Annotated, Any, ClassVar

import msgspec

from . import wire

EXCERPT_CHARS = 160
# How deep an event may nest. The documented events nest a few levels; a frame far deeper would
# overflow the stack wherever what it carries is walked later (sent back as context, logged).
MAX_NESTING = 64


class _Framed(msgspec.Struct, kw_only=True, gc=False):
    """Where an event belongs: its lane (``stream_id``) and its place in its response's order."""

    stream_id: str | None = None
    # Never below 0: -1 stands for "none due" in a response's order (``Response.next_sequence``).
    sequence_number: Annotated[int, msgspec.Meta(ge=0)] | None = None
    # Whether what it keeps may nest (an item, a response's output, an error's details): then
    # ``parse_event`` checks the frame's depth. An event that keeps only strings and numbers does not:
    # what it leaves out is skipped by the decoder, never kept, so never walked.
    nests: ClassVar[bool] = True


class _Event(_Framed, tag_field="type", kw_only=True, gc=False):
    """A documented event: its wire name is its tag."""


class TextDelta(_Event, tag=wire.OUTPUT_TEXT_DELTA, kw_only=True, gc=False):
    """``response.output_text.delta``: words to speak."""

    nests: ClassVar[bool] = False
    item_id: str | None = None
    delta: str


class ReasoningDelta(_Event, tag=wire.REASONING_SUMMARY_TEXT_DELTA, kw_only=True, gc=False):
    """``response.reasoning_summary_text.delta``: a reasoning summary streaming."""

    nests: ClassVar[bool] = False
    item_id: str | None = None
    delta: str


class _CreatedResponse(msgspec.Struct, gc=False):
    id: str = ""


class ResponseCreated(_Event, tag=wire.CREATED, kw_only=True, gc=False):
    """``response.created``: from here until its terminal, the lane's events are this response's."""

    nests: ClassVar[bool] = False
    response: _CreatedResponse

    def __post_init__(self) -> None:
        if not self.response.id:
            raise ValueError("response without an id")

    @property
    def response_id(self) -> str:
        return self.response.id


class _NamedResponse(msgspec.Struct, gc=False):
    id: str | None = None


class ResponseProgress(_Event, kw_only=True, gc=False):
    """``response.queued`` or ``response.in_progress``."""

    nests: ClassVar[bool] = False
    response: _NamedResponse

    @property
    def response_id(self) -> str | None:
        return self.response.id


class _ErrorDetails(msgspec.Struct, gc=False):
    code: str | None = None
    message: str | None = None


class _IncompleteDetails(msgspec.Struct, gc=False):
    reason: str | None = None


class _EndedResponse(msgspec.Struct, gc=False):
    id: str | None = None
    usage: dict[str, Any] | None = None
    output: list[dict[str, Any]] | None = None
    error: _ErrorDetails | None = None
    incomplete_details: _IncompleteDetails | None = None


class ResponseEnded(_Event, kw_only=True, gc=False):
    """A terminal event: ``response.completed``, ``.failed`` or ``.incomplete``."""

    response: _EndedResponse

    @property
    def status(self) -> str:
        """``completed``, ``failed`` or ``incomplete``."""
        return str(type(self).__struct_config__.tag).rpartition(".")[2]

    @property
    def response_id(self) -> str | None:
        return self.response.id

    @property
    def usage(self) -> dict[str, Any] | None:
        return self.response.usage or None

    @property
    def output(self) -> tuple[dict[str, Any], ...]:
        return tuple(self.response.output or ())

    @property
    def error_code(self) -> str | None:
        error, incomplete = self.response.error, self.response.incomplete_details
        return (error.code if error else None) or (incomplete.reason if incomplete else None)

    @property
    def error_message(self) -> str | None:
        error, incomplete = self.response.error, self.response.incomplete_details
        reason = incomplete.reason if incomplete else None
        return (error.message if error else None) or (f"response incomplete: {reason}" if reason else None)


class _OutputItemEvent(_Event, kw_only=True, gc=False):
    item: dict[str, Any]

    def __post_init__(self) -> None:
        if not isinstance(self.item.get("id"), str | None):
            raise TypeError("item.id is not a string")

    @property
    def item_id(self) -> str | None:
        item_id: str | None = self.item.get("id")
        return item_id


class OutputItemAdded(_OutputItemEvent, tag=wire.OUTPUT_ITEM_ADDED, kw_only=True, gc=False):
    pass


class OutputItemDone(_OutputItemEvent, tag=wire.OUTPUT_ITEM_DONE, kw_only=True, gc=False):
    pass


class _ErrorBody(msgspec.Struct, gc=False):
    code: str | None = None
    message: Any = None
    param: Any = None


class ServerError(_Event, tag=wire.ERROR, kw_only=True, gc=False):
    """An ``error`` event: request-scoped on a named lane, connection-level without one.

    Its details come in ``error``, or flat beside ``type`` (the shape some servers use); either
    way they are read from ``code``, ``message`` and ``param``.
    """

    error: _ErrorBody | None = None
    code: str | None = None
    message: Any = None
    param: Any = None
    status: int | None = None

    def __post_init__(self) -> None:
        details = self.error
        if details is not None:
            self.code, self.message, self.param = details.code, details.message, details.param
        elif self.code is None:
            raise TypeError("error is not an object")
        self.message = str(self.message) if self.message else "unknown error"
        if not isinstance(self.param, str):
            self.param = None


class ItemEvent(_Event, kw_only=True, gc=False):
    """A documented event of one item that changes nothing for the client (parts, ``*.done``)."""

    nests: ClassVar[bool] = False
    item_id: str | None = None


class OtherEvent(_Event, kw_only=True, gc=False):
    """A documented event without an item that changes nothing for the client (steering)."""

    nests: ClassVar[bool] = False


class UnknownEvent(_Framed, kw_only=True, gc=False):
    """An event type that is not documented: skipped, and logged once per type by the reader."""

    type: str


class MalformedEvent(_Framed, kw_only=True, gc=False):
    """A frame that is not an event, or an event whose fields have the wrong shape."""

    reason: str
    excerpt: str


def _events(base: type[_Event], *names: str) -> tuple[type[msgspec.Struct], ...]:
    """One struct per wire name, for events that share a shape and mean the same to the client."""
    return tuple(msgspec.defstruct(name, [], bases=(base,), tag=name, kw_only=True, gc=False) for name in names)


_DECODED: tuple[type[msgspec.Struct], ...] = (
    TextDelta,
    ReasoningDelta,
    ResponseCreated,
    OutputItemAdded,
    OutputItemDone,
    ServerError,
    *_events(ResponseEnded, wire.COMPLETED, wire.FAILED, wire.INCOMPLETE),
    *_events(ResponseProgress, wire.QUEUED, wire.IN_PROGRESS),
    *_events(
        ItemEvent,
        wire.CONTENT_PART_ADDED,
        wire.CONTENT_PART_DONE,
        wire.OUTPUT_TEXT_DONE,
        wire.FUNCTION_CALL_ARGUMENTS_DELTA,
        wire.FUNCTION_CALL_ARGUMENTS_DONE,
        wire.REASONING_SUMMARY_PART_ADDED,
        wire.REASONING_SUMMARY_PART_DONE,
        wire.REASONING_SUMMARY_TEXT_DONE,
    ),
    *_events(OtherEvent, wire.STEER_ACCEPTED, wire.STEER_FAILED, wire.STEER_PENDING),
)
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

_ANY_EVENT: Any = functools.reduce(operator.or_, _DECODED)
_decoder: msgspec.json.Decoder[ServerEvent] = msgspec.json.Decoder(_ANY_EVENT)
_decode = _decoder.decode
_WIRE_NAMES = frozenset(event.__struct_config__.tag for event in _DECODED)


def event_name(event: ServerEvent) -> str:
    """The wire name of ``event``'s type, for log lines."""
    if isinstance(event, UnknownEvent):
        return event.type
    if isinstance(event, MalformedEvent):
        return "a malformed event"
    return str(type(event).__struct_config__.tag)


def parse_event(raw: str | bytes) -> ServerEvent:
    """The typed event in one frame. Never raises."""
    try:
        event = _decode(raw)
    except (msgspec.DecodeError, RecursionError) as e:
        return _refused(raw, e)
    # Only an event that keeps what may nest is looked at again: never a delta, nor a sign of life.
    if event.nests and _opens(raw) > MAX_NESTING:
        return _refused(raw, None)
    return event


def _refused(raw: str | bytes, error: Exception | None) -> ServerEvent:
    """What a frame the decoder refused is instead (``error``, its reason), or one that may nest too
    deep (``None``, then the decoded event if it does not)."""
    excerpt = _excerpt(raw)
    try:
        data = json.loads(raw)
    except (TypeError, ValueError) as e:
        return MalformedEvent(reason=f"not JSON ({e})", excerpt=excerpt)
    except RecursionError:
        return MalformedEvent(reason="nested deeper than the JSON parser can follow", excerpt=excerpt)
    if not isinstance(data, dict):
        return MalformedEvent(reason="not a JSON object", excerpt=excerpt)
    event_type, stream_id, sequence_number = data.get("type"), data.get("stream_id"), data.get("sequence_number")
    if not isinstance(event_type, str):
        return MalformedEvent(reason="no event type", excerpt=excerpt)
    if stream_id is not None and not isinstance(stream_id, str):
        return MalformedEvent(reason=f"{event_type}: stream_id is not a string", excerpt=excerpt)
    if sequence_number is not None and (type(sequence_number) is not int or sequence_number < 0):
        reason = f"{event_type}: sequence_number is not an integer from 0 up"
        return MalformedEvent(stream_id=stream_id, reason=reason, excerpt=excerpt)
    if _nested_deeper(data, MAX_NESTING):
        reason = f"{event_type}: nested deeper than {MAX_NESTING} levels"
        return MalformedEvent(stream_id=stream_id, sequence_number=sequence_number, reason=reason, excerpt=excerpt)
    if error is None:
        return _decode(raw)  # it decoded before, and nests no deeper than allowed
    if event_type not in _WIRE_NAMES:
        return UnknownEvent(stream_id=stream_id, sequence_number=sequence_number, type=event_type)
    reason = f"{event_type}: {_explained(error)}"
    return MalformedEvent(stream_id=stream_id, sequence_number=sequence_number, reason=reason, excerpt=excerpt)


# How the decoder names what it expected, as a field's reason says it.
_EXPECTED = {"str": "a string", "int": "an integer", "object": "an object", "array": "a list"}


def _explained(error: Exception) -> str:
    """The decoder's reason, in the words of the event's fields: ``delta is not a string``."""
    message, _, at = str(error).partition(" - at `$")
    path = at.rstrip("`").lstrip(".")
    if message.startswith("Expected `"):
        expected = message.removeprefix("Expected `").partition("`")[0].partition(" ")[0]
        return f"{path} is not {_EXPECTED.get(expected, expected)}"
    if message.startswith("Object missing required field `"):
        field = message.removeprefix("Object missing required field `").rstrip("`")
        return f"{path} has no {field}" if path else f"no {field}"
    return f"{path}: {message}" if path else message


def _excerpt(raw: str | bytes) -> str:
    text = raw if isinstance(raw, str) else raw.decode("utf-8", errors="replace")
    return text[:EXCERPT_CHARS]


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
