"""Connection life: connect, warm up, rotate before the age limit, reconnect without stalling.

The user's turn never pays for a handshake that could have happened earlier: the first
connection opens at setup and is warmed with ``generate: false``; a connection nearing its age
limit is replaced while idle (open, warm, swap, close the old one once its lanes are quiet); a
dropped connection is replaced in the background with backoff, and a turn that finds no
connection makes one attempt of its own rather than waiting out the backoff.

Without lanes a barge-in hands the next turn to a warm spare connection. When no spare can be
had (its handshake failed or hangs), the interrupted connection is not given up: a fresh one is
tried with backoff, and whichever comes first takes the turn, the fresh one or the old one once
its abandoned answer has ended. A turn fails only when neither can serve it. Nothing is ever
refused for want of a slot either: an inference that finds a connection full waits for one, as
the server would queue it, and goes on the conversation's connection when no spare can be had.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..log import logger
from ..protocol import wire
from ..protocol.connection import GIVEN_UP, ConnectionStatus
from ..protocol.errors import AuthenticationError, ResponsesWSError, UpgradeRequired
from ..protocol.response import Failed, Finished, Response, Retry
from ..protocol.session import CANCEL_HONOURED_WITHIN_SECS, STUCK_LANE_SECS, ClientSession
from .connection import Connection

CLOSE_OLD_CONNECTION_AFTER_SECS = 30.0
# A connection given up on a barge-in lives this long after the spare took over while the endpoint's
# answer to response.cancel is unknown: long enough to see whether it honours the cancel. Once known,
# the connection is closed at once, which stops the server generating the abandoned answer.
SPARE_GRACE_SECS = CANCEL_HONOURED_WITHIN_SECS


@dataclass
class ClientOptions:
    url: str
    headers: dict[str, str]
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
    spares_opened: int = 0  # warm connections kept for barge-ins on endpoints without lanes
    spare_takeovers: int = 0


class ResponsesClient:
    """Owns the current connection and replaces it when it ages out, fills up or drops."""

    def __init__(
        self,
        options: ClientOptions,
        *,
        session: ClientSession | None = None,
        warm_up_request: Callable[[], dict[str, Any] | None] | None = None,
        on_error: Callable[[ResponsesWSError], None] | None = None,
        on_tool_results: Callable[[list[dict[str, Any]]], None] | None = None,
        name: str = "responses-ws",
    ) -> None:
        self.options = options
        self.session = session or ClientSession()
        self.stats = ClientStats()
        self.retired: list[Connection] = []
        self._warm_up_request = warm_up_request
        self._on_error = on_error
        self._on_tool_results = on_tool_results
        self._name = name
        self._current: Connection | None = None
        self._spare: Connection | None = None
        self._spare_task: asyncio.Task[None] | None = None
        self._connecting: asyncio.Task[Connection] | None = None
        self._reconnecting: asyncio.Task[None] | None = None
        # Set, and replaced, whenever the current connection changes or one given up may come back.
        self._changed = asyncio.Event()
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
        """A usable connection, connecting (once, now) if there is none.

        While the connection left on a barge-in may still come back (no spare took over, its
        abandoned answer is still running), this waits for whichever comes first: a fresh
        connection, tried with backoff in the background, or the old one taken back.
        """
        while True:
            conn = self._current
            if conn is not None and conn.usable and not self._too_old(conn):
                return conn
            if conn is None or not _may_come_back(conn):
                return await asyncio.shield(self._connect())
            await self._changed.wait()

    async def open_response(
        self, full_input: list[dict[str, Any]], retry: Retry | None = None
    ) -> tuple[Connection, Response]:
        """A connection and a response on a free lane of it, planned against what it caches.

        Rotates to a fresh connection rather than waiting when every lane is busy (the new
        connection's cache is empty, so the plan is made again there).
        """
        conn = await self.connection()
        self._keep_spare()  # lane support may have been found out by a turn rather than a warm-up
        response = conn.open_response(full_input, retry=retry)
        if response is None:
            logger.info(f"{self._name}: every lane is busy; rotating to a fresh connection")
            conn = await self._replace(reason="all lanes busy", warm=False)
            response = conn.open_response(full_input, retry=retry)
            if response is None:  # a brand-new connection always has a free lane
                raise ResponsesWSError("no lane available on a fresh connection")
        return conn, response

    async def open_out_of_band(
        self, full_input: list[dict[str, Any]], retry: Retry | None = None
    ) -> tuple[Connection, Response]:
        """A response for a one-shot inference beside the conversation.

        With lanes it takes a lane of its own on the conversation's connection: no handshake, and a
        streaming turn is not held up. Without lanes a connection runs one answer at a time, so it
        goes to the spare connection (opened now if there is none), never ahead of the next turn;
        when no spare can be opened, to the conversation's connection rather than nowhere. A
        connection whose in-flight slots are all taken (the last one is kept for the next turn) is
        waited on until a response on it ends, as the server itself would queue the request.
        """
        while True:
            conn = await self._inference_connection()
            response = conn.open_response(full_input, retry=retry, out_of_band=True)
            if response is not None:
                return conn, response
            if conn.usable:
                logger.debug(f"{conn.name}: every slot is taken; the inference waits for one")
                await conn.slot_freed()

    async def _inference_connection(self) -> Connection:
        conn = await self.connection()
        if conn.state.lanes is not False and conn.state.router.named:
            return conn
        try:
            return await self._spare_connection()
        except UpgradeRequired:
            raise  # the endpoint will never open a WebSocket again: the caller switches to HTTP
        except ResponsesWSError as e:
            logger.warning(f"{self._name}: no spare connection for an inference ({e}); it goes on {conn.name}")
            return conn

    async def _spare_connection(self) -> Connection:
        spare = self._spare
        if spare is None or not spare.usable:
            task = self._spare_task
            if task is None or task.done():
                task = self._spare_task = self._spawn(self._open_spare())
            await asyncio.shield(task)
            spare = self._spare
        if spare is None or not spare.usable:
            raise ResponsesWSError(f"{self._name}: no spare connection for an inference")
        return spare

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        """Marks a turn in progress, so idle-time rotation does not swap under it."""
        self._busy += 1
        try:
            yield
        finally:
            self._busy -= 1

    async def close(self) -> None:
        self._closing = True
        tasks = [*self._tasks, *([self._connecting] if self._connecting is not None else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        connections = [c for c in [self._current, self._spare, *self.retired] if c is not None]
        await asyncio.gather(*(c.close() for c in connections), return_exceptions=True)
        self._current = None

    # -- connecting -----------------------------------------------------------------------

    def _connect(self) -> asyncio.Task[Connection]:
        """The one attempt at a new current connection, shared by whoever needs it meanwhile."""
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.create_task(self._replace(reason="no usable connection", if_needed=True))
        return self._connecting

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _too_old(self, conn: Connection) -> bool:
        # Past this point a request could be cut by the limit mid-answer; never start one there.
        # Half the margin at most, so idle-time rotation (at the full margin) gets there first and a
        # turn does not pay for the handshake itself.
        return conn.age >= self.options.max_connection_age - min(5.0, self.options.rollover_margin / 2)

    async def _replace(self, *, reason: str, warm: bool = True, if_needed: bool = False) -> Connection:
        """Make-before-break: open and warm a new connection, swap, retire the old one.

        ``if_needed``: made because there was no usable connection. If the old one came back
        meanwhile, the new one is kept as the spare (or closed) rather than swapped in under a turn.
        """
        conn = await self._open()
        if warm:
            await self._warm_up_or_close(conn)
        current = self._current
        if if_needed and current is not None and current.usable and not self._too_old(current):
            self._keep_as_spare(conn)
            return current
        old, self._current = current, conn
        if old is not None:
            self.stats.rotations += 1
            logger.debug(f"{self._name}: swapped connections ({reason})")
            self._retire(old)
        self._notify()
        self._keep_spare()
        return conn

    async def _open(self) -> Connection:
        options = self.options
        self.stats.connections += 1
        conn = Connection(
            options.url,
            options.headers,
            self.session,
            send_timeout=options.send_timeout,
            on_retire=self._connection_retired,
            on_error=self._on_error,
            on_tool_results=self._on_tool_results,
            name=f"{self._name}#{self.stats.connections}",
        )
        await conn.open(options.connect_timeout)
        self.stats.connect_secs.append(conn.stats.connect_secs)
        return conn

    async def _warm_up(self, conn: Connection) -> None:
        """``generate: false`` with instructions and tools: the next turn starts hot. Its answer also
        shows whether the server multiplexes lanes (a refused ``stream_id`` means one more try without)."""
        fields = self._warm_up_request() if self._warm_up_request is not None else None
        if fields is None:
            return
        started = time.monotonic()
        for _attempt in range(2):
            response = conn.open_response([], generate=False)
            if response is None:
                return
            try:
                await conn.send_create(response, fields)
                async with asyncio.timeout(self.options.warm_up_timeout):
                    while True:
                        happening = await conn.next_happening(response, None, None)
                        if isinstance(happening, Finished | Failed | Retry):
                            break
            except TimeoutError:
                logger.warning(f"{self._name}: warm-up skipped: no answer within {self.options.warm_up_timeout:g}s")
                conn.abandon(response)
                return
            if isinstance(happening, Finished):
                self.stats.warm_up_secs.append(time.monotonic() - started)
                return
            if not (isinstance(happening, Retry) and not happening.fresh_connection and conn.usable):
                logger.warning(f"{self._name}: warm-up skipped: {_reason(happening)}")
                return

    async def _warm_up_or_close(self, conn: Connection) -> None:
        try:
            await self._warm_up(conn)
        except BaseException:
            # Cancelled (the client is closing) or failed: a connection nobody holds must not stay open.
            await asyncio.shield(conn.close())
            raise

    def _retire(self, old: Connection) -> None:
        self.retired.append(old)
        if old.state.status not in GIVEN_UP:
            grace = CLOSE_OLD_CONNECTION_AFTER_SECS
        else:
            grace = SPARE_GRACE_SECS if self.session.cancel_honoured is None else 0.0
        self._spawn(self._close_when_quiet(old, grace))

    async def _close_when_quiet(self, conn: Connection, grace: float) -> None:
        try:
            await _quiet_or_closed(conn, grace)
        finally:
            await conn.close()
            if conn in self.retired:
                self.retired.remove(conn)  # its figures go with it; a long-lived bot rotates forever

    def _connection_retired(self, conn: Connection, reason: str, soon: bool) -> None:
        if self._closing:
            return
        if conn is self._spare:
            self._spare = None
            self._retire(conn)
            self._keep_spare()
            return
        if conn is not self._current:
            return
        if self._take_over(conn, reason):
            return
        self._notify()  # a turn waiting for this one to come back sees whether it still can
        if _may_come_back(conn):
            logger.info(f"{conn.name}: {reason}, and no spare to take over; trying a fresh connection meanwhile")
            self._spawn(self._take_back_when_quiet(conn))
        else:
            logger.log("INFO" if soon else "WARNING", f"{conn.name}: {reason}; replacing it in the background")
        if self._reconnecting is None or self._reconnecting.done():
            self._reconnecting = self._spawn(self._reconnect_with_backoff())

    def _take_over(self, old: Connection, reason: str) -> bool:
        """The warm spare, if it can, becomes the current connection in place of ``old``."""
        spare = self._spare
        if spare is None or not spare.usable or not spare.quiet.is_set() or self._too_old(spare):
            return False  # a spare busy with an inference is not taken
        # The next turn goes to the warm spare at once; nothing waits for the abandoned answer.
        self._spare, self._current = None, spare
        self.stats.spare_takeovers += 1
        self.session.taken_over(spare.state)
        logger.debug(f"{spare.name} takes over from {old.name} ({reason})")
        self._retire(old)
        self._notify()
        self._keep_spare()
        return True

    async def _take_back_when_quiet(self, conn: Connection) -> None:
        """``conn`` was left on a barge-in with no spare to take over: once its abandoned answer has
        ended it serves again, unless another connection came first. One whose answer never ends
        is closed, so a turn waiting for it makes its own attempt instead."""
        await _quiet_or_closed(conn, STUCK_LANE_SECS)
        if conn is not self._current or self._closing:
            return
        if self.session.take_back(conn.state):
            logger.info(f"{conn.name}: its abandoned answer has ended and no other connection was had; using it again")
            self._notify()
            self._keep_spare()
        elif not conn.quiet.is_set():
            logger.warning(f"{conn.name}: its abandoned answer never ended; closing it")
            await conn.close()

    def _keep_spare(self) -> None:
        """Keep one warm spare while the connection has no lanes and the endpoint has not shown that
        it honours ``response.cancel``: a barge-in then never waits for the abandoned answer."""
        conn = self._current
        if (
            self._closing
            or self._spare is not None
            or (self._spare_task is not None and not self._spare_task.done())
            or conn is None
            or conn.state.lanes is not False
            or self.session.cancel_honoured
        ):
            return
        self._spare_task = self._spawn(self._open_spare())

    async def _open_spare(self) -> None:
        try:
            spare = await self._open()
            await self._warm_up_or_close(spare)
        except ResponsesWSError as e:
            logger.warning(f"{self._name}: no spare connection for now: {e}")
            return
        self._keep_as_spare(spare)
        current = self._current
        if current is not None and not current.usable:
            # Given up while the spare was opening (a barge-in): the spare takes the next turn now.
            self._take_over(current, "a spare connection opened")

    def _keep_as_spare(self, conn: Connection) -> None:
        if self._closing or not conn.usable or self._spare is not None:
            self._spawn(conn.close())
            return
        self.stats.spares_opened += 1
        self._spare = conn

    async def _reconnect_with_backoff(self) -> None:
        first, cap = self.options.reconnect_backoff
        attempt = 0
        while not self._closing:
            conn = self._current
            if conn is not None and conn.usable:
                return
            try:
                # Not ``connection()``: that waits while the old connection may come back, and this
                # is what it waits for.
                if await asyncio.shield(self._connect()) is not conn:
                    self.stats.reconnects += 1
                return
            except AuthenticationError as e:
                logger.error(f"{self._name}: {e}")
                return
            except UpgradeRequired:
                return  # no WebSocket will ever open here: whoever connects next switches to HTTP
            except ResponsesWSError as e:
                delay = min(first * 2**attempt, cap) * random.uniform(0.75, 1.0)
                attempt += 1
                logger.warning(f"{self._name}: reconnect failed ({e}); next try in {delay:.2f}s")
                await asyncio.sleep(delay)

    async def _rollover_loop(self) -> None:
        """Rotate before the age limit, at a moment no turn is running."""
        while not self._closing:
            conn = self._current
            if conn is None or not conn.usable:
                await asyncio.sleep(0.5)
                continue
            rotate_at = self.options.max_connection_age - self.options.rollover_margin
            spare = self._spare
            if spare is not None and spare.age >= rotate_at:
                self._spare = None
                self._retire(spare)
                self._keep_spare()
            wait = rotate_at - conn.age
            if wait > 0:
                # Asleep until the first rotation due (the spare's, if it is older): a loop that
                # woke every second would make every idle session cost a timer, a task step
                # and the collector's time. A connection replaced meanwhile is younger, so
                # waking for the old one's rotation is early, never late.
                if spare is not None:
                    wait = min(wait, rotate_at - spare.age)
                await asyncio.sleep(wait)
                continue
            if self._busy or conn is not self._current:
                await asyncio.sleep(0.02)
                continue
            try:
                await self._replace(reason=f"connection age {conn.age:.1f}s nearing the limit")
            except ResponsesWSError as e:
                logger.warning(f"{self._name}: proactive rotation failed: {e}")
                await asyncio.sleep(1.0)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


def _reason(happening: Failed | Retry) -> str:
    return str(happening.error) if isinstance(happening, Failed) else happening.reason


def _may_come_back(conn: Connection) -> bool:
    """Given up on a barge-in, but still open: it serves again once its abandoned answer has ended."""
    return conn.state.status is ConnectionStatus.LEFT_ON_BARGE_IN


async def _quiet_or_closed(conn: Connection, timeout: float) -> None:
    """Wait until ``conn`` has nothing in flight or is closed, for at most ``timeout`` seconds."""
    waits = {asyncio.create_task(conn.quiet.wait()), asyncio.create_task(conn.closed.wait())}
    try:
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        # Also when the client closes first: no wait is left pending at shutdown.
        for wait in waits:
            wait.cancel()
        await asyncio.gather(*waits, return_exceptions=True)
