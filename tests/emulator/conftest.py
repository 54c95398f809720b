"""Fixtures for the emulator tests: fast emulators whose every sent event is checked at teardown.

Each emulator made here is validated after the test against the official SDK's event unions
(the WebSocket one, or the HTTP stream's for what went over HTTP), and each lane's stream is
checked to number its events 0, 1, 2… from ``response.created`` to its terminal event.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import websockets
from emu_helpers import FAST, Peer, check_sequence_numbers, validate_sent
from websockets.asyncio.client import ClientConnection

from pipecat_responses_ws.emulator import Emulator


@pytest.fixture
async def make_emulator() -> AsyncIterator[Callable[..., Awaitable[Emulator]]]:
    made: list[Emulator] = []

    async def make(**settings: Any) -> Emulator:
        emu = Emulator(**{**FAST, **settings})
        await emu.start()
        made.append(emu)
        return emu

    yield make
    for emu in made:
        await emu.stop()
    for emu in made:
        validate_sent(emu)
        check_sequence_numbers(emu)


@pytest.fixture
async def emu(make_emulator: Callable[..., Awaitable[Emulator]]) -> Emulator:
    return await make_emulator()


@pytest.fixture
async def connect() -> AsyncIterator[Callable[..., Awaitable[Peer]]]:
    """Open raw connections to an emulator (closed after the test)."""
    opened: list[ClientConnection] = []

    async def open_peer(emu: Emulator, token: str | None = "test", url: str | None = None) -> Peer:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        # An unbounded queue keeps a test that stops reading early from stalling the close handshake.
        ws = await websockets.connect(
            url or emu.ws_url, additional_headers=headers, open_timeout=5, close_timeout=1, max_queue=None
        )
        opened.append(ws)
        return Peer(ws)

    yield open_peer
    for ws in opened:
        await ws.close()
