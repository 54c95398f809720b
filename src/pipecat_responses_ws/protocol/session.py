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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from . import events as ev
from . import wire
from .actions import Action, Deliver, Log, ReleaseToolResults, ReportError, Retire, SendEvent, Touch
from .chain import InputPlan, ServerChains
from .connection import GIVEN_UP, ConnectionState, ConnectionStatus
from .errors import (
    AuthenticationError,
    ConnectionLost,
    PhaseTimeout,
    PreviousResponseNotFound,
    ResponsesWSError,
    describe_close,
)
from .response import (
    ENDINGS,
    Failed,
    Finished,
    Happening,
    Outcome,
    Phase,
    Response,
    Retried,
    Retry,
    Skipped,
    ToolCallReady,
)
from .tool_results import ToolResultGate

# How long after sending response.cancel a connection-level error is taken as its rejection.
CANCEL_REJECTION_WINDOW_SECS = 2.0
# An abandoned response that has not ended after this long never will: its lane is retired.
STUCK_LANE_SECS = 60.0
# A cancelled answer that ends this soon shows the endpoint honours response.cancel.
CANCEL_HONOURED_WITHIN_SECS = 0.5
# Events by which a server answers a create: one without ``stream_id`` shows the server ignores it.
_ANSWER_STARTS = (ev.ResponseCreated, ev.ResponseProgress, ev.OutputItemAdded)
# What only holds its place in a response's order: said when it came, and not acted on.
_SKIPPED = (ev.MalformedEvent, ev.UnknownEvent)
# Slots of a connection's in-flight cap an inference leaves to the conversation, so a burst of
# inferences never moves the next turn to a cold connection.
TURN_RESERVED_SLOTS = 1
# Codes that end the connection's usefulness: nothing was generated for the request they answer.
_CONNECTION_SPENT = frozenset({wire.CONNECTION_LIMIT_REACHED, wire.STREAM_LIMIT_REACHED})

# -- state ----------------------------------------------------------------------------------------


@dataclass
class ServiceStats:
    """Figures no peer reports, readable by users and the harness (``service.stats``)."""

    turns: int = 0
    incremental_turns: int = 0
    full_context_fallbacks: int = 0
    transparent_retries: int = 0
    input_items_sent: int = 0
    bytes_sent: int = 0
    events_skipped: int = 0  # malformed, unknown, duplicated or stray server events
    stray_events: int = 0  # events without stream_id on connections whose lanes work: dropped
    events_reordered: int = 0  # events that came early and were acted on once those before them came
    sequence_gaps: int = 0  # runs of events of a response that never came
    # Barge-ins on connections without lanes: which path each took, and what moving cost.
    barge_ins_to_spare: int = 0
    barge_ins_on_same_connection: int = 0
    # Connections left on a barge-in that no spare could take over, used again once the
    # abandoned answer had ended (before a fresh connection could be opened).
    connections_taken_back: int = 0
    input_items_resent: int = 0  # sent again in full on a spare that took over
    bytes_resent: int = 0
    out_of_band_inferences: int = 0  # run_inference calls (summaries, classifiers, judges)
    timeout_retries: int = 0  # turns sent again after no first event (retry_on_timeout)
    # Text: deltas delivered to turns (counted as each response ends: a word costs no count of
    # its own here), and the LLMTextFrames they went out as (fewer when text that had already
    # arrived was joined, see ``coalesce_text``).
    text_deltas_received: int = 0
    text_frames_pushed: int = 0


@dataclass(frozen=True)
class SessionOptions:
    """``named_lanes``: ``True`` (the server multiplexes ``stream_id`` lanes), ``False`` (it does not),
    ``None`` (find out per connection: the first request carries a lane, and the server's answer
    tells whether it echoes, ignores or refuses it)."""

    named_lanes: bool | None = None
    pool_size: int = 4
    send_cancel: bool = True
    lane_prefix: str = "lane-"
    # Send a turn again, once, when its first event does not come in time and nothing was spoken.
    retry_on_first_event_timeout: bool = False


