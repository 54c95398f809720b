"""Reading a conversation the way the scripted model and the token meter need it.

A conversation is a flat list of input-shaped items: a response's conversation is its parent's
conversation, then its own input items, then its output items. Tokens are counted as
whitespace-separated words, a rule that is crude but deterministic and easy to predict in tests.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

Item = dict[str, Any]
# What the emulator's ``compaction`` items carry: the items they stand for, as base64 JSON behind this.
COMPACTION_CONTENT_PREFIX = "emulated-compaction:"


def normalize_input(value: Any) -> list[Item] | None:
    """``input`` as a list of items (a string is one user message); ``None`` when the shape is wrong."""
    if value is None:
        return []
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    if isinstance(value, list) and all(isinstance(item, dict) for item in value):
        return list(value)
    return None


def content_text(content: Any) -> str:
    """The text of a message ``content``: a string, or the text-bearing parts of a list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [str(part.get("text", "")) for part in content if isinstance(part, dict) and "text" in part]
        return " ".join(t for t in texts if t)
    return ""


def output_text(output: Any) -> str:
    """The text of a ``function_call_output`` output: a string or a list of content parts."""
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        return content_text(output)
    return json.dumps(output)


def is_message(item: Item) -> bool:
    return item.get("type", "message") == "message" and "role" in item


def item_text(item: Item) -> str:
    """Everything in an item the model would read, as one string (used for token counts)."""
    kind = item.get("type", "message")
    if is_message(item):
        return content_text(item.get("content"))
    if kind == "function_call":
        return f"{item.get('name', '')} {item.get('arguments', '')}"
    if kind == "function_call_output":
        return output_text(item.get("output"))
    if kind == "compaction":
        return " ".join(item_text(inner) for inner in compacted_items(item))
    if kind == "reasoning":
        # The summary stands in for what the model reads back (the encrypted content is opaque).
        return content_text(item.get("summary"))
    return ""


def is_compaction(item: Item) -> bool:
    return item.get("type") == "compaction"


def compacted_items(item: Item) -> list[Item]:
    """The items a ``compaction`` item stands for; none when the emulator did not make its content."""
    content = item.get("encrypted_content")
    if not isinstance(content, str) or not content.startswith(COMPACTION_CONTENT_PREFIX):
        return []
    try:
        folded = json.loads(base64.b64decode(content[len(COMPACTION_CONTENT_PREFIX) :], validate=True))
    except (binascii.Error, ValueError):
        return []
    return folded if isinstance(folded, list) and all(isinstance(i, dict) for i in folded) else []


def count_tokens(text: str) -> int:
    return len(text.split())


def conversation_tokens(items: list[Item]) -> int:
    return sum(count_tokens(item_text(item)) for item in items)


def last_user_text(items: list[Item]) -> str | None:
    """The text of the latest user message, or ``None`` when the conversation has none."""
    for item in reversed(items):
        if is_message(item) and item.get("role") == "user":
            return content_text(item.get("content"))
    return None


def trailing_tool_outputs(items: list[Item]) -> list[str]:
    """The outputs of the ``function_call_output`` items that end the conversation, in order."""
    outputs: list[str] = []
    for item in reversed(items):
        if item.get("type") != "function_call_output":
            break
        outputs.append(output_text(item.get("output")))
    return list(reversed(outputs))


def unanswerable_call_output(history: tuple[Item, ...] | list[Item], items: list[Item]) -> str | None:
    """The ``call_id`` of the first ``function_call_output`` in ``items`` that answers no call, else ``None``.

    A call is any ``function_call`` of the conversation so far: the history or an earlier item of
    ``items`` itself (a client may send a call together with its output), including the calls a
    compaction item stands for.
    """
    calls: set[Any] = set()

    def note_calls(item: Item) -> None:
        if item.get("type") == "function_call":
            calls.add(item.get("call_id"))
        for inner in compacted_items(item) if is_compaction(item) else ():
            note_calls(inner)

    for item in history:
        note_calls(item)
    for item in items:
        if item.get("type") == "function_call_output" and item.get("call_id") not in calls:
            return str(item.get("call_id"))
        note_calls(item)
    return None


def steer_input_items(value: Any) -> list[Item] | None:
    """Steering input as user messages, or ``None`` when it breaks the steering rules.

    Accepted: a non-empty string, or a non-empty list of ``user`` messages whose ``type`` (if
    present) is ``message`` and whose content is a string or a list of ``input_text``,
    ``input_image`` and ``input_file`` parts.
    """
    if isinstance(value, str):
        return normalize_input(value) if value else None
    if not isinstance(value, list) or not value:
        return None
    items: list[Item] = []
    for item in value:
        if not isinstance(item, dict) or item.get("role") != "user" or item.get("type", "message") != "message":
            return None
        content = item.get("content")
        if isinstance(content, list):
            allowed = {"input_text", "input_image", "input_file"}
            if not all(isinstance(p, dict) and p.get("type") in allowed for p in content):
                return None
        elif not isinstance(content, str):
            return None
        items.append({"type": "message", "role": "user", "content": content})
    return items
