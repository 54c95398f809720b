"""The connection state machine and the response stream, driven by hand without a socket."""

from __future__ import annotations

import random
from typing import Any

from emu_helpers import validate_events

from pipecat_responses_ws.emulator import builders
from pipecat_responses_ws.emulator.cache import ResponseStore
from pipecat_responses_ws.emulator.model import PlannedCall, PlannedText
from pipecat_responses_ws.emulator.session import Accepted, Action, ConnectionState, Job, Send, Start
from pipecat_responses_ws.emulator.settings import Ids
from pipecat_responses_ws.emulator.stream import Pacing, ResponseStream
from pipecat_responses_ws.protocol import wire


def _state(**kw: Any) -> ConnectionState:
    return ConnectionState(store=ResponseStore(), new_id=Ids(), **kw)


def _create(state: ConnectionState, **fields: Any) -> list[Action]:
    return state.handle({"type": "response.create", "input": "x", **fields})


def _started(actions: list[Action]) -> list[Job]:
    return [a.job for a in actions if isinstance(a, Start)]


def _finish(state: ConnectionState, job: Job, status: str = "completed") -> list[Action]:
    job.status = status
    job.end_reason = status
    return state.finished(job)


def test_fifo_per_lane_and_concurrency_across_lanes() -> None:
    state = _state()
    first = _started(_create(state, stream_id="a"))
    queued = _create(state, stream_id="a")
    other = _started(_create(state, stream_id="b"))
    assert len(first) == 1 and len(other) == 1
    assert [type(a) for a in queued] == [Accepted]
    assert [j.response_id for j in _started(_finish(state, first[0]))] == [queued[0].job.response_id]


def test_in_flight_limit_releases_oldest_first() -> None:
    state = _state()
    running = [j for n in range(16) for j in _started(_create(state, stream_id=f"l{n}"))]
    waiting = [_create(state, stream_id=f"w{n}")[0].job for n in range(3)]
    assert len(running) == 16 and all(j.status == "queued" for j in waiting)
    assert _started(_finish(state, running[5])) == [waiting[0]]


def test_missing_parent_is_detected_when_the_job_starts() -> None:
    state = _state()
    (blocker,) = _started(_create(state, stream_id="a", store=False))
    actions = _create(state, stream_id="a", store=False, previous_response_id="resp_gone")
    assert [type(a) for a in actions] == [Accepted]
    after = _finish(state, blocker)
    errors = [a.event for a in after if isinstance(a, Send)]
    assert [e["error"]["code"] for e in errors] == [wire.PREVIOUS_RESPONSE_NOT_FOUND]
    assert errors[0]["stream_id"] == "a"


def test_failed_response_never_takes_a_slot() -> None:
    state = _state()
    (job,) = _started(_create(state, stream_id="a", store=False))
    _finish(state, job, "failed")
    assert state.cache.slot("a") is None and state.cache.lookup(job.response_id) is None


def test_stream_layout_pacing_and_stop() -> None:
    writer = builders.ResponseEventWriter("resp_1", "m", stream_id="s")
    plan = [PlannedText("a b c"), PlannedCall("f", '{"k": "vvvvvvvvvvvvvvvv"}')]
    stream = ResponseStream(writer, plan, pacing=Pacing(0.5, 10.0), rng=random.Random(0), new_id=Ids(), input_tokens=3)
    assert stream.planned_events == 2 + (2 + 3 + 3) + (1 + 3 + 2) + 1
    delays, events = [], []
    while (delay := stream.peek_delay()) is not None:
        delays.append(delay)
        events.append(stream.next())
        if len(events) == 6:
            stream.stop("cancelled")
    validate_events(events)
    assert [d for d in delays if d] == [0.5, 0.1]
    assert events[-1]["response"]["status"] == "cancelled" and stream.end_reason == "cancelled"
    assert stream.tokens == 2 and stream.text == "a b "
