"""The ear's analysis on made-up audio: no pipeline, no socket, no espeak-ng."""

from __future__ import annotations

import numpy as np
import pytest

from pipecat_responses_ws.harness.ear import BargeInMark, Ear, spans
from pipecat_responses_ws.harness.phone import Caller, Played, Utterance
from pipecat_responses_ws.harness.speech import RATE, Provenance, source_of, spoken, trim

LOUD = 3000


def _tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (LOUD * np.sin(2 * np.pi * 220 * t)).astype(np.int16)


def _silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), dtype=np.int16)


def test_spans_join_short_pauses_and_split_at_long_ones() -> None:
    track = np.concatenate([_tone(0.5), _silence(0.1), _tone(0.3), _silence(0.5), _tone(0.2)])
    assert spans(track) == [pytest.approx((0.0, 0.9), abs=0.011), pytest.approx((1.4, 1.6), abs=0.011)]
    assert spans(_silence(1.0)) == []


def test_trim_keeps_the_voice_and_drops_the_silence_around_it() -> None:
    samples = np.concatenate([_silence(0.3), _tone(0.2), _silence(0.4)])
    assert len(trim(samples)) == pytest.approx(0.2 * RATE + 2 * RATE // 100, abs=RATE // 100)


def test_provenance_recognises_each_chunk_and_tells_twins_apart() -> None:
    provenance = Provenance(chunk_bytes=1280)
    word = _tone(0.1).tobytes()
    first, second = provenance.register(word, "1a"), provenance.register(word, "2a")
    assert len(first) % 1280 == 0 and len(first) >= len(word)
    chunks = [first[i : i + 1280] for i in range(0, len(first), 1280)]
    twins = [second[i : i + 1280] for i in range(0, len(second), 1280)]
    assert {provenance.source(c) for c in chunks} == {"1a"}
    assert {provenance.source(c) for c in twins} == {"2a"}
    # The nudge is one least significant bit here and there: nobody hears it.
    difference = np.abs(np.frombuffer(first, np.int16).astype(int) - np.frombuffer(second, np.int16).astype(int))
    assert difference.max() <= 1
    assert provenance.source(bytes(1280)) is None  # silence has no source


def test_the_bots_text_is_spoken_as_short_words_and_known_by_its_tag() -> None:
    assert spoken("t3as0w1 t3as0w2. You said: u3b") == "tree cold. You said: u3b"
    assert source_of("t3as0w1 t3as0w2.") == "3a" and source_of("You said: u3b please") == "3b"
    assert source_of("That is a fine thing to talk about.") is None


class Line:
    """The bot's side of a made-up call: tones played at given times, in chunks that know their source."""

    def __init__(self, origin: float, chunk: float = 0.04) -> None:
        self.origin, self.chunk = origin, chunk
        self.provenance = Provenance(chunk_bytes=int(chunk * RATE) * 2)
        self.heard: list[Played] = []

    def play(self, at: float, samples: np.ndarray, source: str) -> None:
        audio = self.provenance.register(samples.tobytes(), source)
        size = self.provenance.chunk_bytes
        for k in range(0, len(audio), size):
            piece = audio[k : k + size]
            self.heard.append(Played(self.origin + at + k // size * self.chunk, piece, self.provenance.source(piece)))


def test_a_barge_in_read_off_the_two_tracks() -> None:
    """The bot talks until 0.4 s into the caller's words, a stale burst comes back, then the next answer."""
    origin = 100.0
    line = Line(origin)
    line.play(0.0, _tone(2.4), "1a")
    line.play(3.0, _tone(0.2), "1a")  # after a 0.6 s pause: the cancelled answer back again
    line.play(4.5, _tone(1.0), "1b")
    utterance = Utterance("u1b please", _tone(1.2), origin + 2.0)
    caller = Caller()
    caller.said.append(utterance)
    ear = Ear(origin, caller.said, line.heard, origin + 6.0)
    heard_barge_in = ear.barge_in(BargeInMark(1, "mid_text", "1a", "1b", utterance))
    assert heard_barge_in.onset == pytest.approx(2.0, abs=0.011)
    assert heard_barge_in.overrun == pytest.approx(0.4, abs=0.011)
    assert heard_barge_in.stale_audio == pytest.approx(0.2, abs=0.011)
    assert heard_barge_in.voice_to_voice == pytest.approx(4.5 - 3.2, abs=0.011)
    assert heard_barge_in.overlap == pytest.approx(0.4 + 0.2, abs=0.021)
    stereo = ear.stereo()
    assert stereo.shape[1] == 2 and np.abs(stereo[int(2.1 * RATE) : int(2.2 * RATE), 0]).max() > 0


def test_the_overrun_ends_where_the_next_answer_begins_even_without_a_pause() -> None:
    """The cut answer talks on past the caller's last word and runs into the next answer 0.1 s later,
    a pause too short to hear as silence: what plays from the next answer's first sound is not overrun."""
    origin = 100.0
    line = Line(origin)
    line.play(0.0, _tone(4.0), "1a")
    line.play(4.1, _tone(1.0), "1b")
    utterance = Utterance("u1b please", _tone(1.2), origin + 2.0)
    caller = Caller()
    caller.said.append(utterance)
    ear = Ear(origin, caller.said, line.heard, origin + 6.0)
    assert ear.bot_speech == [pytest.approx((0.0, 5.1), abs=0.011)]  # one stretch of voice to the ear
    heard_barge_in = ear.barge_in(BargeInMark(1, "mid_text", "1a", "1b", utterance))
    assert heard_barge_in.overrun == pytest.approx(4.0 - 2.0, abs=0.011)
    assert heard_barge_in.voice_to_voice == pytest.approx(4.1 - 3.2, abs=0.011)
    assert heard_barge_in.stale_audio == 0
