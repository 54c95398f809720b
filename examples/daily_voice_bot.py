"""A voice bot in a Daily room (WebRTC), with ResponsesWSLLMService as its LLM stage.

    Daily in → OpenAI STT → user aggregator → ResponsesWSLLMService → OpenAI TTS → Daily out → assistant aggregator

Silero VAD and the Smart Turn v3 model (both bundled with Pipecat, run locally) decide when the
caller has finished a turn; talking over the bot interrupts it, and the next answer starts without
waiting for the one it cut off. One OpenAI key serves all three stages.

Install and run::

    pip install -e ".[examples]"   # from a checkout of this repository
    DAILY_ROOM_URL=https://you.daily.co/room OPENAI_API_KEY=sk-... python examples/daily_voice_bot.py

then open the room URL in a browser and talk.

Environment:

- ``DAILY_ROOM_URL`` (required): the room the bot joins.
- ``DAILY_TOKEN`` (optional): a meeting token, for private rooms.
- ``OPENAI_API_KEY`` (required): used by STT, LLM and TTS.
- ``OPENAI_LLM_MODEL`` (default ``gpt-4.1-mini``), ``OPENAI_STT_MODEL`` (default ``gpt-transcribe``),
  ``OPENAI_TTS_MODEL`` (default ``gpt-4o-mini-tts``), ``OPENAI_TTS_VOICE`` (default ``alloy``),
  ``LOG_LEVEL`` (default ``INFO``).
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from loguru import logger
from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.frames.frames import LLMMessagesAppendFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair, LLMUserAggregatorParams
from pipecat.services.llm_service import FunctionCallParams
from pipecat.services.openai.stt import OpenAISTTService
from pipecat.services.openai.tts import OpenAITTSService
from pipecat.transports.daily.transport import DailyParams, DailyTransport
from pipecat.turns.user_stop import TurnAnalyzerUserTurnStopStrategy
from pipecat.turns.user_turn_strategies import UserTurnStrategies
from pipecat.workers.runner import WorkerRunner

from pipecat_responses_ws import ResponsesWSLLMService

OPENAI_WS_URL = "wss://api.openai.com/v1/responses"
DEFAULT_LLM_MODEL = "gpt-4.1-mini"
DEFAULT_STT_MODEL = "gpt-transcribe"  # Pipecat 1.14's default for OpenAISTTService
DEFAULT_TTS_MODEL = "gpt-4o-mini-tts"
DEFAULT_VOICE = "alloy"
INSTRUCTIONS = (
    "You are a friendly voice assistant in a video call. Your words are spoken aloud: answer in one or two "
    "short sentences, with no lists, markdown or emoji."
)
GREETING = "Greet the user in one short sentence and ask how you can help."

WEATHER_TOOL = FunctionSchema(
    name="get_weather",
    description="The current weather in a city.",
    properties={"city": {"type": "string", "description": "The city, e.g. Paris"}},
    required=["city"],
)


async def get_weather(params: FunctionCallParams) -> None:
    """Stands in for a real weather API, so the example needs no other account."""
    city = params.arguments.get("city", "somewhere")
    await params.result_callback({"city": city, "forecast": "sunny", "temperature_c": 21})


def build_bot(
    room_url: str,
    token: str | None,
    api_key: str,
    *,
    llm_model: str = DEFAULT_LLM_MODEL,
    stt_model: str = DEFAULT_STT_MODEL,
    tts_model: str = DEFAULT_TTS_MODEL,
    voice: str = DEFAULT_VOICE,
    llm_ws_url: str = OPENAI_WS_URL,
) -> PipelineWorker:
    """Everything the bot is, wired and ready to run; nothing connects until the worker runs.

    Building is separate from running so the wiring can be checked (in tests, in CI) without a
    Daily room or a network.
    """
    transport = DailyTransport(
        room_url,
        token,
        "Responses WS bot",
        DailyParams(audio_in_enabled=True, audio_out_enabled=True, camera_out_enabled=False),
    )
    stt = OpenAISTTService(api_key=api_key, settings=OpenAISTTService.Settings(model=stt_model))
    llm = ResponsesWSLLMService(
        api_key=api_key,
        ws_url=llm_ws_url,
        settings=ResponsesWSLLMService.Settings(model=llm_model, system_instruction=INSTRUCTIONS),
    )
    llm.register_function("get_weather", get_weather)
    # OpenAI's speech endpoint produces 24 kHz PCM only; say so, whatever the pipeline's output rate.
    tts = OpenAITTSService(
        api_key=api_key, sample_rate=24000, settings=OpenAITTSService.Settings(model=tts_model, voice=voice)
    )

    context = LLMContext(tools=ToolsSchema(standard_tools=[WEATHER_TOOL]))
    aggregators = LLMContextAggregatorPair(
        context,
        user_params=LLMUserAggregatorParams(
            # VAD hears speech start and stop; Smart Turn decides whether a pause ends the turn.
            vad_analyzer=SileroVADAnalyzer(),
            user_turn_strategies=UserTurnStrategies(
                stop=[TurnAnalyzerUserTurnStopStrategy(turn_analyzer=LocalSmartTurnAnalyzerV3())]
            ),
        ),
    )
    pipeline = Pipeline(
        [
            transport.input(),
            stt,
            aggregators.user(),
            llm,
            tts,
            transport.output(),
            aggregators.assistant(),
        ]
    )
    worker = PipelineWorker(pipeline, params=PipelineParams(enable_metrics=True, enable_usage_metrics=True))

    @transport.event_handler("on_first_participant_joined")
    async def on_first_participant_joined(_transport: DailyTransport, _participant: dict[str, Any]) -> None:
        greet = {"role": "developer", "content": GREETING}
        await worker.queue_frame(LLMMessagesAppendFrame([greet], run_llm=True))

    @transport.event_handler("on_participant_left")
    async def on_participant_left(_transport: DailyTransport, _participant: dict[str, Any], _reason: str) -> None:
        await worker.cancel()  # the caller is gone: stop paying for the stages

    return worker


async def run_bot(room_url: str, token: str | None, api_key: str, **options: Any) -> None:
    """Build inside the event loop, join the room and run until the caller leaves or Ctrl-C."""
    worker = build_bot(room_url, token, api_key, **options)
    runner = WorkerRunner()
    await runner.add_workers(worker)
    await runner.run()


def main() -> int:
    room_url = os.environ.get("DAILY_ROOM_URL")
    api_key = os.environ.get("OPENAI_API_KEY")
    if not room_url or not api_key:
        print("Set DAILY_ROOM_URL and OPENAI_API_KEY (and DAILY_TOKEN for a private room).", file=sys.stderr)
        return 2
    logger.remove()
    logger.add(sys.stderr, level=os.environ.get("LOG_LEVEL", "INFO"))
    options = {
        "llm_model": os.environ.get("OPENAI_LLM_MODEL", DEFAULT_LLM_MODEL),
        "stt_model": os.environ.get("OPENAI_STT_MODEL", DEFAULT_STT_MODEL),
        "tts_model": os.environ.get("OPENAI_TTS_MODEL", DEFAULT_TTS_MODEL),
        "voice": os.environ.get("OPENAI_TTS_VOICE", DEFAULT_VOICE),
    }
    asyncio.run(run_bot(room_url, os.environ.get("DAILY_TOKEN") or None, api_key, **options))
    return 0


if __name__ == "__main__":
    sys.exit(main())
