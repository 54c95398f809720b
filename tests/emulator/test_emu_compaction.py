"""``POST /v1/responses/compact``, and its compacted window starting a new chain over HTTP and WebSocket."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from emu_helpers import Connect, response_id_of, terminal_of
from spec_schema import check, check_compaction

from pipecat_responses_ws.emulator import Emulator
from pipecat_responses_ws.protocol import wire

HEADERS = {"Authorization": "Bearer k", "Content-Type": "application/json"}
CONVERSATION = [
    {"type": "message", "role": "user", "content": "We agreed to launch on Tuesday and notify support first."},
    {"type": "message", "role": "assistant", "content": "Understood. The launch is Tuesday, support first."},
    {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city": "Oslo"}'},
]


async def _post(emu: Emulator, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http:
        answer = await http.post(f"{emu.http_base_url}{path}", data=json.dumps(body), headers=HEADERS)
        return answer.status, await answer.json()


async def _compact(emu: Emulator, **body: Any) -> dict[str, Any]:
    status, answer = await _post(emu, "/responses/compact", {"model": "m", **body})
    assert status == 200, answer
    check_compaction(answer)
    return answer


async def test_compaction_keeps_user_messages_and_folds_the_rest_into_one_compaction_item(emu: Emulator) -> None:
    answer = await _compact(emu, input=CONVERSATION, prompt_cache_key="launch")
    assert answer["object"] == "response.compaction" and type(answer["created_at"]) is int
    user, compaction = answer["output"]
    assert user["role"] == "user" and user["content"] == [{"type": "input_text", "text": CONVERSATION[0]["content"]}]
    assert (
        compaction["type"] == "compaction" and compaction["id"].startswith("cmp_") and compaction["encrypted_content"]
    )
    check(compaction, "CompactionBody")
    # Words, the emulator's tokens: 10 + 7 + 3 in, the 10 folded out.
    assert answer["usage"]["input_tokens"] == 20 and answer["usage"]["output_tokens"] == 10
    assert not emu.records.responses and not emu.records.creates()


async def test_compaction_without_a_model_is_a_400(emu: Emulator) -> None:
    status, answer = await _post(emu, "/responses/compact", {"input": "Compact this conversation."})
    assert status == 400
    assert answer["error"]["type"] == "invalid_request_error" and answer["error"]["param"] == "model"


async def test_compaction_continues_a_stored_response_and_refuses_an_unknown_one(emu: Emulator) -> None:
    status, stored = await _post(emu, "/responses", {"model": "m", "input": "Remember slate."})
    assert status == 200
    answer = await _compact(emu, input="And copper.", previous_response_id=stored["id"])
    texts = [item["content"][0]["text"] for item in answer["output"] if item["type"] == "message"]
    assert texts == ["Remember slate.", "And copper."] and answer["output"][-1]["type"] == "compaction"
    status, refused = await _post(emu, "/responses/compact", {"model": "m", "previous_response_id": "resp_nope"})
    assert status == 400 and refused["error"]["code"] == wire.PREVIOUS_RESPONSE_NOT_FOUND


async def test_the_window_starts_a_new_websocket_chain_and_answers_a_folded_call(
    emu: Emulator, connect: Connect
) -> None:
    window = (await _compact(emu, input=CONVERSATION))["output"]
    peer = await connect(emu)
    await peer.create(model="m", store=False, input=[*window, {"role": "user", "content": "Continue from here."}])
    first = await peer.response()
    completed = terminal_of(first)["response"]
    assert completed["status"] == "completed" and completed["previous_response_id"] is None
    # The folded items still count: 10 + 10 folded + 3 new words.
    assert completed["usage"]["input_tokens"] == 23
    # The call folded into the window can still be answered, down the new chain.
    output = {"type": "function_call_output", "call_id": "call_1", "output": "Sunny"}
    await peer.create(model="m", store=False, input=[output], previous_response_id=response_id_of(first))
    assert terminal_of(await peer.response())["response"]["status"] == "completed"


async def test_the_window_starts_a_new_chain_over_http(emu: Emulator) -> None:
    window = (await _compact(emu, input=CONVERSATION))["output"]
    status, answer = await _post(
        emu, "/responses", {"model": "m", "input": [*window, {"role": "user", "content": "Go on."}]}
    )
    assert status == 200 and answer["status"] == "completed" and answer["usage"]["input_tokens"] == 22
