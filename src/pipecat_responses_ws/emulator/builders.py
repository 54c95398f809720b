"""Builders for every server event the emulator emits, in order and with the lane right.

Pure: dicts in, dicts out, no I/O. Tests use them too, to play events at the client session.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..protocol.wire import (
    COMPLETED,
    CONTENT_PART_ADDED,
    CONTENT_PART_DONE,
    CREATED,
    ERROR,
    FAILED,
    FUNCTION_CALL_ARGUMENTS_DELTA,
    FUNCTION_CALL_ARGUMENTS_DONE,
    IN_PROGRESS,
    INCOMPLETE,
    OUTPUT_ITEM_ADDED,
    OUTPUT_ITEM_DONE,
    OUTPUT_TEXT_DELTA,
    OUTPUT_TEXT_DONE,
    QUEUED,
    REASONING_SUMMARY_PART_ADDED,
    REASONING_SUMMARY_PART_DONE,
    REASONING_SUMMARY_TEXT_DELTA,
    REASONING_SUMMARY_TEXT_DONE,
    STEER_ACCEPTED,
    STEER_FAILED,
)


def error_event(
    code: str,
    message: str,
    *,
    status: int = 400,
    param: str | None = None,
    stream_id: str | None = None,
    error_type: str = "invalid_request_error",
    sequence_number: int | None = None,
) -> dict[str, Any]:
    """An ``error`` event; ``stream_id`` only when the error belongs to a named lane."""
    error: dict[str, Any] = {"type": error_type, "code": code, "message": message, "param": param}
    event: dict[str, Any] = {"type": ERROR, "status": status, "error": error}
    if sequence_number is not None:
        event["sequence_number"] = sequence_number
    if stream_id is not None:
        event["stream_id"] = stream_id
    return event


def usage(input_tokens: int, output_tokens: int, cached_tokens: int = 0, reasoning_tokens: int = 0) -> dict[str, Any]:
    """A ``usage`` object as carried by terminal events (``output_tokens`` includes reasoning)."""
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": cached_tokens, "cache_write_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
        "total_tokens": input_tokens + output_tokens,
    }


def message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    """An assistant ``message`` output item holding one ``output_text`` part."""
    content = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
    return {
        "id": item_id,
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": content if text or status == "completed" else [],
    }


def function_call_item(
    item_id: str, call_id: str, name: str, arguments: str, status: str = "completed"
) -> dict[str, Any]:
    """A ``function_call`` output item."""
    return {
        "id": item_id,
        "type": "function_call",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def reasoning_item(item_id: str, summary: str | None = None, encrypted_content: str | None = None) -> dict[str, Any]:
    """A ``reasoning`` output item: no summary part while it streams, one ``summary_text`` when done."""
    item: dict[str, Any] = {
        "id": item_id,
        "type": "reasoning",
        "summary": [] if summary is None else [{"type": "summary_text", "text": summary}],
    }
    if encrypted_content is not None:
        item["encrypted_content"] = encrypted_content
    return item


def normalized_tool(tool: Any) -> Any:
    """A request's tool as a ``Response`` echoes it: a function tool gets every field, ``strict`` true unless sent."""
    if not isinstance(tool, dict) or tool.get("type") != "function":
        return tool
    return {"description": None, "parameters": None, "strict": True, **tool}


def _setting(request: dict[str, Any], name: str, default: Any) -> Any:
    """A request setting as used: the value sent, or ``default`` when it was absent or null."""
    value = request.get(name)
    return default if value is None else value


def _object_setting(request: dict[str, Any], name: str) -> dict[str, Any]:
    value = request.get(name)
    return value if isinstance(value, dict) else {}


