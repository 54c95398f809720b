"""Runtime-updatable settings, in Pipecat's ``LLMSettings`` style."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipecat.services.settings import LLMSettings
from pipecat.utils.types import NOT_GIVEN, NotGiven


@dataclass
class ReasoningSettings:
    """Reasoning for models that reason: ``effort`` ("none", "low", …) and ``summary`` ("auto", …)."""

    effort: str | None = None
    summary: str | None = None

    def to_request(self) -> dict[str, Any]:
        return {k: v for k, v in (("effort", self.effort), ("summary", self.summary)) if v is not None}


@dataclass
class ResponsesWSSettings(LLMSettings):
    """Settings of :class:`ResponsesWSLLMService`.

    Parameters:
        max_completion_tokens: Sent as ``max_output_tokens``.
        tool_choice: ``"auto"``, ``"none"``, ``"required"`` or ``{"type": "function", "name": …}``.
        parallel_tool_calls: Whether the model may call several tools in one response.
        reasoning: Effort and summary for reasoning models; summaries become thought frames and
            encrypted reasoning is carried across turns.
        service_tier: ``"auto"``, ``"default"``, ``"flex"``, ``"priority"``, …
    """

    max_completion_tokens: int | NotGiven | None = field(default_factory=lambda: NOT_GIVEN)
    tool_choice: str | dict[str, Any] | NotGiven | None = field(default_factory=lambda: NOT_GIVEN)
    parallel_tool_calls: bool | NotGiven | None = field(default_factory=lambda: NOT_GIVEN)
    reasoning: ReasoningSettings | NotGiven | None = field(default_factory=lambda: NOT_GIVEN)
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
        max_completion_tokens=None,
        tool_choice=None,
        parallel_tool_calls=None,
        reasoning=None,
        service_tier=None,
        extra={},
    )


def request_fields(settings: ResponsesWSSettings) -> dict[str, Any]:
    """The ``response.create`` fields the settings contribute."""
    fields: dict[str, Any] = {"model": settings.model}
    for name, wire_name in (
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("max_completion_tokens", "max_output_tokens"),
        ("tool_choice", "tool_choice"),
        ("parallel_tool_calls", "parallel_tool_calls"),
        ("service_tier", "service_tier"),
    ):
        value = getattr(settings, name)
        if value is not None and not isinstance(value, NotGiven):
            fields[wire_name] = value
    reasoning = settings.reasoning
    if isinstance(reasoning, ReasoningSettings) and reasoning.to_request():
        fields["reasoning"] = reasoning.to_request()
        fields["include"] = ["reasoning.encrypted_content"]
    if isinstance(settings.extra, dict):
        fields.update(settings.extra)
    return fields
