"""What the caller heard: the line's two tracks as audio, and the figures of each barge-in from them.

The bot's track is every chunk the line played, placed at the time it played; the caller's is
every utterance placed at the time its first sample went on the line. Both start at the run's
``origin``, so a figure read here and one re-measured from the recorded WAV use the same clock.
Speech is found by energy alone (10 ms windows above :data:`.speech.SILENCE_RMS`), which is what
anyone re-measuring the recording can do too; which response a chunk came from is
:class:`.speech.Provenance`'s, used only for stale audio and for the next answer's first audio
(which also ends the overrun: the voice from then on is the answer, pause before it or not).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..measures import Span, overlap, overrun, stale_audio, voice_to_voice
from .phone import Played, Utterance
from .speech import RATE, SILENCE_RMS, window_rms

# A pause at least this long is the bot falling silent. espeak-ng pauses under 50 ms between
# words, and Pipecat's sentence-by-sentence synthesis runs ahead of playback, so only a stopped
# voice leaves a gap this long. A bot still talking when the caller stops may run into the next
# answer with a shorter one, so the overrun is measured on the audio before that answer.
SILENCE_GAP = 0.25
WINDOW = 0.01  # seconds per energy window
TIMELINE_BEFORE, TIMELINE_AFTER = 1.5, 5.0  # what a barge-in's plotted timeline shows around the onset


@dataclass(frozen=True)
class BargeInMark:
    """What the runner knows of one barge-in: which answer was cut, which should follow, the utterance."""

    turn: int
    phase: str
    abandoned: str  # the cut answer's source (``"3a"``)
    fresh: str  # the next answer's source (``"3b"``)
    utterance: Utterance


@dataclass(frozen=True)
class HeardBargeIn:
    """One barge-in as the caller heard it. Times are seconds from the recording's start."""

    turn: int
    phase: str
    onset: float  # the caller's first audible sample
    caller_end: float  # the caller's last audible sample
    silent_at: float  # the bot's voice fell silent (the onset, if it already was)
    fresh_at: float | None  # the next answer's first audible sample, if it came
    overrun: float
    stale_audio: float
    overlap: float
    voice_to_voice: float | None
    # 10 ms RMS of both tracks from TIMELINE_BEFORE before the onset, for the plot
    timeline_start: float
    caller_rms: list[float]
    bot_rms: list[float]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HeardBargeIn:
        return cls(**data)


def spans(samples: np.ndarray, *, threshold: float = SILENCE_RMS, bridge: float = SILENCE_GAP) -> list[Span]:
    """The audible stretches of a track (seconds from its start), pauses shorter than ``bridge`` joined."""
    loud = window_rms(samples) > threshold
    out: list[Span] = []
    for index in np.flatnonzero(loud):
        start, end = float(index) * WINDOW, float(index + 1) * WINDOW
        if out and start - out[-1][1] < bridge:
            out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


class Ear:
    """The caller's and the bot's tracks of one run, on the line's clock from ``origin``."""

    def __init__(self, origin: float, said: list[Utterance], heard: list[Played], until: float) -> None:
        self.origin = origin
        self.heard = heard
        length = int((until - origin) * RATE) + 1
        self.caller = np.zeros(length, dtype=np.int16)
        self.bot = np.zeros(length, dtype=np.int16)
        for utterance in said:
            self._place(self.caller, utterance.start, utterance.samples)
        for chunk in heard:
            self._place(self.bot, chunk.start, np.frombuffer(chunk.audio, dtype=np.int16))
        self.bot_speech = spans(self.bot)

    def _place(self, track: np.ndarray, at: float, samples: np.ndarray) -> None:
        first = max(0, round((at - self.origin) * RATE))
        piece = samples[: max(0, len(track) - first)]
        track[first : first + len(piece)] = piece

    def stereo(self) -> np.ndarray:
        """Left the caller, right the bot as the caller heard it: what ``--record`` writes."""
        return np.stack([self.caller, self.bot], axis=1)

    def _utterance_span(self, utterance: Utterance) -> Span:
        start = utterance.start - self.origin
        found = spans(utterance.samples, bridge=float("inf"))
        return (start + found[0][0], start + found[-1][1]) if found else (start, start)

    def _audible(self, source: str, after: float) -> list[Span]:
        """The loud 10 ms windows of ``source``'s audio that played from ``after`` on (recording time)."""
        out: list[Span] = []
        for chunk in self.heard:
            start = chunk.start - self.origin
            if chunk.source != source or chunk.end - self.origin <= after:
                continue
            for index in np.flatnonzero(window_rms(np.frombuffer(chunk.audio, dtype=np.int16)) > SILENCE_RMS):
                window = (start + float(index) * WINDOW, start + float(index + 1) * WINDOW)
                if window[1] > after:
                    out.append(window)
        return out

    def first_audio(self, source: str, after: float) -> float | None:
        """When ``source``'s first loud window played, after ``after`` (recording time)."""
        windows = self._audible(source, after)
        return windows[0][0] if windows else None

    def barge_in(self, mark: BargeInMark) -> HeardBargeIn:
        onset, caller_end = self._utterance_span(mark.utterance)
        fresh_at = self.first_audio(mark.fresh, caller_end)
        before_fresh = self.bot_speech if fresh_at is None else spans(self.bot[: round(fresh_at * RATE)])
        over = overrun(before_fresh, (onset, caller_end))
        silent_at = onset + over
        # The silence is found in 10 ms windows, so a chunk still playing within one is the overrun's.
        after = silent_at + WINDOW
        window_start = max(0.0, onset - TIMELINE_BEFORE)
        first, last = int(window_start * RATE), int((onset + TIMELINE_AFTER) * RATE)
        return HeardBargeIn(
            turn=mark.turn,
            phase=mark.phase,
            onset=onset,
            caller_end=caller_end,
            silent_at=silent_at,
            fresh_at=fresh_at,
            overrun=over,
            stale_audio=stale_audio(self._audible(mark.abandoned, after), after),
            overlap=overlap(self.bot_speech, (onset, caller_end)),
            voice_to_voice=None if fresh_at is None else voice_to_voice(caller_end, fresh_at),
            timeline_start=window_start,
            caller_rms=[round(float(v), 1) for v in window_rms(self.caller[first:last])],
            bot_rms=[round(float(v), 1) for v in window_rms(self.bot[first:last])],
        )
