"""pytest plugin: an ``emulator`` fixture so users test their bots offline.

Registered through the ``pytest11`` entry point, so installing the package with its ``testing``
extra (``pip install -e ".[testing]"`` in a clone; README.md's "Installing" says how from elsewhere),
or the package and ``pytest-asyncio``, is enough::

    async def test_my_bot(emulator):
        service = ResponsesWSLLMService(api_key="test", ws_url=emulator.ws_url, ...)

The fixture is function-scoped and yields a started :class:`~pipecat_responses_ws.emulator.Emulator`
with default settings. A coroutine test that asks for it runs on pytest-asyncio without a marker
and without any configuration: the plugin marks it ``asyncio`` itself, in strict mode as in auto
mode. Without pytest-asyncio, a test asking for the fixture fails with a message saying what to
install, and the rest of the suite is unaffected.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import AsyncIterator, Generator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pipecat_responses_ws.emulator import Emulator

try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - exercised only where pytest-asyncio is missing
    pytest_asyncio = None  # type: ignore[assignment]

FIXTURE = "emulator"
# Names the missing package itself, which installs wherever this package came from (it is on no index).
MISSING_ASYNCIO = (
    "the 'emulator' fixture runs on pytest-asyncio, which is not installed or not enabled: "
    'pip install "pytest-asyncio>=0.24" (what the testing extra adds)'
)


def asyncio_plugin_active(config: pytest.Config) -> bool:
    """pytest-asyncio is installed and loaded (``-p no:asyncio`` turns it off)."""
    module = sys.modules.get("pytest_asyncio.plugin")
    return module is not None and config.pluginmanager.is_registered(module)


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> Generator[None, Any, Any]:
    """Mark coroutine tests that use the fixture as asyncio tests.

    This wrapper sits inside pytest-asyncio's own (``trylast``), so the marker is there when
    pytest-asyncio decides, right after, which collected functions it runs.
    """
    collected = yield
    if collected and asyncio_plugin_active(collector.config):
        for item in collected if isinstance(collected, list) else [collected]:
            if (
                isinstance(item, pytest.Function)
                and FIXTURE in item.fixturenames
                and inspect.iscoroutinefunction(item.obj)
                and item.get_closest_marker("asyncio") is None
            ):
                item.add_marker(pytest.mark.asyncio)
    return collected


@pytest.hookimpl(tryfirst=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest) -> None:
    """Fail, with the install line, a test that asks for the fixture while pytest-asyncio is off."""
    ours = getattr(fixturedef.func, "__module__", None) == __name__
    if fixturedef.argname == FIXTURE and ours and not asyncio_plugin_active(request.config):
        pytest.fail(MISSING_ASYNCIO, pytrace=False)


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
        pytest.fail(MISSING_ASYNCIO, pytrace=False)
        yield None
