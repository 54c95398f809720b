"""One response's events in, what the service should do out.

The accumulator follows the items of one response and reports, as they happen: text to speak,
a function call whose arguments are final (at its ``output_item.done``, not at the terminal
event), reasoning to surface, and how the response ended. A call whose item never completed is
never reported as ready, so it cannot run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from . import wire


@dataclass(frozen=True, slots=True)
class Started:
    response_id: str | None


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ReasoningItem:
    item: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolCallAnnounced:
    call_id: str
    name: str


@dataclass(frozen=True, slots=True)
class ToolCallReady:
    call_id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolCallRejected:
    call_id: str
    name: str
    reason: str


@dataclass(frozen=True, slots=True)
class Finished:
    status: str  # completed | failed | incomplete
    response_id: str | None
    usage: dict[str, Any] | None
    output: list[dict[str, Any]]
    error_code: str | None = None
    error_message: str | None = None


@dataclass(frozen=True, slots=True)
class RequestError:
    """An ``error`` event on this request's lane: the server refused or broke off the request."""

    code: str | None
    message: str
    status: int | None
    param: str | None


Happening = (
    Started
    | TextDelta
    | ReasoningDelta
    | ReasoningItem
    | ToolCallAnnounced
    | ToolCallReady
    | ToolCallRejected
    | Finished
    | RequestError
)


@dataclass
class ResponseAccumulator:
    """Per-response state: the response id and the calls announced but not yet done."""

    response_id: str | None = None
    _announced: dict[str, tuple[str, str]] = field(default_factory=dict)  # item id -> (call id, name)

    def feed(self, event: dict[str, Any]) -> Happening | None:
        """The happening ``event`` amounts to, or None for events that change nothing."""
        event_type = event.get("type")
        if event_type == wire.OUTPUT_TEXT_DELTA:
            delta = event.get("delta")
            if not isinstance(delta, str):
                raise ValueError("output_text.delta without a string 'delta'")
            return TextDelta(delta) if delta else None
        if event_type == wire.OUTPUT_ITEM_ADDED:
            return self._item_added(event.get("item") or {})
        if event_type == wire.OUTPUT_ITEM_DONE:
            return self._item_done(event.get("item") or {})
        if event_type == wire.REASONING_SUMMARY_TEXT_DELTA:
            delta = event.get("delta")
            return ReasoningDelta(delta) if isinstance(delta, str) and delta else None
        if event_type == wire.CREATED:
            self.response_id = (event.get("response") or {}).get("id")
            return Started(self.response_id)
        if event_type in wire.TERMINAL_EVENTS:
            return self._finished(event)
        if event_type == wire.ERROR:
            error = event.get("error") or {}
            return RequestError(
                error.get("code"), str(error.get("message") or "unknown error"), event.get("status"), error.get("param")
            )
        return None

    def _item_added(self, item: dict[str, Any]) -> Happening | None:
        if item.get("type") != "function_call":
            return None
        call_id, name = str(item.get("call_id") or ""), str(item.get("name") or "")
        self._announced[str(item.get("id"))] = (call_id, name)
        return ToolCallAnnounced(call_id, name)

    def _item_done(self, item: dict[str, Any]) -> Happening | None:
        item_type = item.get("type")
        if item_type == "reasoning":
            return ReasoningItem(item)
        if item_type != "function_call":
            return None
        announced = self._announced.pop(str(item.get("id")), None)
        call_id = str(item.get("call_id") or (announced[0] if announced else ""))
        name = str(item.get("name") or (announced[1] if announced else ""))
        if item.get("status", "completed") != "completed":
            return ToolCallRejected(call_id, name, f"item ended with status {item.get('status')!r}")
        raw = item.get("arguments")
        try:
            arguments = json.loads(raw) if raw else {}
        except (TypeError, json.JSONDecodeError) as e:
            return ToolCallRejected(call_id, name, f"arguments are not valid JSON ({e})")
        if not isinstance(arguments, dict):
            return ToolCallRejected(call_id, name, "arguments are not a JSON object")
        if not call_id or not name:
            return ToolCallRejected(call_id, name, "function call without call_id or name")
        return ToolCallReady(call_id, name, arguments)

    def _finished(self, event: dict[str, Any]) -> Finished:
        response = event.get("response") or {}
        error = response.get("error") or {}
        incomplete = response.get("incomplete_details") or {}
        status = str(event["type"]).rsplit(".", 1)[-1]
        reason = incomplete.get("reason")
        return Finished(
            status=status,
            response_id=response.get("id", self.response_id),
            usage=response.get("usage"),
            output=list(response.get("output") or []),
            error_code=error.get("code") or reason,
            error_message=error.get("message") or (f"response incomplete: {reason}" if reason else None),
        )
