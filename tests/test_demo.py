"""The README's main job: the demo runs on the embedded emulator with no key and no network."""

from __future__ import annotations

import io
import re

import pytest

from pipecat_responses_ws.demo import run_demo

pytestmark = pytest.mark.slow


async def test_demo_prints_the_transcript_and_the_summary(monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    out = io.StringIO()
    assert await run_demo(interactive=False, use_openai=False, model="emulated", out=out) == 0
    text = out.getvalue()
    assert "[tool get_weather(city='Oslo')] [tool get_time(city='Tokyo')]" in text  # parallel
    assert "[tool find_restaurant(city='Bergen')]" in text and "[tool book_table(name='Fiskebaren')]" in text
    assert "Oslo is sunny at 21 degrees" in text and "is confirmed." in text
    story, after = text.split("[user barges in]", 1)
    assert "lighthouse" in story and "green wax" not in text  # cut mid-answer, never resumed
    assert "Two plus two is four." in after
    assert "--- summary ---" in text and "barge-in recovery" in text and "errors: 0" in text

    # The summary puts each figure next to what the emulator was set to do.
    summary = text.split("--- summary ---", 1)[1]
    first = re.search(r"first text after the request: median (\d+) ms .*\(the emulator is set to 120 ms", summary)
    assert first and int(first.group(1)) >= 120, summary  # the measured figure includes the model's wait
    # The demo's emulator rejects response.cancel (policy "error") and keeps generating; the client notices.
    assert "response.cancel sent: 1; the emulator's cancel policy is 'error'" in summary
    assert "keeps generating the abandoned answer; the client saw the rejection" in summary
    tokens = re.search(r"tokens the emulator generated for abandoned answers: (\d+) \(1 cancelled", summary)
    assert tokens and int(tokens.group(1)) > 0, summary  # the story was cut after "lighthouse", well into it
