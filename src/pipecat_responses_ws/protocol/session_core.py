"""What every part of the client's session shares: its state, and the two ways a response ends
for its owner, told how it ended (:meth:`SessionCore._end`) or let go of on a barge-in
(:meth:`SessionCore.abandon`), with the ``response.cancel`` that may follow.

The session (:mod:`.session`) builds on this: what the server said, and (:mod:`.failures`) what
ends responses before their own end does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import wire
from .actions import Action, Deliver, Log, ReleaseToolResults, Retire, SendEvent
from .connection import GIVEN_UP, ConnectionState, ConnectionStatus
from .errors import ResponsesWSError
from .response import ENDINGS, Failed, Finished, Happening, Outcome, Phase, Response, Retry, ToolCallReady
from .tool_results import ToolResultGate

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


class SessionCore:
    """The session's state, and how a response ends for its owner."""

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
        # (then a barge-in without lanes can stay on its connection).
        self.cancel_honoured: bool | None = None

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
            take_off_lane(response)
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
            give_up(conn, ConnectionStatus.RETIRING)
            return [Retire(conn, "barge-in: closing the response's stream", soon=True)]
        if self.cancel_honoured and self.options.send_cancel and conn.cancel_supported:
            self.stats.barge_ins_on_same_connection += 1
            return []
        self.stats.barge_ins_to_spare += 1
        give_up(conn, ConnectionStatus.LEFT_ON_BARGE_IN)
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

    # -- telling the owner ---------------------------------------------------------------------

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


def take_off_lane(response: Response) -> None:
    """``response``'s lane no longer waits for it: its end was read, it was never sent, or nothing
    more of it will come."""
    response.become(Phase.OFF_LANE)
    response.connection.router.release(response)


def give_up(conn: ConnectionState[Response], status: ConnectionStatus) -> None:
    """``conn`` takes nothing new; one the server already called spent stays so."""
    if conn.usable:
        conn.become(status)


def name_of(response: Response) -> str:
    """How a response is named in log lines: its id once known, and its lane."""
    lane = f" on lane {response.lane}" if response.lane else ""
    return f"response {response.response_id or '(not yet created)'}{lane}"
