"""The Pipecat LLM stage both services share, whatever carries its requests.

Pipecat glue only: frames, function calls, metrics. What to send, which events count and what
a barge-in does are the client session's decisions (``protocol/session.py``); the transport's
driver (a WebSocket connection, or one HTTP request) carries them out. On barge-in the turn's
``CancelledError`` goes on at once after handing the response to the session, so the
``InterruptionFrame`` reaches TTS and transport without waiting for the network.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import Any, Protocol, cast

from pipecat.adapters.llm.services.open_ai_responses_adapter import OpenAIResponsesLLMAdapter
from pipecat.frames.frames import (
    Frame,
    FunctionCallResultFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMMessagesAppendFrame,
    LLMTextFrame,
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
from pipecat.services.openai.base_llm import OPENAI_MODEL_WITHOUT_RESPONSE_SCHEMA
from pipecat.services.settings import LLMSettings
from pipecat.utils.deprecation import warn_deprecated
from pipecat.utils.tracing.service_decorators import traced_llm
from pipecat.utils.types import is_given

from .client.driver import Driver
from .compat import cancelled_tool_call, cancels_on_interruption, final_tool_result, withholding_event
from .log import exception_text, logger
from .protocol import events as ev
from .protocol.errors import AuthenticationError, ConnectionLost, HandshakeRejected, PhaseTimeout, ResponsesWSError
from .protocol.redaction import register_secret
from .protocol.response import (
    Failed,
    Finished,
    ReasoningItem,
    Response,
    Retry,
    ToolCallAnnounced,
    ToolCallReady,
    ToolCallRejected,
)
from .protocol.session import ClientSession
from .protocol.session_core import ServiceStats, SessionOptions
from .settings import (
    ReasoningConfig,
    ResponsesWSSettings,
    context_tool_choice,
    default_settings,
    request_fields,
    thinking_default,
    unsupported_fields,
)


class Transport(Protocol):
    """What carries the stage's requests: the WebSocket client, the HTTP one, or the two with the 426 switch."""

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    def turn(self) -> AbstractContextManager[None]: ...
    async def open_response(
        self, full_input: list[dict[str, Any]], retry: Retry | None = None
    ) -> tuple[Driver, Response]: ...
    async def open_out_of_band(
        self, full_input: list[dict[str, Any]], retry: Retry | None = None
    ) -> tuple[Driver, Response]: ...


