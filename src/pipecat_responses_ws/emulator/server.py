"""The emulator: a local server speaking the Responses WebSocket protocol and its HTTP form, and its test controls."""

from __future__ import annotations

import asyncio
import weakref
from http import HTTPStatus
from types import TracebackType
from typing import Any, Self

from aiohttp import web
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from ..log import logger
from .connection import ConnectionHandler
from .front import FrontDoor
from .handshake import UPGRADE_REQUIRED, PlannedHandshake, azure_key, bearer_token, decide, split_target
from .http import HttpEndpoint
from .options import keywords_of, unknown_names
from .records import Handshake, Records
from .script import Fault, Reply
from .settings import Settings, Shared

# Enough for a long conversation sent in full; the API's own limit is not documented.
MAX_FRAME_BYTES = 32 * 1024 * 1024
# How long stopping waits for HTTP answers to end before aiohttp cancels them.
HTTP_SHUTDOWN_SECONDS = 1.0


class Emulator:
    """A Responses WebSocket server on 127.0.0.1 with a deterministic scripted model, serving HTTP too.

    Use as ``async with Emulator(...) as emu`` or with :meth:`start` / :meth:`stop`. Point the
    official SDK at :attr:`base_url` (``websocket_base_url``) and a raw client at :attr:`ws_url`;
    point an HTTP client (the SDK's ``base_url``, Pipecat's ``OpenAIResponsesHttpLLMService``) at
    :attr:`http_base_url`: ``POST /v1/responses`` on the same port answers with server-sent events
    (``stream: true``) or one JSON ``Response``, from the same scripted model, faults and records
    (:mod:`.http`). ``websocket="refuse"`` answers every upgrade with HTTP 426, as a gateway
    without WebSocket mode does, so a client's fallback to HTTP can be tested. ``stream_end``
    says how a streamed answer ends: ``"terminal"`` as OpenAI's, ``"done"`` with ``data: [DONE]``
    as the Open Responses specification has it.

    ``multiplexing="none"`` plays a server without lanes (Azure OpenAI, LocalAI, vLLM): one
    response at a time per connection, no ``stream_id`` on any event, a one-slot cache;
    ``stream_id_policy`` says whether a create's ``stream_id`` is ignored or refused there.
    ``argument_delta_chars`` cuts call arguments into deltas of that many characters.

    The keywords are the options of :class:`~.settings.Settings`, each with its help and bounds there
    (``serve`` takes the same as flags); a wrong name or value is a one-line ``TypeError`` or ``ValueError``.
    """

    @keywords_of(Settings)
    def __init__(self, *args: Any, **options: Any) -> None:
        unknown_names(Settings, options, "emulator option")
        settings = Settings(*args, **options)
        self._shared = Shared(settings)
        self._server: Server | None = None
        self._port: int | None = None
        self._http = HttpEndpoint(self._shared)
        self._front: FrontDoor | None = None
        self._planned_handshakes: list[PlannedHandshake] = []
        self._stopping = asyncio.Event()  # ends the upgrades held by hang_handshakes
        # Weak, so an upgrade that fails after process_request leaves nothing behind.
        self._ids: weakref.WeakKeyDictionary[ServerConnection, int] = weakref.WeakKeyDictionary()
        self._connections: dict[int, ConnectionHandler] = {}
        self.connection_count = 0

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("the emulator is already running")
        # Whatever aiohttp logs per request would only repeat the emulator's own debug lines.
        self._front = FrontDoor(web.Server(self._http.handle, handler_cancellation=True, access_log=None))
        self._server = await serve(
            self._handle,
            self.settings.host,
            self.settings.port,
            process_request=self._process_request,
            compression=None,
            max_size=MAX_FRAME_BYTES,
            close_timeout=1.0,
            create_connection=self._front.connection_class(),
        )
        self._port = self._server.sockets[0].getsockname()[1]
        logger.info(
            "Responses WebSocket emulator listening on {} (HTTP: {}/responses)", self.ws_url, self.http_base_url
        )

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        await self._http.close_all(1001, "the emulator is stopping")
        server.close(close_connections=True)
        if self._front is not None:
            await self._front.close(HTTP_SHUTDOWN_SECONDS)
        await server.wait_closed()
        logger.info("Responses WebSocket emulator on port {} stopped", self._port)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # -- addresses ------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the emulator is not started")
        return self._port

    @property
    def base_url(self) -> str:
        """For the SDK's ``websocket_base_url``: the SDK appends ``/responses``."""
        return f"ws://{self.settings.host}:{self.port}/v1"

    @property
    def ws_url(self) -> str:
        return f"{self.base_url}/responses"

    @property
    def http_base_url(self) -> str:
        """For the SDK's (and Pipecat's) HTTP ``base_url``: ``POST {http_base_url}/responses``, same port."""
        return f"http://{self.settings.host}:{self.port}/v1"

    # -- test controls --------------------------------------------------------------------------

    @property
    def settings(self) -> Settings:
        return self._shared.settings

    @property
    def records(self) -> Records:
        return self._shared.records

    @property
    def open_connections(self) -> int:
        """WebSocket connections open now (HTTP answers in progress are not counted)."""
        return len(self._connections)

    def queue_replies(self, *replies: Reply) -> None:
        """Script the next generated responses, one reply each, first in first out."""
        self._shared.script.queue_replies(*replies)

    def add_fault(self, fault: Fault) -> None:
        """Inject ``fault`` into the next ``fault.count`` generated responses (after earlier faults)."""
        self._shared.script.add_fault(fault)

    def reject_handshakes(self, status: int, count: int = 1, *, after: int = 0) -> None:
        """Refuse the next ``count`` upgrades with HTTP ``status`` (e.g. 401, 426, 429, 500), once
        ``after`` more have been let through (after whatever was planned before)."""
        if not 400 <= status <= 599:
            raise ValueError("a rejection needs an HTTP error status (4xx or 5xx)")
        self._plan_handshakes(PlannedHandshake(status=status), count, after)

    def hang_handshakes(self, count: int = 1, *, after: int = 0) -> None:
        """Never answer the next ``count`` upgrades (until the emulator stops), once ``after`` more
        have been let through: a server that takes the connection and hangs."""
        self._plan_handshakes(PlannedHandshake(hang=True), count, after)

    def _plan_handshakes(self, planned: PlannedHandshake, count: int, after: int) -> None:
        if count < 0 or after < 0:
            raise ValueError("count and after must not be negative")
        self._planned_handshakes.extend([PlannedHandshake()] * after + [planned] * count)

    async def drop_all_connections(self, code: int = 1006) -> None:
        """Close every open connection, and end every HTTP answer, from the server side; wait until they are gone.

        ``1006`` (the default) aborts the TCP transport without a close frame, like a network
        failure; any other code is sent in a close frame (``1011`` for a server error), and ends a
        streamed HTTP body without its terminal event.
        """
        handlers = list(self._connections.values())
        for handler in handlers:
            handler.close(code, "dropped by the emulator")
        await asyncio.gather(
            self._http.close_all(code, "dropped by the emulator"), *(h.wait_closed() for h in handlers)
        )

    # -- serving --------------------------------------------------------------------------------

    async def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if self.settings.handshake_delay:
            await asyncio.sleep(self.settings.handshake_delay)
        connection_id = next(self._shared.connection_ids)
        path, query = split_target(request.path)
        authorization = request.headers.get("Authorization")
        planned = (
            self._planned_handshakes.pop(0)
            if self._planned_handshakes and path.endswith("/responses")
            else PlannedHandshake()
        )
        if planned.hang:
            logger.debug("emulator holds upgrade {} to {} unanswered", connection_id, path)
            await self._stopping.wait()
            planned = PlannedHandshake(status=503)
        forced = planned.status
        if forced is None and self.settings.websocket == "refuse":
            forced = UPGRADE_REQUIRED
        decision = decide(
            path,
            authorization,
            api_key=self.settings.api_key,
            forced_status=forced,
            api_key_header=request.headers.get("api-key"),
        )
        headers = {name.lower(): ", ".join(request.headers.get_all(name)) for name in request.headers}
        self.records.handshakes.append(Handshake(connection_id, path, query, headers, decision.status))
        self.records.notify()
        if decision.accepted:
            self._ids[connection] = connection_id
            return None
        logger.debug("emulator refused upgrade {} to {} with {}", connection_id, path, decision.status)
        return Response(
            decision.status,
            _reason(decision.status),
            Headers([("Content-Type", "application/json"), ("Content-Length", str(len(decision.body)))]),
            decision.body.encode(),
        )

    async def _handle(self, ws: ServerConnection) -> None:
        connection_id = self._ids.pop(ws)
        _, query = split_target(ws.request.path) if ws.request is not None else ("", {})
        handler = ConnectionHandler(self._shared, ws, connection_id, _presented_key(ws), query.get("model") or None)
        self._connections[connection_id] = handler
        self.connection_count += 1
        self.records.notify()
        logger.debug("emulator accepted connection {} at {}", connection_id, ws.request.path if ws.request else "?")
        try:
            await handler.serve()
        finally:
            del self._connections[connection_id]
            self.records.notify()


def _presented_key(ws: ServerConnection) -> str | None:
    """The API key of the upgrade: the bearer token, else an Azure-style ``api-key`` header."""
    if ws.request is None:
        return None
    headers = ws.request.headers
    return bearer_token(headers.get("Authorization")) or azure_key(headers.get("api-key"))


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
