"""A Pipecat LLM service for the OpenAI Responses API over one persistent WebSocket."""

from .service import ResponsesWSLLMService, ServiceStats
from .settings import ReasoningSettings, ResponsesWSSettings

__all__ = ["ReasoningSettings", "ResponsesWSLLMService", "ResponsesWSSettings", "ServiceStats"]
