"""Runtime-updatable settings: Pipecat's own Responses settings, plus what the Responses API takes.

The settings class extends Pipecat's ``OpenAIResponsesLLMSettings``, so a bot switching from
Pipecat's built-in service keeps its ``Settings(...)`` (``reasoning=ReasoningConfig(...)``
included) and can pass them to this service unchanged.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from openai import NOT_GIVEN as OPENAI_NOT_GIVEN
from pipecat.services.openai.responses.llm import OpenAIResponsesLLMSettings, OpenAIResponsesReasoningConfig
from pipecat.utils.types import NOT_GIVEN, NotGiven, is_given

from .compat import openai_model_reasons, openai_reasoning_effort

ReasoningConfig = OpenAIResponsesReasoningConfig


@dataclass
class ResponsesWSSettings(OpenAIResponsesLLMSettings):
    """Settings of :class:`ResponsesWSLLMService` (Pipecat's Responses settings, and these).

    Parameters:
        tool_choice: ``"auto"``, ``"none"``, ``"required"`` or ``{"type": "function", "name": …}``.
            A ``tool_choice`` set on the ``LLMContext`` wins for the turns of that context.
        parallel_tool_calls: Whether the model may call several tools in one response.
        service_tier: ``"auto"``, ``"default"``, ``"flex"``, ``"priority"``, …
    """

    tool_choice: str | dict[str, Any] | NotGiven | None = field(default_factory=lambda: NOT_GIVEN)
    parallel_tool_calls: bool | NotGiven | None = field(default_factory=lambda: NOT_GIVEN)
    service_tier: str | NotGiven | None = field(default_factory=lambda: NOT_GIVEN)


def default_settings(model: str) -> ResponsesWSSettings:
    """Every field set (``None`` where unused), as Pipecat's ``validate_complete()`` requires."""
    return ResponsesWSSettings(
        model=model,
        system_instruction=None,
        temperature=None,
        max_tokens=None,
        top_p=None,
        top_k=None,
        frequency_penalty=None,
        presence_penalty=None,
        seed=None,
        filter_incomplete_user_turns=False,
        user_turn_completion_config=None,
        max_completion_tokens=OPENAI_NOT_GIVEN,  # as the built-in: the type has no None
        tool_choice=None,
        parallel_tool_calls=None,
        reasoning=None,
        service_tier=None,
        extra={},
    )


def thinking_default(model: str) -> tuple[dict[str, dict[str, Any]] | None, bool]:
    """The lowest reasoning effort Pipecat lists for ``model`` (sent when none is configured, as
    Pipecat's built-in does, to protect latency), and whether the model can reason at all."""
    effort, can_think = _reasoning_of(model)
    # A fresh dict each time: it becomes part of a request's fields, which are changed in place.
    return ({"reasoning": {"effort": effort}} if effort is not None else None), can_think


@functools.lru_cache(maxsize=64)
def _reasoning_of(model: str) -> tuple[str | None, bool]:
    # Read from Pipecat's tables, which do not change once imported; a service asks every turn.
    return openai_reasoning_effort(model), openai_model_reasons(model)


def request_fields(settings: ResponsesWSSettings) -> dict[str, Any]:
    """The ``response.create`` fields the settings contribute."""
    fields: dict[str, Any] = {"model": settings.model}
    for name, wire_name in (
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("max_tokens", "max_output_tokens"),  # Pipecat's generic name; max_completion_tokens wins
        ("max_completion_tokens", "max_output_tokens"),
        ("tool_choice", "tool_choice"),
        ("parallel_tool_calls", "parallel_tool_calls"),
        ("service_tier", "service_tier"),
    ):
        value = getattr(settings, name)
        # Pipecat's settings may hold the OpenAI SDK's own NOT_GIVEN: only plain values are sent.
        if value is not None and is_given(value) and isinstance(value, str | int | float | bool | dict):
            fields[wire_name] = value
    reasoning = settings.reasoning
    if isinstance(reasoning, OpenAIResponsesReasoningConfig):
        configured = reasoning.model_dump(exclude_none=True)
        if configured:
            fields["reasoning"] = configured
            # Encrypted reasoning comes back so the next turn keeps it (store is false).
            fields["include"] = ["reasoning.encrypted_content"]
    if isinstance(settings.extra, dict):
        fields.update(settings.extra)
    return fields


# Pipecat's generic LLM settings the Responses API has no parameter for.
UNSUPPORTED_FIELDS = ("top_k", "frequency_penalty", "presence_penalty", "seed")


def unsupported_fields(settings: ResponsesWSSettings) -> list[str]:
    """The settings that are set but mean nothing to the Responses API (so are not sent)."""
    return [
        name for name in UNSUPPORTED_FIELDS if getattr(settings, name) is not None and is_given(getattr(settings, name))
    ]


def context_tool_choice(choice: Any) -> str | dict[str, Any] | None:
    """An ``LLMContext`` tool choice (Chat Completions' shape) as the Responses API takes it."""
    if isinstance(choice, str):
        return choice
    if isinstance(choice, dict):
        function = choice.get("function")
        if choice.get("type") == "function" and isinstance(function, dict) and function.get("name"):
            return {"type": "function", "name": function["name"]}
        if choice.get("type") == "function" and choice.get("name"):
            return {"type": "function", "name": choice["name"]}
    return None
