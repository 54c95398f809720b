"""What the client knows of one connection, and the one status it is in.

A connection's status moves along a table, as ``h11``'s states do: the session (``protocol/``)
is its only writer, and a move the table does not allow raises ``ConnectionStatusError`` rather
than leaving two flags that contradict each other. Everything else only reads it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Generic

from .chain import ServerChains
from .lanes import LaneRouter, R


class ConnectionStatus(enum.Enum):
    OPEN = "open"
    # A warm spare that took over after a barge-in: its first request resends the context in full.
    TAKEN_OVER = "taken over"
    # Given up on a barge-in without lanes: once the abandoned answer has ended nothing queues
    # behind it, so it can be taken back if no other connection was had by then.
    LEFT_ON_BARGE_IN = "left on a barge-in"
    RETIRING = "retiring"  # given up (a barge-in, a lane gone silent, an answer that never ended)
    EXPIRED = "expired"  # the server said this connection is spent (age or lane limit)
    CLOSED = "closed"


# Where each status may go next; anything else is a bug in the session, said as such.
_MOVES: dict[ConnectionStatus, frozenset[ConnectionStatus]] = {
    ConnectionStatus.OPEN: frozenset(
        {
            ConnectionStatus.TAKEN_OVER,
            ConnectionStatus.LEFT_ON_BARGE_IN,
            ConnectionStatus.RETIRING,
            ConnectionStatus.EXPIRED,
            ConnectionStatus.CLOSED,
        }
    ),
    ConnectionStatus.TAKEN_OVER: frozenset(
        {
            ConnectionStatus.OPEN,
            ConnectionStatus.LEFT_ON_BARGE_IN,
            ConnectionStatus.RETIRING,
            ConnectionStatus.EXPIRED,
            ConnectionStatus.CLOSED,
        }
    ),
    ConnectionStatus.LEFT_ON_BARGE_IN: frozenset(
        {ConnectionStatus.OPEN, ConnectionStatus.RETIRING, ConnectionStatus.EXPIRED, ConnectionStatus.CLOSED}
    ),
    ConnectionStatus.RETIRING: frozenset({ConnectionStatus.EXPIRED, ConnectionStatus.CLOSED}),
    ConnectionStatus.EXPIRED: frozenset({ConnectionStatus.CLOSED}),
    ConnectionStatus.CLOSED: frozenset(),
}
# New responses may start only here.
USABLE = frozenset({ConnectionStatus.OPEN, ConnectionStatus.TAKEN_OVER})
# Given up by the client rather than by the server or the socket: the old connection lives only
# a short grace once another took over.
GIVEN_UP = frozenset({ConnectionStatus.LEFT_ON_BARGE_IN, ConnectionStatus.RETIRING})


class ConnectionStatusError(RuntimeError):
    """The session asked for a move the status table does not allow."""


@dataclass
class ConnectionStats:
    connect_secs: float = 0.0
    cancels_sent: int = 0
    cancel_to_terminal_secs: list[float] = field(default_factory=list)
    abandoned_output_tokens: int = 0


class ConnectionState(Generic[R]):
    """What the client knows of one connection: its lanes, its server's cache, what it has shown.

    Generic in what its lanes hold: the session's ``Response``, which names its connection in
    turn. Neither this module nor :mod:`.lanes` imports :mod:`.response`, so the three are not a circle.
    """

    def __init__(self, name: str, *, named_lanes: bool | None, lane_prefix: str, pool_size: int) -> None:
        """``named_lanes``: as ``SessionOptions.named_lanes``."""
        self.name = name
        self.router: LaneRouter[R] = LaneRouter(named=named_lanes is not False, prefix=lane_prefix, pool_size=pool_size)
        # Whether this connection's server multiplexes lanes; None until its first answer shows it.
        self.lanes: bool | None = named_lanes
        self.chains = ServerChains()
        self.stats = ConnectionStats()
        self.cancel_supported = True
        self._status = ConnectionStatus.OPEN
        self.close_reason: str | None = None
        self.last_cancel_at: float | None = None
        self.unknown_types: set[str] = set()
        self.warned_laneless = False
        # Whether an event of this connection has carried a lane of ours back: then an event without
        # one is stray (never spoken, never an end), not a sign that the server has no lanes.
        self.lanes_echoed = False
        self.stray_events = 0
        self.warned_reordered = False
        # One HTTP request: it carries one response, and closing its stream is what stops it.
        self.single_response = False

    @property
    def status(self) -> ConnectionStatus:
        return self._status

    def become(self, status: ConnectionStatus) -> None:
        """Move to ``status``; only the session calls this."""
        if status not in _MOVES[self._status]:
            raise ConnectionStatusError(f"{self.name}: a connection {self._status.value} cannot become {status.value}")
        self._status = status

    @property
    def usable(self) -> bool:
        """New responses may start here."""
        return self._status in USABLE

    @property
    def closed(self) -> bool:
        return self._status is ConnectionStatus.CLOSED

    def is_quiet(self) -> bool:
        return self.router.is_quiet()
