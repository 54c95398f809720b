"""The connection pool's decisions, without I/O: what happened in, what to do out.

Like the session (and httpcore over h11): the asyncio part (``client/client.py``) tells the pool
what happened (a turn wants a connection, a connection was opened, a connection was given up, a
spare finished or failed its handshake, a connection left on a barge-in went quiet or never did,
time passed) and carries out what it gets back (use this connection, connect, wait, open a
spare, close that one once quiet, take back, rotate, sleep until then). Time is passed in, and
so is the random draw a backoff is spread by.

The policy: the user's turn never pays for a handshake that could have happened earlier. A
connection nearing its age limit is replaced while idle. Without lanes, one warm spare is kept
while the endpoint has not shown that it stops an answer soon after ``response.cancel``, and a
barge-in hands the next turn to it. When no spare can take over, the interrupted connection is
not given up: a fresh one is tried with backoff, and whichever comes first takes the turn, the
fresh one or the old one once its abandoned answer has ended.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from . import wire
from .actions import Log
from .connection import GIVEN_UP, ConnectionState, ConnectionStatus
from .response import Response
from .session import CANCEL_HONOURED_WITHIN_SECS, STUCK_LANE_SECS, ClientSession

CLOSE_OLD_CONNECTION_AFTER_SECS = 30.0
# A connection given up on a barge-in lives this long after the spare took over while the endpoint's
# answer to response.cancel is unknown: long enough to see whether it honours the cancel. Once known,
# the connection is closed at once, which stops the server generating the abandoned answer.
SPARE_GRACE_SECS = CANCEL_HONOURED_WITHIN_SECS
# How often rotation looks again while it waits: for a connection to come, or a turn to end.
NO_CONNECTION_RECHECK_SECS = 0.5
BUSY_RECHECK_SECS = 0.02
ROTATION_FAILED_RETRY_SECS = 1.0


class Pooled(Protocol):
    """A connection as the pool sees it: what the session knows of it, and when it opened."""

    @property
    def state(self) -> ConnectionState[Response]: ...

    @property
    def opened_at(self) -> float: ...


C = TypeVar("C", bound=Pooled)


@dataclass(frozen=True)
class PoolOptions:
    max_connection_age: float = wire.CONNECTION_MAX_AGE_SECS
    rollover_margin: float = 300.0
    reconnect_backoff: tuple[float, float] = (0.25, 8.0)  # first delay, cap


@dataclass
class ClientStats:
    connections: int = 0
    reconnects: int = 0
    rotations: int = 0
    connect_secs: list[float] = field(default_factory=list)
    warm_up_secs: list[float] = field(default_factory=list)
    spares_opened: int = 0  # warm connections kept for barge-ins on endpoints without lanes
    spare_takeovers: int = 0


# -- what to do ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Use(Generic[C]):
    """The turn takes ``connection``."""

    connection: C


@dataclass(frozen=True, slots=True)
class Connect:
    """Make the one attempt at a new current connection (shared by whoever needs one meanwhile)."""


@dataclass(frozen=True, slots=True)
class WaitForChange:
    """The connection left on a barge-in may come back: wait until it does or another is had."""


@dataclass(frozen=True, slots=True)
class Changed:
    """The current connection changed, or one given up may come back: whoever waits looks again."""


@dataclass(frozen=True, slots=True)
class OpenSpare:
    """Open and warm a spare connection in the background; say ``spare_ready`` or ``spare_failed``."""


@dataclass(frozen=True, slots=True)
class CloseWhenQuiet(Generic[C]):
    """``connection`` is retired: close it once nothing is in flight, or after ``grace`` seconds."""

    connection: C
    grace: float


@dataclass(frozen=True, slots=True)
class Close(Generic[C]):
    """Close ``connection`` now."""

    connection: C


@dataclass(frozen=True, slots=True)
class TakeBackWhenQuiet(Generic[C]):
    """Wait until ``connection`` is quiet (or closed), for at most ``within`` seconds; then say
    ``waited``."""

    connection: C
    within: float


@dataclass(frozen=True, slots=True)
class Reconnect:
    """Replace the current connection in the background, backing off between attempts."""


@dataclass(frozen=True, slots=True)
class Rotate:
    """Replace the current connection now, making the new one before breaking the old."""

    reason: str


@dataclass(frozen=True, slots=True)
class SleepUntil:
    at: float


PoolAction = Changed | OpenSpare | CloseWhenQuiet[C] | Close[C] | TakeBackWhenQuiet[C] | Reconnect | Log


class Pool(Generic[C]):
    """Which connection serves, which waits as the spare, and when each goes."""

    def __init__(self, session: ClientSession, options: PoolOptions | None = None, name: str = "responses-ws") -> None:
        self.session = session
        self.options = options or PoolOptions()
        self.stats = ClientStats()
        self.name = name
        self.current: C | None = None
        self.spare: C | None = None
        self.spare_opening = False
        self.closing = False

    # -- ages -------------------------------------------------------------------------------

    def age(self, conn: C, now: float) -> float:
        return now - conn.opened_at if conn.opened_at else 0.0

    def too_old(self, conn: C, now: float) -> bool:
        """Past this point a request could be cut by the limit mid-answer; never start one there.
        Half the margin at most, so idle-time rotation (at the full margin) gets there first and a
        turn does not pay for the handshake itself."""
        options = self.options
        return self.age(conn, now) >= options.max_connection_age - min(5.0, options.rollover_margin / 2)

    def serves(self, conn: C | None, now: float) -> bool:
        return conn is not None and conn.state.usable and not self.too_old(conn, now)

    # -- a turn wants a connection ------------------------------------------------------------

    def acquire(self, now: float) -> Use[C] | Connect | WaitForChange:
        """What a turn that wants a connection does: take the current one, connect, or wait while
        the connection left on a barge-in may still come back (a fresh one is tried meanwhile)."""
        conn = self.current
        if conn is not None and self.serves(conn, now):
            return Use(conn)
        if conn is None or not may_come_back(conn.state):
            return Connect()
        return WaitForChange()

    def connected(self, conn: C, now: float, *, reason: str, if_needed: bool = False) -> tuple[C, list[PoolAction[C]]]:
        """``conn`` opened (and warmed) to replace the current connection: make-before-break.

        ``if_needed``: made because there was no usable connection. If the old one came back
        meanwhile, the new one is kept as the spare (or closed) rather than swapped in under a turn.
        Returns the connection that now serves."""
        current = self.current
        if if_needed and current is not None and self.serves(current, now):
            return current, self._keep_as_spare(conn)
        actions: list[PoolAction[C]] = []
        old, self.current = current, conn
        if old is not None:
            self.stats.rotations += 1
            actions += [Log("DEBUG", f"{self.name}: swapped connections ({reason})"), self._retire(old)]
        actions.append(Changed())
        return conn, actions + self.keep_spare()

    # -- the warm spare ---------------------------------------------------------------------

    def keep_spare(self) -> list[PoolAction[C]]:
        """Keep one warm spare while the connection has no lanes and the endpoint has not shown that
        it honours ``response.cancel``: a barge-in then never waits for the abandoned answer."""
        conn = self.current
        if (
            self.closing
            or self.spare is not None
            or self.spare_opening
            or conn is None
            or conn.state.lanes is not False
            or self.session.cancel_honoured
        ):
            return []
        self.spare_opening = True
        return [OpenSpare()]

    def spare_for_inference(self) -> C | OpenSpare | None:
        """The spare an inference takes beside the conversation without lanes; ``OpenSpare`` when
        one must be opened first, None when one is on its way (wait for it, then ask again)."""
        spare = self.spare
        if spare is not None and spare.state.usable:
            return spare
        if self.spare_opening:
            return None
        self.spare_opening = True
        return OpenSpare()

    def spare_ready(self, conn: C, now: float) -> list[PoolAction[C]]:
        """A spare finished its handshake and warm-up."""
        self.spare_opening = False
        actions = self._keep_as_spare(conn)
        current = self.current
        if current is not None and not current.state.usable:
            # Given up while the spare was opening (a barge-in): the spare takes the next turn now.
            actions += self._take_over(current, "a spare connection opened", now) or []
        return actions

    def spare_failed(self, error: str) -> list[PoolAction[C]]:
        self.spare_opening = False
        return [Log("WARNING", f"{self.name}: no spare connection for now: {error}")]

    def _keep_as_spare(self, conn: C) -> list[PoolAction[C]]:
        if self.closing or not conn.state.usable or self.spare is not None:
            return [Close(conn)]
        self.stats.spares_opened += 1
        self.spare = conn
        return []

    # -- a connection was given up ------------------------------------------------------------

    def retired(self, conn: C, reason: str, soon: bool, now: float) -> list[PoolAction[C]]:
        """The session retired ``conn``: replace it, by the spare at once if one can take over."""
        if self.closing:
            return []
        if conn is self.spare:
            self.spare = None
            return [self._retire(conn), *self.keep_spare()]
        if conn is not self.current:
            return []
        took_over = self._take_over(conn, reason, now)
        if took_over is not None:
            return took_over
        actions: list[PoolAction[C]] = [Changed()]  # a turn waiting for this one sees whether it still can
        if may_come_back(conn.state):
            message = f"{conn.state.name}: {reason}, and no spare to take over; trying a fresh connection meanwhile"
            actions += [Log("INFO", message), TakeBackWhenQuiet(conn, STUCK_LANE_SECS)]
        else:
            actions.append(
                Log("INFO" if soon else "WARNING", f"{conn.state.name}: {reason}; replacing it in the background")
            )
        return [*actions, Reconnect()]

    def _take_over(self, old: C, reason: str, now: float) -> list[PoolAction[C]] | None:
        """The warm spare, if it can, becomes the current connection in place of ``old``."""
        spare = self.spare
        if spare is None or not spare.state.usable or not spare.state.is_quiet() or self.too_old(spare, now):
            return None  # a spare busy with an inference is not taken
        # The next turn goes to the warm spare at once; nothing waits for the abandoned answer.
        self.spare, self.current = None, spare
        self.stats.spare_takeovers += 1
        self.session.taken_over(spare.state)
        log = Log("DEBUG", f"{spare.state.name} takes over from {old.state.name} ({reason})")
        return [log, self._retire(old), Changed(), *self.keep_spare()]

    def waited(self, conn: C) -> list[PoolAction[C]]:
        """``conn``, left on a barge-in with no spare to take over, went quiet or closed, or never
        did within ``STUCK_LANE_SECS``: it serves again unless another connection came first. One
        whose answer never ended is closed, so a turn waiting for it makes its own attempt instead."""
        if conn is not self.current or self.closing:
            return []
        if self.session.take_back(conn.state):
            message = (
                f"{conn.state.name}: its abandoned answer has ended and no other connection was had; using it again"
            )
            return [Log("INFO", message), Changed(), *self.keep_spare()]
        if not conn.state.is_quiet():
            return [Log("WARNING", f"{conn.state.name}: its abandoned answer never ended; closing it"), Close(conn)]
        return []

    def _retire(self, old: C) -> CloseWhenQuiet[C]:
        if old.state.status not in GIVEN_UP:
            grace = CLOSE_OLD_CONNECTION_AFTER_SECS
        else:
            grace = SPARE_GRACE_SECS if self.session.cancel_honoured is None else 0.0
        return CloseWhenQuiet(old, grace)

    # -- time passed --------------------------------------------------------------------------

    def backoff(self, attempt: int, spread: float) -> float:
        """The delay before reconnect attempt ``attempt`` + 1; ``spread`` is drawn in [0.75, 1]."""
        first, cap = self.options.reconnect_backoff
        return min(first * 2.0**attempt, cap) * spread

    def rollover(self, now: float, busy: bool) -> tuple[Rotate | SleepUntil, list[PoolAction[C]]]:
        """Rotate before the age limit, at a moment no turn is running (``busy``: one is)."""
        conn = self.current
        if conn is None or not conn.state.usable:
            return SleepUntil(now + NO_CONNECTION_RECHECK_SECS), []
        rotate_at = self.options.max_connection_age - self.options.rollover_margin
        actions: list[PoolAction[C]] = []
        spare = self.spare
        if spare is not None and self.age(spare, now) >= rotate_at:
            self.spare = None
            actions += [self._retire(spare), *self.keep_spare()]
            spare = None
        wait = rotate_at - self.age(conn, now)
        if wait > 0:
            # Asleep until the first rotation due (the spare's, if it is older): a loop that woke
            # every second would make every idle session cost a timer, a task step and the
            # collector's time. A connection replaced meanwhile is younger, so waking for the old
            # one's rotation is early, never late.
            if spare is not None:
                wait = min(wait, rotate_at - self.age(spare, now))
            return SleepUntil(now + wait), actions
        if busy:
            return SleepUntil(now + BUSY_RECHECK_SECS), actions
        return Rotate(f"connection age {self.age(conn, now):.1f}s nearing the limit"), actions

    def close(self) -> list[C]:
        """The client is closing: every connection the pool holds, to be closed."""
        self.closing = True
        held = [c for c in (self.current, self.spare) if c is not None]
        self.current = self.spare = None
        return held


def may_come_back(state: ConnectionState[Response]) -> bool:
    """Given up on a barge-in, but still open and unspent: it serves again once its abandoned
    answer has ended."""
    return state.status is ConnectionStatus.LEFT_ON_BARGE_IN
