"""``harness --record DIR``: each run's audio as the caller heard it, and where its barge-ins are in it.

One stereo 16 kHz WAV per run (left the caller, right the bot as the caller heard it) and
``DIR/events.json``: per run its WAV and per barge-in the caller's onset and end, in seconds of the
WAV's own timeline, with the figures the harness computed, so anyone can measure them again with
a VAD of their own.
(:mod:`.remeasure` does, with the plainest rule there is).
"""

from __future__ import annotations

import json
import wave
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .result import RunResult
from .speech import RATE

EVENTS = "events.json"


def recording_name(run: int, service: str, cancel_policy: str) -> str:
    """A run's WAV file name: its place in the campaign, then what it played (safe as a file name)."""
    label = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{service}-{cancel_policy}")
    return f"run{run:04d}-{label}.wav"


def write_wav(path: Path, stereo: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(np.ascontiguousarray(stereo, dtype=np.int16).tobytes())


def read_wav(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The caller's and the bot's tracks of a recording."""
    with wave.open(str(path)) as wav:
        if wav.getnchannels() != 2 or wav.getframerate() != RATE or wav.getsampwidth() != 2:
            raise ValueError(f"{path} is not a 16-bit stereo {RATE} Hz recording of the harness")
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16).reshape(-1, 2)
    return samples[:, 0], samples[:, 1]


def write_events(directory: Path, results: Iterable[RunResult]) -> Path:
    runs: list[dict[str, Any]] = []
    for r in results:
        if r.recording is None:
            continue
        runs.append(
            {
                "run": r.run,
                "service": r.service,
                "cancel_policy": r.cancel_policy,
                "scenario": r.scenario.describe(),
                "wav": r.recording,
                "barge_ins": [
                    {
                        "turn": b.turn,
                        "phase": b.phase,
                        "caller_onset_s": round(b.onset, 4),
                        "caller_end_s": round(b.caller_end, 4),
                        "bot_silent_s": round(b.silent_at, 4),
                        "next_answer_audio_s": None if b.fresh_at is None else round(b.fresh_at, 4),
                        "overrun_ms": round(b.overrun * 1000, 1),
                        "stale_audio_ms": round(b.stale_audio * 1000, 1),
                        "overlap_ms": round(b.overlap * 1000, 1),
                        "voice_to_voice_ms": None if b.voice_to_voice is None else round(b.voice_to_voice * 1000, 1),
                    }
                    for b in r.heard
                ],
            }
        )
    path = directory / EVENTS
    directory.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"sample_rate": RATE, "channels": ["caller", "bot"], "runs": runs}, indent=2))
    return path
