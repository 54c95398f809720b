"""The scripted "model": what a response says, decided from the conversation alone.

Deterministic on purpose, so a test can predict every word. The rules, in order:

1. The conversation ends with ``function_call_output`` items → one sentence built from them:
   ``"Here is what I found: <output 1>. <output 2>."``
2. The latest user message shares a content word with declared function tools → call them, one
   output item each, in the order of their first shared word in the message. Content words are
   the words of the message and of the tool's name, split at anything but a letter or a digit
   (so at ``_``) and at camelCase humps, case-insensitive, with a plural ``s``/``es``/``ies``
   taken off (``cities`` → ``city``), leaving out one-letter words and stop words: articles,
   pronouns, prepositions, question words, auxiliaries, "please", and the verbs tool names start
   with ("get", "set", "fetch", "find", …). So "What's the weather like in San Francisco?"
   calls ``get_weather`` and ``getWeather``. Only when no tool's name shares a word do the words
   of the tools' descriptions count the same way. Naming a tool in full (its name, or the name
   with ``_`` read as spaces, as whole words) counts too, which a name of stop words alone
   needs. ``parallel_tool_calls: false`` keeps only the first; ``tool_choice: "none"`` never
   calls; ``"required"`` calls the matched tools or else the first declared one;
   ``{"type": "function", "name": X}`` calls exactly X.
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
# Letters and digits: ``_``, spaces and punctuation separate words.
_WORD = re.compile(r"[^\W_]+")
# A camelCase hump: before an upper-case letter that follows a lower-case one or a digit, and
# before the last capital of a run that starts a word ("HTTPServer" → "HTTP", "Server").
_HUMP = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
# Words too common to tell tools apart: function words, and the verbs tool names start with.
_STOP_WORDS = frozenset(
    """
    a about above after again against all also am an and any are as at be because been before being below
    between both but by can could did do does doing don down during each either else ever every few for from
    further had has have having he her here hers herself him himself his how i if in into is it its itself
    just like me might more most much must my myself no nor not now of off on once only or other our ours
    out over own please same she should so some such than thank thanks that the their theirs them then there
    these they this those through to too under until up us very was we were what whats when where which while
    who whom whose why will with would yes yet you your yours yourself
    call check do fetch find get give go know let list look make need run see set show tell use want
    """.split()
)


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


@dataclass(frozen=True)
class _Tool:
    name: str
    description: str
    schema: dict[str, Any]


def _function_tools(request: dict[str, Any]) -> list[_Tool]:
    """Declared function tools; Chat Completions' nested shape is read too."""
    tools: list[_Tool] = []
    for tool in request.get("tools") or []:
        if not isinstance(tool, dict) or tool.get("type") != "function":
            continue
        spec: dict[str, Any] = tool["function"] if isinstance(tool.get("function"), dict) else tool
        name = spec.get("name")
        if isinstance(name, str) and name:
            parameters = spec.get("parameters")
            description = spec.get("description")
            tools.append(
                _Tool(
                    name,
                    description if isinstance(description, str) else "",
                    parameters if isinstance(parameters, dict) else {},
                )
            )
    return tools


def _mention(text: str, name: str) -> int | None:
    """Where ``name`` (or its spaced form) first appears in ``text`` as whole words."""
    positions = []
    for form in {name, name.replace("_", " ")}:
        match = re.search(rf"(?<![\w]){re.escape(form)}(?![\w])", text, re.IGNORECASE)
        if match:
            positions.append(match.start())
    return min(positions) if positions else None


def content_words(text: str) -> list[tuple[int, str]]:
    """The content words of ``text`` (rule 2 of the module doc), each with where its word starts."""
    words = []
    for match in _WORD.finditer(text):
        for part in _HUMP.split(match.group()):
            lowered = part.lower()
            word = _singular(lowered)
            if len(word) > 1 and lowered not in _STOP_WORDS and word not in _STOP_WORDS:
                words.append((match.start(), word))
    return words


def _singular(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("ses", "xes", "zes", "ches", "shes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _first_shared(said: list[tuple[int, str]], words: set[str]) -> int | None:
    return next((position for position, word in said if word in words), None)


def _matched(text: str, tools: list[_Tool]) -> list[_Tool]:
    """The tools the message calls for, in the order of their first shared word (rule 2)."""
    said = content_words(text)
    matches: list[tuple[int, int]] = []  # (where in the message, which tool)
    for index, tool in enumerate(tools):
        found = [
            p
            for p in (_mention(text, tool.name), _first_shared(said, {w for _, w in content_words(tool.name)}))
            if p is not None
        ]
        if found:
            matches.append((min(found), index))
    if not matches:
        for index, tool in enumerate(tools):
            position = _first_shared(said, {w for _, w in content_words(tool.description)})
            if position is not None:
                matches.append((position, index))
    return [tools[index] for _, index in sorted(matches)]


def _calls(text: str, request: dict[str, Any]) -> list[PlannedCall]:
    tools = _function_tools(request)
    choice = request.get("tool_choice", "auto")
    if not tools or choice == "none":
        return []
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
        forced = choice["name"]
        schema = next((t.schema for t in tools if t.name == forced), {})
        return [PlannedCall(forced, json.dumps(arguments_for(schema, text)))]
    chosen = _matched(text, tools)
    if not chosen and choice == "required":
        chosen = tools[:1]
    if request.get("parallel_tool_calls") is False:
        chosen = chosen[:1]
    return [PlannedCall(t.name, json.dumps(arguments_for(t.schema, text))) for t in chosen]


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
