"""Servers without lanes (Azure OpenAI, LocalAI, vLLM), the api-key and ?model= upgrades, N-char argument deltas."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
import websockets
from emu_helpers import Connect, Event, MakeEmulator, Peer, response_id_of, terminal_of, text_of
from websockets.exceptions import InvalidStatus

from pipecat_responses_ws.emulator import Emulator, Reply, ToolCall, builders
from pipecat_responses_ws.emulator.cache import ResponseStore
from pipecat_responses_ws.emulator.handshake import ACCEPT, decide
from pipecat_responses_ws.emulator.model import PlannedCall
from pipecat_responses_ws.emulator.session import ConnectionState, Start
from pipecat_responses_ws.emulator.settings import Ids, Settings
from pipecat_responses_ws.emulator.stream import Pacing, ResponseStream, argument_chunks
from pipecat_responses_ws.protocol import wire

# 200 characters of JSON: {"q":"xxx…"}.
ARGUMENTS = json.dumps({"q": "x" * 192}, separators=(",", ":"))


async def _turn(peer: Peer, **fields: Any) -> list[Event]:
    await peer.create(**fields)
    return await peer.response()


def _argument_deltas(events: list[Event]) -> list[str]:
    return [e["delta"] for e in events if e["type"] == wire.FUNCTION_CALL_ARGUMENTS_DELTA]


# -- one response at a time ---------------------------------------------------------------------


async def test_creates_on_different_stream_ids_run_one_after_the_other(
    make_emulator: MakeEmulator, connect: Connect
) -> None:
    emu = await make_emulator(multiplexing="none", tokens_per_second=200.0)
    peer = await connect(emu)
    emu.queue_replies(Reply(text="one two three four five six"), Reply(text="alpha beta gamma delta"))
    await peer.create(input="a", stream_id="lane-a")
    await peer.create(input="b", stream_id="lane-b")
    events = await peer.response() + await peer.response()
    assert all("stream_id" not in e for e in events)
    assert not any(e["type"] == wire.ERROR for e in events)
    lifecycle = [e["type"] for e in events if e["type"] in wire.LIFECYCLE_EVENTS]
    assert lifecycle == [wire.CREATED, wire.IN_PROGRESS, wire.COMPLETED] * 2
    # No overlap: everything of the first response comes before the second's response.created.
    second = next(i for i, e in enumerate(events) if e["type"] == wire.CREATED and i > 0)
    assert terminal_of(events)["response"]["id"] == response_id_of(events)
    assert text_of(events[:second]) == "one two three four five six"
    assert text_of(events[second:]) == "alpha beta gamma delta"
    first, then = emu.records.responses
    assert first.finished_at is not None and then.created_at is not None and first.finished_at <= then.created_at
    assert (first.lane, then.lane) == (None, None)


async def test_a_create_queues_behind_the_running_response_whatever_its_stream_id(
    make_emulator: MakeEmulator, connect: Connect
) -> None:
    emu = await make_emulator(multiplexing="none", tokens_per_second=200.0)
    peer = await connect(emu)
    emu.queue_replies(Reply(text=" ".join(["word"] * 20)), Reply(text="next"))
    await peer.create(input="long", stream_id="turn-1")
    await peer.until(lambda e: e["type"] == wire.OUTPUT_TEXT_DELTA)
    await peer.create(input="interrupting", stream_id="turn-2")
    events = await peer.response()
    assert text_of(events).split() == ["word"] * 19 and terminal_of(events)["response"]["status"] == "completed"
    follow = await peer.response()
    assert text_of(follow) == "next" and all("stream_id" not in e for e in events + follow)


async def test_the_lane_limit_and_stream_id_checks_do_not_apply(make_emulator: MakeEmulator, connect: Connect) -> None:
    emu = await make_emulator(multiplexing="none")
    peer = await connect(emu)
    for n in range(wire.MAX_NAMED_LANES + 2):
        events = await _turn(peer, input="x", generate=False, stream_id=f"lane-{n}")
        assert terminal_of(events)["type"] == wire.COMPLETED
    # An invalid stream_id is ignored like any other: the server has no such parameter to check.
    events = await _turn(peer, input="x", generate=False, stream_id="")
    assert terminal_of(events)["type"] == wire.COMPLETED
    assert not any(e["type"] == wire.ERROR for e in peer.received)
    assert all("stream_id" not in e for e in peer.received)


async def test_only_the_latest_response_of_the_connection_is_cached(
    make_emulator: MakeEmulator, connect: Connect
) -> None:
    emu = await make_emulator(multiplexing="none")
    peer = await connect(emu)
    r1 = response_id_of(await _turn(peer, input="one", store=False, stream_id="a"))
    r2 = response_id_of(await _turn(peer, input="two", store=False, stream_id="b"))
    # With lanes, r1 would still hold lane a's slot; here r2 replaced it in the connection's one slot.
    await peer.create(input="again", store=False, stream_id="c", previous_response_id=r1)
    assert await peer.recv() == builders.error_event(
        wire.PREVIOUS_RESPONSE_NOT_FOUND,
        f"Previous response with id '{r1}' not found.",
        param="previous_response_id",
    )
    assert [r.id for r in emu.records.responses] == [r1, r2]
    chained = await _turn(peer, input="three", store=False, stream_id="a", previous_response_id=r2)
    assert terminal_of(chained)["response"]["previous_response_id"] == r2
    assert all("stream_id" not in e for e in peer.received)


def test_every_job_is_a_default_lane_job_so_the_cache_has_one_slot() -> None:
    state = ConnectionState(store=ResponseStore(), new_id=Ids(), multiplexing="none")
    for lane in ("a", "b"):
        _, start = state.handle({"type": "response.create", "input": "x", "store": False, "stream_id": lane})
        assert isinstance(start, Start) and start.job.lane is None and "stream_id" not in start.job.request
        start.job.status = start.job.end_reason = "completed"
        state.finished(start.job)
    slot = state.cache.slot(None)
    assert slot is not None and slot.response_id == start.job.response_id
    assert state.cache.slot("a") is None and state.cache.slot("b") is None


async def test_cancel_without_response_id_stops_the_running_response(
    make_emulator: MakeEmulator, connect: Connect
) -> None:
    emu = await make_emulator(multiplexing="none", cancel_policy="honor", tokens_per_second=100.0)
    peer = await connect(emu)
    emu.queue_replies(Reply(text=" ".join(["word"] * 40)))
    await peer.create(input="long", stream_id="turn-1")
    await peer.until(lambda e: e["type"] == wire.OUTPUT_TEXT_DELTA)
    await peer.send({"type": "response.cancel"})
    terminal = terminal_of(await peer.response())
    assert terminal["response"]["status"] == "cancelled" and "stream_id" not in terminal


# -- stream_id refused --------------------------------------------------------------------------


async def test_reject_answers_a_create_with_stream_id_with_a_connection_level_error(
    make_emulator: MakeEmulator, connect: Connect
) -> None:
    emu = await make_emulator(multiplexing="none", stream_id_policy="reject")
    peer = await connect(emu)
    expected = {
        "type": "error",
        "status": 400,
        "error": {
            "type": "invalid_request_error",
            "code": "unknown_parameter",
            "param": "stream_id",
            "message": "Unknown parameter: 'stream_id'.",
        },
    }
    await peer.create(input="x", stream_id="turn-1")
    assert await peer.recv() == expected
    # The key alone is enough, as for a server that refuses names it does not know.
    await peer.create(input="x", stream_id=None)
    assert await peer.recv() == expected
    assert await peer.quiet(0.2) == []
    assert emu.records.responses == []
    events = await _turn(peer, input="x")
    assert terminal_of(events)["type"] == wire.COMPLETED and all("stream_id" not in e for e in events)
    assert len(emu.records.responses) == 1


# -- the upgrade --------------------------------------------------------------------------------


async def _status_of(url: str, headers: dict[str, str]) -> int:
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(url, additional_headers=headers):
            pass
    return refused.value.response.status_code


async def test_azure_api_key_header(make_emulator: MakeEmulator) -> None:
    keyed = await make_emulator(api_key="sk-right")
    async with websockets.connect(keyed.ws_url, additional_headers={"api-key": "sk-right"}) as ws:
        await ws.send(json.dumps({"type": "response.create", "input": "x", "generate": False}))
        assert json.loads(await ws.recv())["type"] == wire.CREATED
    assert await _status_of(keyed.ws_url, {"api-key": "sk-wrong"}) == 401
    assert await _status_of(keyed.ws_url, {"api-key": " "}) == 401
    # Both ways at once must both be the key.
    both = {"api-key": "sk-right", "Authorization": "Bearer sk-right"}
    async with websockets.connect(keyed.ws_url, additional_headers=both):
        pass
    assert await _status_of(keyed.ws_url, {"api-key": "sk-right", "Authorization": "Bearer sk-wrong"}) == 401
    assert [h.status for h in keyed.records.handshakes] == [101, 401, 401, 101, 401]
    assert all("sk-right" not in repr(h) and "sk-wrong" not in repr(h) for h in keyed.records.handshakes)

    open_emu = await make_emulator()
    async with websockets.connect(open_emu.ws_url, additional_headers={"api-key": "anything"}):
        pass
    assert open_emu.connection_count == 1


def test_decide_takes_either_key() -> None:
    path = "/openai/v1/responses"
    assert decide(path, None, api_key=None, forced_status=None, api_key_header="k").status == ACCEPT
    assert decide(path, "Bearer k", api_key="k", forced_status=None).status == ACCEPT
    assert decide(path, None, api_key="k", forced_status=None, api_key_header="k").status == ACCEPT
    assert decide(path, "Basic k", api_key="k", forced_status=None, api_key_header="k").status == ACCEPT
    refused = decide(path, None, api_key="k", forced_status=None, api_key_header="other")
    assert refused.status == 401 and json.loads(refused.body)["error"]["code"] == "invalid_api_key"
    missing = decide(path, None, api_key=None, forced_status=None)
    assert missing.status == 401 and "api-key" in json.loads(missing.body)["error"]["message"]


async def test_model_query_names_the_connections_responses(emu: Emulator, connect: Connect) -> None:
    peer = await connect(emu, url=f"{emu.ws_url}?model=gpt-4.1-mini")
    events = await _turn(peer, input="x", generate=False)
    assert terminal_of(events)["response"]["model"] == "gpt-4.1-mini"
    events = await _turn(peer, input="x", generate=False, model="gpt-4.1")
    assert terminal_of(events)["response"]["model"] == "gpt-4.1"
    assert emu.records.handshakes[0].query == {"model": "gpt-4.1-mini"}
    plain = await connect(emu)
    assert terminal_of(await _turn(plain, input="x", generate=False))["response"]["model"] == emu.settings.model


# -- argument deltas ----------------------------------------------------------------------------


async def test_one_character_argument_deltas(make_emulator: MakeEmulator, connect: Connect) -> None:
    assert len(ARGUMENTS) == 200
    emu = await make_emulator(argument_delta_chars=1, tokens_per_second=5000.0)
    peer = await connect(emu)
    emu.queue_replies(Reply(calls=[ToolCall("lookup", ARGUMENTS)]))
    events = await _turn(peer, input="x")
    deltas = _argument_deltas(events)
    assert len(deltas) == 200 and all(len(d) == 1 for d in deltas)
    assert "".join(deltas) == ARGUMENTS
    done = next(e for e in events if e["type"] == wire.FUNCTION_CALL_ARGUMENTS_DONE)
    assert done["arguments"] == ARGUMENTS
    assert terminal_of(events)["response"]["output"][0]["arguments"] == ARGUMENTS
    # Each delta is one output token.
    assert terminal_of(events)["response"]["usage"]["output_tokens"] == 200


async def test_argument_delta_chars_per_reply(make_emulator: MakeEmulator, connect: Connect) -> None:
    emu = await make_emulator(tokens_per_second=5000.0)
    peer = await connect(emu)
    call = ToolCall("lookup", ARGUMENTS)
    emu.queue_replies(Reply(calls=[call], argument_delta_chars=7), Reply(calls=[call]))
    sevens = _argument_deltas(await _turn(peer, input="x"))
    assert len(sevens) == 29 and all(len(d) == 7 for d in sevens[:-1]) and "".join(sevens) == ARGUMENTS
    default = _argument_deltas(await _turn(peer, input="x"))
    assert len(default) == 3 and "".join(default) == ARGUMENTS


@pytest.mark.slow
def test_planning_stays_linear_in_the_number_of_deltas() -> None:
    arguments = "y" * 100_000
    assert argument_chunks(arguments) == argument_chunks(arguments, None) and len(argument_chunks(arguments)) == 3
    assert argument_chunks(arguments, 1) == list(arguments)
    writer = builders.ResponseEventWriter("resp_1", "emulated")
    stream = ResponseStream(
        writer,
        [PlannedCall("lookup", arguments)],
        pacing=Pacing(0.0, 1e9),
        rng=random.Random(0),
        new_id=Ids(),
        argument_delta_chars=1,
    )
    # created, in_progress, item added, the deltas, arguments done, item done, terminal.
    assert stream.planned_events == 100_000 + 6
    events = [stream.next() for _ in range(stream.planned_events)]
    assert "".join(e["delta"] for e in events if e["type"] == wire.FUNCTION_CALL_ARGUMENTS_DELTA) == arguments
    assert events[-1]["type"] == wire.COMPLETED


# -- settings -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        ({"multiplexing": "some"}, "multiplexing must be one of"),
        ({"stream_id_policy": "drop", "multiplexing": "none"}, "stream_id_policy must be one of"),
        ({"stream_id_policy": "reject"}, "needs multiplexing 'none'"),
        ({"argument_delta_chars": 0}, "argument_delta_chars"),
        ({"argument_delta_chars": -3}, "argument_delta_chars"),
        ({"argument_delta_chars": True}, "argument_delta_chars"),
        ({"argument_delta_chars": 1.5}, "argument_delta_chars"),
    ],
)
def test_settings_validation(options: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        Settings(**options)
    with pytest.raises(ValueError, match=complaint):
        Emulator(**options)


def test_valid_profiles_and_their_repr() -> None:
    settings = Settings(multiplexing="none", stream_id_policy="reject", argument_delta_chars=1)
    assert "multiplexing='none'" in repr(settings) and "argument_delta_chars=1" in repr(settings)
    assert Settings().multiplexing == "lanes" and Settings().argument_delta_chars is None
    with pytest.raises(ValueError, match="argument_delta_chars"):
        Reply(argument_delta_chars=0)
    with pytest.raises(ValueError, match="multiplexing"):
        ConnectionState(store=ResponseStore(), new_id=Ids(), multiplexing="one")
    with pytest.raises(ValueError, match="stream_id_policy"):
        ConnectionState(store=ResponseStore(), new_id=Ids(), stream_id_policy="maybe")


def test_serve_and_harness_flags() -> None:
    from pipecat_responses_ws.cli import build_parser
    from pipecat_responses_ws.harness.__main__ import _parser
    from pipecat_responses_ws.harness.runner import RunResult
    from pipecat_responses_ws.harness.scenario import generate

    args = build_parser().parse_args(
        ["serve", "--multiplexing", "none", "--stream-id", "reject", "--argument-delta-chars", "1"]
    )
    assert (args.multiplexing, args.stream_id_policy, args.argument_delta_chars) == ("none", "reject", 1)
    plain = build_parser().parse_args(["serve"])
    assert (plain.multiplexing, plain.stream_id_policy, plain.argument_delta_chars) == ("lanes", "ignore", None)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--argument-delta-chars", "0"])
    assert _parser().parse_args(["--multiplexing", "none"]).multiplexing == "none"
    assert _parser().parse_args([]).multiplexing == "lanes"
    scenario = generate(1, 0)
    assert RunResult("ours", "ignore", scenario, {}).label == "ours/ignore"
    assert RunResult("ours", "ignore", scenario, {}, multiplexing="none").label == "ours/ignore/none"
