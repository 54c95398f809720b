"""A phone line inside the process: the caller's voice in, the bot's voice out, both at real-time pace.

:class:`PhoneLine` is a Pipecat transport. Its input sends the caller's audio as a telephone
does, 20 ms at a time on a fixed clock, silence between utterances included, so Pipecat's VAD
hears a continuous line. Its output plays the bot's audio out as a line does: a chunk takes its
own duration to play, and the next waits for it, so Pipecat's output transport does its real
queueing, and its real clearing of the queue when an interruption comes.

Both sides keep what passed on the line's one clock (``time.monotonic()``), which is what the
caller's-ear figures and the recordings are made from. :class:`ScriptedTranscriber` stands in for
speech-to-text: it knows what the caller said and gives it out when the VAD says the caller stopped.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    InputAudioRawFrame,
    OutputAudioRawFrame,
    StartFrame,
    TranscriptionFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.transports.base_input import BaseInputTransport
from pipecat.transports.base_output import BaseOutputTransport
from pipecat.transports.base_transport import BaseTransport, TransportParams

from ..changes import Changes
from .speech import RATE, Provenance

MIC_CHUNK = RATE // 50  # samples the caller's side sends at a time: 20 ms, as telephony does
OUT_10MS_CHUNKS = 4  # Pipecat's default: the output plays 40 ms chunks


@dataclass(frozen=True)
class Utterance:
    """One thing the caller said: its words, its samples, and when its first sample went on the line."""

    words: str
    samples: np.ndarray
    start: float


@dataclass(frozen=True)
class Played:
    """One chunk of the bot's audio as the caller heard it: from ``start`` for its length."""

    start: float
    audio: bytes
    source: str | None  # the response it came from, when it is not silence

    @property
    def end(self) -> float:
        return self.start + len(self.audio) / (2 * RATE)


class Caller:
    """What the caller says and when; the line's input pulls it 20 ms at a time."""

    def __init__(self) -> None:
        self.said: list[Utterance] = []
        self._pending: list[tuple[str, np.ndarray, asyncio.Future[Utterance]]] = []
        self._current: np.ndarray | None = None
        self._offset = 0

    def say(self, words: str, samples: np.ndarray) -> asyncio.Future[Utterance]:
        """Queue an utterance; the future gives it, with its start, once its first sample is on the line."""
        started: asyncio.Future[Utterance] = asyncio.get_running_loop().create_future()
        self._pending.append((words, samples, started))
        return started

    def next_chunk(self, at: float) -> bytes:
        """The next 20 ms the caller's side sends, which starts at ``at``; silence between utterances."""
        out = np.zeros(MIC_CHUNK, dtype=np.int16)
        filled = 0
        while filled < MIC_CHUNK:
            if self._current is None:
                if not self._pending:
                    break
                words, samples, started = self._pending.pop(0)
                start = at + filled / RATE
                utterance = Utterance(words, samples, start)
                self.said.append(utterance)
                if not started.done():
                    started.set_result(utterance)
                self._current, self._offset = samples, 0
            take = min(MIC_CHUNK - filled, len(self._current) - self._offset)
            out[filled : filled + take] = self._current[self._offset : self._offset + take]
            filled += take
            self._offset += take
            if self._offset >= len(self._current):
                self._current = None
        return out.tobytes()


