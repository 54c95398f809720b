"""Side by side with Pipecat's built-in ``OpenAIResponsesLLMService``: what a bot switching to ours keeps.

Each scenario runs on both services against the emulator over loopback, in a real pipeline; where
the built-in falls short (it ignores the context's ``tool_choice``, it sends no organization or
project on the handshake), the test says what each does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from pipecat.frames.frames import ErrorFrame, LLMTextFrame
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMAssistantAggregatorParams,
    LLMUserAggregatorParams,
)
from pipecat.services.llm_service import FunctionCallParams, LLMService
from pipecat.services.openai.responses.llm import OpenAIResponsesLLMService
from pipecat.turns.user_turn_strategies import FilterIncompleteUserTurnStrategies
from pipecat.utils.context.llm_context_summarization import (
    LLMAutoContextSummarizationConfig,
    LLMContextSummaryConfig,
)

from pipecat_responses_ws import ResponsesWSLLMService
from pipecat_responses_ws.changes import Changes, until, within
from pipecat_responses_ws.emulator import Emulator, Fault, Reply, ToolCall
from pipecat_responses_ws.harness.pipeline import Conversation

from .conftest import weather_tools

SERVICES = ["ours", "pipecat"]


def make_service(which: str, emu: Emulator, **kwargs: Any) -> LLMService[Any]:
    settings = kwargs.pop("settings", {})
    fields = {"model": "emulated", "system_instruction": "Answer briefly.", **settings}
    if which == "ours":
        return ResponsesWSLLMService(
            api_key=kwargs.pop("api_key", "k"),
            ws_url=emu.ws_url,
            settings=ResponsesWSLLMService.Settings(**fields),
            **kwargs,
        )
    # The built-in's run_inference goes over HTTP: the emulator serves that on the same port.
    return OpenAIResponsesLLMService(
        api_key=kwargs.pop("api_key", "k"),
        ws_url=emu.ws_url,
        base_url=emu.http_base_url,
        settings=OpenAIResponsesLLMService.Settings(**fields),
        **kwargs,
    )


def frame_for_frame(which: str) -> dict[str, Any]:
    """Service settings under which ours pushes a frame per delta and joins no text, as the built-in never does."""
    return {"coalesce_text": False, "text_pacing": None} if which == "ours" else {}


@asynccontextmanager
async def running(
    which: str,
    *,
    emulator: dict[str, Any] | None = None,
    context: LLMContext | None = None,
    setup: Callable[[LLMService[Any]], None] | None = None,
    conversation: dict[str, Any] | None = None,
    **service: Any,
) -> AsyncIterator[tuple[Emulator, LLMService[Any], Conversation]]:
    async with Emulator(**{"ttft": 0.02, "tokens_per_second": 400.0, **(emulator or {})}) as emu:
        llm = make_service(which, emu, **service)
        if setup is not None:
            setup(llm)
        async with Conversation(llm, context=context or LLMContext(), **(conversation or {})) as talk:
            yield emu, llm, talk


def generated_creates(emu: Emulator) -> list[dict[str, Any]]:
    return [c for c in emu.records.creates() if c.get("generate", True)]


# -- the same on both ---------------------------------------------------------------------------


@pytest.mark.parametrize("which", SERVICES)
async def test_settings_of_the_builtin_class_are_taken_as_they_are(which: str) -> None:
    # A bot switching over keeps its settings object, reasoning config included.
    reasoning = OpenAIResponsesLLMService.ReasoningConfig(effort="low", summary="auto")
    async with Emulator(ttft=0.02, tokens_per_second=400.0) as emu:
        settings = OpenAIResponsesLLMService.Settings(
            model="emulated", system_instruction="Answer briefly.", reasoning=reasoning
        )
        cls = ResponsesWSLLMService if which == "ours" else OpenAIResponsesLLMService
        llm = cls(api_key="k", ws_url=emu.ws_url, settings=settings)
        assert cls.ReasoningConfig is OpenAIResponsesLLMService.ReasoningConfig
        async with Conversation(llm) as talk:
            await talk.say("Hello there.")
            await talk.wait_turns_ended(1)
        create = generated_creates(emu)[-1]
        assert create["reasoning"] == {"effort": "low", "summary": "auto"}
        assert create["include"] == ["reasoning.encrypted_content"]


@pytest.mark.parametrize("which", SERVICES)
async def test_a_reasoning_model_gets_its_lowest_effort_unless_told(which: str) -> None:
    async with running(which, settings={"model": "gpt-5-mini"}) as (emu, _llm, talk):
        await talk.say("Hello there.")
        await talk.wait_turns_ended(1)
    assert generated_creates(emu)[-1]["reasoning"] == {"effort": "minimal"}


@pytest.mark.parametrize("which", SERVICES)
async def test_service_tier_argument_is_sent(which: str) -> None:
    async with running(which, service_tier="flex") as (emu, _llm, talk):
        await talk.say("Hello there.")
        await talk.wait_turns_ended(1)
    assert generated_creates(emu)[-1]["service_tier"] == "flex"


@pytest.mark.parametrize("which", SERVICES)
async def test_parallel_calls_fire_on_function_calls_started_once(which: str) -> None:
    fired: list[list[str]] = []
    firing = Changes()

    def setup(llm: LLMService[Any]) -> None:
        async def weather(params: FunctionCallParams) -> None:
            await params.result_callback({"sky": "clear"})

        llm.register_function(None, weather)

        @llm.event_handler("on_function_calls_started")
        async def started(_service: Any, calls: list[Any]) -> None:
            fired.append([c.function_name for c in calls])
            firing.notify()

    emulator_script = [
        Reply(calls=[ToolCall("get_weather", {"city": "Paris"}), ToolCall("get_time", {"city": "Paris"})]),
        Reply(text="Clear, and it is noon."),
    ]
    context = LLMContext(tools=weather_tools("get_weather", "get_time"))
    async with running(which, context=context, setup=setup) as (emu, _llm, talk):
        emu.queue_replies(*emulator_script)
        await talk.say("Weather and time in Paris?")
        await talk.wait_text("noon")
        await until(lambda: fired, 2, "the event handler", firing)  # event handlers run as tasks
        # A firing per call would be tasks too, and nothing shows that they will never run: a
        # bounded wait for one, over at once if it comes.
        assert not await within(lambda: len(fired) > 1, 0.05, firing), fired
    assert len(fired) == 1, fired  # one "let me check" filler, not one per call
    assert fired[0][0] == "get_weather"


@pytest.mark.parametrize("which", SERVICES)
async def test_a_refused_key_is_one_error_and_fires_on_connection_error(which: str) -> None:
    events: list[str] = []

    def setup(llm: LLMService[Any]) -> None:
        @llm.event_handler("on_connection_error")
        async def connection_error(_service: Any, error: str) -> None:
            events.append(error)

    async with running(which, emulator={"api_key": "right"}, api_key="wrong", setup=setup) as (_emu, _llm, talk):
        await talk.wait_for(lambda: bool(talk.errors()), 5, "an error")
        await talk.say("Hello there.")
        await asyncio.sleep(0.5)
        errors: list[ErrorFrame] = talk.errors()
    if which == "ours":
        assert events, "on_connection_error never fired"
        assert len(errors) == 1, [e.error for e in errors]
        assert "wrong" not in errors[0].error
    else:
        # The built-in reports the refused handshake and then the turn that could not connect,
        # and its on_connection_error stays silent (the connect path pushes the error directly).
        assert len(errors) == 2 and not events


# -- where ours does more, or the built-in does nothing --------------------------------------------


@pytest.mark.parametrize("which", SERVICES)
async def test_the_contexts_tool_choice(which: str) -> None:
    # Pipecat Flows sets tool_choice on the context; the built-in ignores it, ours sends it.
    forced = {"type": "function", "function": {"name": "get_time"}}
    context = LLMContext(tools=weather_tools("get_weather", "get_time"), tool_choice=forced)  # type: ignore[arg-type]
    async with running(which, context=context) as (emu, _llm, talk):
        emu.queue_replies(Reply(text="Fine."))
        await talk.say("Hello there.")
        await talk.wait_turns_ended(1)
    create = generated_creates(emu)[0]
    if which == "ours":
        assert create["tool_choice"] == {"type": "function", "name": "get_time"}
    else:
        assert "tool_choice" not in create


async def test_organization_project_and_default_headers_go_on_the_handshake() -> None:
    async with Emulator() as emu:
        llm = ResponsesWSLLMService(
            api_key="k",
            base_url=emu.ws_url.replace("ws://", "http://").removesuffix("/responses"),
            organization="org-1",
            project="proj-1",
            default_headers={"X-Trace": "t1"},
            settings=ResponsesWSLLMService.Settings(model="emulated"),
        )
        async with Conversation(llm) as talk:
            await talk.say("Hello there.")
            await talk.wait_turns_ended(1)
        headers = {k.lower(): v for k, v in emu.records.handshakes[0].headers.items()}
    assert headers["openai-organization"] == "org-1"
    assert headers["openai-project"] == "proj-1"
    assert headers["x-trace"] == "t1"


def test_base_url_and_a_different_ws_url_are_refused() -> None:
    with pytest.raises(ValueError, match="give one of them"):
        ResponsesWSLLMService(api_key="k", base_url="https://a.example/v1", ws_url="wss://b.example/v1/responses")


async def test_a_late_first_event_fires_on_completion_timeout() -> None:
    fired: list[bool] = []
    firing = Changes()

    def setup(llm: LLMService[Any]) -> None:
        @llm.event_handler("on_completion_timeout")
        async def timeout(_service: Any) -> None:
            fired.append(True)
            firing.notify()

    async with running("ours", setup=setup, first_event_timeout=0.3) as (emu, _llm, talk):
        emu.queue_replies(Reply(text="Late.", fault=Fault("delay_created", seconds=2.0)))
        await talk.say("Hello there.")
        await talk.wait_for(lambda: bool(talk.errors()), 5, "the timeout error")
        await until(lambda: fired, 2, "on_completion_timeout", firing)  # event handlers run as tasks
        # A second firing would be a task too: a bounded wait for it, over at once if it comes.
        assert not await within(lambda: len(fired) > 1, 0.05, firing), fired
    assert fired == [True]


async def test_retry_on_timeout_sends_the_turn_again_once() -> None:
    async with running("ours", retry_on_timeout=True, retry_timeout_secs=0.3) as (emu, llm, talk):
        emu.queue_replies(Reply(text="Too late.", fault=Fault("delay_created", seconds=2.0)), Reply(text="On time."))
        await talk.say("Hello there.")
        await talk.wait_text("On time.")
        assert isinstance(llm, ResponsesWSLLMService)
        assert llm.stats.timeout_retries == 1
    assert "Too late." not in talk.text()
    assert not talk.errors()


async def test_tracing_makes_the_llm_span() -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    async with running("ours", conversation={"tracing": True}) as (_emu, _llm, talk):
        await talk.say("Hello there.")
        await talk.wait_turns_ended(1)
    spans = [s for s in exporter.get_finished_spans() if s.name == "llm"]
    assert spans, [s.name for s in exporter.get_finished_spans()]
    attributes = dict(spans[0].attributes or {})
    assert "You said" in str(attributes.get("output", ""))


# -- run_inference ---------------------------------------------------------------------------------


@pytest.mark.parametrize("which", SERVICES)
async def test_run_inference_answers_out_of_band(which: str) -> None:
    async with running(which) as (emu, llm, _talk):
        emu.queue_replies(Reply(text="A short summary."))
        context = LLMContext(messages=[{"role": "user", "content": "Summarise our talk."}])
        text = await llm.run_inference(context, max_tokens=50, system_instruction="Summarise.")
    assert text == "A short summary."
    create = generated_creates(emu)[-1]
    assert create["store"] is False
    assert create["max_output_tokens"] == 50
    assert create["instructions"] == "Summarise."
    assert "previous_response_id" not in create
    if isinstance(llm, ResponsesWSLLMService):
        assert llm.stats.out_of_band_inferences == 1 and llm.stats.turns == 0


@pytest.mark.parametrize("which", SERVICES)
async def test_run_inference_with_a_schema_asks_for_json(which: str) -> None:
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}},
        "required": ["answer"],
        "additionalProperties": False,
    }
    async with running(which) as (emu, llm, _talk):
        emu.queue_replies(Reply(text='{"answer": "yes"}'))
        text = await llm.run_inference(
            LLMContext(messages=[{"role": "user", "content": "Yes?"}]), response_schema=schema
        )
    assert text == '{"answer": "yes"}'
    text_format = generated_creates(emu)[-1]["text"]["format"]
    assert text_format == {"type": "json_schema", "name": "response", "schema": schema, "strict": True}


@pytest.mark.slow
async def test_run_inference_beside_a_streaming_turn_takes_its_own_lane() -> None:
    long_answer = " ".join(f"word{n}" for n in range(80)) + "."
    async with running("ours", emulator={"tokens_per_second": 100.0}) as (emu, llm, talk):
        emu.queue_replies(Reply(text=long_answer), Reply(text="Out of band."))
        await talk.say("Tell me a long story.")
        await talk.wait_text("word3")
        text = await llm.run_inference(LLMContext(messages=[{"role": "user", "content": "Classify."}]))
        assert text == "Out of band."
        assert talk.turns()[0].ended is None  # answered while the turn still streamed
        await talk.wait_turns_ended(1)
        emu.queue_replies(Reply(text="And then."))
        await talk.say("Go on.")
        await talk.wait_text("And then.")
    assert talk.turns()[0].text == long_answer  # the turn lost nothing, in order
    assert len(emu.records.handshakes) == 1  # no second connection
    turn, inference, follow_up = generated_creates(emu)
    assert inference["stream_id"] != turn["stream_id"]
    assert "previous_response_id" not in inference
    # The conversation's chain goes on from the turn, not from the inference.
    turn_id = next(
        e.event["response"]["id"]
        for e in emu.records.sent()
        if e.event["type"] == "response.completed" and "word0" in str(e.event["response"]["output"])
    )
    assert follow_up["previous_response_id"] == turn_id


async def test_run_inference_without_lanes_goes_to_the_spare() -> None:
    async with running("ours", emulator={"multiplexing": "none"}) as (emu, llm, talk):
        await talk.say("Hello there.")
        await talk.wait_turns_ended(1)
        emu.queue_replies(Reply(text="Out of band."))
        text = await llm.run_inference(LLMContext(messages=[{"role": "user", "content": "Classify."}]))
        await talk.say("Again.")
        await talk.wait_turns_ended(2)
    assert text == "Out of band."
    frames = [f for f in emu.records.frames if f.payload and f.payload.get("generate", True) is not False]
    creates = [f for f in frames if f.payload and f.payload.get("type") == "response.create"]
    conversation_connection = creates[0].connection_id
    assert creates[1].connection_id != conversation_connection  # the inference
    assert creates[2].connection_id == conversation_connection  # the next turn, still chained
    assert creates[2].payload is not None and "previous_response_id" in creates[2].payload


@pytest.mark.parametrize("which", SERVICES)
async def test_summarization_shrinks_the_context(which: str) -> None:
    params = LLMAssistantAggregatorParams(
        enable_auto_context_summarization=True,
        auto_context_summarization_config=LLMAutoContextSummarizationConfig(
            max_context_tokens=None,
            max_unsummarized_messages=6,
            summary_config=LLMContextSummaryConfig(target_context_tokens=200, min_messages_after_summary=2),
        ),
    )
    applied: list[Any] = []
    async with running(which, conversation={"assistant_params": params}) as (emu, _llm, talk):

        @talk.pair.assistant().event_handler("on_summary_applied")
        async def on_applied(_aggregator: Any, _summarizer: Any, event: Any) -> None:
            applied.append(event)
            talk.changes.notify()

        for n in range(5):
            await talk.say(f"Tell me about topic {n}.")
            await talk.wait_turns_ended(n + 1)
        await talk.wait_for(lambda: bool(applied), 10, "a summary")
        emu.queue_replies(Reply(text="After the summary."))
        await talk.say("And now?")
        await talk.wait_text("After the summary.")
        messages = talk.messages()
    assert not talk.errors(), [e.error for e in talk.errors()]
    assert applied[0].new_message_count < applied[0].original_message_count
    assert any("summary" in str(m.get("content", "")).lower() for m in messages)
    # The rewritten context no longer matches what the server holds: sent in full, no broken chain.
    last = generated_creates(emu)[-1]
    assert "previous_response_id" not in last
    assert len(last["input"]) < 10


async def test_works_as_frontend_and_backend_of_llm_with_backend() -> None:
    """Pipecat's two-tier agent: ours answers the caller and delegates, ours does the work."""
    from pipecat.pipeline.llm_with_backend import LLMWithBackend
    from pipecat.workers.llm.backend_llm_worker import BackendLLMWorker

    pace = {"ttft": 0.02, "tokens_per_second": 400.0}
    async with Emulator(**pace) as front, Emulator(**pace) as back:
        settings = ResponsesWSLLMService.Settings(model="emulated", system_instruction="Be brief.")
        frontend = ResponsesWSLLMService(api_key="k", ws_url=front.ws_url, settings=settings)
        worker_llm = ResponsesWSLLMService(api_key="k", ws_url=back.ws_url, settings=settings)
        back.queue_replies(Reply(text=">> It is sunny in Paris."))
        composite = LLMWithBackend(frontend=frontend, backend=BackendLLMWorker(llm=worker_llm))

        def relayed() -> bool:
            return any("Backend: It is sunny in Paris." in str(c.get("input")) for c in front.records.creates())

        async with Conversation(composite) as talk:
            talk.follow(front.records.changes)
            await talk.say("Please delegate the weather check for Paris.")
            await talk.wait_for(relayed, 10, "the backend's result relayed to the frontend")
            # (A delegation still running when the pipeline ends is reported as stopped: not checked.)
            errors = [e.error for e in talk.errors()]
    assert not errors, errors
    assert any(call.get("name") == "delegate" for c in front.records.creates() for call in c.get("tools") or [])
    assert any("weather check for Paris" in str(c.get("input")) for c in back.records.creates())


