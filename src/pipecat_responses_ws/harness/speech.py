"""Offline voices for the audio harness: espeak-ng speaks for the caller and for the bot.

espeak-ng is a Debian package (``apt-get install espeak-ng``) with no model to download, fast
enough to synthesize a sentence in a few milliseconds, and deterministic: the same text gives the
same samples, so a seeded campaign plays the same audio every time. It is a formant synthesizer
and sounds like one; what the harness measures is *when* audio plays, not how it sounds.

:class:`EspeakTTS` is a Pipecat ``TTSService``, so the bot's text goes through Pipecat's own
sentence aggregation, audio contexts and interruption handling, exactly as a cloud TTS's would:
a stale word becomes stale audio.
"""

from __future__ import annotations

import asyncio
import io
import re
import shutil
import wave
import zlib
from collections.abc import AsyncGenerator

import numpy as np
from pipecat.audio.utils import create_file_resampler
from pipecat.frames.frames import ErrorFrame, Frame, LLMFullResponseStartFrame, TTSAudioRawFrame
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.settings import TTSSettings
from pipecat.services.tts_service import TTSService

from .scenario import TAG, WORD

ESPEAK = "espeak-ng"
RATE = 16_000  # the phone line's rate, both ways; espeak-ng's 22 050 Hz is resampled to it
INSTALL_HINT = "the audio harness needs espeak-ng (Debian/Ubuntu: apt-get install espeak-ng)"
# A 10 ms window quieter than this (RMS, 16-bit) is silence; espeak-ng's own pauses are digital zero.
SILENCE_RMS = 200.0
# What a scripted token (``t3as0w1``) is spoken as: one short word, so an answer lasts as long as
# a natural one of as many words instead of being spelt out letter by letter.
SPOKEN_WORDS = ("sun", "tree", "cold", "blue", "road", "fish", "lamp", "rain", "gold", "wind")


def espeak_missing() -> str | None:
    """Why the audio harness cannot run here, if it cannot."""
    return None if shutil.which(ESPEAK) else f"{ESPEAK} is not installed: {INSTALL_HINT}"


def spoken(text: str) -> str:
    """What the bot's voice says for ``text``: each scripted token as one word, the rest as written."""
    return WORD.sub(lambda m: SPOKEN_WORDS[int(m.group(0).rsplit("w", 1)[1]) % len(SPOKEN_WORDS)], text)


def source_of(text: str) -> str | None:
    """The response a piece of text came from, by its first tag (``"3a"``), if it has one."""
    found = TAG.search(text)
    return found.group(1) if found else None


async def synthesize(text: str, *, voice: str = "en-us", words_per_minute: int = 220) -> np.ndarray:
    """``text`` spoken by espeak-ng: 16-bit mono samples at :data:`RATE`, silence trimmed at both ends.

    Trimming matters: espeak-ng ends every utterance with a pause, and the bot's sentences are
    synthesized one by one, so untrimmed they would leave gaps no cloud TTS leaves.
    """
    process = await asyncio.create_subprocess_exec(
        ESPEAK,
        "--stdout",
        "-v",
        voice,
        "-s",
        str(words_per_minute),
        "--",
        text,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{ESPEAK} failed ({process.returncode}): {err.decode(errors='replace').strip()}")
    with wave.open(io.BytesIO(out)) as wav:
        rate = wav.getframerate()
        # espeak-ng writes to a pipe, so its header cannot give the length: read what is there.
        pcm = wav.readframes(2**31 - 1)
    pcm = await create_file_resampler().resample(pcm, rate, RATE)
    return trim(np.frombuffer(pcm, dtype=np.int16))


def window_rms(samples: np.ndarray, window: int = RATE // 100) -> np.ndarray:
    """RMS of each whole ``window`` of samples (10 ms by default)."""
    whole = len(samples) // window * window
    frames = samples[:whole].astype(np.float64).reshape(-1, window)
    return np.sqrt(np.mean(frames**2, axis=1)) if whole else np.zeros(0)


def trim(samples: np.ndarray, keep: int = RATE // 100) -> np.ndarray:
    """``samples`` without their silent start and end (``keep`` samples of each are left)."""
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > SILENCE_RMS)
    if len(loud) == 0:
        return samples[:0]
    return samples[max(0, loud[0] - keep) : loud[-1] + 1 + keep]


class Provenance:
    """Which response each chunk of the bot's audio came from, recognised by its samples.

    Pipecat's output transport cuts the TTS's audio into chunks of its own size and drops what an
    interruption leaves queued, so a frame's identity does not survive the trip. Its samples do:
    the TTS pads each sentence to whole chunks and registers every chunk here, and the line looks
    up what it plays. Two identical chunks from different responses (the same word at the same
    place) are told apart by one least significant bit, which no ear and no energy threshold sees.
    """

    def __init__(self, chunk_bytes: int) -> None:
        self.chunk_bytes = chunk_bytes
        self._sources: dict[int, str] = {}

    def register(self, audio: bytes, source: str) -> bytes:
        """``audio`` padded to whole chunks, each recorded as ``source``'s (nudged where needed to be unique)."""
        size = self.chunk_bytes
        audio += bytes(-len(audio) % size)
        chunks = []
        for at in range(0, len(audio), size):
            chunk = audio[at : at + size]
            if any(chunk):  # silence needs no source: nobody hears it
                chunk = self._unique(chunk, source)
            chunks.append(chunk)
        return b"".join(chunks)

    def _unique(self, chunk: bytes, source: str) -> bytes:
        samples = np.frombuffer(chunk, dtype=np.int16).copy()
        nudge = 0
        while (known := self._sources.get(zlib.crc32(chunk))) is not None and known != source:
            samples[nudge % len(samples)] ^= 1
            nudge += 1
            chunk = samples.tobytes()
        self._sources[zlib.crc32(chunk)] = source
        return chunk

    def source(self, chunk: bytes) -> str | None:
        return self._sources.get(zlib.crc32(chunk)) if any(chunk) else None


class EspeakTTS(TTSService):
    """espeak-ng as a Pipecat TTS service, each sentence's audio recorded in ``provenance``."""

    def __init__(
        self, provenance: Provenance, *, voice: str = "en-us", words_per_minute: int = 240, **kwargs: object
    ) -> None:
        super().__init__(
            push_start_frame=True,
            push_stop_frames=True,
            sample_rate=RATE,
            settings=TTSSettings(model=None, voice=voice, language=None),
            **kwargs,  # type: ignore[arg-type]
        )
        self._provenance = provenance
        self._voice = voice
        self._words_per_minute = words_per_minute
        self._response_source: str | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, LLMFullResponseStartFrame):
            # Untagged sentences ("That is a fine thing…") belong to the response they came in.
            self._response_source = None
        await super().process_frame(frame, direction)

    def can_generate_metrics(self) -> bool:
        return True

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame | None, None]:
        words = spoken(text).strip()
        if not re.search(r"\w", words):
            return
        tagged = source_of(text)
        if tagged is not None:
            self._response_source = tagged
        source = tagged or self._response_source or f"context {context_id}"
        try:
            samples = await synthesize(words, voice=self._voice, words_per_minute=self._words_per_minute)
        except (OSError, RuntimeError) as e:
            yield ErrorFrame(error=f"espeak-ng could not speak {text!r}: {e}")
            return
        await self.stop_ttfb_metrics()
        audio = self._provenance.register(samples.tobytes(), source)
        yield TTSAudioRawFrame(audio, RATE, 1, context_id=context_id)