class _Microphone(BaseInputTransport):
    def __init__(self, caller: Caller, params: TransportParams) -> None:
        super().__init__(params)
        self._caller = caller
        self._feeding: asyncio.Task[None] | None = None

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        await self.set_transport_ready(frame)
        if self._feeding is None:
            self._feeding = self.create_task(self._feed(), name="caller-microphone")

    async def stop(self, frame: EndFrame) -> None:
        await self._stop_feeding()
        await super().stop(frame)

    async def cancel(self, frame: CancelFrame) -> None:
        await self._stop_feeding()
        await super().cancel(frame)

    async def _stop_feeding(self) -> None:
        if self._feeding is not None:
            task, self._feeding = self._feeding, None
            await self.cancel_task(task)

    async def _feed(self) -> None:
        # A fixed clock, not "sleep 20 ms after each push": the line's audio must not drift behind
        # its own timestamps, or the caller's onsets would be misplaced in every figure.
        origin = time.monotonic()
        for k in range(2**62):
            due = origin + k * MIC_CHUNK / RATE
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            audio = self._caller.next_chunk(due)
            await self.push_audio_frame(InputAudioRawFrame(audio=audio, sample_rate=RATE, num_channels=1))


class _Loudspeaker(BaseOutputTransport):
    def __init__(self, line: PhoneLine, params: TransportParams) -> None:
        super().__init__(params)
        self._line = line
        self._free_at = 0.0

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        await self.set_transport_ready(frame)

    async def write_audio_frame(self, frame: OutputAudioRawFrame) -> bool:
        # The line holds one chunk besides the one playing: a chunk written while the line is busy
        # plays the moment the line is free, on the line's clock, and the write returns as it starts.
        # Stamping it after that wait instead would put the event loop's lateness in waking up (a few
        # milliseconds per chunk on a loaded machine) into the bot's voice as gaps that no line carried.
        played = Played(max(time.monotonic(), self._free_at), frame.audio, self._line.provenance.source(frame.audio))
        self._line.play(played)
        self._free_at = played.end
        delay = played.start - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        return True


class PhoneLine(BaseTransport):
    """The caller's microphone as the pipeline's input, the caller's ear as its output."""

    def __init__(self, caller: Caller) -> None:
        super().__init__(name="phone-line")
        self.caller = caller
        self.provenance = Provenance(self.chunk_bytes)
        self.heard: list[Played] = []
        # Kept as chunks play, so a runner asking "has the caller heard it yet" pays nothing per check.
        self.first_heard: dict[str, float] = {}  # a response's source → its first audible chunk's start
        self.last_audible = 0.0  # when the last audible chunk ended
        self.changes = Changes()  # notified as each chunk is played
        self._params = TransportParams(
            audio_in_enabled=True,
            audio_in_sample_rate=RATE,
            audio_out_enabled=True,
            audio_out_sample_rate=RATE,
            audio_out_10ms_chunks=OUT_10MS_CHUNKS,
        )
        self._input: _Microphone | None = None
        self._output: _Loudspeaker | None = None

    def play(self, played: Played) -> None:
        self.heard.append(played)
        if played.source is not None:  # only audio has a source; silence has none
            self.first_heard.setdefault(played.source, played.start)
            self.last_audible = played.end
        self.changes.notify()

    @property
    def chunk_bytes(self) -> int:
        return 2 * RATE // 100 * OUT_10MS_CHUNKS

    def input(self) -> FrameProcessor:
        if self._input is None:
            self._input = _Microphone(self.caller, self._params)
        return self._input

    def output(self) -> FrameProcessor:
        if self._output is None:
            self._output = _Loudspeaker(self, self._params)
        return self._output


class ScriptedTranscriber(FrameProcessor):
    """Speech-to-text that already knows the words: they go out when the VAD hears the caller stop.

    A real STT adds its own latency, the same for every LLM service; this one adds none, so the
    caller's-ear figures show the LLM stage's share and Pipecat's turn taking, nothing else.
    """

    def __init__(self) -> None:
        super().__init__(name="scripted-transcriber")
        self._words: list[str] = []

    def expect(self, words: str) -> None:
        self._words.append(words)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, VADUserStoppedSpeakingFrame) and direction == FrameDirection.DOWNSTREAM and self._words:
            words, self._words = " ".join(self._words), []
            stamp = datetime.now(UTC).isoformat()
            await self.push_frame(TranscriptionFrame(words, "caller", stamp, finalized=True))
