"""A Pipecat LLM service for the OpenAI Responses API over one persistent WebSocket."""
