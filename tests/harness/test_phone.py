"""The phone line's own clock: what it carries is placed by the line, not by when the event loop woke up."""

from __future__ import annotations

import asyncio
import time

import pytest
from pipecat.frames.frames import OutputAudioRawFrame

from pipecat_responses_ws.harness.phone import Caller, PhoneLine
from pipecat_responses_ws.harness.speech import RATE


async def _hog_the_loop(every: float, for_: float) -> None:
    """A loaded machine as the event loop sees it: now and then nothing runs for ``for_`` seconds."""
    while True:
        time.sleep(for_)  # noqa: ASYNC251 (blocking the loop is the point)
        await asyncio.sleep(every)


async def test_audio_written_while_the_line_is_busy_plays_without_gaps_however_late_the_loop_wakes() -> None:
    line = PhoneLine(Caller())
    speaker = line.output()
    chunk = b"\x10\x00" * (line.chunk_bytes // 2)
    hog = asyncio.create_task(_hog_the_loop(0.005, 0.015))
    try:
        for _ in range(25):
            await speaker.write_audio_frame(OutputAudioRawFrame(chunk, RATE, 1))  # type: ignore[attr-defined]
    finally:
        hog.cancel()
    starts = [played.start for played in line.heard]
    gaps = [start - before.end for start, before in zip(starts[1:], line.heard, strict=False)]
    # One second of audio, back to back: the loop's lateness (15 ms at a time) shows nowhere on the line.
    assert max(gaps) < 1e-9, gaps
    assert line.heard[-1].end - starts[0] == pytest.approx(25 * line.chunk_bytes / (2 * RATE), abs=1e-6)
