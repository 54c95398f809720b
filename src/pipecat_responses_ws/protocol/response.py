"""One response as the client follows it: which events belong to it, and what they amount to.

A ``Response`` is one ``response.create`` on one connection, from its plan to its end. It takes
the typed events its lane delivers and turns each into a *happening* for its owner (text to
speak, a function call whose arguments are final, how it ended), or into a reason to skip the
event. The rules that keep a misbehaving server from making us speak twice live here:

- ``sequence_number`` counts up by one within a response: an event that repeats one (a proxy
  that sends a frame twice) or goes back is skipped; one that comes early is held until those
  before it arrive, so text swapped on the way is spoken in order; when they do not come within
  ``REORDER_WINDOW`` events (or the terminal comes first), what is held goes on and the gap is
  reported (the session says what was lost, or sends the turn again if nothing was spoken);
- a lifecycle event naming another response than the one created here is not its own;
- an event belongs to a response only between its ``response.created`` and its terminal
  (PROTOCOL.md §3.3). Before ``created``, an item event is accepted only for an item this
  response announced with ``output_item.added``, so a server that never sends ``created`` still
  works and a stray delta left over on the lane is not spoken;
- a function call is ready once, at its first ``output_item.done``; a call whose item never
  completed, or whose arguments do not parse, is never ready.

Its lifecycle is two states, each moving along a table as ``h11``'s do (and as a connection's
``ConnectionStatus`` does): its :class:`Phase` on the lane (planned, sent, off its lane) and its
:class:`Outcome` for the owner (pending, ended, abandoned). Only the session moves them, through
:meth:`Response.become` and :meth:`Response.let_go`; a move the table does not allow raises
``ResponseStateError`` naming the response and both states. Everything else only reads them.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeGuard

from . import events as ev
from .chain import InputPlan
from .errors import ResponsesWSError

if TYPE_CHECKING:
    # A response knows its connection; the connection's lanes hold responses of a type they are
    # given (``ConnectionState[Response]``), so connection.py never names this module.
    from .connection import ConnectionState


@dataclass(frozen=True, slots=True)
class ReasoningItem:
    """A finished reasoning item (its encrypted content is carried into the context)."""

    item: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolCallAnnounced:
    call_id: str
    name: str


@dataclass(frozen=True, slots=True)
class ToolCallReady:
    call_id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolCallRejected:
    call_id: str
    name: str
    reason: str


@dataclass(frozen=True, slots=True)
class Finished:
    """The response completed."""

    response_id: str | None
    usage: dict[str, Any] | None
    output: tuple[dict[str, Any], ...]


@dataclass(frozen=True, slots=True)
class Retried:
    """The kinds of retry a turn has had: each is made once per turn."""

    full_context: bool = False
    transport: bool = False
    timeout: bool = False
    gap: bool = False


@dataclass(frozen=True, slots=True)
class Retry:
    """The response is over without anything audible or any tool run: send the turn again.

    ``full_context``: without ``previous_response_id``; ``fresh_connection``: this connection is
    retired, so the next attempt goes to a new one; ``after_timeout``: its first event never came;
    ``after_gap``: events of it never came (a gap in its ``sequence_number``). ``earlier``: what
    the turn's attempts so far had been through, so that the next attempt needs nothing but this.
    """

    reason: str
    full_context: bool = False
    fresh_connection: bool = False
    after_timeout: bool = False
    after_gap: bool = False
    earlier: Retried = Retried()

    @property
    def retried(self) -> Retried:
        """What the next attempt will have been through."""
        earlier = self.earlier
        return Retried(
            full_context=earlier.full_context or self.full_context,
            transport=earlier.transport or self.fresh_connection,
            timeout=earlier.timeout or self.after_timeout,
            gap=earlier.gap or self.after_gap,
        )


@dataclass(frozen=True, slots=True)
class Failed:
    """The response is over and cannot be replayed: the turn ends with ``error``."""

    error: ResponsesWSError
    usage: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Skipped:
    """An event the response refuses, with the reason the reader logs."""

    reason: str


Happening = (
    ev.TextDelta
    | ev.ReasoningDelta
    | ReasoningItem
    | ToolCallAnnounced
    | ToolCallReady
    | ToolCallRejected
    | Finished
    | Retry
    | Failed
)
# Happenings after which the owner expects nothing more of this response.
ENDINGS = (Finished, Retry, Failed)

# Events held behind a sequence gap at most, before the gap is taken as lost: swaps on the way
# are a few frames apart, and a real loss must not hold text back for long.
REORDER_WINDOW = 8


@dataclass(frozen=True, slots=True)
class Ordered:
    """What an event out of the text path's order amounts to: the events to act on now, in order
    (none while it is held), the sequence numbers given up as lost, or why it is skipped."""

    events: tuple[ev.ServerEvent, ...] = ()
    lost: tuple[int, ...] = ()
    skipped: str | None = None


# Item events that may precede ``response.created`` only for an item the response announced.
_ITEM_EVENTS = (ev.TextDelta, ev.ReasoningDelta, ev.ItemEvent, ev.OutputItemDone)
# Events that name the response they belong to.
_LIFECYCLE_EVENTS = (ev.ResponseCreated, ev.ResponseProgress, ev.ResponseEnded)


def _names_another(named: str | None, known: str | None) -> bool:
    return named is not None and known is not None and named != known


class Phase(enum.Enum):
    """Where a response stands on its lane (without lanes, the connection's one queue)."""

    PLANNED = "planned"  # holds its lane; its create has not been written
    SENT = "sent"  # its create may have left: it must be let go of, never silently forgotten
    OFF_LANE = "off its lane"  # its lane no longer waits for it: its end was read, or it was never sent


class Outcome(enum.Enum):
    """What a response's owner knows of it."""

    PENDING = "pending"  # the owner waits for how it ends
    ENDED = "ended"  # the owner was told how it ended (or gave up on it)
    # Let go of while the server still ran it: its events are dropped as they come, and a
    # ``response.cancel`` may go out. Always after ``ENDED``: the owner hears its end first.
    ABANDONED = "abandoned"


# Where each state may go next; anything else is a bug in the session, said as such.
_MOVES: dict[Phase | Outcome, frozenset[Phase | Outcome]] = {
    Phase.PLANNED: frozenset({Phase.SENT, Phase.OFF_LANE}),
    Phase.SENT: frozenset({Phase.OFF_LANE}),
    Phase.OFF_LANE: frozenset(),
    Outcome.PENDING: frozenset({Outcome.ENDED}),
    Outcome.ENDED: frozenset({Outcome.ABANDONED}),
    Outcome.ABANDONED: frozenset(),
}


class ResponseStateError(RuntimeError):
    """The session asked for a move the response's state table does not allow."""


class Owner(Protocol):
    """What the I/O layer hangs on a response (``client.driver.EventQueue``) and carries the
    session's ``Deliver`` and ``Touch`` actions to. The session never calls it.

    ``deliver`` queues a happening, or returns True for text the reader is to hand straight to
    ``express``, the owner being ``parked`` (``deliver_text``: the same for a text delta); ``fail``
    hands the owner what that raised.
    """

    express: Callable[[ev.TextDelta], Awaitable[None]] | None
    coalesce: bool

    @property
    def parked(self) -> bool: ...

    def deliver(self, happening: Happening) -> TypeGuard[ev.TextDelta]: ...

    def deliver_text(self, text: ev.TextDelta) -> bool: ...

    def put(self, happening: Happening) -> None: ...

    def touch(self) -> None: ...

    def fail(self, error: BaseException) -> None: ...


@dataclass(eq=False)
class Response:
    """One ``response.create`` on one connection and what the client knows of it."""

    connection: ConnectionState[Response]
    lane: str | None
    serial: int
    plan: InputPlan
    generate: bool = True
    # A one-shot inference beside the conversation (``run_inference``): sent in full, never a
    # parent of a turn, its tool calls never run.
    out_of_band: bool = False
    # How the turn got here: a retry inherits what its predecessor already used up.
    retried: Retried = Retried()
    response_id: str | None = None
    # Its lifecycle (see the module's doc): moved by ``become`` and ``let_go`` only, read by all. Plain
    # attributes rather than properties: the text path compares ``outcome`` once per word.
    phase: Phase = Phase.PLANNED
    outcome: Outcome = Outcome.PENDING
    abandoned_at: float | None = None  # when it was let go of (``Outcome.ABANDONED``)
    cancel_sent: bool = False
    text_deltas: int = 0  # text deltas delivered to the owner
    calls_started: int = 0
    resends_context: bool = False  # the first request on a spare that took over
    sent_lane: str | None = None  # the stream_id its create carried
    # The I/O layer's sink for this response's happenings, hung once it takes the response (reading
    # it before then raises AttributeError).
    owner: Owner = field(init=False, repr=False)
    strays_before: int = 0  # the connection's stray events when this response was sent
    # The sequence number due next, which the text path compares a delta's with; -1 while none was
    # seen, or while events are held (then ``_expected`` is the one due and ``_held`` what came early).
    # Public for ``ClientSession.dispatch`` alone, which takes it as ``take_sequence`` would.
    next_sequence: int = -1
    _expected: int = 0
    _held: dict[int, ev.ServerEvent] = field(default_factory=dict)
    _announced: dict[str, tuple[str, str] | None] = field(default_factory=dict)  # item id -> function call
    _done_items: set[str] = field(default_factory=set)
    _ready_calls: set[str] = field(default_factory=set)

    def become(self, state: Phase | Outcome) -> None:
        """Move to ``state``: on the lane (a ``Phase``) or for the owner (an ``Outcome``). Only the
        session calls this."""
        current = self.phase if isinstance(state, Phase) else self.outcome
        if state not in _MOVES[current]:
            raise ResponseStateError(f"{self.key}: a response {current.value} cannot become {state.value}")
        if isinstance(state, Phase):
            self.phase = state
        else:
            self.outcome = state

    def let_go(self, now: float) -> None:
        """Abandoned at ``now``, its owner told already: only the session calls this."""
        self.become(Outcome.ABANDONED)
        self.abandoned_at = now

    @property
    def ended(self) -> bool:
        """Its owner was told how it ended (or gave up on it): nothing more of it is delivered."""
        return self.outcome is not Outcome.PENDING

    @property
    def off_lane(self) -> bool:
        """Its lane no longer waits for it."""
        return self.phase is Phase.OFF_LANE

    @property
    def key(self) -> str:
        """Unique across connections: names the response's group of tool calls."""
        return f"{self.connection.name}/{self.serial}"

    @property
    def created(self) -> bool:
        """Its ``response.created`` came (which is what names it): the lane's events are its own."""
        return self.response_id is not None

    @property
    def text_delivered(self) -> bool:
        return self.text_deltas > 0

    def retry(
        self,
        reason: str,
        *,
        full_context: bool = False,
        fresh_connection: bool = False,
        after_timeout: bool = False,
        after_gap: bool = False,
    ) -> Retry:
        """The decision to send this response's turn again, carrying what the turn went through."""
        return Retry(reason, full_context, fresh_connection, after_timeout, after_gap, earlier=self.retried)

    @property
    def replay_safe(self) -> bool:
        """Nothing audible and no tool has happened: the request may be sent again."""
        return not self.text_delivered and self.calls_started == 0

    def accept(self, event: ev.ServerEvent) -> str | None:
        """Why ``event`` is not this response's to act on, whatever its place in the order; None when it may be."""
        if not self.created and isinstance(event, _ITEM_EVENTS) and event.item_id not in self._announced:
            return (
                f"{ev.event_name(event)} for item {event.item_id!r} before response.created, "
                "and this response never announced that item"
            )
        if isinstance(event, _LIFECYCLE_EVENTS) and _names_another(event.response_id, self.response_id):
            return f"{ev.event_name(event)} of {event.response_id}, not of {self.response_id}"
        return None

    def take_sequence(self, sequence: int | None) -> bool:
        """Whether ``sequence`` is the one due next with nothing held (then it is taken), the first
        numbered one (where this response's count starts), or absent."""
        if sequence == self.next_sequence:
            self.next_sequence = sequence + 1
            return True
        if sequence is None:
            return True
        if self.next_sequence < 0 and not self._held:
            self.next_sequence = sequence + 1
            return True
        return False

    @property
    def held(self) -> int:
        """Events that came early and wait for a gap before them to fill."""
        return len(self._held)

    def order(self, event: ev.ServerEvent) -> Ordered:
        """Where ``event``, refused by :meth:`take_sequence`, falls in the response's order."""
        sequence = event.sequence_number
        assert sequence is not None, "take_sequence takes every event without a number"
        held = self._held
        if not held:
            self._expected = self.next_sequence
        due = self._expected
        if sequence < due or sequence in held:
            return Ordered(skipped=f"{ev.event_name(event)} repeats or goes back in sequence_number ({sequence})")
        self.next_sequence = -1
        held[sequence] = event
        if sequence == due:
            return self._release(due, ())
        if len(held) > REORDER_WINDOW or isinstance(event, ev.ResponseEnded):
            # What is missing is taken as lost: everything held goes on, in order.
            lost = tuple(n for n in range(due, max(held)) if n not in held)
            return self._release(min(held), lost, everything=True)
        return Ordered()

    def _release(self, due: int, lost: tuple[int, ...], *, everything: bool = False) -> Ordered:
        held = self._held
        if everything:
            events = tuple(held.pop(n) for n in sorted(held))
            due = (events[-1].sequence_number or 0) + 1
        else:
            released = []
            while due in held:
                released.append(held.pop(due))
                due += 1
            events = tuple(released)
        if held:
            self._expected = due
        else:
            self.next_sequence = due
        return Ordered(events, lost)

    def feed(self, event: ev.ServerEvent) -> Happening | Skipped | None:
        """What an accepted event other than a text delta amounts to: a happening, a reason to skip
        it, or nothing. Text deltas, one per word, take the session's shorter path."""
        if isinstance(event, ev.OutputItemAdded):
            return self._item_added(event)
        if isinstance(event, ev.OutputItemDone):
            return self._item_done(event)
        if isinstance(event, ev.ReasoningDelta):
            return event if event.delta else None
        if isinstance(event, ev.ResponseCreated):
            self.response_id = event.response_id
        return None

    def _item_added(self, event: ev.OutputItemAdded) -> Happening | None:
        item = event.item
        item_id = event.item_id or ""
        if item.get("type") != "function_call":
            self._announced.setdefault(item_id, None)
            return None
        call = (str(item.get("call_id") or ""), str(item.get("name") or ""))
        self._announced[item_id] = call
        return ToolCallAnnounced(*call)

    def _item_done(self, event: ev.OutputItemDone) -> Happening | Skipped | None:
        item, item_id = event.item, event.item_id or ""
        if item_id and item_id in self._done_items:
            return Skipped(f"output_item.done repeated for item {item_id!r}")
        self._done_items.add(item_id)
        item_type = item.get("type")
        if item_type == "reasoning":
            return ReasoningItem(item)
        if item_type != "function_call":
            return None
        announced = self._announced.get(item_id)
        call_id = str(item.get("call_id") or (announced[0] if announced else ""))
        name = str(item.get("name") or (announced[1] if announced else ""))
        if call_id in self._ready_calls:
            return Skipped(f"function call {call_id!r} finished twice")
        if item.get("status", "completed") != "completed":
            return ToolCallRejected(call_id, name, f"item ended with status {item.get('status')!r}")
        raw = item.get("arguments")
        try:
            arguments = json.loads(raw) if raw else {}
        except (TypeError, json.JSONDecodeError) as e:
            return ToolCallRejected(call_id, name, f"arguments are not valid JSON ({e})")
        except RecursionError:
            return ToolCallRejected(call_id, name, "arguments are JSON nested deeper than the parser can follow")
        if not isinstance(arguments, dict):
            return ToolCallRejected(call_id, name, "arguments are not a JSON object")
        if not call_id or not name:
            return ToolCallRejected(call_id, name, "function call without call_id or name")
        self._ready_calls.add(call_id)
        return ToolCallReady(call_id, name, arguments)