def test_usage_maps_cache_reads_and_writes_as_the_builtin() -> None:
    from pipecat_responses_ws.stage import _token_usage

    usage = _token_usage(
        {
            "input_tokens": 10,
            "output_tokens": 5,
            "total_tokens": 15,
            "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 3},
            "output_tokens_details": {"reasoning_tokens": 2},
        }
    )
    assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens, usage.reasoning_tokens) == (4, 3, 2)


def _kinds(talk: Conversation) -> list[str]:
    """The frames after the LLM, by type, repeats collapsed. Left out: metrics frames, and the RTVI
    messages the observer sends for text, whose place among the text frames is the scheduler's."""
    kinds: list[str] = []
    for seen in talk.downstream.seen:
        name = type(seen.frame).__name__
        if (
            "Metrics" in name
            or name in ("StartFrame", "LLMServiceMetadataFrame", "OutputTransportMessageUrgentFrame")
            or (kinds and kinds[-1] == name)
        ):
            continue
        kinds.append(name)
    return kinds


async def test_a_text_turn_and_a_tool_turn_give_the_same_frames_and_context_on_both() -> None:
    seen: dict[str, tuple[list[str], list[dict[str, Any]]]] = {}
    for which in SERVICES:

        def setup(llm: LLMService[Any]) -> None:
            async def weather(params: FunctionCallParams) -> None:
                await params.result_callback({"sky": "clear"})

            llm.register_function("get_weather", weather)

        service = frame_for_frame(which)
        async with running(which, context=LLMContext(tools=weather_tools()), setup=setup, **service) as (
            emu,
            _llm,
            talk,
        ):
            emu.queue_replies(
                Reply(text="Hello to you."),
                Reply(calls=[ToolCall("get_weather", {"city": "Paris"})]),
                Reply(text="It is clear."),
            )
            await talk.say("Hello there.")
            await talk.wait_text("Hello to you.")
            await talk.say("Weather in Paris?")
            await talk.wait_text("It is clear.")
            await talk.wait_turns_ended(3)
            await talk.wait_for(
                lambda: any(m.get("content") == "It is clear." for m in talk.messages()), 2, "the context"
            )
            messages = [{k: m.get(k) for k in ("role", "content")} for m in talk.messages()]
            seen[which] = (_kinds(talk), messages)
    ours, builtin = seen["ours"], seen["pipecat"]
    assert ours[1] == builtin[1]
    for kind in ("LLMFullResponseStartFrame", "LLMTextFrame", "LLMFullResponseEndFrame", "FunctionCallsStartedFrame"):
        assert ours[0].count(kind) == builtin[0].count(kind), (kind, ours[0], builtin[0])
    assert "FunctionCallResultFrame" in ours[0] and "FunctionCallResultFrame" in builtin[0]


