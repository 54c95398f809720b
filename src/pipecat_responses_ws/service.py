"""``ResponsesWSLLMService``: the Pipecat LLM stage on one persistent Responses WebSocket.

What happens on barge-in lives in ``_abandon``: the turn's lane is flagged abandoned (a
synchronous flag the reader checks for every event), ``response.cancel`` is scheduled without
being awaited, and the ``CancelledError`` goes on at once, so the ``InterruptionFrame`` reaches
TTS and transport without waiting for the network. The next turn takes another lane and streams
in parallel with whatever the abandoned response still sends.
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from dataclasses import dataclass, field
from typing import Any

from loguru import logger
from pipecat.adapters.llm.services.open_ai_responses_adapter import OpenAIResponsesLLMAdapter
from pipecat.frames.frames import (
    Frame,
    FunctionCallCancelFrame,
    FunctionCallResultFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMMessagesAppendFrame,
    LLMThoughtEndFrame,
    LLMThoughtStartFrame,
    LLMThoughtTextFrame,
    LLMUpdateSettingsFrame,
    StartFrame,
)
from pipecat.metrics.metrics import LLMTokenUsage
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.frame_processor import FrameDirection, FrameProcessorSetup
from pipecat.services.llm_service import FunctionCallFromLLM, LLMService

from .client.client import ClientOptions, ResponsesClient
from .client.connection import Connection, is_closed_marker
from .protocol import accumulator as acc
from .protocol import wire
from .protocol.chain import InputPlan
from .protocol.errors import (
    AuthenticationError,
    ConnectionLost,
    PhaseTimeout,
    PreviousResponseNotFound,
    ResponsesWSError,
)
from .protocol.lanes import Request
from .settings import ReasoningSettings, ResponsesWSSettings, default_settings, request_fields
from .tool_results import ToolResultGate

DEFAULT_WS_URL = "wss://api.openai.com/v1/responses"
# Handled by the connection's reader while the turn waits (see ``_stream``): they only push text.
_EXPRESS_TYPES = frozenset({wire.OUTPUT_TEXT_DELTA})


@dataclass
class ServiceStats:
    """Figures no peer reports, readable by users and the harness (``service.stats``)."""

    turns: int = 0
    incremental_turns: int = 0
    full_context_fallbacks: int = 0
    transparent_retries: int = 0
    input_items_sent: int = 0
    bytes_sent: int = 0


@dataclass
class _Turn:
    conn: Connection
    request: Request
    plan: InputPlan
    context: LLMContext
    sent: bool = False
    text_pushed: bool = False
    calls_started: int = 0
    accumulator: acc.ResponseAccumulator = field(default_factory=acc.ResponseAccumulator)

    @property
    def key(self) -> str:
        return f"{self.conn.name}/{self.request.serial}"

    @property
    def replay_safe(self) -> bool:
        """Nothing audible and no tool has happened: the request may be sent again."""
        return not self.text_pushed and self.calls_started == 0


class ResponsesWSLLMService(LLMService[OpenAIResponsesLLMAdapter]):
    """OpenAI Responses API over one persistent WebSocket, one lane per turn.

    Example::

        llm = ResponsesWSLLMService(
            settings=ResponsesWSLLMService.Settings(model="gpt-4.1", system_instruction="Be brief."),
        )
    """

    Settings = ResponsesWSSettings
    Reasoning = ReasoningSettings
    _settings: ResponsesWSSettings
    adapter_class = OpenAIResponsesLLMAdapter

    def __init__(
        self,
        *,
        api_key: str | None = None,
        ws_url: str = DEFAULT_WS_URL,
        settings: ResponsesWSSettings | None = None,
        lanes: bool = True,
        lane_pool_size: int = 4,
        store: bool = False,
        send_cancel: bool = True,
        warm_up: bool = True,
        connect_timeout: float = 10.0,
        first_event_timeout: float = 15.0,
        stall_timeout: float = 8.0,
        send_timeout: float = 5.0,
        max_connection_age: float = wire.CONNECTION_MAX_AGE_SECS,
        rollover_margin: float = 300.0,
        extra_headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        """Create the service.

        Args:
            api_key: OpenAI API key; defaults to ``OPENAI_API_KEY``.
            ws_url: The Responses WebSocket endpoint (an emulator's ``ws_url`` for offline use).
            settings: Model, instructions and generation settings (updatable at run time).
            lanes: One ``stream_id`` lane per turn. ``False`` for gateways without lanes: the
                default lane, cancel, and events of an abandoned response dropped as they arrive.
            lane_pool_size: Lanes kept for reuse (more are opened only while all are busy).
            store: Sent as ``store``; with ``False`` continuation relies on the connection cache.
            send_cancel: Send ``response.cancel`` on interruption (stopped on a connection whose
                server rejects it).
            warm_up: Prepare each new connection with ``generate: false``.
            connect_timeout: Seconds for the WebSocket handshake.
            first_event_timeout: Seconds from sending a request to its first event.
            stall_timeout: Seconds allowed between two events of a streaming response.
            send_timeout: Seconds a send may block before the connection is dropped.
            max_connection_age: The server's connection age limit (60 minutes at OpenAI).
            rollover_margin: Rotate to a fresh connection this long before the age limit, while idle.
            extra_headers: Extra handshake headers.
            **kwargs: Passed to Pipecat's ``LLMService`` (``run_in_parallel``, …).
        """
        merged = default_settings("gpt-4.1")
        if settings is not None:
            merged.apply_update(settings)
        super().__init__(settings=merged, **kwargs)
        self._api_key = api_key or os.environ.get("OPENAI_API_KEY") or ""
        self._store = store
        self._send_cancel = send_cancel
        self._first_event_timeout = first_event_timeout
        self._stall_timeout = stall_timeout
        headers = {"Authorization": f"Bearer {self._api_key}", **(extra_headers or {})}
        self._client = ResponsesClient(
            ClientOptions(
                url=ws_url,
                headers=headers,
                lanes=lanes,
                pool_size=lane_pool_size,
                connect_timeout=connect_timeout,
                send_timeout=send_timeout,
                max_connection_age=max_connection_age,
                rollover_margin=rollover_margin,
            ),
            warm_up_request=self._warm_up_request if warm_up else None,
            on_connection_error=self._on_connection_error,
            name=f"{self}",
        )
        self._starting: asyncio.Task[None] | None = None
        self._last_fields: dict[str, Any] | None = None
        self._thinking = False  # a reasoning summary is streaming as thought frames
        self._tool_gate = ToolResultGate()
        self.stats = ServiceStats()

    # -- lifecycle --------------------------------------------------------------------------

    def can_generate_metrics(self) -> bool:
        return True

    @property
    def client(self) -> ResponsesClient:
        """The connection manager (connection, lane and cancel figures live on it)."""
        return self._client

    async def setup(self, setup: FrameProcessorSetup) -> None:
        await super().setup(setup)
        # Connect and warm up now, in the background, so the first turn finds a hot socket.
        self._starting = asyncio.create_task(self._client.start())

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        if self._starting is not None:
            self.create_task(self._report_start_failure(self._starting), "responses-ws-start")

    async def _report_start_failure(self, starting: asyncio.Task[None]) -> None:
        try:
            await asyncio.shield(starting)
        except AuthenticationError as e:
            await self.push_error(f"{self}: {e}", exception=e, force_treat_as_permanent=True)
        except ResponsesWSError as e:
            logger.warning(f"{self}: initial connection failed ({e}); the first turn will retry")

    async def cleanup(self) -> None:
        await super().cleanup()
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()
        await self._client.close()

    # -- frames -----------------------------------------------------------------------------

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, LLMContextFrame):
            await self._respond(frame.context)
        elif not self._handled_by_base(frame):
            await self.push_frame(frame, direction)

    def _handled_by_base(self, frame: Frame) -> bool:
        # The base forwards a settings frame aimed at another service itself.
        return isinstance(frame, LLMUpdateSettingsFrame) and frame.service is not None and frame.service is not self

    async def _respond(self, context: LLMContext) -> None:
        await self.push_frame(LLMFullResponseStartFrame())
        await self.start_processing_metrics()
        try:
            with self._client.turn():
                await self._run_turn(context)
        except AuthenticationError as e:
            await self.push_error(f"{self}: {e}", exception=e, force_treat_as_permanent=True)
        except ResponsesWSError as e:
            await self.push_error(f"{self}: {e}", exception=e)
        except Exception as e:
            logger.exception(f"{self}: unexpected failure in a turn")
            await self.push_error(f"{self}: unexpected failure: {e}", exception=e)
        finally:
            await self.stop_processing_metrics()
            await self.push_frame(LLMFullResponseEndFrame())

    # -- one turn ---------------------------------------------------------------------------

    def _fields(self, instructions: str | None, tools: Any) -> dict[str, Any]:
        """The ``response.create`` fields other than the input, for a turn or a warm-up."""
        fields = request_fields(self._settings)
        fields["store"] = self._store
        if instructions:
            fields["instructions"] = instructions
        if isinstance(tools, list) and tools:
            fields["tools"] = tools
        return fields

    async def _request_fields(self, context: LLMContext) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        params = await self.get_llm_adapter().get_llm_invocation_params(
            context, system_instruction=self._settings.system_instruction or None
        )
        fields = self._fields(params.get("instructions"), params.get("tools"))
        self._last_fields = fields
        return fields, list(params["input"])

    def _warm_up_request(self) -> dict[str, Any] | None:
        # The last turn's instructions and tools, with the settings as they are now.
        last = self._last_fields or {}
        instructions = last.get("instructions") or self._settings.system_instruction or None
        return {**self._fields(instructions, last.get("tools")), "input": []}

    async def _run_turn(self, context: LLMContext) -> None:
        fields, full_input = await self._request_fields(context)
        self.stats.turns += 1
        force_full = False
        retried = False
        while True:
            turn = await self._open_turn(context, full_input, force_full)
            try:
                await self._send(turn, fields)
                await self._stream(turn)
                return
            except asyncio.CancelledError:
                self._abandon(turn)
                raise
            except PreviousResponseNotFound:
                turn.conn.chains.forget(turn.plan.previous_response_id or "")
                if force_full:
                    raise
                logger.info(f"{self}: the server no longer holds the parent; resending the full context")
                self.stats.full_context_fallbacks += 1
                force_full = True
            except (ConnectionLost, PhaseTimeout) as e:
                self._abandon(turn)
                if not turn.replay_safe or retried or isinstance(e, PhaseTimeout):
                    raise
                logger.warning(f"{self}: {e}; nothing was spoken yet, retrying on a fresh connection")
                self.stats.transparent_retries += 1
                retried = True
            except BaseException:
                self._abandon(turn)
                raise

    async def _open_turn(self, context: LLMContext, full_input: list[dict[str, Any]], force_full: bool) -> _Turn:
        def plan_for(conn: Connection) -> InputPlan:
            return InputPlan(None, full_input, None) if force_full else conn.chains.plan(full_input)

        conn, request, plan = await self._client.open_request(
            plan_for, lambda plan: plan.parent.lane if plan.parent is not None else None
        )
        conn.chains.claim_lane(request.lane)
        return _Turn(conn=conn, request=request, plan=plan, context=context)

    async def _send(self, turn: _Turn, fields: dict[str, Any]) -> None:
        plan = turn.plan
        payload: dict[str, Any] = {"type": wire.RESPONSE_CREATE, **fields, "input": plan.input}
        if turn.request.lane is not None:
            payload["stream_id"] = turn.request.lane
        if plan.previous_response_id:
            payload["previous_response_id"] = plan.previous_response_id
        if plan.parent is not None and plan.parent.segments:
            self.stats.incremental_turns += 1
        self.stats.input_items_sent += len(plan.input)
        await self.start_ttfb_metrics()
        # Marked before the await: once the frame may have left, the request must be abandoned,
        # never silently forgotten (its events would otherwise be read as someone else's).
        turn.sent = True
        self.stats.bytes_sent += await turn.conn.send(payload)

    async def _stream(self, turn: _Turn) -> None:
        timeout, phase = self._first_event_timeout, "first_event"
        sink = turn.request.sink
        # While this task waits, the connection's reader pushes text deltas itself: the text
        # reaches the next processor one task switch sooner. Everything else is handled here.
        sink.express = functools.partial(self._express, turn)
        sink.express_types = _EXPRESS_TYPES
        while True:
            try:
                event = await sink.get(timeout)
            except TimeoutError:
                request = turn.request
                raise PhaseTimeout(
                    f"no event for {timeout:g}s", phase=phase, response_id=request.response_id, lane=request.lane
                ) from None
            if is_closed_marker(event):
                raise ConnectionLost(
                    "the connection closed mid-response", response_id=turn.request.response_id, lane=turn.request.lane
                )
            timeout, phase = self._stall_timeout, "stall"
            happening = self._happening(turn, event)
            if happening is not None and await self._handle(turn, happening):
                return

    async def _express(self, turn: _Turn, event: dict[str, Any]) -> None:
        happening = self._happening(turn, event)
        if happening is not None:
            await self._handle(turn, happening)

    def _happening(self, turn: _Turn, event: dict[str, Any]) -> acc.Happening | None:
        try:
            return turn.accumulator.feed(event)
        except ValueError as e:
            logger.warning(f"{self}: skipped a malformed {event.get('type')} event: {e}")
            return None

    async def _handle(self, turn: _Turn, happening: acc.Happening) -> bool:
        """Act on one happening; True when the response is over."""
        if isinstance(happening, acc.TextDelta):
            if turn.text_pushed:
                await self._push_llm_text(happening.text)
            else:
                # The first words go out ahead of the TTFB metrics frame: the speaker waits for
                # them, the metrics do not. The measurement still ends when they arrived.
                arrived = time.time()
                turn.text_pushed = True
                await self._push_llm_text(happening.text)
                await self.stop_ttfb_metrics(end_time=arrived)
        elif isinstance(happening, acc.ToolCallReady):
            await self._dispatch_tool(turn, happening)
        elif isinstance(happening, acc.ToolCallAnnounced):
            await self.stop_ttfb_metrics()
            await self.stop_ttfat_metrics()
        elif isinstance(happening, acc.ToolCallRejected):
            logger.warning(f"{self}: not running {happening.name} ({happening.call_id}): {happening.reason}")
        elif isinstance(happening, acc.ReasoningDelta):
            await self._push_thought(happening.text)
        elif isinstance(happening, acc.ReasoningItem):
            await self._keep_reasoning(happening.item)
        elif isinstance(happening, acc.Finished):
            await self._finish(turn, happening)
            return True
        elif isinstance(happening, acc.RequestError):
            self._release_tool_results(turn, run_llm=False)
            if happening.code == wire.PREVIOUS_RESPONSE_NOT_FOUND:
                raise PreviousResponseNotFound(happening.message, code=happening.code, lane=turn.request.lane)
            raise ResponsesWSError(
                happening.message, code=happening.code, response_id=turn.request.response_id, lane=turn.request.lane
            )
        return False

    async def _finish(self, turn: _Turn, finished: acc.Finished) -> None:
        await self._push_thought_end()
        if finished.usage:
            await self.start_llm_usage_metrics(_token_usage(finished.usage))
        if finished.status == "completed":
            if finished.response_id:
                turn.conn.chains.record(
                    finished.response_id, turn.request.lane, turn.plan, turn.plan.input, finished.output
                )
            self._release_tool_results(turn, run_llm=True)
            if not turn.text_pushed and not turn.calls_started:
                await self.push_error(f"{self}: response {finished.response_id} ended with no text and no tool call")
            return
        self._release_tool_results(turn, run_llm=False)
        if finished.status == "failed" and turn.plan.parent is not None:
            turn.conn.chains.forget(turn.plan.parent.response_id)
        raise ResponsesWSError(
            finished.error_message or f"response {finished.status}",
            code=finished.error_code,
            response_id=finished.response_id,
            lane=turn.request.lane,
        )

    def _abandon(self, turn: _Turn) -> None:
        """Give up on the turn's response without awaiting anything (see the module docstring)."""
        request = turn.request
        if request.finished:
            return
        if not turn.sent:
            turn.conn.router.withdraw(request)
        elif self._send_cancel:
            turn.conn.abandon(request)
        else:
            turn.conn.router.abandon(request, time.monotonic())
        # A running TTFB would be reported as complete by the interruption; drop it instead.
        self.create_task(self.cancel_ttfb_metrics(), "responses-ws-cancel-ttfb")
        self._release_tool_results(turn, run_llm=False)

    # -- tools ------------------------------------------------------------------------------

    async def _dispatch_tool(self, turn: _Turn, call: acc.ToolCallReady) -> None:
        """Start the call now (its arguments are final); results wait for the group to close.

        ``run_function_calls`` only announces the call and starts its task, so awaiting it here
        does not hold up the stream.
        """
        turn.calls_started += 1
        registered = self._functions.get(call.name) or self._functions.get(None)
        if registered is None or registered.cancel_on_interruption:
            self._tool_gate.add_call(turn.key, call.call_id)
        function_call = FunctionCallFromLLM(
            function_name=call.name, tool_call_id=call.call_id, arguments=call.arguments, context=turn.context
        )
        await self.run_function_calls([function_call])

    def _release_tool_results(self, turn: _Turn, *, run_llm: bool) -> None:
        for result in self._tool_gate.close(turn.key, run_llm=run_llm):
            self.create_task(super().broadcast_frame(FunctionCallResultFrame, **result), "responses-ws-tool-result")

    async def broadcast_frame(self, frame_cls: type[Frame], **kwargs: Any) -> None:
        if frame_cls is FunctionCallResultFrame and _is_final(kwargs):
            for result in self._tool_gate.on_result(kwargs):
                await super().broadcast_frame(FunctionCallResultFrame, **result)
            return
        if frame_cls is FunctionCallCancelFrame:
            self._tool_gate.cancel_call(str(kwargs.get("tool_call_id")))
        await super().broadcast_frame(frame_cls, **kwargs)

    # -- reasoning --------------------------------------------------------------------------

    async def _push_thought(self, text: str) -> None:
        if not self._thinking:
            self._thinking = True
            await self.push_frame(LLMThoughtStartFrame())
        await self.push_frame(LLMThoughtTextFrame(text=text))

    async def _push_thought_end(self) -> None:
        if self._thinking:
            self._thinking = False
            await self.push_frame(LLMThoughtEndFrame())

    async def _keep_reasoning(self, item: dict[str, Any]) -> None:
        """Carry encrypted reasoning into the context so the next turn keeps it."""
        await self._push_thought_end()
        if not item.get("encrypted_content"):
            return
        message = {
            "type": "reasoning",
            "id": item.get("id"),
            "summary": [{"type": "summary_text", "text": s.get("text", "")} for s in item.get("summary") or []],
            "encrypted_content": item["encrypted_content"],
        }
        await self.push_frame(LLMMessagesAppendFrame([self.get_llm_adapter().create_llm_specific_message(message)]))

    # -- connection-level errors --------------------------------------------------------------

    def _on_connection_error(self, conn: Connection, event: dict[str, Any]) -> None:
        error = event.get("error") or {}
        message = f"{self}: server error on {conn.name}: {error.get('code')}: {error.get('message')}"
        logger.warning(message)
        self.create_task(self.push_error(message), "responses-ws-error")


def _is_final(kwargs: dict[str, Any]) -> bool:
    properties = kwargs.get("properties")
    return properties is None or getattr(properties, "is_final", True)


def _token_usage(usage: dict[str, Any]) -> LLMTokenUsage:
    input_details = usage.get("input_tokens_details") or {}
    output_details = usage.get("output_tokens_details") or {}
    return LLMTokenUsage(
        prompt_tokens=int(usage.get("input_tokens") or 0),
        completion_tokens=int(usage.get("output_tokens") or 0),
        total_tokens=int(usage.get("total_tokens") or 0),
        cache_read_input_tokens=int(input_details.get("cached_tokens") or 0),
        reasoning_tokens=int(output_details.get("reasoning_tokens") or 0),
    )
