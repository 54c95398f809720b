"""The Responses API over HTTP: each response is one ``POST /responses`` streamed as server-sent events.

The second driver of the same client session: every request is a connection state of its own
(:meth:`~..protocol.session.ClientSession.http_request`: one response, no lanes, no
``response.cancel``), and the ``data:`` of each server-sent event goes to the session exactly as
a WebSocket frame does. So which events count, when a turn may be sent again, when a tool call
is ready and what a barge-in does are decided in one place for both transports. What HTTP adds:
a barge-in closes the response's stream at once (the server stops generating when its client
goes away); an error status before the stream is the session's ``refused``; the stream ending
without a terminal event is a lost connection. Requests go through the ``openai`` SDK's HTTP
client, with its own retries off (the session decides what is sent again) and no read timeout
(the stall timeout is the session's).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx2
import openai

from ..endpoint import DEFAULT_WS_URL, http_base_url
from ..log import exception_text, logger
from ..protocol import events as ev
from ..protocol.chain import ServerChains
from ..protocol.errors import ResponsesWSError
from ..protocol.response import Response, Retry
from ..protocol.session import ClientSession
from ..protocol.sse import DONE, ServerSentEvents, is_event_stream
from .driver import Driver

# How long the rest of a body is read after its terminal event. A body that ends there (OpenAI's
# does at once; others send a [DONE] first) lets its connection go back to the pool; a server
# that keeps the stream open longer is hung up on, so no socket or reader outlives its turn.
DRAIN_SECONDS = 0.1
# How much of an answer that is not a Responses stream an error quotes.
EXCERPT_BYTES = 1024
EXCERPT_CHARS = 160
OPENAI_BASE_URL = http_base_url(DEFAULT_WS_URL, None)
EXPECTED = "a Responses API server answers HTTP 200 with text/event-stream"


@dataclass
class HTTPOptions:
    base_url: str  # https://host/v1; requests go to {base_url}/responses
    api_key: str
    headers: dict[str, str] = field(default_factory=dict)  # sent with every request, winning over the SDK's
    connect_timeout: float = 10.0
    send_timeout: float = 5.0
    # Whether the server keeps responses (``store: true``): then a turn continues the last one
    # with ``previous_response_id``; otherwise every request carries the whole conversation.
    store: bool = False


@dataclass
class HTTPStats:
    requests: int = 0
    streams_closed_early: int = 0  # barge-ins and timeouts: the answer's stream closed before its end


class HTTPStream(Driver):
    """One ``POST /responses``: its request, the reader of its events, and the close that stops it."""

    def __init__(
        self,
        sdk: openai.AsyncOpenAI,
        session: ClientSession,
        name: str,
        *,
        chains: ServerChains | None,
        stats: HTTPStats,
        running: set[HTTPStream],
        on_error: Callable[[ResponsesWSError], None] | None = None,
        on_tool_results: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> None:
        super().__init__(
            session, session.http_request(name, chains), on_error=on_error, on_tool_results=on_tool_results
        )
        self._sdk = sdk
        self._stats = stats
        self._running = running  # the client's requests whose answer is being read
        self._reader: asyncio.Task[None] | None = None

    def open_response(
        self,
        full_input: list[dict[str, Any]],
        *,
        retry: Retry | None = None,
        out_of_band: bool = False,
    ) -> Response:
        response = self._attach(
            self.session.open_response(self.state, full_input, retry=retry, out_of_band=out_of_band)
        )
        assert response is not None, "a new request always has room for its one response"
        return response

    async def send_create(self, response: Response, fields: dict[str, Any]) -> None:
        """Start the request; its answer reaches the owner's queue as the session reads it."""
        payload = self.session.create_event(response, fields)
        body = {name: value for name, value in payload.items() if name != "type"}
        body["stream"] = True
        self.session.sent(response, len(json.dumps(body)))
        self._running.add(self)
        self._reader = asyncio.create_task(self._read(response, body), name=f"{self.name}-reader")

    async def close(self) -> None:
        reader = self._reader
        if reader is not None:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    async def _read(self, response: Response, body: dict[str, Any]) -> None:
        session, state, apply = self.session, self.state, self._apply
        reason = "the response stream ended without a terminal event"
        try:
            # The SDK's raw stream: its HTTP client and error statuses, but each event parsed once, here.
            # Text is never joined here (``coalesce_text`` is a WebSocket matter: nothing tells how
            # much of the SDK's stream has already arrived), so every delta is pushed alone.
            async with self._sdk.responses.with_streaming_response.create(stream=True, extra_body=body) as answer:
                chunks = answer.iter_bytes()
                content_type = answer.http_response.headers.get("content-type")
                if not is_event_stream(content_type):
                    error = _not_an_event_stream(answer.http_response, await _first_text(chunks), self._sdk.base_url)
                    apply(session.refused(response, error, time.monotonic()))
                    return
                if await self._read_events(chunks, response):
                    # Its owner has heard the ending; the rest of the body (its end, a [DONE]) is read
                    # only so that its connection can go back to the pool.
                    await _drain(chunks, self.name)
                else:
                    reason = "the response stream ended ([DONE]) without a terminal event"
        except openai.APIStatusError as e:
            apply(session.refused(response, _status_error(e, self._sdk.base_url), time.monotonic()))
        except openai.APIConnectionError as e:
            reason = f"could not reach {self._sdk.base_url}: {e}"
        except _StreamEnded:
            pass
        except Exception as e:  # the stream broke off (a dropped connection), or a bug: the turn must end
            logger.debug(f"{self.name}: the stream broke: {exception_text(e)}")
            reason = f"the response stream broke ({type(e).__name__}: {e})"
        finally:
            # A stream left open after its terminal event (the server keeps it) is closed by now.
            apply(session.closed(state, None, reason, time.monotonic()))
            self._running.discard(self)

    async def _read_events(self, chunks: AsyncIterator[bytes], response: Response) -> bool:
        """Hand each event to the session until the response has ended (``True``) or a ``[DONE]``
        came first (``False``); a body that ends first raises :class:`_StreamEnded`."""
        session, state, parse = self.session, self.state, ev.parse_event
        parser = ServerSentEvents()
        async for chunk in chunks:
            for data in parser.feed(chunk):
                if data == DONE:
                    return response.ended
                await self._carry_out(session.receive(state, parse(data), time.monotonic()))
                if response.ended:
                    return True
        raise _StreamEnded

    def _send_in_background(self, payload: dict[str, Any]) -> None:
        # The session sends nothing on a request once it started (no response.cancel over HTTP).
        logger.debug(f"{self.name}: {payload['type']} not sent: an HTTP request takes nothing more")

    def _retire(self, reason: str, soon: bool) -> None:
        """A barge-in or a timeout: close the stream now; the server stops when its client goes away."""
        reader = self._reader
        if reader is not None and not reader.done() and reader is not asyncio.current_task():
            self._stats.streams_closed_early += 1
            logger.debug(f"{self.name}: {reason}")
            reader.cancel()


