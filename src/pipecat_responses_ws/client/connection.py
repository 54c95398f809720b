"""One WebSocket: the handshake, a single reader task, sends, and the session's decisions carried out.

The reader parses each frame once and hands it to the session; what it is told to do is the
driver's (:mod:`.driver`): a happening goes to its response's queue, a cancel is sent in the
background, a line is logged. Nothing here decides anything, and nothing here can hold up an
interruption.

Behind any text delta but a response's first that goes to the owner's express handler, the
reader first reads the whole messages already waiting in the socket's buffer (nothing waits, so
no other task runs meanwhile). With coalescing on, the text deltas of the same output item among
them reach the express handler in one call; anything else (another item, a tool call, an event
of another lane) ends the joined text, which goes out before that event is acted on. When the
response's end is among them, behind nothing but signs of life, the text goes to the owner with
the end, so the turn pushes its last words and ends in one pass. The response's first delta
always goes out alone and at once, and no timer ever holds text: when the loop keeps up, nothing
is waiting and every delta goes out as it comes.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Frame

from ..compat import received_frames
from ..log import exception_text, logger
from ..protocol import events as ev
from ..protocol.actions import Action, Deliver, Touch
from ..protocol.errors import (
    AuthenticationError,
    ConnectionLost,
    HandshakeRejected,
    PhaseTimeout,
    ResponsesWSError,
    UpgradeRequired,
    describe_close,
)
from ..protocol.response import ENDINGS, Owner, Response, Retry
from ..protocol.session import ClientSession
from .driver import Driver

# Messages read ahead at most behind a text delta: a bound on how long it is held while the reader
# parses what has already arrived (a few microseconds each).
READ_AHEAD_MESSAGES = 64


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
        self._received: deque[Frame] | None = None  # frames read off the socket, not yet received
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
                raise AuthenticationError.refused(status, key_sent=_carries_a_key(self._headers)) from None
            raise HandshakeRejected(status, f"the server rejected the WebSocket upgrade with HTTP {status}") from None
        except TimeoutError:
            raise PhaseTimeout(f"no WebSocket handshake within {timeout:g}s", phase="connect") from None
        except (OSError, websockets.InvalidHandshake, websockets.InvalidURI) as e:
            raise ConnectionLost(f"could not connect to {self.url}: {e}", phase="connect") from None
        self.opened_at = time.monotonic()
        self.state.stats.connect_secs = self.opened_at - started
        self._received = received_frames(self._ws)
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
        retry: Retry | None = None,
        generate: bool = True,
        out_of_band: bool = False,
    ) -> Response | None:
        """A response on a free lane with its event queue, or None if none can start here at once."""
        self._apply(self.session.retire_stuck(self.state, time.monotonic()))
        return self._attach(
            self.session.open_response(self.state, full_input, retry=retry, generate=generate, out_of_band=out_of_band)
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
        ws = self._ws
        assert ws is not None
        code: int | None = None
        reason = "the reader stopped"
        # ``recv`` rather than ``async for``: one generator frame less per event.
        state, parse, recv, dispatch, receive, monotonic = (
            self.state,
            ev.parse_event,
            ws.recv,
            self.session.dispatch,
            self.session.receive,
            time.monotonic,
        )
        apply, read_ahead, received = self._apply, self._read_ahead, self._received
        try:
            while True:
                event = parse(await recv())
                response = dispatch(state, event)
                if response is None:
                    actions = receive(state, event, monotonic())
                else:
                    # A word for its owner, the hot path: no list of actions. What ``_apply`` does
                    # for one ``Deliver`` of text (``_express``, inline): queued, or pushed through
                    # the express handler, alone or with what already arrived behind it.
                    queue = response.owner
                    # ``event`` is a text delta: nothing else is handed over without a list.
                    if not queue.deliver_text(event):  # type: ignore[arg-type]
                        continue
                    # Never the response's first words here (those went through ``_apply``), so only
                    # what ``_express`` checks besides: coalescing, and a whole message waiting.
                    if not (queue.coalesce and received and received[0].fin):
                        try:
                            await queue.express(event)  # type: ignore[arg-type,misc]
                        except Exception as e:  # the owner fails its turn with it; the reader goes on
                            queue.fail(e)
                        continue
                    after = await read_ahead(queue, response, event)  # type: ignore[arg-type]
                    if after is None:
                        continue
                    actions = after
                while True:
                    pending = apply(actions)
                    if pending is None:
                        break
                    # Text joined on the way may have read one event past it, to act on now.
                    after = await pending
                    if after is None:
                        break
                    actions = after
                # Done with: the wait for the next message must not keep it alive (a response's
                # end carries its whole output), or every session's last one reaches the old
                # generation of the collector.
                del event, response, actions
                after = None
        except ConnectionClosed as e:
            code, reason = _close_of(e)
        except Exception as e:  # a bug here must not leave responses waiting forever
            logger.error(f"{self.name}: reader failed: {exception_text(e)}")
            reason = f"the reader failed: {e!r}"
        finally:
            self._socket_closed(code, reason)

    async def _express(self, queue: Owner, response: Response, delta: ev.TextDelta) -> list[Action] | None:
        """Push ``delta`` through the owner's express handler, with what has already arrived behind
        it (``_read_ahead``) when coalescing; returns the actions of what was read past the text,
        for the reader to carry out. ``_apply``'s, and the reader's own, inline, for a word it takes.

        The response's first delta goes out at once and alone; so does every delta with nothing
        whole waiting behind it (the first message in ``_received`` is one ``recv`` returns at
        once), or when coalescing is off: reading ahead would cost every word a look at the buffer.
        """
        frames = self._received
        if queue.coalesce and response.text_deltas > 1 and frames and frames[0].fin:
            return await self._read_ahead(queue, response, delta)
        await self._push(queue, delta)
        return None

    async def _read_ahead(self, queue: Owner, response: Response, delta: ev.TextDelta) -> list[Action] | None:
        """``delta`` and the whole messages already received behind it (nothing waits for more):
        text of the same item joins it, and when the response's end is among them, after nothing
        but signs of life, the owner gets the text and the end together, so the pipeline carries
        the last words and the end of the response in one pass instead of two. Returns the
        actions of what was read past the text."""
        texts, after = await self._read_waiting(response, delta)
        if len(texts) > 1:
            last = texts[-1]
            joined = "".join(text.delta for text in texts)
            texts = [
                ev.TextDelta(
                    stream_id=last.stream_id, sequence_number=last.sequence_number, item_id=delta.item_id, delta=joined
                )
            ]
        if any(type(a) is Deliver and a.response is response and isinstance(a.happening, ENDINGS) for a in after):
            for text in texts:
                queue.put(text)
            return after
        queue.touch()
        for n, text in enumerate(texts):
            if not queue.parked:
                # A push let other tasks run and the owner left its wait (a barge-in cancels it):
                # the rest is the owner's to handle, or nobody's.
                for later in texts[n:]:
                    queue.put(later)
                break
            if not await self._push(queue, text):
                break
        return after

    async def _read_waiting(self, response: Response, delta: ev.TextDelta) -> tuple[list[ev.TextDelta], list[Action]]:
        """``delta`` and the text deltas of its item already received behind it; and the actions of
        what came next: signs of life of the response up to its end, or the first thing that is
        neither (another item, a tool call, another lane). Only whole messages already waiting are
        read, so ``recv`` returns at once and no other task runs meanwhile."""
        ws = self._ws
        assert ws is not None
        # Everything per message is inline here: it runs for nearly every word under load.
        state, parse, recv, frames, dispatch, receive = (
            self.state,
            ev.parse_event,
            ws.recv,
            self._received,
            self.session.dispatch,
            self.session.receive,
        )
        item_id = delta.item_id
        texts = [delta]
        after: list[Action] = []
        for _ in range(READ_AHEAD_MESSAGES):
            if not (frames and frames[0].fin):  # no whole message waiting: recv would wait
                break
            event = parse(await recv())
            taken = dispatch(state, event)
            if taken is None:
                actions = receive(state, event, time.monotonic())
                after += actions
                if not actions or any(type(a) is not Touch or a.response is not response for a in actions):
                    break
                continue
            text: ev.TextDelta = event  # type: ignore[assignment]  # only text is handed over
            if taken is response and not after and text.item_id == item_id:
                texts.append(text)  # one more delta of the same item: it joins the text
                continue
            after.append(Deliver(taken, text))  # the session took it: delivering it is all that is left
            break
        return texts, after

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


def _close_of(error: ConnectionClosed) -> tuple[int | None, str]:
    """The close code and reason the peer sent (or that the transport's loss implies)."""
    if error.rcvd is not None:
        return error.rcvd.code, error.rcvd.reason
    if error.sent is not None:
        return error.sent.code, error.sent.reason
    return 1006, "no close frame (the transport was lost)"


def _carries_a_key(headers: Mapping[str, str]) -> bool:
    """Whether the handshake sent a key at all (an empty ``OPENAI_API_KEY`` sends ``Bearer`` and nothing)."""
    for name, value in headers.items():
        if name.lower() == "api-key" and value.strip():
            return True
        if name.lower() == "authorization" and value.strip().removeprefix("Bearer").strip():
            return True
    return False
