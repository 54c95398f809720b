"""The README's main job: the demo runs on the embedded emulator with no key and no network."""

from __future__ import annotations

import io

from pipecat_responses_ws.demo import run_demo


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