class ResponsesStage(LLMService[OpenAIResponsesLLMAdapter]):
    """The Responses API as a Pipecat LLM stage; a subclass gives it its transport (``_transport``)."""

    Settings = ResponsesWSSettings
    ReasoningConfig = ReasoningConfig
    _settings: ResponsesWSSettings
    _transport: Transport
    adapter_class = OpenAIResponsesLLMAdapter
    supports_response_schema = True

    def __init__(
        self,
        *,
        api_key: str | None,
        model: str | None,
        service_tier: str | None,
        settings: ResponsesWSSettings | None,
        retry_timeout_secs: float | None,
        retry_on_timeout: bool | None,
        store: bool,
        first_event_timeout: float,
        stall_timeout: float,
        coalesce_text: bool,
        text_pacing: float | None,
        session_options: SessionOptions,
        **kwargs: Any,
    ) -> None:
        merged = default_settings("gpt-4.1")
        if model is not None:
            # As Pipecat's services take their deprecated ``model=``: honoured, with a warning that
            # names the settings field. The built-in has no such argument and drops it unsaid.
            service = type(self).__name__
            warn_deprecated(
                f"`{service}(model=...)` is deprecated: use `settings={service}.Settings(model=...)` "
                "instead. If both are given, `settings` wins.",
                stacklevel=3,  # the line that created the service
            )
            merged.model = model
        if service_tier is not None:
            merged.service_tier = service_tier
        if settings is not None:
            merged.apply_update(settings)
        super().__init__(settings=merged, **kwargs)
        self._api_key = api_key or os.environ.get("OPENAI_API_KEY") or ""
        register_secret(self._api_key)
        self._store = store
        if retry_on_timeout and retry_timeout_secs is not None:
            first_event_timeout = retry_timeout_secs
        self._first_event_timeout = first_event_timeout
        self._stall_timeout = stall_timeout
        self._coalesce_text = coalesce_text
        if text_pacing is not None and text_pacing < 0:
            raise ValueError(f"text_pacing must be a number of seconds from 0 up, or None, not {text_pacing!r}")
        self._text_pacing = text_pacing or 0.0  # 0: every delta at once
        self._session = ClientSession(
            replace(session_options, retry_on_first_event_timeout=bool(retry_on_timeout)),
            holds_results=self._holds_results,
        )
        self._starting: asyncio.Task[None] | None = None
        self._last_fields: dict[str, Any] | None = None
        # What the settings contribute to every request, made at the first one after they change.
        self._settings_fields: dict[str, Any] | None = None
        self._thinking = False  # a reasoning summary is streaming as thought frames
        self._first_text_pending = False  # the turn's TTFB ends at its first pushed text
        self._unsupported_warned: set[str] = set()
        self._refused_key: str | None = None  # the refusal already reported, not reported again
        self.stats: ServiceStats = self._session.stats
        self._register_event_handler("on_connection_error")

    @staticmethod
    def model_supports_response_schema(model: str) -> bool:
        """As Pipecat's built-in: OpenAI models before gpt-4o-mini and gpt-4o-2024-08-06 cannot."""
        return not OPENAI_MODEL_WITHOUT_RESPONSE_SCHEMA.match(model)

    # -- lifecycle --------------------------------------------------------------------------

    def can_generate_metrics(self) -> bool:
        return True

    async def setup(self, setup: FrameProcessorSetup) -> None:  # type: ignore[override]  # as Pipecat's own
        await super().setup(setup)
        # Connect and warm up now, in the background, so the first turn finds a hot socket.
        self._starting = asyncio.create_task(self._transport.start())

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        if self._starting is not None:
            self.create_task(self._report_start_failure(self._starting), "responses-ws-start")

    async def _report_start_failure(self, starting: asyncio.Task[None]) -> None:
        try:
            await asyncio.shield(starting)
        except AuthenticationError as e:
            await self._report_refused_key(e)
        except ResponsesWSError as e:
            await self._call_event_handler("on_connection_error", f"{e}")
            logger.warning(f"{self}: initial connection failed ({e}); the first turn will retry")

    async def _report_refused_key(self, error: AuthenticationError) -> None:
        """Once: every later handshake is refused the same way, and one error says it all."""
        if self._refused_key == str(error):
            logger.debug(f"{self}: {error} (already reported)")
            return
        self._refused_key = str(error)
        await self._call_event_handler("on_connection_error", f"{error}")
        await self.push_error(f"{self}: {error}", exception=error, force_treat_as_permanent=True)

    async def cleanup(self) -> None:
        await super().cleanup()
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()
            await asyncio.gather(self._starting, return_exceptions=True)
        await self._transport.close()

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
            with self._transport.turn():
                await self._run_turn(context)
        except AuthenticationError as e:
            await self._report_refused_key(e)
        except PhaseTimeout as e:
            if e.phase == "first_event":
                await self._call_event_handler("on_completion_timeout")
            await self.push_error(f"{self}: {e}", exception=e)
        except (HandshakeRejected, ConnectionLost) as e:
            await self._call_event_handler("on_connection_error", f"{e}")
            await self.push_error(f"{self}: {e}", exception=e)
        except ResponsesWSError as e:
            await self.push_error(f"{self}: {e}", exception=e)
        except Exception as e:
            logger.error(f"{self}: unexpected failure in a turn: {exception_text(e)}")
            await self.push_error(f"{self}: unexpected failure: {e}", exception=e)
        finally:
            await self.stop_processing_metrics()
            await self.push_frame(LLMFullResponseEndFrame())

    # -- one turn ---------------------------------------------------------------------------

    def _fields(self, instructions: str | None, tools: Any, tool_choice: Any = None) -> dict[str, Any]:
        """The ``response.create`` fields other than the input, for a turn, an inference or a warm-up."""
        # A copy: the caller and what follows set fields of their own (values are never changed in place).
        fields = dict(self._settings_fields or self._fields_of_settings())
        fields["store"] = self._store
        if instructions:
            fields["instructions"] = instructions
        if isinstance(tools, list) and tools:
            fields["tools"] = tools
            # The context's choice (Pipecat Flows sets one per node) wins over the settings'.
            choice = context_tool_choice(tool_choice) if is_given(tool_choice) else None
            if choice is not None:
                fields["tool_choice"] = choice
        return fields

    def _fields_of_settings(self) -> dict[str, Any]:
        """What the settings contribute to every request, kept until they change (``_update_settings``)."""
        fields = request_fields(self._settings)
        for name in unsupported_fields(self._settings):
            if name not in self._unsupported_warned:
                self._unsupported_warned.add(name)
                logger.warning(f"{self}: the Responses API has no {name!r} parameter; the setting is not sent")
        if "reasoning" not in fields:
            # As Pipecat's built-in: a model that reasons runs at its lowest effort unless told otherwise.
            model = str(self._settings.model or "")
            default, can_think = thinking_default(model)
            self._apply_thinking_default(
                fields, model, default, can_think=can_think, provider="OpenAI", settings_fields="`reasoning`"
            )
        self._settings_fields = fields
        return fields

    async def _update_settings(self, delta: LLMSettings) -> dict[str, Any]:  # type: ignore[override]  # as LLMService
        changed = await super()._update_settings(delta)
        if changed:
            self._settings_fields = None  # made again from the new settings at the next request
        return changed

    async def _invocation(
        self, context: LLMContext, system_instruction: Any
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        instruction = system_instruction if isinstance(system_instruction, str) and system_instruction else None
        params = await self.get_llm_adapter().get_llm_invocation_params(context, system_instruction=instruction)
        fields = self._fields(params.get("instructions"), params.get("tools"), context.tool_choice)
        return fields, cast(list[dict[str, Any]], list(params["input"]))

    @traced_llm  # Pipecat's ``llm`` span, as the built-in's
    async def _run_turn(self, context: LLMContext) -> None:
        fields, full_input = await self._invocation(context, self._settings.system_instruction)
        self._last_fields = fields
        self.stats.turns += 1
        retry: Retry | None = None
        while True:
            conn, response = await self._transport.open_response(full_input, retry)
            try:
                await self.start_ttfb_metrics()
                self._first_text_pending = True
                await conn.send_create(response, fields)
                ending = await self._stream(conn, response, context)
            except BaseException:  # a barge-in (CancelledError) above all
                self._abandon(conn, response)
                raise
            if isinstance(ending, Finished):
                return
            if ending.fresh_connection:
                where = " on a fresh connection"
            elif ending.full_context:
                where = " with the full context"
            else:
                where = ""
            logger.info(f"{self}: {ending.reason}; nothing was spoken yet, sending the turn again{where}")
            retry = ending

    async def _stream(self, conn: Driver, response: Response, context: LLMContext) -> Finished | Retry:
        """Act on the response's happenings until it ends; raises the error of a failed one."""
        # While this task waits, the connection's reader pushes text deltas itself: the text
        # reaches the next processor one task switch sooner. Everything else is handled here.
        conn.set_express(response, self._first_express(conn, response), coalesce=self._coalesce_text)
        if self._text_pacing:
            conn.pace_text(response, self._text_pacing)
        # Counted here, as calls are dispatched: the session's count has already moved on when
        # several calls were read together, and none of them would look like the first.
        dispatched = 0
        while True:
            happening = await conn.next_happening(response, self._first_event_timeout, self._stall_timeout)
            kind = type(happening)
            if kind is ev.TextDelta:
                await self._push_text(happening)  # type: ignore[arg-type]
            elif isinstance(happening, ToolCallReady):
                dispatched += 1
                await self._dispatch_tool(happening, context, first=dispatched == 1)
            elif isinstance(happening, ToolCallAnnounced):
                await self.stop_ttfb_metrics()
                await self.stop_ttfat_metrics()
            elif isinstance(happening, ToolCallRejected):
                logger.warning(f"{self}: not running {happening.name} ({happening.call_id}): {happening.reason}")
            elif isinstance(happening, ev.ReasoningDelta):
                await self._push_thought(happening.delta)
            elif isinstance(happening, ReasoningItem):
                await self._keep_reasoning(happening.item)
            elif isinstance(happening, Finished):
                await self._finish(response, happening)
                return happening
            elif isinstance(happening, Retry):
                return happening
            elif isinstance(happening, Failed):
                await self._push_thought_end()
                if happening.usage:
                    await self.start_llm_usage_metrics(_token_usage(happening.usage))
                raise happening.error

    def _push_text(self, delta: ev.TextDelta) -> Awaitable[None]:
        """Push ``delta``'s text as an ``LLMTextFrame`` (what ``_stream`` does with text that was
        queued, and the express handler's first words): returns what to await rather than
        awaiting it, so that after the first words a word costs ``push_frame`` alone, not a
        coroutine of its own too."""
        self.stats.text_frames_pushed += 1
        if self._first_text_pending:
            return self._push_first_text(delta)
        if self._filter_incomplete_user_turns:
            return self._push_llm_text(delta.delta)
        return self.push_frame(LLMTextFrame(delta.delta))  # as ``_push_words`` does

    def _push_words(self, delta: ev.TextDelta) -> Awaitable[None]:
        """``_push_llm_text`` less its TTFAT stop, which only the first text's call can take
        effect for, and less the turn-completion filter: the express handler after the first
        words of a response without that filter, one coroutine and two checks less per word."""
        self.stats.text_frames_pushed += 1
        return self.push_frame(LLMTextFrame(delta.delta))

    def _first_express(self, conn: Driver, response: Response) -> Callable[[ev.TextDelta], Awaitable[None]]:
        """The express handler for ``response``'s first words: it pushes them as ``_push_text``
        does, and hands the rest of the response to ``_push_words`` when that is all they need
        (the filter is read once per response, at its first words)."""

        def first(delta: ev.TextDelta) -> Awaitable[None]:
            if not self._filter_incomplete_user_turns:
                conn.set_express(response, self._push_words, coalesce=self._coalesce_text)
            return self._push_text(delta)

        return first

    async def _push_first_text(self, delta: ev.TextDelta) -> None:
        # The first words go out ahead of the TTFB metrics frame: the speaker waits for them,
        # the metrics do not. The measurement still ends when they arrived.
        arrived = time.time()
        self._first_text_pending = False
        await self._push_llm_text(delta.delta)
        await self.stop_ttfb_metrics(end_time=arrived)
        if self.reports_ttfat:
            # Pipecat's TTFAT extends a stopped TTFB, so ``_push_llm_text`` above could not end
            # it unless a reasoning summary had already ended the TTFB; this call then does nothing.
            await self.stop_ttfat_metrics(end_time=arrived)

    async def _finish(self, response: Response, finished: Finished) -> None:
        await self._push_thought_end()
        if finished.usage:
            await self.start_llm_usage_metrics(_token_usage(finished.usage))
        if not response.text_delivered and not response.calls_started:
            await self.push_error(f"{self}: response {finished.response_id} ended with no text and no tool call")

    def _abandon(self, conn: Driver, response: Response) -> None:
        """Hand the response to the session's barge-in rule; nothing here awaits the network."""
        if response.ended and response.off_lane:
            return
        conn.abandon(response)
        # A running TTFB would be reported as complete by the interruption; drop it instead.
        self.create_task(self.cancel_ttfb_metrics(), "responses-ws-cancel-ttfb")

    # -- tools ------------------------------------------------------------------------------

    async def _dispatch_tool(self, call: ToolCallReady, context: LLMContext, *, first: bool) -> None:
        """Start the call now (its arguments are final); results wait for the group to close.

        ``run_function_calls`` only announces the call and starts its task, so awaiting it here
        does not hold up the stream. ``on_function_calls_started`` fires for a response's first
        call only (with that call): a "let me check" filler plays once, however many calls follow.
        """
        function_call = FunctionCallFromLLM(
            function_name=call.name, tool_call_id=call.call_id, arguments=call.arguments, context=context
        )
        if first:
            await self.run_function_calls([function_call])
            return
        with withholding_event(self, "on_function_calls_started"):
            await self.run_function_calls([function_call])

    def _holds_results(self, name: str) -> bool:
        # A call that outlives an interruption answers on its own; the others answer as a group.
        return cancels_on_interruption(self, name)

    def _release_tool_results(self, results: list[dict[str, Any]]) -> None:
        for result in results:
            self.create_task(super().broadcast_frame(FunctionCallResultFrame, **result), "responses-ws-tool-result")

    async def broadcast_frame(self, frame_cls: type[Frame], **kwargs: Any) -> None:
        # Pipecat's function-call runner settles each call through here: results are held for their group.
        if final_tool_result(frame_cls, kwargs):
            for result in self._session.tools.on_result(kwargs):
                await super().broadcast_frame(FunctionCallResultFrame, **result)
            return
        cancelled = cancelled_tool_call(frame_cls, kwargs)
        if cancelled is not None:
            self._session.tools.cancel_call(cancelled)
        await super().broadcast_frame(frame_cls, **kwargs)

    # -- reasoning --------------------------------------------------------------------------

    async def _push_thought(self, text: str) -> None:
        if not self._thinking:
            # As the built-in: the first byte is the reasoning's, and TTFAT counts the thinking
            # from there to the first word.
            await self.stop_ttfb_metrics()
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

    def _on_connection_error(self, error: ResponsesWSError) -> None:
        self.create_task(self._report_connection_error(error), "responses-ws-error")

    async def _report_connection_error(self, error: ResponsesWSError) -> None:
        await self._call_event_handler("on_connection_error", f"{error}")
        await self.push_error(f"{self}: {error}", exception=error)

    # -- one-shot inference -------------------------------------------------------------------

    async def run_inference(
        self,
        context: LLMContext,
        max_tokens: int | None = None,
        system_instruction: str | None = None,
        response_schema: dict[str, Any] | None = None,
    ) -> str | None:
        """A one-shot inference on ``context``, outside the pipeline (summaries, classifiers, judges).

        It runs with ``store: false`` and its context in full, is never part of the conversation's
        chain and never holds up a streaming turn: over the WebSocket on a lane of its own on the
        connection already open (no handshake), or on the spare connection without lanes; over
        HTTP (``ResponsesHTTPLLMService``, or after a 426) as a request of its own. Returns the
        answer's text; raises ``ResponsesWSError`` when the response fails.
        """
        fields, full_input = await self._invocation(context, system_instruction or self._settings.system_instruction)
        fields["store"] = False
        if max_tokens is not None:
            fields["max_output_tokens"] = max_tokens
        schema = self._check_response_schema(response_schema)
        if schema is not None:
            fields["text"] = {"format": {"type": "json_schema", "name": "response", "schema": schema, "strict": True}}
        retry: Retry | None = None
        with self._transport.turn():
            while True:
                conn, response = await self._transport.open_out_of_band(full_input, retry)
                try:
                    await conn.send_create(response, fields)
                    ending = await self._await_ending(conn, response)
                except BaseException:
                    if not response.off_lane:
                        conn.abandon(response)
                    raise
                if isinstance(ending, Finished):
                    return _output_text(ending.output)
                logger.info(f"{self}: {ending.reason}; sending the inference again")
                retry = ending

    async def _await_ending(self, conn: Driver, response: Response) -> Finished | Retry:
        """How an inference ended; its text is read from the finished output, not from deltas."""
        while True:
            happening = await conn.next_happening(response, self._first_event_timeout, self._stall_timeout)
            if isinstance(happening, Finished | Retry):
                return happening
            if isinstance(happening, Failed):
                raise happening.error


def _token_usage(usage: dict[str, Any]) -> LLMTokenUsage:
    input_details = usage.get("input_tokens_details") or {}
    output_details = usage.get("output_tokens_details") or {}
    return LLMTokenUsage(
        prompt_tokens=int(usage.get("input_tokens") or 0),
        completion_tokens=int(usage.get("output_tokens") or 0),
        total_tokens=int(usage.get("total_tokens") or 0),
        cache_read_input_tokens=int(input_details.get("cached_tokens") or 0),
        cache_creation_input_tokens=int(input_details.get("cache_write_tokens") or 0),
        reasoning_tokens=int(output_details.get("reasoning_tokens") or 0),
    )


def _output_text(output: tuple[dict[str, Any], ...]) -> str:
    """What the SDK's ``Response.output_text`` is: the ``output_text`` parts of the message items."""
    return "".join(
        str(part.get("text") or "")
        for item in output
        if item.get("type") == "message"
        for part in item.get("content") or []
        if part.get("type") == "output_text"
    )
