"""Comparable keys for conversation items.

The context Pipecat hands us and the output the server returned describe the same conversation
in different shapes: a string ``content`` versus ``output_text`` parts, arguments re-serialised by
the aggregator, ids and statuses only the server knows. A key keeps what the model sees and
drops the rest, so "does the server already hold this prefix?" is a comparison of keys.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import msgspec

ItemKey = tuple[Any, ...]

# An item as the server would read it, to tell at C speed whether it changed since it was keyed.
_as_json = msgspec.json.Encoder(order="deterministic").encode


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict):
                part_text = part.get("text")
                if part_text is None:
                    part_text = part.get("image_url") or part.get("file_id") or part.get("file_url") or ""
                parts.append(str(part_text))
            else:
                parts.append(str(part))
        text = " ".join(parts)
    else:
        text = "" if content is None else str(content)
    return _normalized(text)


@functools.lru_cache(maxsize=4096)
def _normalized(text: str) -> str:
    # The assistant aggregator may rejoin streamed words with different spacing. Cached because
    # every turn keys the whole history again, and a history's strings repeat turn after turn.
    return " ".join(text.split())


def _arguments_of(arguments: Any) -> str:
    if isinstance(arguments, str):
        try:
            parsed = json.loads(arguments) if arguments else {}
        except json.JSONDecodeError:
            return arguments
        return json.dumps(parsed, sort_keys=True, separators=(",", ":"))
    return json.dumps(arguments, sort_keys=True, separators=(",", ":"))


def item_key(item: dict[str, Any]) -> ItemKey:
    """What the model sees of one input or output item."""
    item_type = item.get("type")
    if item_type is None or item_type == "message":  # the most common, first
        role = item.get("role")
        if role == "system":
            role = "developer"
        return ("message", role, _text_of(item.get("content")))
    if item_type == "function_call":
        return ("function_call", item.get("call_id"), item.get("name"), _arguments_of(item.get("arguments")))
    if item_type == "function_call_output":
        output = item.get("output")
        return ("function_call_output", item.get("call_id"), output if isinstance(output, str) else str(output))
    if item_type == "reasoning":
        return ("reasoning", item.get("id"))
    return (str(item_type), json.dumps(item, sort_keys=True, default=str))


def is_function_call_output(key: ItemKey) -> bool:
    return bool(key[0] == "function_call_output")


def call_id_of(key: ItemKey) -> str | None:
    """The call id of a function call or function call output key."""
    return key[1] if key[0] in ("function_call", "function_call_output") else None


class ConversationKeys:
    """The keys of a conversation that grows at its end, turn after turn.

    Every turn hands over the whole history again, as new objects. Keying it afresh costs Python
    work per item, each turn: a long call would pay more for its history than for its answer. So
    the last history keyed is kept as JSON with its keys, and only the items after the prefix it
    shares with the next one are keyed. An item in the prefix is the same JSON, so the server sees
    the same thing: its key stands. JSON keeps no reference to the items, nor anything the garbage
    collector walks.
    """

    __slots__ = ("_json", "_keys")

    def __init__(self) -> None:
        self._json: list[bytes] = []
        self._keys: list[ItemKey] = []

    def of(self, items: list[dict[str, Any]]) -> list[ItemKey]:
        try:
            encoded = list(map(_as_json, items))
        except (TypeError, ValueError, OverflowError, msgspec.EncodeError):
            # Not JSON as it stands (the server will say so): every item keyed, nothing kept.
            self._json, self._keys = [], []
            return [item_key(item) for item in items]
        kept = self._json
        same = len(kept)
        if encoded[:same] != kept:  # not the whole of the last history: an edit, a barge-in's cut
            pairs = enumerate(zip(encoded, kept, strict=False))
            same = next((n for n, (new, old) in pairs if new != old), min(same, len(encoded)))
        keys = self._keys[:same] + [item_key(item) for item in items[same:]]
        self._json, self._keys = encoded, keys
        return keys
