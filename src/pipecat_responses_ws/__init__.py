"""A Pipecat LLM service for the OpenAI Responses API over one persistent WebSocket (or over HTTP).

The service is imported on first use, so the emulator and the pytest plugin load without Pipecat.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .service import ResponsesHTTPLLMService, ResponsesWSLLMService, ServiceStats
    from .settings import ReasoningConfig, ResponsesWSSettings
    from .speculation import SpeculationStats, SpeculativeUserTurnStopStrategy, speculative

__all__ = [
    "ReasoningConfig",
    "ResponsesHTTPLLMService",
    "ResponsesWSLLMService",
    "ResponsesWSSettings",
    "ServiceStats",
    "SpeculationStats",
    "SpeculativeUserTurnStopStrategy",
    "speculative",
]


def __getattr__(name: str) -> Any:
    if name in ("ResponsesHTTPLLMService", "ResponsesWSLLMService", "ServiceStats"):
        from . import service

        return getattr(service, name)
    if name in ("ReasoningConfig", "ResponsesWSSettings"):
        from . import settings

        return getattr(settings, name)
    if name in ("SpeculationStats", "SpeculativeUserTurnStopStrategy", "speculative"):
        from . import speculation

        return getattr(speculation, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
