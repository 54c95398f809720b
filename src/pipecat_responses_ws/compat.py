"""Every name of Pipecat's and of websockets' that is not their public API, reached from here only.

The package is tested with Pipecat 1.14 (``pyproject.toml`` bounds ``pipecat-ai`` to it) and runs
with websockets 15 to 17. Each function says what it relies on and what happens where it is
missing: where it can tell, it degrades and says so once in the log; either way
``tests/test_compat.py`` fails naming what the installed version no longer has.

Not here: the protected members Pipecat's own services in other modules use as the subclass
contract of ``LLMService`` (``_settings``, ``_register_event_handler``, ``_call_event_handler``,
``_push_llm_text``, ``_filter_incomplete_user_turns``, ``_apply_thinking_default``,
``_check_response_schema``). The stage uses them as those services do; the tests check they
are there.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from websockets.asyncio.client import ClientConnection
from websockets.frames import Frame as WebSocketFrame

from .log import logger

if TYPE_CHECKING:
    # Imported where used: the WebSocket client imports this module, and it does without Pipecat.
    from pipecat.frames.frames import Frame
    from pipecat.services.llm_service import LLMService

TESTED_PIPECAT = "1.14"
TESTED_WEBSOCKETS = "15 to 17"

_warned: set[str] = set()


def _installed(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "(unknown version)"


def _missing(what: str, consequence: str, *, package: str = "pipecat-ai", tested: str = TESTED_PIPECAT) -> None:
    """Say once per process that ``what`` is gone from the installed ``package``, and what that costs."""
    if what in _warned:
        return
    _warned.add(what)
    logger.warning(
        f"{package} {_installed(package)} has no {what} (pipecat-responses-ws is tested with {package} {tested}): "
        f"{consequence}"
    )


# -- Pipecat: the function-call runner ------------------------------------------------------------


@contextmanager
def withholding_event(service: LLMService[Any], event_name: str) -> Iterator[None]:
    """While inside, ``service`` fires every event but ``event_name``.

    Relies on Pipecat firing an object's events through ``self._call_event_handler(name, ...)``,
    looked up on the instance (``LLMService.run_function_calls`` fires ``on_function_calls_started``
    that way): the instance's attribute shadows the class's method for just this long, rather than
    a method override that every event (two per pushed frame) would pass through. Where the method
    is missing, nothing is withheld: the event fires as it would without this.
    """
    fire: Callable[..., Awaitable[None]] | None = getattr(type(service), "_call_event_handler", None)
    if fire is None:
        _missing(
            "BaseObject._call_event_handler",
            f"{event_name} is not withheld (a filler on function calls may play once per call)",
        )
        yield
        return

    async def all_but_withheld(name: str, *args: Any, **kwargs: Any) -> None:
        if name != event_name:
            await fire(service, name, *args, **kwargs)

    vars(service)["_call_event_handler"] = all_but_withheld
    try:
        yield
    finally:
        del vars(service)["_call_event_handler"]


def cancels_on_interruption(service: LLMService[Any], function_name: str) -> bool:
    """Whether a call of ``function_name`` is cancelled by an interruption (its registration says so).

    Relies on ``LLMService._functions``, the registry Pipecat's runner looks calls up in: a dict
    of ``FunctionCallRegistryItem`` keyed by name, ``None`` for the catch-all. Pipecat 1.14 has no
    public accessor for ``cancel_on_interruption``. Where the registry is missing, every call
    counts as cancelled by interruptions, ``register_function``'s default.
    """
    registry = getattr(service, "_functions", None)
    if not isinstance(registry, dict):
        _missing(
            "LLMService._functions",
            "every function counts as cancel_on_interruption=True (an async tool's result waits for its response)",
        )
        return True
    registered = registry.get(function_name) or registry.get(None)
    return registered is None or bool(getattr(registered, "cancel_on_interruption", True))


def final_tool_result(frame_cls: type[Frame], kwargs: dict[str, Any]) -> bool:
    """Whether ``broadcast_frame(frame_cls, **kwargs)`` is Pipecat's runner delivering a call's final result.

    Relies on ``LLMService``'s function-call runner handing each result to ``self.broadcast_frame``
    as ``FunctionCallResultFrame`` with its fields as keywords, ``properties.is_final`` telling a
    final result from an intermediate one (no properties: final). Had it stopped doing so, results
    would reach the aggregator unheld: ``tests/test_compat.py`` checks it does.
    """
    from pipecat.frames.frames import FunctionCallResultFrame

    if frame_cls is not FunctionCallResultFrame:
        return False
    properties = kwargs.get("properties")
    return properties is None or bool(getattr(properties, "is_final", True))


def cancelled_tool_call(frame_cls: type[Frame], kwargs: dict[str, Any]) -> str | None:
    """The call's id when ``broadcast_frame(frame_cls, **kwargs)`` is Pipecat settling a cancelled call.

    Relies on ``LLMService`` settling a call cancelled by an interruption or a timeout with
    ``self.broadcast_frame(FunctionCallCancelFrame, tool_call_id=...)``; ``tests/test_compat.py``
    checks it does.
    """
    from pipecat.frames.frames import FunctionCallCancelFrame

    if frame_cls is not FunctionCallCancelFrame:
        return None
    return str(kwargs.get("tool_call_id"))


# -- Pipecat: the built-in Responses service's reasoning defaults ---------------------------------


def openai_reasoning_effort(model: str) -> str | None:
    """The lowest reasoning effort Pipecat lists for ``model`` (a dated snapshot gets its model's).

    Relies on ``pipecat.services.openai.responses.llm._THINKING_DEFAULTS`` and ``_model_name``,
    the table the built-in sends from; Pipecat 1.14 has no public one. Where they are missing,
    None: the model runs at OpenAI's default effort unless the settings set ``reasoning``.
    """
    from pipecat.services.openai.responses import llm as builtin_responses

    table = getattr(builtin_responses, "_THINKING_DEFAULTS", None)
    model_name = getattr(builtin_responses, "_model_name", None)
    if not isinstance(table, dict) or model_name is None:
        _missing(
            "pipecat.services.openai.responses.llm._THINKING_DEFAULTS",
            "reasoning models run at OpenAI's default effort unless the settings set `reasoning`",
        )
        return None
    effort = table.get(model_name(model))
    return effort if isinstance(effort, str) else None


def openai_model_reasons(model: str) -> bool:
    """Whether Pipecat knows ``model`` to reason (unknown models: False).

    Relies on ``pipecat.services.openai.responses.llm._model_supports_reasoning``. Where it is
    missing, False: a reasoning model Pipecat lists no effort for is not warned about.
    """
    from pipecat.services.openai.responses import llm as builtin_responses

    supports = getattr(builtin_responses, "_model_supports_reasoning", None)
    if supports is None:
        _missing(
            "pipecat.services.openai.responses.llm._model_supports_reasoning",
            "a reasoning model with no listed effort is not warned about",
        )
        return False
    return bool(supports(model))


# -- websockets ----------------------------------------------------------------------------------


def received_frames(ws: ClientConnection) -> deque[WebSocketFrame] | None:
    """The frames ``ws`` has read off the socket and not yet handed to ``recv``.

    Relies on websockets' message assembler (``ws.recv_messages``) keeping them in
    ``frames.queue``, a deque, as websockets 15 to 17 do. Where a version keeps them elsewhere,
    None: text deltas that arrive together are not joined (each is a frame of its own), and the
    reader works as before.
    """
    frames = getattr(getattr(ws, "recv_messages", None), "frames", None)
    queue = getattr(frames, "queue", None)
    if isinstance(queue, deque):
        return queue
    _missing(
        "ClientConnection.recv_messages.frames.queue",
        "text deltas that arrive together are pushed one frame each, not joined",
        package="websockets",
        tested=TESTED_WEBSOCKETS,
    )
    return None
