"""What a user reads when the handshake is refused or the URL cannot be a WebSocket's: what is wrong and
what to do, whole after Pipecat's own log redaction."""

from __future__ import annotations

import pytest
from pipecat.utils.security.redaction import redact_secrets

from pipecat_responses_ws import ResponsesWSLLMService
from pipecat_responses_ws.emulator import Emulator
from pipecat_responses_ws.harness.pipeline import Conversation


async def refusal(monkeypatch: pytest.MonkeyPatch, sent_key: str) -> str:
    """The error text of the first turn against an emulator that wants another key."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    async with Emulator(api_key="sk-the-right-key-123") as emu:
        llm = ResponsesWSLLMService(api_key=sent_key, ws_url=emu.ws_url)
        async with Conversation(llm) as conversation:
            await conversation.say("Hi!")
            await conversation.wait_for(lambda: bool(conversation.errors()), timeout=10, what="the refusal")
    return conversation.errors()[0].error


async def test_a_refused_key_says_what_to_check_and_survives_pipecat_redaction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = await refusal(monkeypatch, "sk-a-wrong-key-456")
    assert "the server refused the API key (HTTP 401); check OPENAI_API_KEY or the service's api_key" in text
    assert redact_secrets(text) == text  # nothing of it blanked in Pipecat's log line
    assert "sk-a-wrong-key-456" not in text


async def test_no_key_at_all_says_none_was_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    text = await refusal(monkeypatch, "")
    assert "(HTTP 401) and no API key was sent: set OPENAI_API_KEY or give the service an api_key" in text
    assert redact_secrets(text) == text


@pytest.mark.parametrize("url", ["http://127.0.0.1:8765/v1/responses", "https://api.openai.com/v1"])
def test_an_http_ws_url_is_refused_at_construction_naming_base_url(url: str) -> None:
    with pytest.raises(ValueError, match=r"ws_url must be a ws:// or wss:// URL, not .*an http\(s\) URL is a base_url"):
        ResponsesWSLLMService(api_key="k", ws_url=url)


@pytest.mark.parametrize("url", ["127.0.0.1:8765/v1/responses", "ftp://host/v1/responses", "ws://"])
def test_a_ws_url_that_is_no_url_is_refused_at_construction(url: str) -> None:
    with pytest.raises(ValueError, match=r"ws_url must be a ws:// or wss:// URL such as wss://api\.openai\.com"):
        ResponsesWSLLMService(api_key="k", ws_url=url)
