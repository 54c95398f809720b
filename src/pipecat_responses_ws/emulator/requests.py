"""Reading client frames: framing errors and the checks a ``response.create`` must pass.

Pure functions returning either the parsed request or the ``error`` event to answer with. Error
codes and ``stream_id`` echo rules follow PROTOCOL.md §3.4 and §6.2; codes the protocol leaves
unnamed (``invalid_json``, ``unknown_event_type``, ``unsupported_parameter``,
``invalid_request``) are the shared names in :mod:`pipecat_responses_ws.protocol.wire`;
``unknown_parameter`` (a lane-free server refusing ``stream_id``) is defined here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..protocol import wire
from . import builders
from .conversation import Item, normalize_input

Event = dict[str, Any]

# The code OpenAI's HTTP API gives a request field it does not know; servers without lanes may give it to ``stream_id``.
UNKNOWN_PARAMETER = "unknown_parameter"
AGE_LIMIT_MESSAGE = (
    "Responses websocket connection limit reached (60 minutes). Create a new websocket connection to continue."
)


@dataclass(frozen=True)
class CreateRequest:
    """An accepted ``response.create``: its fields without ``type``, and what they imply."""

    fields: dict[str, Any]
    lane: str | None
    input_items: list[Item]
    parent_id: str | None
    generate: bool
    new_lane: bool


def parse_frame(message: str | bytes) -> tuple[dict[str, Any] | None, Event | None]:
    """The JSON object in a frame, or the connection-level error explaining why there is none."""
    if isinstance(message, bytes):
        return None, builders.error_event(
            wire.INVALID_JSON, "Binary frames are not supported; send each event as JSON in a text frame."
        )
    try:
        payload = json.loads(message)
    except ValueError as exc:
        return None, builders.error_event(wire.INVALID_JSON, f"The frame is not valid JSON: {exc}.")
    if not isinstance(payload, dict):
        kind = type(payload).__name__
        return None, builders.error_event(wire.INVALID_JSON, f"Expected a JSON object per frame, got {kind}.")
    return payload, None


def unknown_type_error(event_type: Any) -> Event:
    if not isinstance(event_type, str) or not event_type:
        message = "The event has no 'type'; expected 'response.create' or 'response.steer'."
    else:
        message = f"Unknown event type {event_type!r}; expected 'response.create' or 'response.steer'."
    return builders.error_event(wire.UNKNOWN_EVENT, message, param="type")


def check_create(payload: dict[str, Any], lanes_seen: set[str]) -> CreateRequest | Event:
    """Validate a ``response.create``; the checks run in the order a server would fail them."""
    fields = {k: v for k, v in payload.items() if k != "type"}
    lane = fields.get("stream_id")
    echo = lane if wire.is_valid_stream_id(lane) else None

    def invalid(param: str, message: str) -> Event:
        return builders.error_event(wire.INVALID_REQUEST, message, param=param, stream_id=echo)

    if fields.get("background"):
        return builders.error_event(
            wire.UNSUPPORTED_PARAMETER,
            "'background' is not supported over WebSocket; use HTTP for background responses.",
            param="background",
            stream_id=echo,
        )
    if lane is not None and not wire.is_valid_stream_id(lane):
        return builders.error_event(
            wire.INVALID_STREAM_ID,
            "Invalid stream_id: use 1 to 256 characters of [A-Za-z0-9_.-], or omit it for the default lane.",
            param="stream_id",
        )
    new_lane = lane is not None and lane not in lanes_seen
    if new_lane and len(lanes_seen) >= wire.MAX_NAMED_LANES:
        return builders.error_event(
            wire.STREAM_LIMIT_REACHED,
            f"This connection already used {wire.MAX_NAMED_LANES} distinct stream_id values, the limit. "
            "Reuse a stream_id or open a new connection.",
            param="stream_id",
            stream_id=lane,
        )
    items = normalize_input(fields.get("input"))
    if items is None:
        return invalid("input", "'input' must be a string or a list of input items.")
    parent = fields.get("previous_response_id")
    if parent is not None and not isinstance(parent, str):
        return invalid("previous_response_id", "'previous_response_id' must be a string.")
    tools = fields.get("tools")
    if tools is not None and not isinstance(tools, list):
        return invalid("tools", "'tools' must be a list.")
    prewarm = isinstance(fields.get("prompt_cache_options"), dict) and fields["prompt_cache_options"].get("prewarm")
    generate = fields.get("generate", True) is not False and not prewarm
    return CreateRequest(fields, lane, items, parent, generate, new_lane)


def unknown_parameter_error(param: str) -> Event:
    """What a server without lanes that refuses unknown parameters answers a create carrying ``param`` with."""
    return builders.error_event(UNKNOWN_PARAMETER, f"Unknown parameter: '{param}'.", param=param)


def not_found_error(parent_id: str, lane: str | None) -> Event:
    return builders.error_event(
        wire.PREVIOUS_RESPONSE_NOT_FOUND,
        f"Previous response with id '{parent_id}' not found.",
        param="previous_response_id",
        stream_id=lane,
    )


def no_tool_call_error(call_id: str, lane: str | None) -> Event:
    """The refusal of a ``function_call_output`` answering no call of the conversation, worded as the API words it."""
    return builders.error_event(
        wire.INVALID_REQUEST,
        f"No tool call found for function call output with call_id {call_id}.",
        param="input",
        stream_id=lane,
    )


def connection_limit_error(lane: str | None = None) -> Event:
    """``websocket_connection_limit_reached``; connection-level unless ``lane`` names the request's lane."""
    return builders.error_event(wire.CONNECTION_LIMIT_REACHED, AGE_LIMIT_MESSAGE, stream_id=lane)


def steer_echo(raw_input: Any, items: list[Item] | None) -> Any:
    """What ``steer.failed`` returns as the input: as sent when valid, else ``""``.

    Input that broke the rules is not echoed because the event must still validate against the
    SDK's ``ResponseSteerInput``; messages are echoed with their (optional) ``type`` filled in.
    """
    if items is None:
        return ""
    return raw_input if isinstance(raw_input, str) else items
