"""Every event the wire builders produce validates against the official SDK's server-event union."""

from __future__ import annotations

import pytest
from openai.types.responses import ResponsesServerEvent
from pydantic import TypeAdapter

from pipecat_responses_ws.emulator import builders
from pipecat_responses_ws.protocol import wire

SERVER_EVENTS = TypeAdapter(ResponsesServerEvent)


def _all_events(stream_id: str | None) -> list[dict]:
    tool = {"type": "function", "name": "f", "parameters": {"type": "object", "properties": {}}, "strict": False}
    w = builders.ResponseEventWriter("resp_1", "emulated", stream_id=stream_id, request={"tools": [tool]})
    events = [w.created(), w.queued(), w.in_progress()]
    events.append(w.output_item_added(0, builders.message_item("msg_1", "", status="in_progress")))
    events += [w.content_part_added("msg_1", 0), w.output_text_delta("msg_1", 0, "Hi ")]
    events += [w.output_text_done("msg_1", 0, "Hi "), w.content_part_done("msg_1", 0, "Hi ")]
    events.append(w.output_item_done(0, builders.message_item("msg_1", "Hi ")))
    events.append(w.output_item_added(1, builders.function_call_item("fc_1", "call_1", "f", "", "in_progress")))
    events.append(w.function_call_arguments_delta("fc_1", 1, "{}"))
    events.append(w.function_call_arguments_done("fc_1", 1, "{}", "f"))
    events.append(w.output_item_done(1, builders.function_call_item("fc_1", "call_1", "f", "{}")))
    events += [w.completed(builders.usage(3, 4)), w.failed("server_error", "boom"), w.incomplete("max_output_tokens")]
    events.append(w.error(wire.PREVIOUS_RESPONSE_NOT_FOUND, "gone"))
    return events


@pytest.mark.parametrize("stream_id", [None, "lane-0"])
def test_every_built_event_validates_against_the_sdk(stream_id: str | None) -> None:
    events = _all_events(stream_id)
    for event in events:
        parsed = SERVER_EVENTS.validate_python(event)
        assert parsed.type == event["type"]
        assert getattr(parsed, "stream_id", None) == stream_id
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[-3]["response"]["output"][1]["call_id"] == "call_1"


def test_connection_level_error_has_no_lane() -> None:
    event = builders.error_event(wire.INVALID_STREAM_ID, "Invalid stream_id.", param="stream_id")
    assert "stream_id" not in event
    assert SERVER_EVENTS.validate_python(event).error.code == wire.INVALID_STREAM_ID


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("turn-1", True),
        ("a.b_c-9", True),
        ("x" * 256, True),
        ("", False),
        ("x" * 257, False),
        ("has space", False),
        ("ü", False),
        (None, False),
        (7, False),
    ],
)
def test_stream_id_rule(value: object, valid: bool) -> None:
    assert wire.is_valid_stream_id(value) is valid


def test_text_chunks_rejoin_exactly() -> None:
    text = "Sunny and 21 degrees.  Tomorrow rain."
    chunks = list(builders.text_chunks(text))
    assert "".join(chunks) == text
    assert len(chunks) == 6
