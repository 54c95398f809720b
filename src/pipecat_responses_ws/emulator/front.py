"""One port for both protocols: each connection goes to websockets or to aiohttp by its first bytes.

websockets parses nothing but ``GET`` (the upgrade) and refuses a request body, so it cannot take
``POST /v1/responses``. So every accepted connection waits for its first bytes: a request that
starts with ``GET `` is handed to websockets exactly as if websockets had accepted it itself
(``process_request``, the handshake delay, close codes and every fault are untouched), and
anything else goes to aiohttp's low-level HTTP server, which then owns the transport, keep-alive
included. The handover is asyncio's own (``Transport.set_protocol``): from then on the transport
calls aiohttp's protocol, never this one.
"""

from __future__ import annotations

import asyncio
from typing import cast

from aiohttp import web
from websockets.asyncio.server import ServerConnection

UPGRADE_METHOD = b"GET "
# websockets' default open_timeout: a connection that says nothing for this long is dropped, as before.
SILENCE_LIMIT = 10.0


class FrontDoor:
    """Where connections that are not upgrades go, and the connections that have not said yet."""

    def __init__(self, http: web.Server) -> None:
        self.http = http
        self.undecided: set[asyncio.Transport] = set()

    def connection_class(self) -> type[ServerConnection]:
        """For websockets' ``serve(create_connection=...)``: a connection that decides before it starts."""
        door = self

        class DecidingConnection(ServerConnection):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                # websockets is told of the connection only once it turns out to be an upgrade.
                self._held = cast(asyncio.Transport, transport)
                self._head: bytes | None = b""
                self._silence = asyncio.get_running_loop().call_later(SILENCE_LIMIT, self._held.abort)
                door.undecided.add(self._held)

            def data_received(self, data: bytes) -> None:
                if self._head is None:
                    super().data_received(data)
                    return
                head = self._head + data
                if len(head) < len(UPGRADE_METHOD) and UPGRADE_METHOD.startswith(head):
                    self._head = head
                    return
                self._head = None
                self._silence.cancel()
                door.undecided.discard(self._held)
                if head.startswith(UPGRADE_METHOD):
                    super().connection_made(self._held)
                    super().data_received(head)
                else:
                    door.hand_over(self._held, head)

            def eof_received(self) -> None:
                if self._head is None:
                    super().eof_received()
                # Undecided: returning None closes the transport, which is all there is to do.

            def connection_lost(self, exc: Exception | None) -> None:
                if self._head is None:
                    super().connection_lost(exc)
                else:
                    self._silence.cancel()
                    door.undecided.discard(self._held)

        return DecidingConnection

    def hand_over(self, transport: asyncio.Transport, head: bytes) -> None:
        protocol = self.http()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        protocol.data_received(head)

    async def close(self, timeout: float) -> None:
        """Drop the connections that never said what they are, then shut the HTTP side down."""
        for transport in list(self.undecided):
            transport.abort()
        # Idle keep-alive connections close at once; only answers still being written get the timeout.
        self.http.pre_shutdown()
        await self.http.shutdown(timeout)
