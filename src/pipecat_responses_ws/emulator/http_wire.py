"""The HTTP form of the protocol, without I/O: which requests are served, their bodies, SSE framing.

``POST .../responses`` (any path ending so, as for the upgrade) with a JSON object body is a
``response.create`` by another road. What only WebSocket mode has is refused as OpenAI's HTTP
API refuses a parameter it does not know: ``stream_id`` and ``generate`` get a 400
``invalid_request_error`` with code ``unknown_parameter``. ``background`` is refused too
(``unsupported_parameter``): the emulator has no ``GET /responses/{id}`` to poll.

A streamed answer is server-sent events, ``event: <type>`` then ``data: <json>``, one per event,
the same events the WebSocket path sends, except that an ``error`` takes the HTTP stream's form
(``code``, ``message``, ``param`` at the top, numbered in the response's stream; the SDK's
``ResponseErrorEvent``). Errors before the answer starts are HTTP statuses with the API's error
body, the status and error of the event the WebSocket path would have sent instead.

How a streamed answer ends is the ``stream_end`` setting, one of :data:`STREAM_ENDS`:
``terminal`` (the default, OpenAI's) ends the body right after the terminal event;
``done`` sends ``data: [DONE]`` after it first, as the Open Responses specification requires.
"""

from __future__ import annotations

import json
from typing import Any

from ..protocol import wire
from . import builders
from .handshake import Decision, error_body
from .requests import unknown_parameter_error

Event = dict[str, Any]

ENDPOINT_SUFFIX = "/responses"
COMPACT_SUFFIX = "/responses/compact"
# Parameters of WebSocket mode alone: over HTTP they are parameters the API does not have.
WEBSOCKET_ONLY_PARAMETERS = ("stream_id", "generate")
# How a streamed answer ends after its terminal event (see the module's docstring).
STREAM_ENDS = frozenset({"terminal", "done"})
SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}


def route_refusal(method: str, path: str) -> Decision | None:
    """The 404 for anything but ``POST .../responses`` and ``.../responses/compact``, worded as the API words it."""
    if method == "POST" and path.endswith((ENDPOINT_SUFFIX, COMPACT_SUFFIX)):
        return None
    return Decision(404, error_body(f"Invalid URL ({method} {path})", "invalid_request_error", None))


def read_body(raw: bytes) -> dict[str, Any] | Decision:
    """The body's fields, or the 400 refusing it; checked in the order a server would fail them."""
    try:
        body = json.loads(raw)
    except ValueError as exc:
        message = f"We could not parse the JSON body of your request ({exc}). The API expects a JSON object."
        return Decision(400, error_body(message, "invalid_request_error", None))
    if not isinstance(body, dict):
        message = f"The body of your request must be a JSON object, not {type(body).__name__}."
        return Decision(400, error_body(message, "invalid_request_error", None))
    for param in WEBSOCKET_ONLY_PARAMETERS:
        if param in body:
            return refusal(unknown_parameter_error(param))
    if body.get("background"):
        message = "'background' is not supported by the emulator; stream the response or wait for it."
        return Decision(400, error_body(message, "invalid_request_error", wire.UNSUPPORTED_PARAMETER, "background"))
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        message = f"Invalid type for 'stream': expected a boolean, but got {type(stream).__name__} instead."
        return Decision(400, error_body(message, "invalid_request_error", "invalid_type", "stream"))
    return body


def as_create(body: dict[str, Any]) -> dict[str, Any]:
    """The ``response.create`` event an HTTP body amounts to."""
    return {**body, "type": wire.RESPONSE_CREATE}


def refusal(error: Event) -> Decision:
    """An ``error`` event of the WebSocket path as the HTTP answer it stands for."""
    fields = error["error"]
    body = error_body(
        fields["message"], fields.get("type", "invalid_request_error"), fields.get("code"), fields.get("param")
    )
    return Decision(int(error.get("status", 400)), body)


def stream_error(error: Event, writer: builders.ResponseEventWriter) -> Event:
    """An ``error`` event of the WebSocket path in the HTTP stream's form, numbered in ``writer``'s stream."""
    fields = error["error"]
    flat = {"type": wire.ERROR, "code": fields.get("code"), "message": fields["message"], "param": fields.get("param")}
    return writer.numbered(flat)


def sse(data: str, event: str | None = None) -> bytes:
    """One server-sent event; a line break in ``data`` starts another ``data:`` line, as SSE requires."""
    lines = [f"event: {event}"] if event else []
    lines += [f"data: {line}" for line in data.split("\n")]
    return ("\n".join(lines) + "\n\n").encode()


def raw_event_name(text: str) -> str | None:
    """The ``event:`` name for a frame sent as is: its ``type`` when it has one, else none."""
    try:
        payload = json.loads(text)
    except ValueError:
        return None
    kind = payload.get("type") if isinstance(payload, dict) else None
    return kind if isinstance(kind, str) else None
