"""A phone bot on Twilio Media Streams, with ResponsesWSLLMService as its LLM stage.

    Twilio in → OpenAI STT → user aggregator → ResponsesWSLLMService → OpenAI TTS → Twilio out → assistant aggregator

A FastAPI app answers Twilio's voice webhook with TwiML that connects the call to a Media Stream
(``<Connect><Stream>``) on this app's WebSocket. Phone audio is 8 kHz μ-law; Pipecat's
``TwilioFrameSerializer`` converts it, and the pipeline runs at 8 kHz. Silero VAD and the Smart Turn
v3 model (bundled with Pipecat, run locally) decide when the caller finished a turn; talking over
the bot interrupts it. When the pipeline ends, the serializer hangs up through Twilio's REST API.

Install and run::

    pip install -e ".[examples]"   # from a checkout of this repository
    OPENAI_API_KEY=sk-... PUBLIC_HOST=abc.ngrok.app python examples/twilio_phone_bot.py

Expose the port publicly (e.g. ``ngrok http 8765``), then set your Twilio number's voice webhook
("A call comes in") to ``https://$PUBLIC_HOST/twiml`` (HTTP POST) and call the number.

Environment:

- ``OPENAI_API_KEY`` (required): used by STT, LLM and TTS.
- ``PUBLIC_HOST`` (required): the host name Twilio reaches this app on, without scheme.
- ``TWILIO_ACCOUNT_SID``, ``TWILIO_AUTH_TOKEN`` (optional): let the bot hang up when it ends;
  without them the call ends when the caller hangs up.
- ``PORT`` (default ``8765``), ``OPENAI_LLM_MODEL`` (default ``gpt-4.1-mini``), ``OPENAI_STT_MODEL``
  (default ``gpt-transcribe``), ``OPENAI_TTS_MODEL`` (default ``gpt-4o-mini-tts``),
  ``OPENAI_TTS_VOICE`` (default ``alloy``), ``LOG_LEVEL`` (default ``INFO``).

In production, also check Twilio's ``X-Twilio-Signature`` on the webhook.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any
from xml.sax.saxutils import quoteattr

from fastapi import FastAPI, WebSocket
from fastapi.responses import Response
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
from pipecat.serializers.twilio import TwilioFrameSerializer
from pipecat.services.llm_service import FunctionCallParams
from pipecat.services.openai.stt import OpenAISTTService
from pipecat.services.openai.tts import OpenAITTSService
from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams, FastAPIWebsocketTransport
from pipecat.turns.user_stop import TurnAnalyzerUserTurnStopStrategy
from pipecat.turns.user_turn_strategies import UserTurnStrategies
from pipecat.workers.runner import WorkerRunner

from pipecat_responses_ws import ResponsesWSLLMService

OPENAI_WS_URL = "wss://api.openai.com/v1/responses"
DEFAULT_LLM_MODEL = "gpt-4.1-mini"
DEFAULT_STT_MODEL = "gpt-transcribe"  # Pipecat 1.14's default for OpenAISTTService
DEFAULT_TTS_MODEL = "gpt-4o-mini-tts"
DEFAULT_VOICE = "alloy"
PHONE_SAMPLE_RATE = 8000
INSTRUCTIONS = (
    "You are a friendly voice assistant on a phone call. Your words are spoken aloud: answer in one or two "
    "short sentences, with no lists, markdown or emoji."
)
GREETING = "Greet the caller in one short sentence and ask how you can help."

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
    websocket: WebSocket,
    stream_sid: str,
    call_sid: str,
    *,
    api_key: str,
    account_sid: str | None = None,
    auth_token: str | None = None,
    llm_model: str = DEFAULT_LLM_MODEL,
    stt_model: str = DEFAULT_STT_MODEL,
    tts_model: str = DEFAULT_TTS_MODEL,
    voice: str = DEFAULT_VOICE,
    llm_ws_url: str = OPENAI_WS_URL,
) -> PipelineWorker:
    """The bot for one call, wired and ready to run; nothing is sent until the worker runs.

    Building is separate from running so the wiring can be checked (in tests, in CI) without a
    phone call or a network.
    """
    serializer = TwilioFrameSerializer(
        stream_sid=stream_sid,
        call_sid=call_sid,
        account_sid=account_sid,
        auth_token=auth_token,
        # Hanging up needs the account's credentials; without them, leave it to the caller.
        params=TwilioFrameSerializer.InputParams(auto_hang_up=bool(account_sid and auth_token)),
    )
    transport = FastAPIWebsocketTransport(
        websocket,
        FastAPIWebsocketParams(audio_in_enabled=True, audio_out_enabled=True, serializer=serializer),
    )
    stt = OpenAISTTService(api_key=api_key, settings=OpenAISTTService.Settings(model=stt_model))
    llm = ResponsesWSLLMService(
        api_key=api_key,
        ws_url=llm_ws_url,
        settings=ResponsesWSLLMService.Settings(model=llm_model, system_instruction=INSTRUCTIONS),
    )
    llm.register_function("get_weather", get_weather)
    # OpenAI's speech endpoint produces 24 kHz PCM only; the output transport resamples it to 8 kHz.
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
    worker = PipelineWorker(
        pipeline,
        enable_rtvi=False,  # RTVI talks to web and app clients; a phone has none
        params=PipelineParams(
            audio_in_sample_rate=PHONE_SAMPLE_RATE,
            audio_out_sample_rate=PHONE_SAMPLE_RATE,
            enable_metrics=True,
            enable_usage_metrics=True,
        ),
    )

    @transport.event_handler("on_client_connected")
    async def on_client_connected(_transport: FastAPIWebsocketTransport, _websocket: Any) -> None:
        greet = {"role": "developer", "content": GREETING}
        await worker.queue_frame(LLMMessagesAppendFrame([greet], run_llm=True))

    @transport.event_handler("on_client_disconnected")
    async def on_client_disconnected(_transport: FastAPIWebsocketTransport, _websocket: Any) -> None:
        await worker.cancel()  # the caller hung up: stop paying for the stages

    return worker


def twiml(public_host: str) -> str:
    """The answer to Twilio's voice webhook: stream the call's audio to our WebSocket."""
    url = quoteattr(f"wss://{public_host}/ws")
    return f'<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream url={url} /></Connect></Response>'


async def read_twilio_start(websocket: WebSocket) -> tuple[str, str]:
    """Twilio opens a Media Stream with a "connected" message, then "start" with the stream and call SIDs."""
    while True:
        message = json.loads(await websocket.receive_text())
        if message.get("event") == "start":
            start = message["start"]
            return start["streamSid"], start["callSid"]


def create_app(
    *, api_key: str, public_host: str, account_sid: str | None = None, auth_token: str | None = None, **options: Any
) -> FastAPI:
    """The web app Twilio talks to: the webhook and one pipeline per call on ``/ws``."""
    app = FastAPI(title="Twilio phone bot")

    @app.api_route("/twiml", methods=["GET", "POST"])
    async def voice_webhook() -> Response:
        return Response(content=twiml(public_host), media_type="application/xml")

    @app.websocket("/ws")
    async def media_stream(websocket: WebSocket) -> None:
        await websocket.accept()
        stream_sid, call_sid = await read_twilio_start(websocket)
        logger.info("call {} connected (stream {})", call_sid, stream_sid)
        worker = build_bot(
            websocket, stream_sid, call_sid, api_key=api_key, account_sid=account_sid, auth_token=auth_token, **options
        )
        runner = WorkerRunner(handle_sigint=False)  # uvicorn owns Ctrl-C
        await runner.add_workers(worker)
        await runner.run()

    return app


def main() -> int:
    api_key = os.environ.get("OPENAI_API_KEY")
    public_host = os.environ.get("PUBLIC_HOST")
    if not api_key or not public_host:
        print("Set OPENAI_API_KEY and PUBLIC_HOST (the host Twilio reaches this app on).", file=sys.stderr)
        return 2
    import uvicorn  # only needed to serve, not to build a bot

    logger.remove()
    logger.add(sys.stderr, level=os.environ.get("LOG_LEVEL", "INFO"))
    app = create_app(
        api_key=api_key,
        public_host=public_host,
        account_sid=os.environ.get("TWILIO_ACCOUNT_SID") or None,
        auth_token=os.environ.get("TWILIO_AUTH_TOKEN") or None,
        llm_model=os.environ.get("OPENAI_LLM_MODEL", DEFAULT_LLM_MODEL),
        stt_model=os.environ.get("OPENAI_STT_MODEL", DEFAULT_STT_MODEL),
        tts_model=os.environ.get("OPENAI_TTS_MODEL", DEFAULT_TTS_MODEL),
        voice=os.environ.get("OPENAI_TTS_VOICE", DEFAULT_VOICE),
    )
    uvicorn.run(app, host="0.0.0.0", port=int(os.environ.get("PORT", "8765")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