async def test_llm_switcher_moves_between_ours_and_the_builtin() -> None:
    from pipecat.frames.frames import ManuallySwitchServiceFrame
    from pipecat.pipeline.llm_switcher import LLMSwitcher

    async with Emulator(ttft=0.02, tokens_per_second=400.0) as emu:
        ours, builtin = make_service("ours", emu), make_service("pipecat", emu)
        switcher = LLMSwitcher(llms=[ours, builtin])
        async with Conversation(switcher) as talk:
            emu.queue_replies(Reply(text="From ours."), Reply(text="Out of band."), Reply(text="From the built-in."))
            await talk.say("Hello there.")
            await talk.wait_text("From ours.")
            assert await switcher.run_inference(LLMContext(messages=[{"role": "user", "content": "Q?"}])) == (
                "Out of band."
            )
            await talk.worker.queue_frame(ManuallySwitchServiceFrame(service=builtin))
            await talk.say("And you?")
            await talk.wait_text("From the built-in.")
    assert not talk.errors(), [e.error for e in talk.errors()]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # RESET_WITH_SUMMARY is, and still used
@pytest.mark.parametrize("which", SERVICES)
async def test_flows_reset_with_summary_gets_its_summary(which: str) -> None:
    from pipecat.flows import ContextStrategy, ContextStrategyConfig, FlowManager

    async with running(which) as (emu, llm, talk):
        flow = FlowManager(
            llm=llm,
            context_aggregator=talk.pair,
            worker=talk.worker,
            context_strategy=ContextStrategyConfig(
                strategy=ContextStrategy.RESET_WITH_SUMMARY, summary_prompt="Summarise the conversation."
            ),
        )
        first = {"name": "greet", "task_messages": [{"role": "developer", "content": "Greet the caller."}]}
        await flow.initialize(first)  # type: ignore[arg-type]
        await talk.wait_turns_ended(1)
        await talk.say("My name is Ada.")
        await talk.wait_turns_ended(2)
        emu.queue_replies(Reply(text="The caller is Ada."), Reply(text="Hello again, Ada."))
        second = {"name": "help", "task_messages": [{"role": "developer", "content": "Offer help."}]}
        await flow.set_node_from_config(second)  # type: ignore[arg-type]
        await talk.wait_text("Hello again, Ada.")
        messages = talk.messages()
    assert any("The caller is Ada." in str(m.get("content")) for m in messages), messages
    assert not any("My name is Ada." == m.get("content") for m in messages)  # the old context is gone


