"""Server-sent events with no socket: bytes in, each event's data out, however the chunks cut them."""

from __future__ import annotations

import json

import pytest

from pipecat_responses_ws.protocol.sse import DONE, ServerSentEvents, is_event_stream

# Every character str.splitlines() takes for a line end besides CR and LF; JSON carries them raw.
UNICODE_LINE_BREAKS = "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def events_of(*chunks: bytes) -> list[str]:
    parser = ServerSentEvents()
    return [data for chunk in chunks for data in parser.feed(chunk)]


def delta_event(text: str) -> bytes:
    payload = json.dumps({"type": "response.output_text.delta", "delta": text}, ensure_ascii=False)
    return f"event: response.output_text.delta\ndata: {payload}\n\n".encode()


@pytest.mark.parametrize("separator", list(UNICODE_LINE_BREAKS))
def test_a_unicode_line_break_inside_the_data_is_text_not_a_line_end(separator: str) -> None:
    stream = delta_event(f"one{separator}two") + b'data: {"type": "response.completed"}\n\n'
    events = events_of(stream)
    assert [json.loads(data) for data in events] == [
        {"type": "response.output_text.delta", "delta": f"one{separator}two"},
        {"type": "response.completed"},
    ]


def test_lines_end_at_lf_cr_and_crlf_alike() -> None:
    assert events_of(b"data: a\n\ndata: b\r\rdata: c\r\n\r\n") == ["a", "b", "c"]


def test_every_cut_of_the_stream_gives_the_same_events() -> None:
    stream = delta_event("caf\u00e9 \u2028 \U0001f600") + b": keep-alive\r\ndata: x\r\ndata: y\r\n\r\n"
    stream += b"data: [DONE]\r\r"
    whole = events_of(stream)
    assert [json.loads(whole[0])["delta"], *whole[1:]] == ["caf\u00e9 \u2028 \U0001f600", "x\ny", DONE]
    for cut in range(1, len(stream)):
        assert events_of(stream[:cut], stream[cut:]) == whole, cut
    assert events_of(*(stream[i : i + 1] for i in range(len(stream)))) == whole


def test_a_cr_ending_a_chunk_and_the_lf_starting_the_next_are_one_line_break() -> None:
    # Read as two line breaks, the CR and the LF would make a blank line: an event "a", then "b".
    assert events_of(b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n") == ["a\nb"]


def test_an_empty_chunk_after_a_cr_changes_nothing() -> None:
    assert events_of(b"data: a\r", b"", b"\ndata: b\n\n") == ["a\nb"]


def test_comments_names_ids_and_a_field_without_a_colon() -> None:
    stream = b": ping\nevent: response.created\nid: 7\nretry: 10\ndata\ndata:tight\n\n"
    assert events_of(stream) == ["\ntight"]


def test_an_event_the_stream_ends_in_the_middle_of_is_not_returned() -> None:
    assert events_of(b"data: whole\n\ndata: cut") == ["whole"]


def test_invalid_utf8_is_replaced_not_raised() -> None:
    assert events_of(b"data: \xff\n\n") == ["\ufffd"]


@pytest.mark.parametrize(
    ("content_type", "read"),
    [
        ("text/event-stream", True),
        ("text/event-stream; charset=utf-8", True),
        ("Text/Event-Stream", True),
        (None, True),
        ("text/html; charset=utf-8", False),
        ("application/json", False),
        ("text/plain", False),
    ],
)
def test_only_an_event_stream_or_an_untyped_body_is_read_as_events(content_type: str | None, read: bool) -> None:
    assert is_event_stream(content_type) is read
