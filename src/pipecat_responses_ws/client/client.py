"""Connection life, carried out: connect, warm up, rotate, reconnect; the decisions are the pool's.

The user's turn never pays for a handshake that could have happened earlier: the first
connection opens at setup and is warmed with ``generate: false``; a connection nearing its age
limit is replaced while idle (open, warm, swap, close the old one once its lanes are quiet); a
dropped connection is replaced in the background with backoff, and a turn that finds no
connection makes one attempt of its own rather than waiting out the backoff.

Which connection serves, when a warm spare is opened, takes over after a barge-in or is let go,
when a connection left on a barge-in is taken back, and when to rotate is decided by
:class:`~..protocol.pool.Pool` with no I/O; this module is its pump. A turn fails only when
neither a fresh connection nor the old one can serve it. Nothing is ever refused for want of a
slot either: an inference that finds a connection full waits for one, as the server would queue
it, and goes on the conversation's connection when no spare can be had.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any

from ..changes import Changes
from ..log import logger
from ..protocol import wire
from ..protocol.actions import Log
from ..protocol.errors import AuthenticationError, ResponsesWSError, UpgradeRequired
from ..protocol.pool import (
    ROTATION_FAILED_RETRY_SECS,
    Changed,
    ClientStats,
    Close,
    CloseWhenQuiet,
    Connect,
    OpenSpare,
    Pool,
    PoolAction,
    PoolOptions,
    Reconnect,
    SleepUntil,
    TakeBackWhenQuiet,
    Use,
)
from ..protocol.response import Failed, Finished, Response, Retry
from ..protocol.session import ClientSession
from .connection import Connection

__all__ = ["ClientOptions", "ClientStats", "ResponsesClient"]


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


class ResponsesClient:
    """Carries out the pool's decisions: owns the sockets and the tasks that open, warm and close them."""

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
        pool_options = PoolOptions(options.max_connection_age, options.rollover_margin, options.reconnect_backoff)
        self.pool: Pool[Connection] = Pool(self.session, pool_options, name)
        self.stats = self.pool.stats
        self.retired: list[Connection] = []
        self._warm_up_request = warm_up_request
        self._on_error = on_error
        self._on_tool_results = on_tool_results
        self._name = name
        self._spare_task: asyncio.Task[None] | None = None
        self._connecting: asyncio.Task[Connection] | None = None
        self._reconnecting: asyncio.Task[None] | None = None
        # Set, and replaced, whenever the current connection changes or one given up may come back.
        self._changed = asyncio.Event()
        # Notified once each decision of the pool is carried out (a spare kept or lost, a takeover,
        # a swap): for whoever watches which connections the client holds. Never per event.
        self.changes = Changes()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._busy = 0  # turns in progress; rollover waits for zero

    # -- public ---------------------------------------------------------------------------

    @property
    def current(self) -> Connection | None:
        return self.pool.current

    @property
    def spare(self) -> Connection | None:
        return self.pool.spare

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
            step = self.pool.acquire(time.monotonic())
            if isinstance(step, Use):
                return step.connection
            if isinstance(step, Connect):
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
        # Lane support may have been found out by a turn rather than a warm-up.
        self._carry_out(self.pool.keep_spare())
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
        step = self.pool.spare_for_inference()
        if not isinstance(step, Connection):
            if isinstance(step, OpenSpare):
                self._carry_out([step])
            if self._spare_task is not None:
                await asyncio.shield(self._spare_task)
            step = self.pool.spare
        if step is None or not step.usable:
            raise ResponsesWSError(f"{self._name}: no spare connection for an inference")
        return step

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        """Marks a turn in progress, so idle-time rotation does not swap under it."""
        self._busy += 1
        try:
            yield
        finally:
            self._busy -= 1

    async def close(self) -> None:
        held = self.pool.close()
        tasks = [*self._tasks, *([self._connecting] if self._connecting is not None else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        connections = [*held, *self.retired]
        await asyncio.gather(*(c.close() for c in connections), return_exceptions=True)

    # -- carrying out the pool's decisions ------------------------------------------------

    def _carry_out(self, actions: list[PoolAction[Connection]]) -> None:
        for action in actions:
            if isinstance(action, Log):
                logger.log(action.level, action.message)
            elif isinstance(action, Changed):
                self._changed.set()
                self._changed = asyncio.Event()
            elif isinstance(action, OpenSpare):
                self._spare_task = self._spawn(self._open_spare())
            elif isinstance(action, CloseWhenQuiet):
                self.retired.append(action.connection)
                self._spawn(self._close_when_quiet(action.connection, action.grace))
            elif isinstance(action, Close):
                self._spawn(action.connection.close())
            elif isinstance(action, TakeBackWhenQuiet):
                self._spawn(self._take_back_when_quiet(action.connection, action.within))
            elif isinstance(action, Reconnect):
                if self._reconnecting is None or self._reconnecting.done():
                    self._reconnecting = self._spawn(self._reconnect_with_backoff())
        self.changes.notify()

    # -- connecting -----------------------------------------------------------------------

    def _connect(self) -> asyncio.Task[Connection]:
        """The one attempt at a new current connection, shared by whoever needs it meanwhile."""
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.create_task(self._replace(reason="no usable connection", if_needed=True))
        return self._connecting

    async def _replace(self, *, reason: str, warm: bool = True, if_needed: bool = False) -> Connection:
        """Make-before-break: open and warm a new connection; the pool swaps it in (or keeps it as
        the spare, ``if_needed`` and the old one came back meanwhile)."""
        conn = await self._open()
        if warm:
            await self._warm_up_or_close(conn)
        serving, actions = self.pool.connected(conn, time.monotonic(), reason=reason, if_needed=if_needed)
        self._carry_out(actions)
        return serving

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

    async def _close_when_quiet(self, conn: Connection, grace: float) -> None:
        try:
            await _quiet_or_closed(conn, grace)
        finally:
            await conn.close()
            if conn in self.retired:
                self.retired.remove(conn)  # its figures go with it; a long-lived bot rotates forever

    def _connection_retired(self, conn: Connection, reason: str, soon: bool) -> None:
        self._carry_out(self.pool.retired(conn, reason, soon, time.monotonic()))

    async def _take_back_when_quiet(self, conn: Connection, within: float) -> None:
        await _quiet_or_closed(conn, within)
        self._carry_out(self.pool.waited(conn))

    async def _open_spare(self) -> None:
        try:
            spare = await self._open()
            await self._warm_up_or_close(spare)
        except ResponsesWSError as e:
            self._carry_out(self.pool.spare_failed(str(e)))
            return
        except BaseException:
            self.pool.spare_opening = False
            raise
        self._carry_out(self.pool.spare_ready(spare, time.monotonic()))

    async def _reconnect_with_backoff(self) -> None:
        attempt = 0
        while not self.pool.closing:
            conn = self.pool.current
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
                delay = self.pool.backoff(attempt, random.uniform(0.75, 1.0))
                attempt += 1
                logger.warning(f"{self._name}: reconnect failed ({e}); next try in {delay:.2f}s")
                await asyncio.sleep(delay)

    async def _rollover_loop(self) -> None:
        """Rotate before the age limit, at a moment no turn is running."""
        while not self.pool.closing:
            now = time.monotonic()
            step, actions = self.pool.rollover(now, busy=self._busy > 0)
            self._carry_out(actions)
            if isinstance(step, SleepUntil):
                await asyncio.sleep(step.at - now)
                continue
            try:
                await self._replace(reason=step.reason)
            except ResponsesWSError as e:
                logger.warning(f"{self._name}: proactive rotation failed: {e}")
                await asyncio.sleep(ROTATION_FAILED_RETRY_SECS)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


def _reason(happening: Failed | Retry) -> str:
    return str(happening.error) if isinstance(happening, Failed) else happening.reason


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