@dataclass
class ResponseEventWriter:
    """Builds the events of one response, in order, with the lane and sequence numbering right.

    ``sequence_number`` counts per response from 0; ``stream_id`` is echoed on every event of a
    named lane and never on the default lane. Finished output items are remembered so the
    terminal event carries the full ``output``.
    """

    response_id: str
    model: str
    stream_id: str | None = None
    request: dict[str, Any] = field(default_factory=dict)
    created_at: int = field(default_factory=lambda: int(time.time()))
    completed_at: int | None = None
    output: list[dict[str, Any]] = field(default_factory=list)
    status: str = "in_progress"
    _sequence: int = 0

    def _event(self, event_type: str, **fields: Any) -> dict[str, Any]:
        event = {"type": event_type, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        if self.stream_id is not None:
            event["stream_id"] = self.stream_id
        return event

    def response_object(
        self,
        *,
        usage_: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
        incomplete_reason: str | None = None,
    ) -> dict[str, Any]:
        """The full ``Response`` object in its current state.

        Every field the Open Responses specification requires is present, each request setting
        echoed as the API echoes it: the value sent, else the value that was used (the sampling
        defaults, ``truncation: disabled``, text format ``text``), and tools in their normalized
        form. Timestamps are integer seconds, as the API sends them.
        """
        request = self.request
        text = _object_setting(request, "text")
        reasoning = _object_setting(request, "reasoning")
        service_tier = request.get("service_tier")
        return {
            "id": self.response_id,
            "object": "response",
            "created_at": self.created_at,
            "completed_at": self.completed_at,
            "model": self.model,
            "status": self.status,
            "output": list(self.output),
            "parallel_tool_calls": bool(request.get("parallel_tool_calls", True)),
            "tool_choice": request.get("tool_choice", "auto"),
            "tools": [normalized_tool(tool) for tool in request.get("tools") or []],
            "instructions": request.get("instructions"),
            "previous_response_id": request.get("previous_response_id"),
            "store": request.get("store", True),
            "background": False,
            "temperature": _setting(request, "temperature", 1.0),
            "top_p": _setting(request, "top_p", 1.0),
            "presence_penalty": _setting(request, "presence_penalty", 0.0),
            "frequency_penalty": _setting(request, "frequency_penalty", 0.0),
            "top_logprobs": _setting(request, "top_logprobs", 0),
            "truncation": _setting(request, "truncation", "disabled"),
            "text": {"format": {"type": "text"}, "verbosity": "medium", **text},
            "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
            "max_output_tokens": request.get("max_output_tokens"),
            "max_tool_calls": request.get("max_tool_calls"),
            # The tier that served it: "auto" (the default) resolves to the default tier.
            "service_tier": service_tier if isinstance(service_tier, str) and service_tier != "auto" else "default",
            "metadata": request.get("metadata") or {},
            "safety_identifier": request.get("safety_identifier"),
            "prompt_cache_key": request.get("prompt_cache_key"),
            "error": error,
            "incomplete_details": {"reason": incomplete_reason} if incomplete_reason else None,
            "usage": usage_,
        }

    # lifecycle

    def created(self) -> dict[str, Any]:
        return self._event(CREATED, response=self.response_object())

    def queued(self) -> dict[str, Any]:
        self.status = "queued"
        event = self._event(QUEUED, response=self.response_object())
        self.status = "in_progress"
        return event

    def in_progress(self) -> dict[str, Any]:
        return self._event(IN_PROGRESS, response=self.response_object())

    def completed(self, usage_: dict[str, Any]) -> dict[str, Any]:
        self.status = "completed"
        self.completed_at = int(time.time())
        return self._event(COMPLETED, response=self.response_object(usage_=usage_))

    def failed(self, code: str, message: str, usage_: dict[str, Any] | None = None) -> dict[str, Any]:
        self.status = "failed"
        error = {"code": code, "message": message}
        return self._event(FAILED, response=self.response_object(usage_=usage_, error=error))

    def incomplete(self, reason: str, usage_: dict[str, Any] | None = None) -> dict[str, Any]:
        self.status = "incomplete"
        return self._event(INCOMPLETE, response=self.response_object(usage_=usage_, incomplete_reason=reason))

    def cancelled(self, usage_: dict[str, Any] | None = None) -> dict[str, Any]:
        """The terminal of a response stopped on request: ``response.incomplete`` with status ``cancelled``.

        No cancel event exists in the SDK's union, and ``incomplete_details.reason`` only admits
        ``max_output_tokens``, ``max_messages``, ``content_filter`` and ``steered``, so the reason
        is left out (``incomplete_details: null``) and ``status`` carries the meaning.
        """
        self.status = "cancelled"
        return self._event(INCOMPLETE, response=self.response_object(usage_=usage_))

    def steer_accepted(self, steer_id: str) -> dict[str, Any]:
        """``response.steer.accepted``, numbered within this (the target's) stream."""
        return self._event(STEER_ACCEPTED, steer={"id": steer_id, "previous_response_id": self.response_id})

    def steer_failed(self, code: str, message: str, steer_input: Any, steer_id: str | None = None) -> dict[str, Any]:
        """``response.steer.failed`` for a steer aimed at this response, numbered within its stream."""
        event = steer_failed_event(code, message, self.response_id, steer_input, steer_id=steer_id)
        if self.stream_id is not None:
            event["stream_id"] = self.stream_id
        return self.numbered(event)

    def numbered(self, event: dict[str, Any]) -> dict[str, Any]:
        """``event``, built elsewhere, given the next ``sequence_number`` of this response's stream."""
        event["sequence_number"] = self._sequence
        self._sequence += 1
        return event

    # items and parts

    def output_item_added(self, output_index: int, item: dict[str, Any]) -> dict[str, Any]:
        return self._event(OUTPUT_ITEM_ADDED, output_index=output_index, item=item)

    def output_item_done(self, output_index: int, item: dict[str, Any]) -> dict[str, Any]:
        self.output.append(item)
        return self._event(OUTPUT_ITEM_DONE, output_index=output_index, item=item)

    def content_part_added(self, item_id: str, output_index: int) -> dict[str, Any]:
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        return self._event(CONTENT_PART_ADDED, item_id=item_id, output_index=output_index, content_index=0, part=part)

    def content_part_done(self, item_id: str, output_index: int, text: str) -> dict[str, Any]:
        part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
        return self._event(CONTENT_PART_DONE, item_id=item_id, output_index=output_index, content_index=0, part=part)

    def output_text_delta(self, item_id: str, output_index: int, delta: str) -> dict[str, Any]:
        return self._event(
            OUTPUT_TEXT_DELTA,
            item_id=item_id,
            output_index=output_index,
            content_index=0,
            delta=delta,
            logprobs=[],
        )

    def output_text_done(self, item_id: str, output_index: int, text: str) -> dict[str, Any]:
        return self._event(
            OUTPUT_TEXT_DONE,
            item_id=item_id,
            output_index=output_index,
            content_index=0,
            text=text,
            logprobs=[],
        )

    def function_call_arguments_delta(self, item_id: str, output_index: int, delta: str) -> dict[str, Any]:
        return self._event(FUNCTION_CALL_ARGUMENTS_DELTA, item_id=item_id, output_index=output_index, delta=delta)

    def function_call_arguments_done(
        self, item_id: str, output_index: int, arguments: str, name: str
    ) -> dict[str, Any]:
        return self._event(
            FUNCTION_CALL_ARGUMENTS_DONE,
            item_id=item_id,
            output_index=output_index,
            arguments=arguments,
            name=name,
        )

    def reasoning_summary_part_added(self, item_id: str, output_index: int, summary_index: int = 0) -> dict[str, Any]:
        return self._event(
            REASONING_SUMMARY_PART_ADDED,
            item_id=item_id,
            output_index=output_index,
            summary_index=summary_index,
            part={"type": "summary_text", "text": ""},
        )

    def reasoning_summary_text_delta(
        self, item_id: str, output_index: int, delta: str, summary_index: int = 0
    ) -> dict[str, Any]:
        return self._event(
            REASONING_SUMMARY_TEXT_DELTA,
            item_id=item_id,
            output_index=output_index,
            summary_index=summary_index,
            delta=delta,
        )

    def reasoning_summary_text_done(
        self, item_id: str, output_index: int, text: str, summary_index: int = 0
    ) -> dict[str, Any]:
        return self._event(
            REASONING_SUMMARY_TEXT_DONE,
            item_id=item_id,
            output_index=output_index,
            summary_index=summary_index,
            text=text,
        )

    def reasoning_summary_part_done(
        self, item_id: str, output_index: int, text: str, summary_index: int = 0
    ) -> dict[str, Any]:
        return self._event(
            REASONING_SUMMARY_PART_DONE,
            item_id=item_id,
            output_index=output_index,
            summary_index=summary_index,
            part={"type": "summary_text", "text": text},
        )

    def error(self, code: str, message: str, *, status: int = 400) -> dict[str, Any]:
        """A request-scoped ``error`` inside this response's stream."""
        return self.numbered(error_event(code, message, status=status, stream_id=self.stream_id))


def text_chunks(text: str) -> Iterable[str]:
    """Split text into word-sized deltas the way a model streams it: each word with its space."""
    return re.findall(r"\S+\s*|\s+", text)


def steer_failed_event(
    code: str,
    message: str,
    previous_response_id: str,
    steer_input: Any,
    *,
    steer_id: str | None = None,
    sequence_number: int = 0,
) -> dict[str, Any]:
    """``response.steer.failed`` when no target stream exists to number it (and so no lane to echo)."""
    steer: dict[str, Any] = {"previous_response_id": previous_response_id, "input": steer_input}
    if steer_id is not None:
        steer["id"] = steer_id
    return {
        "type": STEER_FAILED,
        "sequence_number": sequence_number,
        "error": {"type": "invalid_request_error", "code": code, "message": message},
        "steer": steer,
    }