async def test_generic_settings_are_sent_or_said_to_be_unsupported() -> None:
    from loguru import logger

    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message)), level="WARNING")
    try:
        async with running("ours", settings={"max_tokens": 77, "seed": 3, "top_k": 5}) as (emu, _llm, talk):
            await talk.say("Hello there.")
            await talk.wait_turns_ended(1)
            await talk.say("Again.")
            await talk.wait_turns_ended(2)
    finally:
        logger.remove(sink)
    create = generated_creates(emu)[-1]
    assert create["max_output_tokens"] == 77 and "seed" not in create and "top_k" not in create
    warned = [line for line in lines if "has no" in line]
    assert len(warned) == 2 and any("'seed'" in w for w in warned) and any("'top_k'" in w for w in warned)


async def test_incomplete_turn_filtering_holds_back_the_same_text_on_both() -> None:
    # ○ says the user had not finished: Pipecat suppresses the rest of that answer. ● says they had:
    # the words after it go out as they come. Neither marker is spoken text.
    replies = (Reply(text="○ Take your time, I am listening."), Reply(text="● It is sunny in Paris today."))
    seen: dict[str, list[tuple[str, bool | None]]] = {}
    for which in SERVICES:
        service = frame_for_frame(which)
        # Pipecat's turn-completion strategy switches the LLM's filtering on once the pipeline starts.
        params = LLMUserAggregatorParams(user_turn_strategies=FilterIncompleteUserTurnStrategies())
        async with running(which, conversation={"user_params": params}, **service) as (emu, _llm, talk):
            emu.queue_replies(*replies)
            await talk.say("What is the weather in")
            await talk.wait_turns_ended(1)
            await talk.say("What is the weather in Paris?")
            await talk.wait_text("sunny in Paris today.")
            await talk.wait_turns_ended(2)
            seen[which] = [(s.frame.text, s.frame.skip_tts) for s in talk.frames(LLMTextFrame)]
    assert seen["ours"] == seen["pipecat"]
    assert not any("listening" in text for text, _ in seen["ours"])
    assert "".join(text for text, _ in seen["ours"]) == "It is sunny in Paris today."
    assert not any(skip for _, skip in seen["ours"])
