"""``POST /responses/compact``, without I/O: a conversation in, its compacted window out.

The window keeps every user message, as a ``message`` item, and folds everything else (assistant
messages, calls, their outputs, reasoning, earlier compaction items) into one ``compaction``
item, as the API's compacted windows look. The item's ``encrypted_content`` is opaque to a
client, but the emulator can read it back: it is the folded items as base64 JSON behind a
prefix, so a new chain that starts from the window (a compaction item accepted as input, over
HTTP or WebSocket) still counts their tokens. Content the emulator did not make reads as empty.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

from ..protocol import wire
from . import builders
from .cache import ResponseStore
from .conversation import (
    COMPACTION_CONTENT_PREFIX,
    Item,
    compacted_items,
    conversation_tokens,
    is_compaction,
    is_message,
    normalize_input,
)
from .requests import not_found_error

Event = dict[str, Any]

MISSING_REQUIRED_PARAMETER = "missing_required_parameter"


def compact(body: dict[str, Any], store: ResponseStore, new_id: Callable[[str], str]) -> Event:
    """The ``response.compaction`` object for ``body``, or the ``error`` event refusing it.

    ``previous_response_id`` reaches only stored responses, as over HTTP it only can; its
    conversation comes before ``input``.
    """
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return builders.error_event(MISSING_REQUIRED_PARAMETER, "Missing required parameter: 'model'.", param="model")
    items = normalize_input(body.get("input"))
    if items is None:
        return builders.error_event(
            wire.INVALID_REQUEST, "'input' must be a string or a list of input items.", param="input"
        )
    parent_id = body.get("previous_response_id")
    history: tuple[Item, ...] = ()
    if parent_id is not None:
        parent = store.get(parent_id) if isinstance(parent_id, str) else None
        if parent is None:
            return not_found_error(str(parent_id), None)
        history = parent.conversation
    conversation = [*history, *items]
    kept = [_user_message(item, new_id) for item in conversation if _is_user_message(item)]
    folded = [item for item in conversation if not _is_user_message(item)]
    folded = [inner for item in folded for inner in (compacted_items(item) if is_compaction(item) else [item])]
    window: list[Item] = list(kept)
    if folded:
        window.append({"id": new_id("cmp"), "type": "compaction", "encrypted_content": _sealed(folded)})
    input_tokens = conversation_tokens([*history, *items])
    output_tokens = conversation_tokens(folded)
    return {
        "id": new_id("resp"),
        "object": "response.compaction",
        "created_at": int(time.time()),
        "output": window,
        "usage": {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens,
        },
    }


def _sealed(items: list[Item]) -> str:
    return COMPACTION_CONTENT_PREFIX + base64.b64encode(json.dumps(items).encode()).decode()


def _is_user_message(item: Item) -> bool:
    return is_message(item) and item.get("role") == "user"


def _user_message(item: Item, new_id: Callable[[str], str]) -> Item:
    """A user message as the window returns it: an item with its id, status and content parts."""
    content = item.get("content")
    parts = [{"type": "input_text", "text": content}] if isinstance(content, str) else content
    return {
        "id": item.get("id") or new_id("msg"),
        "type": "message",
        "role": "user",
        "status": "completed",
        "content": parts,
    }