class _StreamEnded(Exception):
    """The body ended before the response did."""


async def _drain(chunks: AsyncIterator[bytes], name: str) -> None:
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            async for _chunk in chunks:
                pass
    except TimeoutError:
        logger.debug(f"{name}: the server kept the stream open after its terminal event; closing it")
    except Exception as e:  # the answer is whole: a connection that breaks now only leaves the pool
        logger.debug(f"{name}: the stream broke after its terminal event: {exception_text(e)}")


async def _first_text(chunks: AsyncIterator[bytes]) -> str:
    """The start of a body, for an error to quote; never more than one chunk is waited for."""
    async for chunk in chunks:
        return chunk[:EXCERPT_BYTES].decode("utf-8", errors="replace")
    return ""


def _excerpt(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= EXCERPT_CHARS else f"{flat[:EXCERPT_CHARS]}…"


def _what_to_try(base_url: object) -> str:
    return (
        f"check that base_url ({str(base_url).rstrip('/')}) is the base URL of a server with the Responses API, "
        f"which answers POST {{base_url}}/responses (OpenAI's is {OPENAI_BASE_URL})"
    )


def _not_an_event_stream(answer: httpx2.Response, body: str, base_url: object) -> ev.ServerError:
    """An answer whose body is not server-sent events (a web page, a whole JSON response)."""
    content_type = answer.headers.get("content-type", "no content type")
    message = (
        f"POST {answer.request.url} answered HTTP {answer.status_code} with {content_type} "
        f"({_excerpt(body)!r}) where {EXPECTED}; "
        f"{_what_to_try(base_url)}"
    )
    return ev.ServerError(code="not_an_event_stream", message=message, status=answer.status_code)


def _status_error(error: openai.APIStatusError, base_url: object) -> ev.ServerError:
    """An error status and the API's error body, as the ``error`` event the WebSocket would send.

    A body that is not the API's error (a server without the Responses API: its 404 or 501
    page) says where the request went, what came back and what to try instead.
    """
    body: dict[str, Any] = error.body if isinstance(error.body, dict) else {}
    nested = body.get("error")
    details: dict[str, Any] = nested if isinstance(nested, dict) else body
    code = details.get("code") if isinstance(details.get("code"), str) else None
    message = details.get("message") if isinstance(details.get("message"), str) else None
    param = details.get("param") if isinstance(details.get("param"), str) else None
    if message is None:
        answer = error.response
        what = answer.headers.get("content-type", "no content type")
        text = error.body if isinstance(error.body, str) else ""
        quoted = f"{what}: {_excerpt(text)!r}" if text else f"{what}, no body"
        message = (
            f"POST {answer.request.url} answered HTTP {answer.status_code} {answer.reason_phrase} ({quoted}) "
            f"where {EXPECTED}; {_what_to_try(base_url)}"
        )
    return ev.ServerError(
        code=code or f"http_{error.status_code}",
        message=message,
        status=error.status_code,
        param=param,
    )


class ResponsesHTTPClient:
    """Responses over the SDK's pooled HTTP client; the interface the service drives, as the WebSocket client's.

    Nothing to warm up and nothing to rotate: a request opens (or reuses) a pooled connection,
    and a barge-in closes its stream, which also takes its connection out of the pool.
    """

    def __init__(
        self,
        options: HTTPOptions,
        *,
        session: ClientSession | None = None,
        on_error: Callable[[ResponsesWSError], None] | None = None,
        on_tool_results: Callable[[list[dict[str, Any]]], None] | None = None,
        name: str = "responses-http",
    ) -> None:
        self.options = options
        self.session = session or ClientSession()
        self.stats = HTTPStats()
        self._on_error = on_error
        self._on_tool_results = on_tool_results
        self._name = name
        self._sdk: openai.AsyncOpenAI | None = None
        # What the server stores across requests; without store, nothing is, and each request is whole.
        self._chains = ServerChains() if options.store else None
        self._running: set[HTTPStream] = set()

    @property
    def base_url(self) -> str:
        return self.options.base_url

    async def start(self) -> None:
        """Nothing to connect in advance: the first request opens the pool's first connection."""

    async def open_response(
        self, full_input: list[dict[str, Any]], retry: Retry | None = None
    ) -> tuple[HTTPStream, Response]:
        """A new request and its response, continuing the last stored response when ``store`` is on."""
        stream = self._new_stream()
        return stream, stream.open_response(full_input, retry=retry)

    async def open_out_of_band(
        self, full_input: list[dict[str, Any]], retry: Retry | None = None
    ) -> tuple[HTTPStream, Response]:
        """A request of its own for a one-shot inference: it never holds up a turn."""
        stream = self._new_stream()
        return stream, stream.open_response(full_input, retry=retry, out_of_band=True)

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        """As the WebSocket client's; over HTTP nothing rotates between turns."""
        yield

    async def close(self) -> None:
        streams = list(self._running)
        await asyncio.gather(*(stream.close() for stream in streams), return_exceptions=True)
        if self._sdk is not None:
            await self._sdk.close()
            self._sdk = None

    def _client(self) -> openai.AsyncOpenAI:
        if self._sdk is None:
            options = self.options
            self._sdk = openai.AsyncOpenAI(
                api_key=options.api_key,
                base_url=options.base_url,
                default_headers=options.headers,
                max_retries=0,
                # No read timeout: the session's first-event and stall timeouts bound the answer.
                timeout=openai.Timeout(None, connect=options.connect_timeout, write=options.send_timeout),
            )
        return self._sdk

    def _new_stream(self) -> HTTPStream:
        self.stats.requests += 1
        stream = HTTPStream(
            self._client(),
            self.session,
            f"{self._name}#http{self.stats.requests}",
            chains=self._chains,
            stats=self.stats,
            running=self._running,
            on_error=self._on_error,
            on_tool_results=self._on_tool_results,
        )
        return stream
