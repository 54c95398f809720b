"""Every fault the emulator injects, in one table: what it does, what it reads, when it fires and over which wire.

:class:`~.script.Fault` refuses a kind that is not here and a parameter its kind does not read;
the runner (:mod:`.runner`) schedules each by its :class:`Timing`; ``serve --help`` lists the
kinds; the harness's fault turns are made of them. Over HTTP a fault does what it does over a
WebSocket unless ``over_http`` says otherwise; for ``stream: false`` the general rules of
:mod:`.http` apply (the first ``error`` becomes the answer, frames that are not events are not written).

Frames a fault adds (``raw_frame``: the duplicates, the stray events, the deep one and both
malformed kinds) are left out of ``Records.sent``, which stays what the SDK validates; every
fault that fires is listed in ``Records.faults``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Timing(StrEnum):
    """When a fault acts, counted in the events of its response already sent (``after_events``).

    A response shorter than ``after_events`` fires the fault just before its terminal event, so
    a fault never silently misses.
    """

    AT = "at"  # once after_events events are sent
    CREATED = "created"  # the same, but no earlier than after response.in_progress: a terminal needs a response
    FIRST = "first"  # before response.created, whatever after_events
    TERMINAL = "terminal"  # just before the terminal event
    REPEAT = "repeat"  # the first matching event at or after after_events goes out twice
    DELTAS = "deltas"  # on the text deltas from after_events on
    WHOLE = "whole"  # on the whole response, not at one point of it

    @property
    def reads_after_events(self) -> bool:
        return self in (Timing.AT, Timing.CREATED, Timing.REPEAT, Timing.DELTAS)


@dataclass(frozen=True)
class FaultKind:
    name: str
    timing: Timing
    does: str
    # The parameters of Fault it reads, besides after_events (by its timing) and count (always).
    reads: tuple[str, ...] = ()
    # "both", or "http" for what only an HTTP stream can do.
    wire: str = "both"
    # What it does over HTTP where that differs from a WebSocket.
    over_http: str | None = None
    # Sends a frame of its own, left out of Records.sent.
    raw_frame: bool = False
    # The code used when the fault gives none.
    default_code: str | None = None

    @property
    def parameters(self) -> tuple[str, ...]:
        return (*(("after_events",) if self.timing.reads_after_events else ()), *self.reads, "count")


_CONNECTION_LIMIT_HTTP = "sends its error and ends the answer: there is no connection to keep refusing"

FAULTS: dict[str, FaultKind] = {
    kind.name: kind
    for kind in (
        FaultKind("delay_created", Timing.FIRST, "wait `seconds` before response.created", ("seconds",)),
        FaultKind("stall", Timing.AT, "go silent for `seconds` (inf = forever), then continue", ("seconds",)),
        FaultKind(
            "drop",
            Timing.AT,
            "close the connection with `close_code`; 1006 aborts the TCP transport without a close frame",
            ("close_code",),
            over_http="1006 aborts the TCP connection, any other code ends the streamed body without a terminal "
            "event; a non-streamed answer is always aborted",
        ),
        FaultKind(
            "fail",
            Timing.CREATED,
            "end with response.failed, its error code `code` (a code the SDK's ResponseError knows)",
            ("code",),
            default_code="server_error",
        ),
        FaultKind(
            "incomplete",
            Timing.CREATED,
            "end with response.incomplete, reason `code`",
            ("code",),
            default_code="max_output_tokens",
        ),
        FaultKind(
            "stray_error",
            Timing.AT,
            "a connection-level error (no stream_id) with `code`; the response continues",
            ("code",),
            default_code="server_error",
        ),
        FaultKind("malformed", Timing.AT, "a text frame that is not JSON; the response continues", raw_frame=True),
        FaultKind("delay_terminal", Timing.TERMINAL, "wait `seconds` before the terminal event", ("seconds",)),
        FaultKind(
            "duplicate_delta",
            Timing.REPEAT,
            "the first response.output_text.delta at or after `after_events` is sent a second time right after "
            "itself, byte for byte (same sequence_number), as a proxy replaying a frame would; a response whose "
            "deltas all come earlier repeats its last one just before the terminal, one without text nothing",
            raw_frame=True,
        ),
        FaultKind(
            "duplicate_item_done",
            Timing.REPEAT,
            "the same for the first response.output_item.done of a function_call item",
            raw_frame=True,
        ),
        FaultKind(
            "stray_early_delta",
            Timing.FIRST,
            "before response.created, one response.output_text.delta on this response's lane for an item it "
            "never announces (msg_stray_<n>), sequence_number 0 and `text` as its delta; then the response goes on",
            ("text",),
            raw_frame=True,
        ),
        FaultKind(
            "connection_limit",
            Timing.AT,
            "a connection-level error websocket_connection_limit_reached (no stream_id) and the response stops "
            "without a terminal; the connection stays open but expired: every later and every queued create gets "
            "the same error at once, while responses streaming on other lanes finish",
            over_http=_CONNECTION_LIMIT_HTTP,
        ),
        FaultKind(
            "connection_limit_lane",
            Timing.AT,
            "the same, each error echoing the stream_id of the request it refuses when that lane is named",
            over_http=_CONNECTION_LIMIT_HTTP,
        ),
        FaultKind(
            "stop_reading",
            Timing.AT,
            "stop reading the connection (its transport paused), so a client send larger than the socket buffers "
            "blocks; the response streams to its end",
        ),
        FaultKind(
            "key_error",
            Timing.AT,
            "a connection-level error (401, invalid_api_key) quoting the API key the client presented; the "
            "response continues",
        ),
        FaultKind(
            "malformed_event",
            Timing.AT,
            'a connection-level frame of JSON of the wrong shape, {"type": "error", "error": "<a string>", '
            '"status": "bad"}; the response continues',
            raw_frame=True,
        ),
        FaultKind(
            "deep_json",
            Timing.AT,
            "a frame on this response's lane that is JSON nested 1,000 levels deep (a response.output_text.delta "
            "whose delta is arrays within arrays); the response continues",
            raw_frame=True,
        ),
        FaultKind(
            "laneless_stray_delta",
            Timing.AT,
            "one response.output_text.delta without stream_id or sequence_number, of a response and item nobody "
            "started (resp_stray_<n>, msg_stray_<n>), `text` as its delta, as a proxy leaking another stream's "
            "frame would send; the response continues",
            ("text",),
            raw_frame=True,
        ),
        FaultKind(
            "laneless_stray_completed",
            Timing.AT,
            "the same for a response.completed of resp_stray_<n>",
            raw_frame=True,
        ),
        FaultKind(
            "reorder_deltas",
            Timing.DELTAS,
            "from the first response.output_text.delta at or after `after_events`, every two text deltas go out "
            "swapped, each with its own sequence_number; an odd one left before another event goes out before it",
        ),
        FaultKind(
            "lose_delta",
            Timing.DELTAS,
            "the first response.output_text.delta at or after `after_events` is never sent (its sequence_number "
            "is a gap); a response without one there loses nothing",
        ),
        FaultKind(
            "line_separators",
            Timing.WHOLE,
            "the text's first three word breaks become U+2028, U+2029 and U+0085, unescaped in the JSON as OpenAI "
            "sends any character: a client splitting lines like str.splitlines cuts those deltas in two",
        ),
        FaultKind(
            "hold_open",
            Timing.WHOLE,
            "the HTTP stream stays open after its terminal event (and its [DONE]) until the client closes it, "
            "as some gateways keep it; nothing over a WebSocket",
            wire="http",
        ),
    )
}


def describe_kinds() -> str:
    """The kinds and what each reads, in one paragraph (for ``serve --help``)."""
    return "; ".join(
        f"{kind.name} ({', '.join(kind.parameters)}{'; HTTP only' if kind.wire == 'http' else ''})"
        for kind in FAULTS.values()
    )
