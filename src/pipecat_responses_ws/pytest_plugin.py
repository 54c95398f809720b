"""pytest plugin: an ``emulator`` fixture so users test their bots offline.

Registered through the ``pytest11`` entry point, so installing the package is enough::

    async def test_my_bot(emulator):
        service = ResponsesWSLLMService(api_key="test", ws_url=emulator.ws_url, ...)

The fixture is function-scoped and yields a started :class:`~pipecat_responses_ws.emulator.Emulator`
with default settings. It needs pytest-asyncio; without it, tests asking for the fixture are
skipped with a message saying so, and the rest of the suite is unaffected.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pipecat_responses_ws.emulator import Emulator

try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - exercised only where pytest-asyncio is missing
    pytest_asyncio = None  # type: ignore[assignment]

MISSING_ASYNCIO = (
    "the 'emulator' fixture needs pytest-asyncio (pip install pytest-asyncio); "
    "the emulator itself can still be started by hand with 'async with Emulator() as emu'"
)

if pytest_asyncio is not None:

    @pytest_asyncio.fixture
    async def emulator() -> AsyncIterator[Emulator]:
        """A started emulator with default settings, stopped after the test."""
        # Imported here so loading the plugin costs nothing for suites that never use it.
        from pipecat_responses_ws.emulator import Emulator

        async with Emulator() as emu:
            yield emu

else:  # pragma: no cover

    @pytest.fixture
    def emulator() -> Iterator[None]:
        pytest.skip(MISSING_ASYNCIO)
        yield None
