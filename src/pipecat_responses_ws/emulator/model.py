"""The scripted "model": what a response says, decided from the conversation alone.

Deterministic on purpose, so a test can predict every word. The rules, in order:

1. The conversation ends with ``function_call_output`` items → one sentence built from them:
   ``"Here is what I found: <output 1>. <output 2>."``
2. The latest user message names declared function tools (the tool's name, or the name with
   ``_`` read as spaces, case-insensitive, as whole words) → call them, one output item each, in
   the order they are named. ``parallel_tool_calls: false`` keeps only the first;
   ``tool_choice: "none"`` never calls; ``"required"`` calls the named tools or else the first
   declared one; ``{"type": "function", "name": X}`` calls exactly X.
3. Otherwise three sentences echoing the user: ``"You said: <text>. That is a fine thing to talk
   about. Let me know what else you need."`` (the echo is capped at 30 words).

Arguments of a default call, for each property of the tool's JSON schema:

- ``enum``: the first enum value named in the text, else the first enum value;
- ``string``: the word after the property name (or the name with ``_`` as spaces) in the text,
  skipping filler words ("is", "the", …); else the last capitalised word of the text; else
  ``"unknown"``;
- ``number`` / ``integer``: the first number in the text, else ``0``;
- any other type is left out.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from .conversation import Item, last_user_text, trailing_tool_outputs
from .script import Reply

ECHO_WORD_LIMIT = 30
# Line ends to str.splitlines, text to JSON and to server-sent events (the line_separators fault).
LINE_SEPARATORS = ("\u2028", "\u2029", "\x85")
_FILLER = frozenset({"is", "be", "was", "the", "a", "an", "of", "to", "for", "in", "at", "as", "should"})
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


@dataclass(frozen=True)
class PlannedText:
    text: str


@dataclass(frozen=True)
class PlannedCall:
    name: str
    arguments: str


@dataclass(frozen=True)
class PlannedReasoning:
    summary: str


Plan = list[PlannedText | PlannedCall | PlannedReasoning]


def plan_from_reply(reply: Reply) -> Plan:
    """A scripted reply as output items: the reasoning, the message (each if any), then the calls."""
    plan: Plan = []
    if reply.reasoning is not None:
        plan.append(PlannedReasoning(reply.reasoning))
    if reply.text is not None:
        plan.append(PlannedText(reply.text))
    for call in reply.calls:
        arguments = call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments)
        plan.append(PlannedCall(call.name, arguments))
    return plan


def with_line_separators(plan: Plan) -> Plan:
    """``plan`` with the first three word breaks of its text made U+2028, U+2029 and U+0085."""
    changed: Plan = []
    for output in plan:
        if isinstance(output, PlannedText):
            text = output.text
            for separator in LINE_SEPARATORS:
                text = text.replace(" ", separator, 1)
            output = PlannedText(text)
        changed.append(output)
    return changed


def respond(conversation: list[Item], request: dict[str, Any]) -> Plan:
    """What the default model outputs for ``conversation`` (parent chain + this input)."""
    outputs = trailing_tool_outputs(conversation)
    if outputs:
        return [PlannedText("Here is what I found: " + " ".join(_sentence(o) for o in outputs))]
    text = last_user_text(conversation) or ""
    calls = _calls(text, request)
    if calls:
        return list(calls)
    if not text.strip():
        return [PlannedText("Hello! How can I help you today?")]
    echo = f"You said: {_sentence(text)} That is a fine thing to talk about. Let me know what else you need."
    return [PlannedText(echo)]


def _sentence(text: str) -> str:
    words = text.split()[:ECHO_WORD_LIMIT]
    return " ".join(words).rstrip(".!?;:, ") + "."


# -- tool calls ---------------------------------------------------------------------------------


def _function_tools(request: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Declared function tools as (name, JSON schema); Chat Completions' nested shape is read too."""
    tools: list[tuple[str, dict[str, Any]]] = []
    for tool in request.get("tools") or []:
        if not isinstance(tool, dict) or tool.get("type") != "function":
            continue
        spec: dict[str, Any] = tool["function"] if isinstance(tool.get("function"), dict) else tool
        name = spec.get("name")
        if isinstance(name, str) and name:
            parameters = spec.get("parameters")
            tools.append((name, parameters if isinstance(parameters, dict) else {}))
    return tools


def _mention(text: str, name: str) -> int | None:
    """Where ``name`` (or its spaced form) first appears in ``text`` as whole words."""
    positions = []
    for form in {name, name.replace("_", " ")}:
        match = re.search(rf"(?<![\w]){re.escape(form)}(?![\w])", text, re.IGNORECASE)
        if match:
            positions.append(match.start())
    return min(positions) if positions else None


def _calls(text: str, request: dict[str, Any]) -> list[PlannedCall]:
    tools = _function_tools(request)
    choice = request.get("tool_choice", "auto")
    if not tools or choice == "none":
        return []
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
        forced = choice["name"]
        schema = next((s for n, s in tools if n == forced), {})
        return [PlannedCall(forced, json.dumps(arguments_for(schema, text)))]
    mentioned = [(_mention(text, name), index) for index, (name, _) in enumerate(tools)]
    chosen = [tools[index] for pos, index in sorted((p, i) for p, i in mentioned if p is not None)]
    if not chosen and choice == "required":
        chosen = tools[:1]
    if request.get("parallel_tool_calls") is False:
        chosen = chosen[:1]
    return [PlannedCall(name, json.dumps(arguments_for(schema, text))) for name, schema in chosen]


def arguments_for(schema: dict[str, Any], text: str) -> dict[str, Any]:
    """Arguments for a call of a tool with this JSON schema, read from ``text`` (rule in the module doc)."""
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return {}
    arguments: dict[str, Any] = {}
    for prop, spec in properties.items():
        spec = spec if isinstance(spec, dict) else {}
        kind = spec.get("type")
        enum = spec.get("enum")
        if isinstance(enum, list) and enum:
            arguments[prop] = next((v for v in enum if isinstance(v, str) and _mention(text, v) is not None), enum[0])
        elif kind == "string":
            arguments[prop] = _word_after(text, prop) or _last_capitalised(text) or "unknown"
        elif kind in ("number", "integer"):
            arguments[prop] = _first_number(text, integer=kind == "integer")
    return arguments


def _words(text: str) -> list[str]:
    return [w for w in (raw.strip(".,;:!?\"'()[]{}=") for raw in text.split()) if w]


def _word_after(text: str, prop: str) -> str | None:
    words = _words(text)
    target = prop.replace("_", " ").lower().split()
    for start in range(len(words) - len(target) + 1):
        if [w.lower() for w in words[start : start + len(target)]] == target:
            for word in words[start + len(target) :]:
                if word.lower() not in _FILLER:
                    return word
    return None


def _last_capitalised(text: str) -> str | None:
    capitalised = [w for w in _words(text) if w[0].isupper()]
    return capitalised[-1] if capitalised else None


def _first_number(text: str, *, integer: bool) -> int | float:
    match = _NUMBER.search(text)
    if match is None:
        return 0
    value = float(match.group())
    return int(value) if integer or value.is_integer() else value
