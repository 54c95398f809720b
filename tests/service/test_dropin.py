"""What a bot switching from Pipecat's built-in expects to keep: its ``model=``, its filler event, its metrics.

Each runs against the emulator over loopback in a real pipeline; where the built-in is compared, it
runs the same scenario beside ours.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from pipecat.services.llm_service import LLMService
from pipecat.services.openai.responses.llm import OpenAIResponsesLLMService
from pipecat.utils import deprecation

from pipecat_responses_ws import ResponsesHTTPLLMService, ResponsesWSLLMService
from pipecat_responses_ws.emulator import Emulator
from pipecat_responses_ws.harness.pipeline import Conversation

from .test_pipecat_parity import generated_creates

OURS = {"websocket": ResponsesWSLLMService, "http": ResponsesHTTPLLMService}


def _ours(transport: str, emu: Emulator, **kwargs: Any) -> LLMService[Any]:
    where = {"ws_url": emu.ws_url} if transport == "websocket" else {"base_url": emu.http_base_url}
    return OURS[transport](api_key="k", **where, **kwargs)  # type: ignore[no-any-return]


@contextmanager
def deprecation_warnings() -> Iterator[list[warnings.WarningMessage]]:
    # Pipecat warns once per call site for the life of the process; a test asserting on the
    # warning clears that record first, as Pipecat's own tests do.
    deprecation._warned_sites.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught


# -- model= ------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", list(OURS))
async def test_a_model_argument_is_sent_and_warned_about(transport: str) -> None:
    async with Emulator(ttft=0.02, tokens_per_second=400.0) as emu:
        with deprecation_warnings() as caught:
            llm = _ours(transport, emu, model="gpt-4o-mini")
        async with Conversation(llm) as talk:
            await talk.say("Hello there.")
            await talk.wait_turns_ended(1)
    assert generated_creates(emu)[-1]["model"] == "gpt-4o-mini"
    deprecations = [w for w in caught if issubclass(w.category, DeprecationWarning)]
    assert len(deprecations) == 1, [str(w.message) for w in deprecations]
    service = OURS[transport].__name__
    assert f"`settings={service}.Settings(model=...)`" in str(deprecations[0].message)
    assert deprecations[0].filename == __file__  # it names the line that created the service


@pytest.mark.parametrize("transport", list(OURS))
async def test_the_settings_model_wins_over_a_model_argument(transport: str) -> None:
    async with Emulator(ttft=0.02, tokens_per_second=400.0) as emu:
        with deprecation_warnings():
            llm = _ours(transport, emu, model="gpt-4o-mini", settings=OURS[transport].Settings(model="emulated"))
        async with Conversation(llm) as talk:
            await talk.say("Hello there.")
            await talk.wait_turns_ended(1)
    assert generated_creates(emu)[-1]["model"] == "emulated"


async def test_the_builtin_drops_a_model_argument_without_a_word() -> None:
    # The trap ours does not copy: the built-in has no model= argument, and Pipecat's processor
    # base swallows unknown keywords, so the default model is sent.
    async with Emulator(ttft=0.02, tokens_per_second=400.0) as emu:
        with deprecation_warnings() as caught:
            llm = OpenAIResponsesLLMService(api_key="k", ws_url=emu.ws_url, model="gpt-4o-mini")
        async with Conversation(llm) as talk:
            await talk.say("Hello there.")
            await talk.wait_turns_ended(1)
    assert generated_creates(emu)[-1]["model"] == "gpt-4.1"
    assert not [w for w in caught if issubclass(w.category, DeprecationWarning)]
