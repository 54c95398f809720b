"""WebSocket first; HTTP for good once the server answers the upgrade with 426.

A gateway that does not speak WebSocket mode answers the upgrade with HTTP 426 (Upgrade
Required), and will every time: retrying is pointless, so the first 426 switches every later
turn and inference to HTTP, once and for the rest of the session, as Codex does. Any other
handshake failure is the WebSocket client's to retry with backoff. The turn that met the 426
had sent nothing yet, so it goes over HTTP as it is, and nobody hears the difference.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

from ..log import logger
from ..protocol.errors import UpgradeRequired
from ..protocol.response import Response, Retry
from .client import ResponsesClient
from .driver import Driver
from .http import ResponsesHTTPClient


class WebSocketOrHTTP:
    """The service's transport: ``websocket`` until it meets a 426, then ``http``."""

    def __init__(self, websocket: ResponsesClient, http: ResponsesHTTPClient, *, name: str) -> None:
        self.websocket = websocket
        self.http = http
        self._name = name
        self.switch_reason: str | None = None  # why it went over HTTP; None while on the WebSocket
        self._closing_websocket: asyncio.Task[None] | None = None

    @property
    def over_http(self) -> bool:
        return self.switch_reason is not None

    async def start(self) -> None:
        try:
            await self.websocket.start()
        except UpgradeRequired as e:
            self._switch(e)

    async def open_response(
        self, full_input: list[dict[str, Any]], retry_of: tuple[Response, Retry] | None = None
    ) -> tuple[Driver, Response]:
        if not self.over_http:
            try:
                return await self.websocket.open_response(full_input, retry_of)
            except UpgradeRequired as e:
                self._switch(e)
        return await self.http.open_response(full_input, retry_of)

    async def open_out_of_band(
        self, full_input: list[dict[str, Any]], retry_of: tuple[Response, Retry] | None = None
    ) -> tuple[Driver, Response]:
        if not self.over_http:
            try:
                return await self.websocket.open_out_of_band(full_input, retry_of)
            except UpgradeRequired as e:
                self._switch(e)
        return await self.http.open_out_of_band(full_input, retry_of)

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
        # Its rotation loop has nothing left to do.
        self._closing_websocket = asyncio.get_running_loop().create_task(self.websocket.close())
