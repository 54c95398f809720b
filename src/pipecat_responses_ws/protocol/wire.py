"""The Responses WebSocket wire format, written down once: event names, error codes, limits and
the ``stream_id`` rule. The client and the emulator both use these names, so the two cannot
drift apart. Building events is the emulator's business (:mod:`..emulator.builders`).
"""

from __future__ import annotations

import re

# -- client events ------------------------------------------------------------------------------

RESPONSE_CREATE = "response.create"
RESPONSE_STEER = "response.steer"
# Not documented for the Responses API; clients send it anyway (a Realtime API shape).
RESPONSE_CANCEL = "response.cancel"

# -- server events ------------------------------------------------------------------------------

CREATED = "response.created"
QUEUED = "response.queued"
IN_PROGRESS = "response.in_progress"
COMPLETED = "response.completed"
FAILED = "response.failed"
INCOMPLETE = "response.incomplete"

OUTPUT_ITEM_ADDED = "response.output_item.added"
OUTPUT_ITEM_DONE = "response.output_item.done"
CONTENT_PART_ADDED = "response.content_part.added"
CONTENT_PART_DONE = "response.content_part.done"
OUTPUT_TEXT_DELTA = "response.output_text.delta"
OUTPUT_TEXT_DONE = "response.output_text.done"
FUNCTION_CALL_ARGUMENTS_DELTA = "response.function_call_arguments.delta"
FUNCTION_CALL_ARGUMENTS_DONE = "response.function_call_arguments.done"
REASONING_SUMMARY_PART_ADDED = "response.reasoning_summary_part.added"
REASONING_SUMMARY_PART_DONE = "response.reasoning_summary_part.done"
REASONING_SUMMARY_TEXT_DELTA = "response.reasoning_summary_text.delta"
REASONING_SUMMARY_TEXT_DONE = "response.reasoning_summary_text.done"

ERROR = "error"
STEER_ACCEPTED = "response.steer.accepted"
STEER_FAILED = "response.steer.failed"
STEER_PENDING = "response.steer.pending"

LIFECYCLE_EVENTS = frozenset({CREATED, QUEUED, IN_PROGRESS, COMPLETED, FAILED, INCOMPLETE})
TERMINAL_EVENTS = frozenset({COMPLETED, FAILED, INCOMPLETE})

# -- error codes (PROTOCOL.md §6.2) -------------------------------------------------------------

PREVIOUS_RESPONSE_NOT_FOUND = "previous_response_not_found"
INVALID_STREAM_ID = "invalid_stream_id"
STREAM_LIMIT_REACHED = "websocket_stream_limit_reached"
CONNECTION_LIMIT_REACHED = "websocket_connection_limit_reached"
# Not documented; the names we use for what the emulator must reject somehow.
INVALID_JSON = "invalid_json"
UNKNOWN_EVENT = "unknown_event_type"
UNSUPPORTED_PARAMETER = "unsupported_parameter"
INVALID_REQUEST = "invalid_request"
# A response id this connection never started (steering's documented code, reused for cancel).
RESPONSE_NOT_FOUND = "response_not_found"

# -- limits (PROTOCOL.md §4) --------------------------------------------------------------------

MAX_IN_FLIGHT_RESPONSES = 16
MAX_NAMED_LANES = 32
CONNECTION_MAX_AGE_SECS = 3600.0

_STREAM_ID = re.compile(r"[A-Za-z0-9_.-]{1,256}")


def is_valid_stream_id(value: object) -> bool:
    """Whether ``value`` may name a lane: 1–256 characters of ``[A-Za-z0-9_.-]``."""
    return isinstance(value, str) and _STREAM_ID.fullmatch(value) is not None
