"""Handshake, framing errors, unsupported fields, the age limit and server-side drops."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import websockets
from emu_helpers import Connect, MakeEmulator, terminal_of
from websockets.exceptions import ConnectionClosed, InvalidStatus

from pipecat_responses_ws.emulator import Emulator, Reply
from pipecat_responses_ws.protocol import wire


async def _status_of(url: str, token: str | None = "k") -> int:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(url, additional_headers=headers):
            pass
    return refused.value.response.status_code


async def test_any_prefix_ending_in_responses_with_query(emu: Emulator, connect: Connect) -> None:
    base = f"ws://127.0.0.1:{emu.port}"
    peer = await connect(emu, url=f"{base}/custom/v1/responses?foo=bar&x=")
    await peer.create(input="x", generate=False)
    await peer.response()
    handshake = emu.records.handshakes[0]
    assert (handshake.path, handshake.query, handshake.status) == ("/custom/v1/responses", {"foo": "bar", "x": ""}, 101)
    assert handshake.headers["authorization"] == "Bearer test"
    assert await _status_of(f"{base}/v1/chat") == 404
    assert emu.connection_count == 1


async def test_auth_rules(make_emulator: MakeEmulator, connect: Connect) -> None:
    open_emu = await make_emulator()
    assert await _status_of(open_emu.ws_url, token=None) == 401
    await connect(open_emu, token="anything")

    keyed = await make_emulator(api_key="sk-right")
    assert await _status_of(keyed.ws_url, token="sk-wrong") == 401
    assert await _status_of(keyed.ws_url, token=None) == 401
    await connect(keyed, token="sk-right")
    assert [h.status for h in keyed.records.handshakes] == [401, 401, 101]
    assert all("sk-right" not in repr(h) and "sk-wrong" not in repr(h) for h in keyed.records.handshakes)
    assert "sk-right" not in repr(keyed.settings)


async def test_auth_failure_body_does_not_echo_the_key(make_emulator: MakeEmulator) -> None:
    keyed = await make_emulator(api_key="sk-right")
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(keyed.ws_url, additional_headers={"Authorization": "Bearer sk-wrong"}):
            pass
    body = json.loads(refused.value.response.body)
    assert body["error"]["code"] == "invalid_api_key" and "sk-wrong" not in refused.value.response.body.decode()


@pytest.mark.parametrize("status", [401, 426, 500])
async def test_forced_handshake_rejections(emu: Emulator, connect: Connect, status: int) -> None:
    emu.reject_handshakes(status, count=2)
    assert await _status_of(emu.ws_url) == status
    assert await _status_of(emu.ws_url) == status
    await connect(emu)
    assert emu.connection_count == 1 and emu.open_connections == 1


async def test_planned_handshakes_let_some_through_then_refuse_or_hang(emu: Emulator, connect: Connect) -> None:
    emu.reject_handshakes(429, count=1, after=1)
    emu.hang_handshakes(count=1)
    await connect(emu)
    assert await _status_of(emu.ws_url) == 429
    keyed = {"Authorization": "Bearer k"}
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3), websockets.connect(emu.ws_url, additional_headers=keyed):
            pass
    await connect(emu)  # the plan is used up: upgrades go through again
    assert emu.connection_count == 2
    assert [h.status for h in emu.records.handshakes] == [101, 429, 101]  # the hung one has no answer yet


async def test_handshake_delay_holds_the_upgrade(make_emulator: MakeEmulator, connect: Connect) -> None:
    emu = await make_emulator(handshake_delay=0.2)
    started = time.monotonic()
    await connect(emu)
    assert time.monotonic() - started >= 0.2
    assert [h.status for h in emu.records.handshakes] == [101]


async def test_malformed_frames_and_unknown_types_keep_the_connection(emu: Emulator, connect: Connect) -> None:
    peer = await connect(emu)
    cases = [
        ("{not json", wire.INVALID_JSON),
        ("[1, 2]", wire.INVALID_JSON),
        (json.dumps({"input": "no type"}), wire.UNKNOWN_EVENT),
        (json.dumps({"type": "session.update"}), wire.UNKNOWN_EVENT),
    ]
    for frame, code in cases:
        await peer.send(frame)
        error = await peer.recv()
        assert error["type"] == wire.ERROR and error["error"]["code"] == code and "stream_id" not in error
        assert error["error"]["message"]
    await peer.ws.send(b'{"type": "response.create"}')
    assert (await peer.recv())["error"]["code"] == wire.INVALID_JSON
    await peer.create(input="still here")
    assert terminal_of(await peer.response())["response"]["status"] == "completed"
    assert [f.payload is None for f in emu.records.frames] == [True, True, False, False, True, False]


async def test_background_rejected_stream_tolerated(emu: Emulator, connect: Connect) -> None:
    peer = await connect(emu)
    await peer.create(input="x", background=True, stream_id="a")
    error = await peer.recv()
    assert error["error"]["code"] == wire.UNSUPPORTED_PARAMETER and error["error"]["param"] == "background"
    assert error["stream_id"] == "a"
    await peer.create(input="x", stream=True, background=False)
    assert terminal_of(await peer.response())["response"]["status"] == "completed"
    assert len(emu.records.responses) == 1


async def test_bad_input_shape_is_rejected(emu: Emulator, connect: Connect) -> None:
    peer = await connect(emu)
    await peer.create(input=42)
    error = await peer.recv()
    assert error["error"]["code"] == wire.INVALID_REQUEST and error["error"]["param"] == "input"


async def test_age_limit_sends_error_then_closes(make_emulator: MakeEmulator, connect: Connect) -> None:
    emu = await make_emulator(max_connection_age=0.5, age_limit_close_code=1001)
    opened = time.monotonic()
    peer = await connect(emu)
    await peer.create(input="x", generate=False)
    await peer.response()
    emu.queue_replies(Reply(text=" ".join(["long"] * 400)))
    await peer.create(input="x", stream_id="a")
    events = []
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            events.append(await peer.recv(timeout=2))
    error = events[-1]
    assert error == {
        "type": "error",
        "status": 400,
        "error": {
            "type": "invalid_request_error",
            "code": wire.CONNECTION_LIMIT_REACHED,
            "param": None,
            "message": "Responses websocket connection limit reached (60 minutes). "
            "Create a new websocket connection to continue.",
        },
    }
    assert not any(e["type"] in wire.TERMINAL_EVENTS for e in events), "running responses are cut"
    assert closed.value.rcvd.code == 1001
    assert 0.5 <= time.monotonic() - opened < 1.5


async def test_age_limit_on_an_idle_connection(make_emulator: MakeEmulator, connect: Connect) -> None:
    emu = await make_emulator(max_connection_age=0.3)
    peer = await connect(emu)
    error = await peer.recv(timeout=2)
    assert error["error"]["code"] == wire.CONNECTION_LIMIT_REACHED
    with pytest.raises(ConnectionClosed) as closed:
        await peer.recv(timeout=2)
    assert closed.value.rcvd.code == 1011


@pytest.mark.parametrize("code", [1006, 1011])
async def test_drop_all_connections(emu: Emulator, connect: Connect, code: int) -> None:
    peers = [await connect(emu), await connect(emu)]
    emu.queue_replies(Reply(text=" ".join(["long"] * 400)))
    await peers[0].create(input="x")
    await peers[0].until(lambda e: e["type"] == wire.OUTPUT_TEXT_DELTA)
    await emu.drop_all_connections(code)
    assert emu.open_connections == 0
    for peer in peers:
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await peer.recv(timeout=2)
        assert closed.value.rcvd is None if code == 1006 else closed.value.rcvd.code == 1011
    await asyncio.sleep(0)
    assert emu.connection_count == 2
