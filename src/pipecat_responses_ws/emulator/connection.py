"""One accepted WebSocket: reads frames, carries out the session's decisions, enforces the age limit.

A response is a task of its own (:mod:`.runner`), so lanes stream concurrently while this loop
keeps reading (a cancel or steer must be read while responses stream). Closing the connection,
for any reason, cuts every running response without a terminal event, as a real socket loss would.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from ..log import logger
from .driver import SessionDriver
from .records import ReceivedFrame
from .requests import connection_limit_error, parse_frame
from .session import ConnectionState, Send
from .settings import Shared


class ConnectionHandler(SessionDriver):
    def __init__(
        self,
        shared: Shared,
        ws: ServerConnection,
        connection_id: int,
        api_key: str | None = None,
        model: str | None = None,
    ) -> None:
        settings = shared.settings
        state = ConnectionState(
            store=shared.store,
            new_id=shared.new_id,
            cancel_policy=settings.cancel_policy,
            # The upgrade's ``?model=`` names this connection's responses when a create names none.
            model=model or settings.model,
            multiplexing=settings.multiplexing,
            stream_id_policy=settings.stream_id_policy,
        )
        super().__init__(shared, connection_id, state, api_key)
        self._ws = ws
        self._close_tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self._reading = True
        self._done = asyncio.Event()

    # -- the read loop --------------------------------------------------------------------------

    async def serve(self) -> None:
        age_limit = asyncio.create_task(self._age_limit())
        try:
            async for message in self._ws:
                if not self._reading:
                    # Frames that had already arrived stay unread too; wait for the connection to go.
                    await self._ws.wait_closed()
                    break
                await self._receive(message)
        except ConnectionClosed:
            pass
        finally:
            age_limit.cancel()
            self._cut_responses()
            await asyncio.gather(age_limit, *self._response_tasks, *self._close_tasks, return_exceptions=True)
            self._done.set()
            logger.debug("emulator connection {} closed (code {})", self.connection_id, self._ws.close_code)

    async def wait_closed(self) -> None:
        await self._done.wait()

    async def _receive(self, message: str | bytes) -> None:
        payload, error = parse_frame(message)
        raw = message if isinstance(message, str) else message.decode("utf-8", errors="replace")
        lane = payload.get("stream_id") if payload is not None else None
        lane = lane if isinstance(lane, str) else None
        frame = ReceivedFrame(self.connection_id, time.monotonic(), payload, raw, lane)
        self._shared.records.add_frame(frame)
        logger.debug("emulator connection {} received {}", self.connection_id, payload.get("type") if payload else "?")
        await self.apply([Send(error)] if error is not None else self.state.handle(payload or {}))

    # -- the socket -----------------------------------------------------------------------------

    async def send(self, event: dict[str, Any]) -> None:
        if self._closing:
            raise ConnectionClosed(None, None)
        self._shared.records.add_sent(self.connection_id, event)
        logger.debug("emulator connection {} sends {}", self.connection_id, event.get("type"))
        await self._ws.send(json.dumps(event))

    async def send_raw(self, text: str) -> None:
        if self._closing:
            raise ConnectionClosed(None, None)
        await self._ws.send(text)

    def stop_reading(self) -> None:
        """Read nothing more from the socket, so a client's large send fills the buffers and blocks.

        Pausing the transport is what stops the bytes; stopping the read loop as well keeps
        websockets from resuming the transport when its own frame queue drains.
        """
        self._reading = False
        if self._ws.transport is not None:
            self._ws.transport.pause_reading()
        logger.debug("emulator connection {} stops reading", self.connection_id)

    def close(self, code: int, reason: str) -> None:
        """Close now; ``1006`` aborts the transport without a close frame, as a network failure would."""
        if self._closing:
            return
        self._closing = True
        self._cut_responses()
        logger.debug("emulator connection {} closing with {} ({})", self.connection_id, code, reason)
        if code == 1006:
            if self._ws.transport is not None:
                self._ws.transport.abort()
        else:
            self._spawn(self._ws.close(code, reason), self._close_tasks)

    async def _age_limit(self) -> None:
        await asyncio.sleep(self._shared.settings.max_connection_age)
        event = connection_limit_error()
        self._cut_responses()
        try:
            await self.send(event)
        except ConnectionClosed:
            return
        self.close(self._shared.settings.age_limit_close_code, "connection age limit reached")