class ClientSession:
    """Every decision of the client, for all of its connections."""

    def __init__(
        self, options: SessionOptions | None = None, *, holds_results: Callable[[str], bool] | None = None
    ) -> None:
        """``holds_results(name)``: whether a call of that function is part of its response's group
        (Pipecat's ``cancel_on_interruption``); results of the others pass through at once."""
        self.options = options or SessionOptions()
        self.stats = ServiceStats()
        self.tools = ToolResultGate()
        self._holds_results = holds_results or (lambda _name: True)
        self._serial = 0
        # What the endpoint has shown: whether it stops an answer soon after response.cancel
        # (then a barge-in without lanes can stay on its connection), and its lane support.
        self.cancel_honoured: bool | None = None
        self._lanes_logged: bool | None = None

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

    # -- barge-in -----------------------------------------------------------------------------

    def abandon(self, response: Response, now: float) -> list[Action]:
        """The user barged in (or the turn gave up): let go of ``response`` without waiting.

        Its owner is told it ended first. A response never written is then withdrawn and its lane
        freed at once. A written one is let go of (``Outcome.ABANDONED``): its events are dropped
        as they arrive and its terminal frees the lane, so the next turn never waits for it.
        ``response.cancel`` goes out only when allowed, when this connection's server has not
        rejected it, and once the response id is known (otherwise when its ``response.created``
        shows up). Its tool calls' results are recorded without
        asking the model for a follow-up.
        """
        actions = self._end(response, None)
        phase = response.phase
        if phase is Phase.OFF_LANE:
            return actions
        if phase is Phase.PLANNED:
            _take_off_lane(response)
            return actions
        if response.outcome is not Outcome.ABANDONED:
            response.let_go(now)
            actions += self._cancel(response, now)
            if not response.connection.router.named:
                actions += self._leave_laneless(response.connection)
        return actions

    def _leave_laneless(self, conn: ConnectionState[Response]) -> list[Action]:
        """Without lanes the next request would queue behind the abandoned answer. Stay only where
        the endpoint has shown that it stops an answer soon after a cancel; otherwise a spare takes over."""
        if conn.closed or conn.status in GIVEN_UP:
            return []
        if conn.single_response:
            _give_up(conn, ConnectionStatus.RETIRING)
            return [Retire(conn, "barge-in: closing the response's stream", soon=True)]
        if self.cancel_honoured and self.options.send_cancel and conn.cancel_supported:
            self.stats.barge_ins_on_same_connection += 1
            return []
        self.stats.barge_ins_to_spare += 1
        _give_up(conn, ConnectionStatus.LEFT_ON_BARGE_IN)
        return [Retire(conn, "barge-in on a connection without lanes", soon=True)]

    def take_back(self, conn: ConnectionState[Response]) -> bool:
        """Whether ``conn``, left on a barge-in and still the only connection to be had, may take new
        responses again: yes once the abandoned answer has ended (nothing queues behind it) while the
        connection is open and unspent."""
        if conn.status is not ConnectionStatus.LEFT_ON_BARGE_IN or not conn.is_quiet():
            return False
        conn.become(ConnectionStatus.OPEN)
        self.stats.connections_taken_back += 1
        return True

    def _cancel(self, response: Response, now: float) -> list[Action]:
        conn = response.connection
        if (
            not self.options.send_cancel
            or not conn.cancel_supported
            or conn.closed
            or response.cancel_sent
            or response.response_id is None
        ):
            return []
        response.cancel_sent = True
        conn.last_cancel_at = now
        conn.stats.cancels_sent += 1
        return [SendEvent(conn, {"type": wire.RESPONSE_CANCEL, "response_id": response.response_id})]

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
        if type(event) is ev.TextDelta:
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
            actions += self._learn_lanes(conn, event)
        response = router.owner(event)
        if response is None:
            if router.is_connection_level(event):
                return actions + self._connection_event(conn, event, now)
            return actions  # a lane nobody waits on any more
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
                    Log("INFO", f"{conn.name}: events of {_named(response)} came out of order; acted on in order")
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
        where = f"{conn.name}: {_named(response)} lost {what} on the way"
        if response.generate and response.replay_safe and not response.retried.gap and not response.out_of_band:
            actions: list[Action] = [Log("WARNING", f"{where}; nothing was spoken yet, so the turn goes again")]
            actions += self._end(response, response.retry(f"{_named(response)} lost {what}", after_gap=True))
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
                    _take_off_lane(response)
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
        _take_off_lane(response)
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

    def _request_error(
        self, response: Response, event: ev.ServerError, now: float, actions: list[Action]
    ) -> list[Action]:
        """An error that answers ``response``'s request: its owner hears how it ended; then, if the
        server had created it, it is let go of (whatever else it sends is not to be spoken)."""
        created = response.created
        if not created:
            _take_off_lane(response)  # answered without a response: the lane is free
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

    # -- lanes, found out rather than assumed --------------------------------------------------

    def _learn_lanes(self, conn: ConnectionState[Response], event: ev.ServerEvent) -> list[Action]:
        """What ``event`` shows of lane support, on a connection whose requests carry lanes.

        Only an answer to a create can show that the server ignores ``stream_id``: its
        ``response.created`` (or ``queued``, ``in_progress``, a first item) without one, while no
        event here has carried a lane back. Anything else without a lane is stray, and so is
        everything without one once a lane came back: a connection whose lanes work keeps them.
        """
        if event.stream_id is not None:
            if conn.lanes is None and conn.router.owner(event) is not None:
                conn.lanes = conn.lanes_echoed = True
                return self._lanes_decided(conn, True, "the server echoes stream_id")
            return []
        if isinstance(event, ev.ServerError):
            if not _about_stream_id(event):
                return []  # connection-level: handled as such
            reason = f"the server refuses stream_id ({event.code}: {event.message})"
        elif conn.lanes_echoed or not conn.router.in_flight or not isinstance(event, _ANSWER_STARTS):
            return []  # stray: dropped as a connection-level event
        else:
            reason = f"the server ignores stream_id (it answered with {ev.event_name(event)} without one)"
        if self.options.named_lanes is True:
            return self._lanes_forced_in_vain(conn, event, reason)
        conn.lanes = False
        for response in conn.router.go_lane_free():
            response.lane = None  # what it ends with is the connection's one cached response
        conn.chains.keep_latest()
        return self._lanes_decided(conn, False, reason)

    def _lanes_forced_in_vain(
        self, conn: ConnectionState[Response], event: ev.ServerEvent, reason: str
    ) -> list[Action]:
        """``lanes=True`` on a server that ignores or refuses ``stream_id``: the request it answers
        ends now, saying why and what to set, rather than after its first-event timeout."""
        advice = "this endpoint has no lanes: pass lanes='auto' (the default) or lanes=False"
        actions: list[Action] = []
        if not conn.warned_laneless:
            conn.warned_laneless = True
            actions.append(Log("WARNING", f"{conn.name}: {reason}; {advice}"))
        refused = self._refused(conn)
        if refused is not None:
            _take_off_lane(refused)
            code = event.code if isinstance(event, ev.ServerError) else None
            actions += self._end(refused, Failed(ResponsesWSError(f"{reason}; {advice}", code=code, lane=refused.lane)))
        return actions

    def _lanes_decided(self, conn: ConnectionState[Response], lanes: bool, reason: str) -> list[Action]:
        if self._lanes_logged is lanes:
            return []  # said once; only a change is news
        self._lanes_logged = lanes
        if lanes:
            return [Log("INFO", f"{conn.name}: lanes supported ({reason}); each turn takes its own lane")]
        what = "one response at a time per connection; a barge-in moves the next turn to a warm spare connection"
        return [Log("INFO", f"{conn.name}: no lanes ({reason}): {what}")]

    def _refused(self, conn: ConnectionState[Response]) -> Response | None:
        """The oldest request a ``stream_id`` error answers: sent with a lane, not started."""
        return next(
            (
                r
                for r in conn.router.responses()
                if r.sent_lane is not None and not r.created and r.outcome is Outcome.PENDING
            ),
            None,
        )

    def _refused_lane(self, conn: ConnectionState[Response]) -> list[Action]:
        """A request refused for its ``stream_id`` goes again on the same connection, without one."""
        refused = self._refused(conn)
        if refused is None:
            return []
        _take_off_lane(refused)
        return self._end(refused, refused.retry("the server refuses stream_id; sending it again without one"))

    def _connection_event(self, conn: ConnectionState[Response], event: ev.ServerEvent, now: float) -> list[Action]:
        if not isinstance(event, ev.ServerError):
            return self._stray(conn, event)
        if _about_stream_id(event) and not conn.router.named:
            return self._refused_lane(conn)
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
            _take_off_lane(response)  # the server will not run it
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
            _take_off_lane(response)
        error = ConnectionLost(reason, phase="send", lane=response.lane)
        actions = self._end(response, self._replay_or_fail(response, reason, error))
        # Nothing more goes on it, so the resend really takes a fresh connection.
        return actions + self.closed(conn, None, reason, now)

    def refused(self, response: Response, error: ev.ServerError, now: float) -> list[Action]:
        """Over HTTP: the request was answered with an error status instead of a stream, so
        nothing was generated; ``error`` carries the status and the API's error body."""
        if error.status in (401, 403):
            _take_off_lane(response)
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
            _take_off_lane(response)
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

    # -- helpers ------------------------------------------------------------------------------

    def _replay_or_fail(self, response: Response, reason: str, error: ResponsesWSError) -> Retry | Failed:
        if response.generate and response.replay_safe and not response.retried.transport:
            self.stats.transparent_retries += 1
            return response.retry(reason, full_context=True, fresh_connection=True)
        return Failed(error)

    def _end(self, response: Response, happening: Happening | None) -> list[Action]:
        """Deliver ``happening``; when it ends the response (or on abandon, ``None``), settle its tools."""
        actions: list[Action] = []
        if happening is not None:
            if response.outcome is not Outcome.PENDING:
                return actions
            if isinstance(happening, ToolCallReady):
                if response.out_of_band:
                    # An inference answers with text; a call it makes is not the conversation's to run.
                    name = response.connection.name
                    return [Log("INFO", f"{name}: an inference asked for {happening.name}; not run")]
                response.calls_started += 1
                if self._holds_results(happening.name):
                    # Registered now, in event order, so the group closes after every call of it.
                    self.tools.add_call(response.key, happening.call_id)
            actions.append(Deliver(response, happening))
            if not isinstance(happening, ENDINGS):
                return actions
        elif response.outcome is not Outcome.PENDING:
            return actions
        response.become(Outcome.ENDED)
        response.connection.router.hush(response)
        if not response.out_of_band:  # an inference's text is read from its output, never pushed
            self.stats.text_deltas_received += response.text_deltas  # all it will have: it is over
        released = self.tools.close(response.key, run_llm=isinstance(happening, Finished))
        if released:
            actions.append(ReleaseToolResults(released))
        return actions


def _take_off_lane(response: Response) -> None:
    """``response``'s lane no longer waits for it: its end was read, it was never sent, or nothing
    more of it will come."""
    response.become(Phase.OFF_LANE)
    response.connection.router.release(response)


def _give_up(conn: ConnectionState[Response], status: ConnectionStatus) -> None:
    """``conn`` takes nothing new; one the server already called spent stays so."""
    if conn.usable:
        conn.become(status)


def _named(response: Response) -> str:
    """How a response is named in log lines: its id once known, and its lane."""
    lane = f" on lane {response.lane}" if response.lane else ""
    return f"response {response.response_id or '(not yet created)'}{lane}"


def _about_stream_id(error: ev.ServerError) -> bool:
    return error.param == "stream_id" or "stream_id" in error.message.lower()


def _int(value: Any) -> int:
    return value if type(value) is int else 0
