"""Connection life: connect, warm up, rotate before the age limit, reconnect without stalling.

The user's turn never pays for a handshake that could have happened earlier: the first
connection opens at setup and is warmed with ``generate: false``; a connection nearing its age
limit is replaced while idle (open, warm, swap, close the old one once its lanes are quiet); a
dropped connection is replaced in the background with backoff, and a turn that finds no
connection makes one attempt of its own rather than waiting out the backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from loguru import logger

from ..protocol import wire
from ..protocol.errors import AuthenticationError, ResponsesWSError
from ..protocol.lanes import Request
from .connection import Connection, is_closed_marker

CLOSE_OLD_CONNECTION_AFTER_SECS = 30.0
PlanT = TypeVar("PlanT")


@dataclass
class ClientOptions:
    url: str
    headers: dict[str, str]
    lanes: bool = True
    pool_size: int = 4
    connect_timeout: float = 10.0
    send_timeout: float = 5.0
    warm_up_timeout: float = 5.0
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
    full_context_fallbacks: int = 0


class ResponsesClient:
    """Owns the current connection and replaces it when it ages out, fills up or drops."""

    def __init__(
        self,
        options: ClientOptions,
        *,
        warm_up_request: Callable[[], dict[str, Any] | None] | None = None,
        on_connection_error: Callable[[Connection, dict[str, Any]], None] | None = None,
        name: str = "responses-ws",
    ) -> None:
        self.options = options
        self.stats = ClientStats()
        self.retired: list[Connection] = []
        self._warm_up_request = warm_up_request
        self._on_connection_error = on_connection_error
        self._name = name
        self._current: Connection | None = None
        self._connecting: asyncio.Task[Connection] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._busy = 0  # turns in progress; rollover waits for zero

    # -- public ---------------------------------------------------------------------------

    @property
    def current(self) -> Connection | None:
        return self._current

    async def start(self) -> None:
        """Connect and warm up. Raises ``AuthenticationError`` when the key is refused."""
        self._spawn(self._rollover_loop())
        await self.connection()

    async def connection(self) -> Connection:
        """A usable connection, connecting (once, now) if there is none."""
        conn = self._current
        if conn is not None and conn.is_open and not conn.expired and not self._too_old(conn):
            return conn
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.create_task(self._replace(reason="no usable connection"))
        return await asyncio.shield(self._connecting)

    async def open_request(
        self, plan: Callable[[Connection], PlanT], avoid_lane: Callable[[PlanT], str | None]
    ) -> tuple[Connection, Request, PlanT]:
        """A connection, a free lane on it and the plan made for it.

        Rotates to a fresh connection rather than waiting when every lane is busy (the plan is
        then made again: the new connection's cache is empty).
        """
        conn = await self.connection()
        planned = plan(conn)
        request = conn.open_request(avoid_lane(planned))
        if request is None:
            logger.info(f"{self._name}: every lane is busy; rotating to a fresh connection")
            conn = await self._replace(reason="all lanes busy", warm=False)
            planned = plan(conn)
            request = conn.open_request()
            if request is None:  # a brand-new connection always has a free lane
                raise ResponsesWSError("no lane available on a fresh connection")
        return conn, request, planned

    @contextlib.contextmanager
    def turn(self) -> Any:
        """Marks a turn in progress, so idle-time rotation does not swap under it."""
        self._busy += 1
        try:
            yield
        finally:
            self._busy -= 1

    async def close(self) -> None:
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        connections = [c for c in [self._current, *self.retired] if c is not None]
        await asyncio.gather(*(c.close() for c in connections), return_exceptions=True)
        self._current = None

    # -- connecting -----------------------------------------------------------------------

    def _too_old(self, conn: Connection) -> bool:
        # Past this point a request could be cut by the limit mid-answer; never start one there.
        # Half the margin at most, so idle-time rotation (at the full margin) gets there first and a
        # turn does not pay for the handshake itself.
        return conn.age >= self.options.max_connection_age - min(5.0, self.options.rollover_margin / 2)

    async def _replace(self, *, reason: str, warm: bool = True) -> Connection:
        """Make-before-break: open and warm a new connection, swap, retire the old one."""
        conn = await self._open()
        if warm:
            await self._warm_up(conn)
        old, self._current = self._current, conn
        if old is not None:
            self.stats.rotations += 1
            logger.debug(f"{self._name}: swapped connections ({reason})")
            self._retire(old)
        return conn

    async def _open(self) -> Connection:
        options = self.options
        self.stats.connections += 1
        conn = Connection(
            options.url,
            options.headers,
            named_lanes=options.lanes,
            pool_size=options.pool_size,
            send_timeout=options.send_timeout,
            on_connection_error=self._on_connection_error,
            on_closed=self._connection_closed,
            name=f"{self._name}#{self.stats.connections}",
        )
        await conn.open(options.connect_timeout)
        self.stats.connect_secs.append(conn.stats.connect_secs)
        return conn

    async def _warm_up(self, conn: Connection) -> None:
        """``generate: false`` with instructions and tools: the next turn starts hot."""
        payload = self._warm_up_request() if self._warm_up_request is not None else None
        if payload is None:
            return
        request = conn.open_request()
        if request is None:
            return
        started = time.monotonic()
        try:
            await conn.send({"type": wire.RESPONSE_CREATE, **payload, **self._lane_field(request), "generate": False})
            async with asyncio.timeout(self.options.warm_up_timeout):
                while True:
                    event = await request.sink.get(None)
                    if is_closed_marker(event) or event.get("type") == wire.ERROR:
                        return
                    if event.get("type") in wire.TERMINAL_EVENTS:
                        response = event.get("response") or {}
                        if event["type"] == wire.COMPLETED and response.get("id"):
                            conn.chains.record(response["id"], request.lane, None, [], [])
                            self.stats.warm_up_secs.append(time.monotonic() - started)
                        return
        except (TimeoutError, ResponsesWSError) as e:
            logger.warning(f"{self._name}: warm-up skipped: {e}")
            conn.abandon(request)

    @staticmethod
    def _lane_field(request: Request) -> dict[str, str]:
        return {"stream_id": request.lane} if request.lane is not None else {}

    def _retire(self, old: Connection) -> None:
        self.retired.append(old)
        self._spawn(self._close_when_quiet(old))

    async def _close_when_quiet(self, conn: Connection) -> None:
        quiet = asyncio.create_task(conn.quiet.wait())
        closed = asyncio.create_task(conn.closed.wait())
        await asyncio.wait(
            {quiet, closed}, timeout=CLOSE_OLD_CONNECTION_AFTER_SECS, return_when=asyncio.FIRST_COMPLETED
        )
        quiet.cancel()
        closed.cancel()
        await conn.close()
        self.retired.remove(conn)  # its figures go with it; a long-lived bot rotates forever

    def _connection_closed(self, conn: Connection) -> None:
        if conn is not self._current or self._closing:
            return
        logger.warning(f"{conn.name}: connection closed; reconnecting in the background")
        self._spawn(self._reconnect_with_backoff())

    async def _reconnect_with_backoff(self) -> None:
        first, cap = self.options.reconnect_backoff
        attempt = 0
        while not self._closing:
            conn = self._current
            if conn is not None and conn.is_open:
                return
            try:
                await self.connection()
                self.stats.reconnects += 1
                return
            except AuthenticationError as e:
                logger.error(f"{self._name}: {e}")
                return
            except ResponsesWSError as e:
                delay = min(first * 2**attempt, cap) * random.uniform(0.75, 1.0)
                attempt += 1
                logger.warning(f"{self._name}: reconnect failed ({e}); next try in {delay:.2f}s")
                await asyncio.sleep(delay)

    async def _rollover_loop(self) -> None:
        """Rotate before the age limit, at a moment no turn is running."""
        while not self._closing:
            conn = self._current
            if conn is None or not conn.is_open:
                await asyncio.sleep(0.5)
                continue
            rotate_at = self.options.max_connection_age - self.options.rollover_margin
            wait = rotate_at - conn.age
            if wait > 0:
                await asyncio.sleep(min(wait, 1.0))
                continue
            if self._busy or conn is not self._current:
                await asyncio.sleep(0.02)
                continue
            try:
                await self._replace(reason=f"connection age {conn.age:.1f}s nearing the limit")
            except ResponsesWSError as e:
                logger.warning(f"{self._name}: proactive rotation failed: {e}")
                await asyncio.sleep(1.0)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
