"""WebSocket first; HTTP for good once the server answers the upgrade with 426.

A gateway that does not speak WebSocket mode answers the upgrade with HTTP 426 (Upgrade
Required), and will every time: retrying is pointless, so the first 426 switches every later
turn and inference to HTTP, once and for the rest of the session, as Codex does. Any other
handshake failure is the WebSocket client's to retry with backoff. The turn that met the 426
had sent nothing yet, so it goes over HTTP as it is, and nobody hears the difference.

The WebSocket client is closed only once no turn is opening on it: closing it cancels the
handshake a turn may be waiting on (one started a moment before the background start met the
426), and that turn would end cancelled, with nothing sent. Left alone, its handshake meets the
426 as well and the turn goes over HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from ..log import logger
from ..protocol.errors import UpgradeRequired
from ..protocol.response import Response, Retry
from .client import ResponsesClient
from .driver import Driver
from .http import ResponsesHTTPClient

# Opening a response on one transport: the conversation's input, and the response it retries.
Opener = Callable[[list[dict[str, Any]], Retry | None], Awaitable[tuple[Driver, Response]]]


class WebSocketOrHTTP:
    """The service's transport: ``websocket`` until it meets a 426, then ``http``."""

    def __init__(self, websocket: ResponsesClient, http: ResponsesHTTPClient, *, name: str) -> None:
        self.websocket = websocket
        self.http = http
        self._name = name
        self.switch_reason: str | None = None  # why it went over HTTP; None while on the WebSocket
        self._closing_websocket: asyncio.Task[None] | None = None
        self._opening = 0  # turns and inferences waiting on the WebSocket client for a response

    @property
    def over_http(self) -> bool:
        return self.switch_reason is not None

    async def start(self) -> None:
        try:
            await self.websocket.start()
        except UpgradeRequired as e:
            self._switch(e)

    async def open_response(
        self, full_input: list[dict[str, Any]], retry: Retry | None = None
    ) -> tuple[Driver, Response]:
        return await self._open(self.websocket.open_response, self.http.open_response, full_input, retry)

    async def open_out_of_band(
        self, full_input: list[dict[str, Any]], retry: Retry | None = None
    ) -> tuple[Driver, Response]:
        return await self._open(self.websocket.open_out_of_band, self.http.open_out_of_band, full_input, retry)

    async def _open(
        self,
        over_websocket: Opener,
        over_http: Opener,
        full_input: list[dict[str, Any]],
        retry: Retry | None,
    ) -> tuple[Driver, Response]:
        if not self.over_http:
            self._opening += 1
            try:
                return await over_websocket(full_input, retry)
            except UpgradeRequired as e:
                self._switch(e)
            finally:
                self._opening -= 1
                self._close_websocket_when_idle()
        return await over_http(full_input, retry)

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        with self.websocket.turn():
            yield

    async def close(self) -> None:
        await (self._closing_websocket or self.websocket.close())
        await self.http.close()

    def _switch(self, error: UpgradeRequired) -> None:
        if self.over_http:
            return  # a turn and the background start met the same 426: one switch, one line
        self.switch_reason = str(error)
        logger.warning(
            f"{self._name}: {error}; switching to HTTP ({self.http.base_url}/responses) for the rest of the session"
        )
        self._close_websocket_when_idle()

    def _close_websocket_when_idle(self) -> None:
        """After the switch, once no turn waits on it: its rotation loop has nothing left to do."""
        if self.over_http and self._opening == 0 and self._closing_websocket is None:
            self._closing_websocket = asyncio.get_running_loop().create_task(self.websocket.close())
