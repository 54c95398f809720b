"""One WebSocket: the handshake, a single reader task, sends, and the session's decisions carried out.

The reader parses each frame once and hands it to the session; what it is told to do is the
driver's (:mod:`.driver`): a happening goes to its response's queue, a cancel is sent in the
background, a line is logged. Nothing here decides anything, and nothing here can hold up an
interruption.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Coroutine
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus

from ..log import exception_text, logger
from ..protocol import events as ev
from ..protocol.errors import (
    AuthenticationError,
    ConnectionLost,
    HandshakeRejected,
    PhaseTimeout,
    ResponsesWSError,
    UpgradeRequired,
    describe_close,
)
from ..protocol.response import Response, Retry
from ..protocol.session import ClientSession
from .driver import Driver


class Connection(Driver):
    """One socket to the server; its state and every decision about it belong to the session."""

    def __init__(
        self,
        url: str,
        headers: dict[str, str],
        session: ClientSession,
        *,
        send_timeout: float = 5.0,
        on_retire: Callable[[Connection, str, bool], None] | None = None,
        on_error: Callable[[ResponsesWSError], None] | None = None,
        on_tool_results: Callable[[list[dict[str, Any]]], None] | None = None,
        name: str = "connection",
    ) -> None:
        super().__init__(session, session.connection(name), on_error=on_error, on_tool_results=on_tool_results)
        self.url = url
        self._headers = headers
        self._send_timeout = send_timeout
        self._on_retire = on_retire
        self.opened_at = 0.0
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self.closed = asyncio.Event()

    # -- lifecycle ------------------------------------------------------------------------

    async def open(self, timeout: float) -> None:
        """Handshake within ``timeout`` seconds, then start the reader."""
        started = time.monotonic()
        try:
            async with asyncio.timeout(timeout):
                self._ws = await websockets.connect(
                    self.url,
                    additional_headers=self._headers,
                    open_timeout=None,
                    compression=None,
                    max_size=None,
                    ping_interval=20,
                    ping_timeout=20,
                    close_timeout=2,
                )
        except InvalidStatus as e:
            status = e.response.status_code
            if status == 426:
                raise UpgradeRequired(
                    status, "the server answered the WebSocket upgrade with HTTP 426: it does not speak WebSocket mode"
                ) from None
            if status in (401, 403):
                raise AuthenticationError(
                    status,
                    f"the server refused the API key (HTTP {status}); set OPENAI_API_KEY or pass api_key=",
                ) from None
            raise HandshakeRejected(status, f"the server rejected the WebSocket upgrade with HTTP {status}") from None
        except TimeoutError:
            raise PhaseTimeout(f"no WebSocket handshake within {timeout:g}s", phase="connect") from None
        except (OSError, websockets.InvalidHandshake, websockets.InvalidURI) as e:
            raise ConnectionLost(f"could not connect to {self.url}: {e}", phase="connect") from None
        self.opened_at = time.monotonic()
        self.state.stats.connect_secs = self.opened_at - started
        self._reader = asyncio.create_task(self._read(), name=f"{self.name}-reader")

    @property
    def age(self) -> float:
        return time.monotonic() - self.opened_at if self.opened_at else 0.0

    @property
    def usable(self) -> bool:
        """Open, and the server has not said it is spent: new responses may start here."""
        return self._ws is not None and self.state.usable

    async def close(self) -> None:
        ws = self._ws
        if ws is not None:
            try:
                await asyncio.wait_for(ws.close(), timeout=2.0)
            except Exception as e:  # a socket we are done with must not fail whoever closes it
                logger.debug(f"{self.name}: close did not complete ({e!r}); dropping the transport")
                self.abort()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
        background = list(self._background)
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        self._socket_closed(None, "closed by the client")

    def abort(self) -> None:
        """Drop the transport now (a stuck send, a dead peer)."""
        if self._ws is not None:
            try:
                self._ws.transport.abort()
            except Exception as e:  # a transport that already tore itself down (CPython 3.11) fails here
                logger.debug(f"{self.name}: transport already gone ({e!r})")

    # -- responses ------------------------------------------------------------------------

    def open_response(
        self,
        full_input: list[dict[str, Any]],
        *,
        retry_of: tuple[Response, Retry] | None = None,
        generate: bool = True,
        out_of_band: bool = False,
    ) -> Response | None:
        """A response on a free lane with its event queue, or None if none can start here at once."""
        self._apply(self.session.retire_stuck(self.state, time.monotonic()))
        return self._attach(
            self.session.open_response(
                self.state, full_input, retry_of=retry_of, generate=generate, out_of_band=out_of_band
            )
        )

    async def send_create(self, response: Response, fields: dict[str, Any]) -> None:
        """Write ``response``'s create. A failure is not raised: it reaches the owner's queue as
        the session's verdict (send again elsewhere, or the error)."""
        payload = self.session.create_event(response, fields)
        ws = self._ws
        if ws is None or self.state.closed:
            reason = f"the connection is closed ({self.state.close_reason or 'never opened'})"
            self._apply(self.session.send_failed(response, reason, time.monotonic()))
            return
        text = json.dumps(payload)
        try:
            async with asyncio.timeout(self._send_timeout):
                await ws.send(text)
        except TimeoutError:
            self.abort()
            reason = f"send blocked for {self._send_timeout:g}s; connection dropped"
            self._apply(self.session.send_failed(response, reason, time.monotonic()))
            return
        except ConnectionClosed as e:
            reason = f"the connection closed ({describe_close(*_close_of(e))})"
            self._apply(self.session.send_failed(response, reason, time.monotonic()))
            return
        self.session.sent(response, len(text))

    # -- receiving ------------------------------------------------------------------------

    async def _read(self) -> None:
        assert self._ws is not None
        code: int | None = None
        reason = "the reader stopped"
        session, state, parse, apply = self.session, self.state, ev.parse_event, self._apply
        try:
            async for raw in self._ws:
                express = apply(session.receive(state, parse(raw), time.monotonic()))
                if express is not None:
                    await express
        except ConnectionClosed as e:
            code, reason = _close_of(e)
        except Exception as e:  # a bug here must not leave responses waiting forever
            logger.error(f"{self.name}: reader failed: {exception_text(e)}")
            reason = f"the reader failed: {e!r}"
        else:
            code, reason = _close_of(None, self._ws)
        finally:
            self._socket_closed(code, reason)

    def _socket_closed(self, code: int | None, reason: str) -> None:
        self._apply(self.session.closed(self.state, code, reason, time.monotonic()))
        self.closed.set()

    def _send_in_background(self, payload: dict[str, Any]) -> None:
        self._spawn(self._send_quietly(payload))

    def _retire(self, reason: str, soon: bool) -> None:
        if self._on_retire is not None:
            self._on_retire(self, reason, soon)

    async def _send_quietly(self, payload: dict[str, Any]) -> None:
        ws = self._ws
        if ws is None or self.state.closed:
            return
        try:
            async with asyncio.timeout(self._send_timeout):
                await ws.send(json.dumps(payload))
        except (TimeoutError, ConnectionClosed) as e:
            logger.debug(f"{self.name}: {payload['type']} not sent: {e!r}")

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def _close_of(error: ConnectionClosed | None, ws: ClientConnection | None = None) -> tuple[int | None, str]:
    """The close code and reason the peer sent (or that the transport's loss implies)."""
    received = error.rcvd if error is not None else (ws.protocol.close_rcvd if ws is not None else None)
    if received is not None:
        return received.code, received.reason
    if error is not None and error.sent is not None:
        return error.sent.code, error.sent.reason
    return 1006, "no close frame (the transport was lost)"
