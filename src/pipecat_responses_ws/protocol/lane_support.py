"""Whether a connection's server takes ``stream_id`` lanes, found out from its answers rather than
assumed (``lanes='auto'``), and what a server that turns them away means for the requests sent with one.

Part of the client's session (:mod:`.session`): it reads the events the session routes and returns
actions; the one thing it asks of the session is to end a response (``end``).
"""

from __future__ import annotations

from collections.abc import Callable

from . import events as ev
from .actions import Action, Log
from .connection import ConnectionState
from .errors import ResponsesWSError
from .response import Failed, Happening, Outcome, Response
from .session_core import take_off_lane

# Events by which a server answers a create: one without ``stream_id`` shows the server ignores it.
_ANSWER_STARTS = (ev.ResponseCreated, ev.ResponseProgress, ev.OutputItemAdded)


class LaneSupport:
    """What the endpoint shows of lane support, on every connection of a session."""

    def __init__(self, forced: bool | None, end: Callable[[Response, Happening | None], list[Action]]) -> None:
        """``forced``: the ``named_lanes`` option (``None``: find out). ``end``: the session's way to
        tell a response's owner how it ended."""
        self._forced = forced
        self._end = end
        self._logged: bool | None = None  # what was last said of lane support, so only a change is news

    def learn(self, conn: ConnectionState[Response], event: ev.ServerEvent) -> list[Action]:
        """What ``event`` shows of lane support, on a connection whose requests carry lanes.

        Only an answer to a create can show that the server ignores ``stream_id``: its
        ``response.created`` (or ``queued``, ``in_progress``, a first item) without one, while no
        event here has carried a lane back. Anything else without a lane is stray, and so is
        everything without one once a lane came back: a connection whose lanes work keeps them.
        """
        if event.stream_id is not None:
            if conn.lanes is None and conn.router.owner(event) is not None:
                conn.lanes = conn.lanes_echoed = True
                return self._decided(conn, True, "the server echoes stream_id")
            return []
        if isinstance(event, ev.ServerError):
            if not about_stream_id(event):
                return []  # connection-level: handled as such
            reason = f"the server refuses stream_id ({event.code}: {event.message})"
        elif conn.lanes_echoed or not conn.router.in_flight or not isinstance(event, _ANSWER_STARTS):
            return []  # stray: dropped as a connection-level event
        else:
            reason = f"the server ignores stream_id (it answered with {ev.event_name(event)} without one)"
        if self._forced is True:
            return self._forced_in_vain(conn, event, reason)
        conn.lanes = False
        for response in conn.router.go_lane_free():
            response.lane = None  # what it ends with is the connection's one cached response
        conn.chains.keep_latest()
        return self._decided(conn, False, reason)

    def refused_lane(self, conn: ConnectionState[Response]) -> list[Action]:
        """A request refused for its ``stream_id`` goes again on the same connection, without one."""
        refused = _refused(conn)
        if refused is None:
            return []
        take_off_lane(refused)
        return self._end(refused, refused.retry("the server refuses stream_id; sending it again without one"))

    def _forced_in_vain(self, conn: ConnectionState[Response], event: ev.ServerEvent, reason: str) -> list[Action]:
        """``lanes=True`` on a server that ignores or refuses ``stream_id``: the request it answers
        ends now, saying why and what to set, rather than after its first-event timeout."""
        advice = "this endpoint has no lanes: pass lanes='auto' (the default) or lanes=False"
        actions: list[Action] = []
        if not conn.warned_laneless:
            conn.warned_laneless = True
            actions.append(Log("WARNING", f"{conn.name}: {reason}; {advice}"))
        refused = _refused(conn)
        if refused is not None:
            take_off_lane(refused)
            code = event.code if isinstance(event, ev.ServerError) else None
            actions += self._end(refused, Failed(ResponsesWSError(f"{reason}; {advice}", code=code, lane=refused.lane)))
        return actions

    def _decided(self, conn: ConnectionState[Response], lanes: bool, reason: str) -> list[Action]:
        if self._logged is lanes:
            return []  # said once; only a change is news
        self._logged = lanes
        if lanes:
            return [Log("INFO", f"{conn.name}: lanes supported ({reason}); each turn takes its own lane")]
        what = "one response at a time per connection; a barge-in moves the next turn to a warm spare connection"
        return [Log("INFO", f"{conn.name}: no lanes ({reason}): {what}")]


def about_stream_id(error: ev.ServerError) -> bool:
    """Whether ``error`` is about the ``stream_id`` field."""
    return error.param == "stream_id" or "stream_id" in error.message.lower()


def _refused(conn: ConnectionState[Response]) -> Response | None:
    """The oldest request a ``stream_id`` error answers: sent with a lane, not started."""
    return next(
        (
            r
            for r in conn.router.responses()
            if r.sent_lane is not None and not r.created and r.outcome is Outcome.PENDING
        ),
        None,
    )
