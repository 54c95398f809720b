"""A TTS stand-in for benchmarks: Pipecat's real text handling, and no synthesis at all."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from pipecat.frames.frames import Frame, TTSAudioRawFrame
from pipecat.services.settings import TTSSettings
from pipecat.services.tts_service import TTSService


class SilentTTS(TTSService):
    """A TTS stand-in: Pipecat's real text handling (sentence aggregation, audio contexts, text
    frames), and for each sentence 20 ms of silence made on the spot instead of a network call."""

    SAMPLE_RATE = 24_000

    def __init__(self) -> None:
        super().__init__(
            push_start_frame=True,
            push_stop_frames=True,
            sample_rate=self.SAMPLE_RATE,
            settings=TTSSettings(model=None, voice=None, language=None),
        )
        self._silence = bytes(2 * self.SAMPLE_RATE // 50)

    def can_generate_metrics(self) -> bool:
        return False

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame | None, None]:
        yield TTSAudioRawFrame(self._silence, self.SAMPLE_RATE, 1, context_id=context_id)
