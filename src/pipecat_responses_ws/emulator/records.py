"""Everything the emulator saw and did, kept for tests to assert on.

All of it lives in the event loop, so nothing here locks. The ``Authorization`` header is kept
(a test may want to check what was sent) but never shown: ``repr`` masks it, so a failing
assertion cannot print a key.

An HTTP request to ``POST /responses`` is recorded like a one-response connection: an
:class:`HttpRequest` instead of a :class:`Handshake`, its body as a :class:`ReceivedFrame`, and
its response and events under its own ``connection_id`` (drawn from the same counter as the
WebSocket connections', so the two never collide).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..changes import Changes, until

_SECRET_HEADERS = frozenset({"authorization", "api-key", "openai-api-key", "x-api-key"})


@dataclass
class ReceivedFrame:
    """One client frame; ``payload`` is ``None`` when it was not a JSON object.

    For an HTTP request the frame is its body: ``raw`` as sent, ``payload`` the
    ``response.create`` it amounts to (the body's fields with ``"type": "response.create"``),
    so :meth:`Records.creates` lists HTTP requests and WebSocket creates alike.
    """

    connection_id: int
    time: float
    payload: dict[str, Any] | None
    raw: str
    lane: str | None


@dataclass
class SentEvent:
    """One server event as sent (frames that were deliberately not JSON are not recorded).

    Over HTTP: each server-sent event of a streamed answer (an ``error`` in its HTTP form);
    for ``stream: false``, every event the response generated, though only the final
    ``Response`` is written.
    """

    connection_id: int
    time: float
    event: dict[str, Any]


@dataclass
class InjectedFault:
    """A fault as it fired; ``frame`` is the raw text sent for frames kept out of ``Records.sent``."""

    connection_id: int
    response_id: str
    kind: str
    time: float
    frame: str | None = None


@dataclass
class Handshake:
    """One upgrade request, accepted or not. Header names are lower-cased."""

    connection_id: int
    path: str
    query: dict[str, str]
    headers: dict[str, str] = field(repr=False)
    status: int = 101

    def __repr__(self) -> str:
        return (
            f"Handshake(connection_id={self.connection_id}, path={self.path!r}, query={self.query!r}, "
            f"headers={_shown(self.headers)!r}, status={self.status})"
        )


@dataclass
class HttpRequest:
    """One HTTP request, any path, and the status it was answered with.

    Any method but ``GET``: a ``GET`` goes to the WebSocket side and is a :class:`Handshake`.
    ``status`` is ``None`` until the answer starts, and stays so when the connection was aborted
    before it. ``stream`` is the body's ``stream`` flag once the body was read as an object.
    ``closed_at`` is when the client went away before the answer was complete (a barge-in over
    HTTP); the response it was streaming is then cut as a lost WebSocket would cut it, with its
    ``cancelled_at`` set to the same moment.
    """

    connection_id: int
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str] = field(repr=False)
    status: int | None = None
    stream: bool | None = None
    closed_at: float | None = None

    def __repr__(self) -> str:
        return (
            f"HttpRequest(connection_id={self.connection_id}, method={self.method!r}, path={self.path!r}, "
            f"query={self.query!r}, headers={_shown(self.headers)!r}, status={self.status}, "
            f"stream={self.stream}, closed_at={self.closed_at})"
        )


def _shown(headers: dict[str, str]) -> dict[str, str]:
    return {k: ("<redacted>" if k in _SECRET_HEADERS else v) for k, v in headers.items()}


@dataclass
class ResponseRecord:
    """One response, from the moment its create was accepted.

    ``status`` is ``queued`` while it waits for its lane or an in-flight slot, ``in_progress``
    while it streams, then the final status (``completed``, ``failed``, ``incomplete`` or
    ``cancelled``). A response cut by a closing connection keeps ``in_progress`` (or ``queued``)
    and has no ``finished_at``. ``cancelled_at`` is when the client asked to cancel it, whatever the cancel
    policy did with the request.
    """

    id: str
    connection_id: int
    lane: str | None
    parent: str | None
    status: str
    generate: bool
    request: dict[str, Any]
    input_items: int
    output_tokens_generated: int = 0
    input_tokens: int = 0
    text: str = ""
    created_at: float | None = None
    finished_at: float | None = None
    cancelled_at: float | None = None
    end_reason: str | None = None


class Records:
    """The log of one emulator, across all its connections."""

    def __init__(self) -> None:
        self.frames: list[ReceivedFrame] = []
        self.responses: list[ResponseRecord] = []
        self.handshakes: list[Handshake] = []
        self.http_requests: list[HttpRequest] = []
        self.faults: list[InjectedFault] = []
        self._sent: list[SentEvent] = []
        # Notified on every change to anything recorded, so waits on the records (the emulator's
        # own ``wait_for``, a harness's conversation) wake on it.
        self.changes = Changes()

    # -- writing (emulator side) ----------------------------------------------------------------

    def add_frame(self, frame: ReceivedFrame) -> None:
        self.frames.append(frame)
        self.notify()

    def add_sent(self, connection_id: int, event: dict[str, Any]) -> None:
        self._sent.append(SentEvent(connection_id, time.monotonic(), event))
        self.notify()

    def add_fault(self, fault: InjectedFault) -> None:
        self.faults.append(fault)
        self.notify()

    def notify(self) -> None:
        """Wake the waits on the records; called whenever anything recorded changes."""
        self.changes.notify()

    # -- reading (test side) --------------------------------------------------------------------

    def sent(self, connection_id: int | None = None) -> list[SentEvent]:
        return [s for s in self._sent if connection_id is None or s.connection_id == connection_id]

    def creates(self, connection_id: int | None = None) -> list[dict[str, Any]]:
        return [
            f.payload
            for f in self.frames
            if f.payload is not None
            and f.payload.get("type") == "response.create"
            and (connection_id is None or f.connection_id == connection_id)
        ]

    def response(self, response_id: str) -> ResponseRecord:
        for record in self.responses:
            if record.id == response_id:
                return record
        raise KeyError(f"no response {response_id!r} was recorded")

    # The timeout is part of the call so a failing test says what it waited for.
    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Return once ``predicate()`` holds; checked again whenever a record changes."""
        name = getattr(predicate, "__qualname__", repr(predicate))
        try:
            await until(predicate, timeout, name, self.changes)
        except TimeoutError:
            raise TimeoutError(
                f"condition {name} still false after {timeout:.2f}s "
                f"({len(self.frames)} frames received, {len(self._sent)} events sent, "
                f"{len(self.responses)} responses)"
            ) from None
