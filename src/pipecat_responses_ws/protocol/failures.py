"""What ends responses before their own end does: an error answering a request, a connection-level
error, a connection the server calls spent, a wait that timed out, a send that failed, a socket
that closed. Each says why, and sends the turn again when nothing of it could have been heard.

Part of the client's session (:mod:`.session`), built on :mod:`.session_core`.
"""

from __future__ import annotations

from collections.abc import Callable

from . import events as ev
from . import wire
from .actions import Action, Log, ReportError, Retire
from .connection import ConnectionState, ConnectionStatus
from .errors import (
    AuthenticationError,
    ConnectionLost,
    PhaseTimeout,
    PreviousResponseNotFound,
    ResponsesWSError,
    describe_close,
)
from .lane_support import LaneSupport, about_stream_id
from .response import Failed, Outcome, Phase, Response, Retry
from .session_core import SessionCore, SessionOptions, take_off_lane

# How long after sending response.cancel a connection-level error is taken as its rejection.
CANCEL_REJECTION_WINDOW_SECS = 2.0
# Codes that end the connection's usefulness: nothing was generated for the request they answer.
_CONNECTION_SPENT = frozenset({wire.CONNECTION_LIMIT_REACHED, wire.STREAM_LIMIT_REACHED})


class SessionFailures(SessionCore):
    """The session's decisions when something other than a response's own end ends it."""

    def __init__(
        self, options: SessionOptions | None = None, *, holds_results: Callable[[str], bool] | None = None
    ) -> None:
        super().__init__(options, holds_results=holds_results)
        self.lane_support = LaneSupport(self.options.named_lanes, self._end)

    # -- errors the server sent ---------------------------------------------------------------

    def _request_error(
        self, response: Response, event: ev.ServerError, now: float, actions: list[Action]
    ) -> list[Action]:
        """An error that answers ``response``'s request: its owner hears how it ended; then, if the
        server had created it, it is let go of (whatever else it sends is not to be spoken)."""
        created = response.created
        if not created:
            take_off_lane(response)  # answered without a response: the lane is free
        actions += self._end(response, self._request_failure(response, event, now, actions))
        if created:
            response.let_go(now)
            actions += self._cancel(response, now)
        return actions

    def _request_failure(
        self, response: Response, event: ev.ServerError, now: float, actions: list[Action]
    ) -> Retry | Failed:
        conn = response.connection
        code = event.code
        if code == wire.PREVIOUS_RESPONSE_NOT_FOUND:
            parent = response.plan.previous_response_id
            if parent:
                conn.chains.forget(parent)
            if parent and not response.retried.full_context:
                self.stats.full_context_fallbacks += 1
                return response.retry("the server no longer holds the parent response", full_context=True)
            return Failed(PreviousResponseNotFound(event.message, code=code, lane=response.lane))
        if code in _CONNECTION_SPENT:
            actions += self._expire(conn, f"the server says the connection is spent ({code})", now, but=response)
            error = ConnectionLost(event.message, code=code, response_id=response.response_id, lane=response.lane)
            return self._replay_or_fail(response, f"the server says the connection is spent ({code})", error)
        return Failed(ResponsesWSError(event.message, code=code, response_id=response.response_id, lane=response.lane))

    # -- what the server said of the connection ------------------------------------------------

    def _connection_event(self, conn: ConnectionState[Response], event: ev.ServerEvent, now: float) -> list[Action]:
        if not isinstance(event, ev.ServerError):
            return self._stray(conn, event)
        if about_stream_id(event) and not conn.router.named:
            return self.lane_support.refused_lane(conn)
        if event.code in _CONNECTION_SPENT:
            return self._expire(conn, f"the server says the connection is spent ({event.code})", now)
        if self._looks_like_cancel_rejection(conn, event, now):
            conn.cancel_supported = False
            self.cancel_honoured = False
            return [
                Log(
                    "INFO",
                    f"{conn.name}: the server rejected response.cancel ({event.code}: {event.message}); "
                    "not sending it again on this connection",
                )
            ]
        error = ResponsesWSError(f"server error on {conn.name}: {event.message}", code=event.code)
        return [Log("WARNING", str(error)), ReportError(error)]

    def _stray(self, conn: ConnectionState[Response], event: ev.ServerEvent) -> list[Action]:
        """An event without a lane on a connection whose requests carry one: nobody's to act on."""
        self.stats.events_skipped += 1
        self.stats.stray_events += 1
        conn.stray_events += 1
        what = f"{conn.name}: dropped a stray {ev.event_name(event)} without stream_id"
        if conn.stray_events > 1:
            return [Log("DEBUG", f"{what} ({conn.stray_events} on this connection)")]
        return [Log("WARNING", f"{what}; stray events are never spoken and never end a response")]

    def _looks_like_cancel_rejection(self, conn: ConnectionState[Response], error: ev.ServerError, now: float) -> bool:
        if conn.last_cancel_at is None or now - conn.last_cancel_at > CANCEL_REJECTION_WINDOW_SECS:
            return False
        text = f"{error.code} {error.message} {error.param}".lower()
        return "cancel" in text or error.code in (wire.UNKNOWN_EVENT, "unknown_parameter")

    def _expire(
        self, conn: ConnectionState[Response], reason: str, now: float, but: Response | None = None
    ) -> list[Action]:
        """``conn`` takes no more requests: retire it and move what it never started."""
        if conn.status in (ConnectionStatus.EXPIRED, ConnectionStatus.CLOSED):
            return []
        conn.become(ConnectionStatus.EXPIRED)
        actions: list[Action] = [
            Log("INFO", f"{conn.name}: {reason}; moving to a fresh connection"),
            Retire(conn, reason),
        ]
        for response in conn.router.responses():
            if response is but or response.created or response.outcome is not Outcome.PENDING:
                continue
            take_off_lane(response)  # the server will not run it
            error = ConnectionLost(reason, code=wire.CONNECTION_LIMIT_REACHED, lane=response.lane)
            actions += self._end(response, self._replay_or_fail(response, reason, error))
        return actions

    # -- what the I/O layer saw ---------------------------------------------------------------

    def timed_out(self, response: Response, phase: str, timeout: float, now: float) -> list[Action]:
        """No event for ``timeout`` seconds in ``phase``: the turn ends, or with
        ``retry_on_first_event_timeout`` goes again once if it never started (a stall is never replayed)."""
        conn = response.connection
        message = f"no event for {timeout:g}s"
        actions: list[Action] = []
        strays = conn.stray_events - response.strays_before
        if strays and conn.router.named:
            # Its lane stayed silent while events without one came: the server, or a proxy in front,
            # stopped carrying stream_id. Nothing more goes to this connection.
            message += f" on its lane, while {strays} events without stream_id were dropped"
            if conn.usable:
                conn.become(ConnectionStatus.RETIRING)
                reason = "events come without stream_id while a lane stays silent"
                actions += [Log("WARNING", f"{conn.name}: {reason}; retired"), Retire(conn, reason)]
        if response.held:
            message += f"; {response.held} events held behind a sequence_number gap"
        error = PhaseTimeout(message, phase=phase, response_id=response.response_id, lane=response.lane)
        happening: Retry | Failed = Failed(error)
        if (
            phase == "first_event"
            and self.options.retry_on_first_event_timeout
            and response.replay_safe
            and not response.retried.timeout
        ):
            self.stats.timeout_retries += 1
            happening = response.retry(f"no first event within {timeout:g}s", after_timeout=True)
        actions += self._end(response, happening)
        return actions + self.abandon(response, now)

    def send_failed(self, response: Response, reason: str, now: float) -> list[Action]:
        """Writing ``response``'s create failed: the socket is gone (or was dropped for blocking)."""
        conn = response.connection
        if response.phase is not Phase.OFF_LANE:  # it is when the socket's close was read first
            take_off_lane(response)
        error = ConnectionLost(reason, phase="send", lane=response.lane)
        actions = self._end(response, self._replay_or_fail(response, reason, error))
        # Nothing more goes on it, so the resend really takes a fresh connection.
        return actions + self.closed(conn, None, reason, now)

    def refused(self, response: Response, error: ev.ServerError, now: float) -> list[Action]:
        """Over HTTP: the request was answered with an error status instead of a stream, so
        nothing was generated; ``error`` carries the status and the API's error body."""
        if error.status in (401, 403):
            take_off_lane(response)
            return self._end(response, Failed(AuthenticationError.refused(error.status)))
        return self._request_error(response, error, now, [])

    def closed(self, conn: ConnectionState[Response], code: int | None, reason: str, now: float) -> list[Action]:
        """The socket of ``conn`` is gone: every response on it ends now."""
        if conn.closed:
            return []
        conn.become(ConnectionStatus.CLOSED)
        described = describe_close(code, reason)
        conn.close_reason = described
        actions: list[Action] = [Retire(conn, f"connection closed ({described})")]
        for response in conn.router.responses():
            take_off_lane(response)
            outcome = response.outcome
            if outcome is Outcome.ABANDONED and response.cancel_sent and self.cancel_honoured is None:
                self.cancel_honoured = False  # the cancelled answer never ended while the socket lived
            if outcome is not Outcome.PENDING:
                continue
            error = ConnectionLost(
                f"the connection closed mid-response ({described})",
                response_id=response.response_id,
                lane=response.lane,
                close_code=code,
            )
            actions += self._end(
                response, self._replay_or_fail(response, f"the connection closed ({described})", error)
            )
        return actions
