"""The client's decisions, without I/O: what happened in, what to do out.

In the manner of ``h11.Connection``: the I/O layer (``client/``) tells the session what happened
(a server event arrived, a response is wanted, the user barged in, a wait timed out, a send
failed, a socket closed) and carries out the actions it gets back (deliver a happening to the
response's owner, send an event, log a line, retire a connection, report an error, release tool
results). Nothing here awaits, reads a clock or touches a socket; time is passed in.

Everything about a response's fate is decided here: which lane it takes and which cached
response it continues (:mod:`.lanes`, :mod:`.chain`), which events are its own
(:mod:`.response`), when ``response.cancel`` is sent, when a turn may be sent again (only
before anything was audible and before any tool started), and when a connection is done.
What happens on barge-in is :meth:`ClientSession.abandon`. The session is the one writer of a
response's lifecycle (its ``Phase`` and ``Outcome``) and of a connection's status.

One class, written in layers, one module each: :mod:`.session_core` (the state every layer shares,
and how a response ends for its owner, barge-in included), :mod:`.failures` (what ends responses
before their own end does), :mod:`.lane_support` (what the endpoint shows of lanes) and, here,
starting a response and acting on what the server said.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from . import events as ev
from . import wire
from .actions import Action, Deliver, Log, Retire, Touch
from .chain import InputPlan, ServerChains
from .connection import ConnectionState, ConnectionStatus
from .errors import ResponsesWSError
from .events import TextDelta
from .failures import SessionFailures
from .response import Failed, Finished, Happening, Outcome, Phase, Response, Retried, Retry, Skipped
from .session_core import name_of, take_off_lane

# An abandoned response that has not ended after this long never will: its lane is retired.
STUCK_LANE_SECS = 60.0
# A cancelled answer that ends this soon shows the endpoint honours response.cancel.
CANCEL_HONOURED_WITHIN_SECS = 0.5
# What only holds its place in a response's order: said when it came, and not acted on.
_SKIPPED = (ev.MalformedEvent, ev.UnknownEvent)
# Slots of a connection's in-flight cap an inference leaves to the conversation, so a burst of
# inferences never moves the next turn to a cold connection.
TURN_RESERVED_SLOTS = 1


class ClientSession(SessionFailures):
    """Every decision of the client, for all of its connections."""

    def connection(self, name: str) -> ConnectionState[Response]:
        """A new connection's state (its socket is the I/O layer's)."""
        return self._connection_state(name, self.options.named_lanes)

    def _connection_state(self, name: str, named_lanes: bool | None) -> ConnectionState[Response]:
        options = self.options
        return ConnectionState(
            name, named_lanes=named_lanes, lane_prefix=options.lane_prefix, pool_size=options.pool_size
        )

    def http_request(self, name: str, chains: ServerChains | None = None) -> ConnectionState[Response]:
        """The state of one HTTP request: one response, no lanes, no ``response.cancel`` (a barge-in
        closes the stream, which is all the server needs to stop). ``chains``: what the server
        stores across requests (``store: true``), shared by every request; without it each
        request knows nothing, so it sends the full context."""
        conn = self._connection_state(name, named_lanes=False)
        conn.single_response = True
        conn.cancel_supported = False
        if chains is not None:
            conn.chains = chains
        return conn

    # -- starting a response ------------------------------------------------------------------

    def open_response(
        self,
        conn: ConnectionState[Response],
        full_input: list[dict[str, Any]],
        *,
        retry: Retry | None = None,
        generate: bool = True,
        out_of_band: bool = False,
    ) -> Response | None:
        """A response on a free lane of ``conn``, continuing the best cached parent; None if no
        lane is free (a turn moves to a fresh connection, an inference waits for a slot).

        ``out_of_band``: a one-shot inference on a context of its own. It goes in full (its context
        is not the conversation's), and what it leaves in the lane's cache is never continued."""
        if not conn.usable:
            return None
        if out_of_band and conn.router.in_flight >= conn.router.max_in_flight - TURN_RESERVED_SLOTS:
            return None  # the caller waits for a slot: the last one is the next turn's
        full = out_of_band or (retry is not None and retry.full_context)
        plan = InputPlan.whole(full_input) if full else conn.chains.plan(full_input)
        retried = retry.retried if retry is not None else Retried()
        if full:
            retried = replace(retried, full_context=True)

        def make(lane: str | None) -> Response:
            self._serial += 1
            return Response(conn, lane, self._serial, plan, generate=generate, out_of_band=out_of_band, retried=retried)

        avoid = plan.parent.lane if plan.parent is not None else None
        response = conn.router.open(make, conn.chains.staleness, avoid=avoid)
        if response is not None:
            # Whatever the lane cached is replaced by this response.
            conn.chains.claim_lane(response.lane)
        return response

    def create_event(self, response: Response, fields: dict[str, Any]) -> dict[str, Any]:
        """The ``response.create`` for ``response``. From here on it counts as sent: once the frame
        may have left, the response must be abandoned, never silently forgotten."""
        plan = response.plan
        payload: dict[str, Any] = {"type": wire.RESPONSE_CREATE, **fields, "input": plan.input}
        if response.lane is not None:
            payload["stream_id"] = response.sent_lane = response.lane
        if plan.previous_response_id:
            payload["previous_response_id"] = plan.previous_response_id
        if not response.generate:
            payload["generate"] = False
        elif response.out_of_band:
            self.stats.out_of_band_inferences += 1
        else:
            if plan.parent is not None and plan.parent.segments:
                self.stats.incremental_turns += 1
            self.stats.input_items_sent += len(plan.input)
            conn = response.connection
            if conn.status is ConnectionStatus.TAKEN_OVER:
                # What moving to the spare cost: this context went again, in full.
                conn.become(ConnectionStatus.OPEN)
                response.resends_context = True
                self.stats.input_items_resent += len(plan.input)
        response.become(Phase.SENT)
        response.strays_before = response.connection.stray_events
        return payload

    def sent(self, response: Response, size: int) -> None:
        if response.generate:
            self.stats.bytes_sent += size
            if response.resends_context:
                self.stats.bytes_resent += size

    def taken_over(self, conn: ConnectionState[Response]) -> None:
        """``conn``, a warm spare, took over from a connection given up on a barge-in."""
        conn.become(ConnectionStatus.TAKEN_OVER)

    def retire_stuck(self, conn: ConnectionState[Response], now: float) -> list[Action]:
        stuck = conn.router.retire_stuck(now, STUCK_LANE_SECS)
        if not stuck:
            return []
        for response in stuck:
            response.become(Phase.OFF_LANE)  # the router let go of their lanes
        if conn.status is ConnectionStatus.LEFT_ON_BARGE_IN:
            # Never taken back: its lanes look quiet, but the server may still be running the answer.
            conn.become(ConnectionStatus.RETIRING)
        elif not conn.router.named and conn.usable:
            # Without lanes the server still runs it ahead of anything sent next: give the connection up.
            conn.become(ConnectionStatus.RETIRING)
            reason = "an abandoned response never ended on a connection without lanes"
            return [Log("WARNING", f"{conn.name}: {reason}; retired"), Retire(conn, reason, soon=True)]
        return [
            Log("WARNING", f"{conn.name}: lane {r.lane} never ended its abandoned response; retired") for r in stuck
        ]

    # -- what the server said -----------------------------------------------------------------

    def dispatch(self, conn: ConnectionState[Response], event: ev.ServerEvent) -> Response | None:
        """The response whose owner is simply handed ``event``, when that is all it calls for (a
        text delta, one per word, decided with one lookup and no list of actions); None when
        ``event`` is :meth:`receive`'s.

        It is :meth:`_text`'s rule where its answer is already known: ``router.speaking`` holds,
        per lane, the response whose words :meth:`_text` last handed to its owner, created and
        still pending at the head of its lane (it leaves there when any of that stops being
        true). A word for it that is due next in its order and not empty is the owner's.
        Anything else (a lane still being learned, a response not yet speaking, a sequence number
        out of order, empty text, any other event) takes the full path, which decides the same.
        """
        if event.__class__ is TextDelta:  # ``type(event) is``, less a call: once per event
            response = conn.router.speaking.get(event.stream_id)
            # ``take_sequence``, for the one case it takes here: the number due next, nothing held.
            if response is not None and event.sequence_number == response.next_sequence and event.delta:
                response.next_sequence += 1
                response.text_deltas += 1
                return response
        return None

    def receive(self, conn: ConnectionState[Response], event: ev.ServerEvent, now: float) -> list[Action]:
        """The actions one server event calls for."""
        if isinstance(event, _SKIPPED):
            return self._skipped(conn, event, now)
        actions: list[Action] = []
        router = conn.router
        if router.named and (conn.lanes is None or event.stream_id is None):
            actions += self.lane_support.learn(conn, event)
        response = router.owner(event)
        if response is None:
            if router.is_connection_level(event):
                return actions + self._connection_event(conn, event, now)
            return actions  # a lane nobody waits on any more
        if (
            isinstance(event, ev.ItemEvent)
            and response.outcome is Outcome.PENDING
            and response.created
            and response.take_sequence(event.sequence_number)
        ):
            # After words, the most frequent events (parts, ``*.done``, a call's argument deltas)
            # only show that a response is alive. For a created, pending response, due this number
            # next, that is all ``accept`` and ``_act`` below make of one, so it is said at once;
            # anything else (an event early or late, a response abandoned or not yet created) goes on.
            actions.append(Touch(response))
            return actions
        reason = response.accept(event)
        if (
            reason is None
            and response.outcome is not Outcome.ABANDONED  # nothing of it is spoken: its order does not matter
            and not (type(event) is ev.ServerError or response.take_sequence(event.sequence_number))
        ):
            return actions + self._reordered(conn, response, event, now)
        if reason is not None:
            self.stats.events_skipped += 1
            level = "DEBUG" if response.outcome is Outcome.ABANDONED else "WARNING"
            return [*actions, Log(level, f"{conn.name}: skipped an event on lane {response.lane}: {reason}")]
        return self._act(conn, response, event, now, actions)

    def _skipped(
        self, conn: ConnectionState[Response], event: ev.MalformedEvent | ev.UnknownEvent, now: float
    ) -> list[Action]:
        """A malformed or unknown event: said, and skipped. Numbered within a response, it still
        holds its place in that response's order, or the events after it would wait for it as lost."""
        self.stats.events_skipped += 1
        actions: list[Action] = []
        if isinstance(event, ev.MalformedEvent):
            lane = f" on lane {event.stream_id}" if event.stream_id else ""
            message = f"{conn.name}: skipped a malformed server event{lane}: {event.reason}: {event.excerpt!r}"
            actions.append(Log("WARNING", message))
        elif event.type not in conn.unknown_types:
            conn.unknown_types.add(event.type)
            actions.append(Log("INFO", f"{conn.name}: skipped {event.type!r}, an event type this client does not know"))
        if event.sequence_number is None or (conn.router.named and event.stream_id is None):
            return actions
        response = conn.router.owner(event)
        if response is None or response.outcome is Outcome.ABANDONED or response.take_sequence(event.sequence_number):
            return actions
        return actions + self._reordered(conn, response, event, now)

    def _reordered(
        self, conn: ConnectionState[Response], response: Response, event: ev.ServerEvent, now: float
    ) -> list[Action]:
        """``event`` is not the one due next on its response: act on what is now in order."""
        ordered = response.order(event)
        if ordered.skipped is not None:
            self.stats.events_skipped += 1
            return [Log("WARNING", f"{conn.name}: skipped an event on lane {response.lane}: {ordered.skipped}")]
        actions: list[Action] = []
        if ordered.lost:
            # Sent again or not, what was held is acted on: an abandoned response's end frees its lane.
            actions += self._lost(conn, response, ordered.lost, now)
        elif ordered.events and len(ordered.events) > 1:
            self.stats.events_reordered += len(ordered.events) - 1
            if not conn.warned_reordered:
                conn.warned_reordered = True
                actions.append(
                    Log("INFO", f"{conn.name}: events of {name_of(response)} came out of order; acted on in order")
                )
        if not ordered.events:
            actions.append(Touch(response))  # held: a sign of life all the same
        for early in ordered.events:
            if response.phase is Phase.OFF_LANE:
                break  # its end came: what follows it in its order is nobody's
            if isinstance(early, _SKIPPED):
                continue  # skipped already; it only held its place
            actions = self._act(conn, response, early, now, actions)
        return actions

    def _lost(
        self, conn: ConnectionState[Response], response: Response, lost: tuple[int, ...], now: float
    ) -> list[Action]:
        """Events of ``response`` never came: say which, and send the turn again while nothing was spoken."""
        self.stats.sequence_gaps += 1
        numbers = ", ".join(str(n) for n in lost)
        what = f"{len(lost)} event{'s' if len(lost) > 1 else ''} (sequence_number {numbers})"
        where = f"{conn.name}: {name_of(response)} lost {what} on the way"
        if response.generate and response.replay_safe and not response.retried.gap and not response.out_of_band:
            actions: list[Action] = [Log("WARNING", f"{where}; nothing was spoken yet, so the turn goes again")]
            actions += self._end(response, response.retry(f"{name_of(response)} lost {what}", after_gap=True))
            return actions + self.abandon(response, now)
        return [Log("WARNING", f"{where}: the answer may miss what they carried (words, or a call)")]

    def _act(
        self,
        conn: ConnectionState[Response],
        response: Response,
        event: ev.ServerEvent,
        now: float,
        learned: list[Action],
    ) -> list[Action]:
        """What ``event``, in its response's order, amounts to."""
        if type(event) is ev.TextDelta:
            if self._text(response, event, learned) is response:
                learned.append(Deliver(response, event))
            return learned
        if isinstance(event, ev.ItemEvent):
            # Parts, ``*.done`` and argument deltas change nothing here: only a sign of life.
            if response.outcome is not Outcome.ABANDONED:
                learned.append(Touch(response))
            return learned
        abandoned = response.outcome is Outcome.ABANDONED
        happening = response.feed(event)
        actions: list[Action] = learned
        if isinstance(event, ev.ResponseCreated):
            if event.stream_id is not None:
                conn.lanes_echoed = True
            if abandoned:
                actions += self._cancel(response, now)  # abandoned before its id was known
        elif isinstance(event, ev.ResponseEnded):
            happening = self._ended(response, event, now)
        elif isinstance(event, ev.ServerError):
            if abandoned:
                if not response.created:
                    take_off_lane(response)
                return actions
            return self._request_error(response, event, now, actions)
        if abandoned:
            return actions
        if happening is None:
            actions.append(Touch(response))
            return actions
        if isinstance(happening, Skipped):
            self.stats.events_skipped += 1
            actions.append(Log("WARNING", f"{conn.name}: skipped an event on lane {response.lane}: {happening.reason}"))
            return actions
        actions += self._end(response, happening)
        return actions

    def _text(self, response: Response, delta: ev.TextDelta, actions: list[Action]) -> Response | list[Action]:
        """The rule for a text delta of ``response`` in its order, the one place it is decided (for
        :meth:`receive`, and for :meth:`dispatch` through ``router.speaking``): ``response`` when the
        delta is words for its owner (then counted); otherwise ``actions``, with a sign of life for
        empty text, and nothing for the text of a response abandoned or ended (nobody is to hear it)."""
        if response.outcome is not Outcome.PENDING:
            return actions
        if not delta.delta:
            actions.append(Touch(response))
            return actions
        response.text_deltas += 1
        if response.out_of_band:  # an inference's text is read from its output, never pushed
            return response
        conn = response.connection
        router = conn.router
        if response.response_id is not None and not (router.named and conn.lanes is None):
            # Its next words need no more than a lookup (``dispatch``), until it stops being pending
            # (``_end``) or leaves its lane (``LaneRouter.release``).
            router.speaking[response.lane] = response
        return response

    def _ended(self, response: Response, event: ev.ResponseEnded, now: float) -> Happening | None:
        conn = response.connection
        take_off_lane(response)
        if response.outcome is Outcome.ABANDONED:
            usage = event.usage or {}
            conn.stats.abandoned_output_tokens += _int(usage.get("output_tokens"))
            if response.abandoned_at is not None:
                conn.stats.cancel_to_terminal_secs.append(now - response.abandoned_at)
                if response.cancel_sent:
                    self.cancel_honoured = (
                        event.status != "completed" and now - response.abandoned_at <= CANCEL_HONOURED_WITHIN_SECS
                    )
            return None
        if event.status == "completed":
            if event.response_id and not response.out_of_band:
                conn.chains.record(event.response_id, response.lane, response.plan, list(event.output))
            return Finished(event.response_id, event.usage, event.output)
        if event.status == "failed" and response.plan.parent is not None:
            conn.chains.forget(response.plan.parent.response_id)
        error = ResponsesWSError(
            event.error_message or f"response {event.status}",
            code=event.error_code,
            response_id=event.response_id or response.response_id,
            lane=response.lane,
        )
        return Failed(error, event.usage)


def _int(value: Any) -> int:
    return value if type(value) is int else 0
