"""The two services: the Responses API over one persistent WebSocket, and over HTTP.

Both are the same Pipecat stage (:mod:`.stage`) driving the same client session; they differ
only in what carries the requests. ``ResponsesWSLLMService`` keeps one WebSocket and switches
to HTTP for good when the server answers its upgrade with 426; ``ResponsesHTTPLLMService``
sends each response as its own ``POST /responses``, for infrastructure that blocks WebSockets.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .client.client import ClientOptions, ResponsesClient
from .client.fallback import WebSocketOrHTTP
from .client.http import HTTPOptions, ResponsesHTTPClient
from .client.pacing import TEXT_PACING_SECS
from .endpoint import DEFAULT_WS_URL, handshake_headers, http_base_url, websocket_url
from .protocol import wire
from .protocol.session_core import ServiceStats, SessionOptions
from .settings import ResponsesWSSettings
from .stage import ResponsesStage

__all__ = ["DEFAULT_WS_URL", "ResponsesHTTPLLMService", "ResponsesWSLLMService", "ServiceStats"]


class ResponsesWSLLMService(ResponsesStage):
    """OpenAI Responses API over one persistent WebSocket, one lane per turn; over HTTP after a 426.

    Example::

        llm = ResponsesWSLLMService(
            settings=ResponsesWSLLMService.Settings(model="gpt-4.1", system_instruction="Be brief."),
        )
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        organization: str | None = None,
        project: str | None = None,
        default_headers: Mapping[str, str] | None = None,
        service_tier: str | None = None,
        settings: ResponsesWSSettings | None = None,
        retry_timeout_secs: float | None = 5.0,
        retry_on_timeout: bool | None = False,
        model: str | None = None,
        ws_url: str | None = None,
        lanes: bool | str = "auto",
        lane_pool_size: int = 4,
        store: bool = False,
        send_cancel: bool = True,
        warm_up: bool = True,
        connect_timeout: float = 10.0,
        first_event_timeout: float = 15.0,
        stall_timeout: float = 8.0,
        send_timeout: float = 5.0,
        max_connection_age: float = wire.CONNECTION_MAX_AGE_SECS,
        rollover_margin: float = 300.0,
        coalesce_text: bool = True,
        text_pacing: float | None = TEXT_PACING_SECS,
        **kwargs: Any,
    ) -> None:
        """Create the service. The arguments up to ``retry_on_timeout`` are those of Pipecat's
        built-in ``OpenAIResponsesLLMService``, with the same meaning.

        Args:
            api_key: The API key; defaults to ``OPENAI_API_KEY``. Sent as ``Authorization: Bearer``,
                or as ``api-key`` to Azure hosts (``*.openai.azure.com`` and the like).
            base_url: An HTTP base URL (``https://host/v1``); the WebSocket endpoint under it
                (``wss://host/v1/responses``) is used, and the URL itself after a switch to HTTP.
                Give it or ``ws_url``, not two different ones.
            organization: Sent as ``OpenAI-Organization`` on the handshake.
            project: Sent as ``OpenAI-Project`` on the handshake.
            default_headers: Extra handshake headers; they win over the key's header (an Azure
                Entra token: ``{"Authorization": "Bearer <token>"}``).
            service_tier: Sent as ``service_tier`` unless the settings set one.
            settings: Model, instructions and generation settings (updatable at run time); Pipecat's
                built-in ``OpenAIResponsesLLMService.Settings`` are accepted as they are.
            retry_timeout_secs: With ``retry_on_timeout``, how long a turn may wait for its first
                event before it is sent again (once, and only while nothing was spoken).
            retry_on_timeout: Send a turn again once when its first event is late.
            model: Deprecated, as in Pipecat's services: give ``Settings(model=...)``. Honoured
                with a ``DeprecationWarning``; the settings' model wins when both are given.
            ws_url: The Responses WebSocket endpoint (an emulator's ``ws_url`` for offline use).
            lanes: ``"auto"`` (the default) finds out per connection whether the server multiplexes
                ``stream_id`` lanes (OpenAI does; Azure OpenAI and most gateways do not). ``True``
                or ``False`` skips finding out. With lanes every turn takes its own; without, a
                barge-in moves the next turn to a warm spare connection unless the server has
                shown that it stops a cancelled answer at once.
            lane_pool_size: Lanes kept for reuse (more are opened only while all are busy).
            store: Sent as ``store``; with ``False`` continuation relies on the connection cache.
            send_cancel: Send ``response.cancel`` on interruption (stopped on a connection whose
                server rejects it).
            warm_up: Prepare each new connection with ``generate: false``.
            connect_timeout: Seconds for the WebSocket handshake (or an HTTP connection).
            first_event_timeout: Seconds from sending a request to its first event (without
                ``retry_on_timeout``).
            stall_timeout: Seconds allowed between two events of a streaming response.
            send_timeout: Seconds a send may block before the connection is dropped.
            max_connection_age: The server's connection age limit (60 minutes at OpenAI).
            rollover_margin: Rotate to a fresh connection this long before the age limit, while idle.
            coalesce_text: Push text deltas of one output item that have already arrived together
                as one ``LLMTextFrame`` (the first delta of a response always goes out alone, and
                nothing waits for more). Fewer frames for every processor downstream when the
                event loop falls behind; ``service.stats`` counts deltas and frames. Over HTTP
                (after a 426) every delta is a frame of its own.
            text_pacing: Push text at most every this many seconds, joined, except that a
                response's first words, any text that ends a sentence or a clause (``. ! ? ; :``,
                a line break) and the text before a tool call or the response's end go at once.
                A TTS that speaks whole sentences (Pipecat's default) starts each as early as
                without pacing, and every processor downstream carries fewer frames. ``None``
                pushes every delta as it arrives: for a TTS that streams word by word.
            **kwargs: Passed to Pipecat's ``LLMService`` (``run_in_parallel``, …).
        """
        if lanes not in ("auto", True, False):
            raise ValueError(f"lanes must be 'auto', True or False, not {lanes!r}")
        url = websocket_url(ws_url, base_url)
        http_url = http_base_url(url, base_url)
        super().__init__(
            api_key=api_key,
            model=model,
            service_tier=service_tier,
            settings=settings,
            retry_timeout_secs=retry_timeout_secs,
            retry_on_timeout=retry_on_timeout,
            store=store,
            first_event_timeout=first_event_timeout,
            stall_timeout=stall_timeout,
            coalesce_text=coalesce_text,
            text_pacing=text_pacing,
            session_options=SessionOptions(
                named_lanes=None if lanes == "auto" else bool(lanes), pool_size=lane_pool_size, send_cancel=send_cancel
            ),
            **kwargs,
        )

        def headers(to: str) -> dict[str, str]:
            return handshake_headers(
                to, self._api_key, organization=organization, project=project, default_headers=default_headers
            )

        self._client = ResponsesClient(
            ClientOptions(
                url=url,
                headers=headers(url),
                connect_timeout=connect_timeout,
                send_timeout=send_timeout,
                max_connection_age=max_connection_age,
                rollover_margin=rollover_margin,
            ),
            session=self._session,
            warm_up_request=self._warm_up_request if warm_up else None,
            on_error=self._on_connection_error,
            on_tool_results=self._release_tool_results,
            name=f"{self}",
        )
        http = ResponsesHTTPClient(
            HTTPOptions(
                base_url=http_url,
                api_key=self._api_key,
                headers=headers(http_url),
                connect_timeout=connect_timeout,
                send_timeout=send_timeout,
                store=store,
            ),
            session=self._session,
            on_error=self._on_connection_error,
            on_tool_results=self._release_tool_results,
            name=f"{self}",
        )
        self._fallback = WebSocketOrHTTP(self._client, http, name=f"{self}")
        self._transport = self._fallback

    @property
    def client(self) -> ResponsesClient:
        """The connection manager (connection, lane and cancel figures live on it)."""
        return self._client

    @property
    def transport(self) -> str:
        """``"websocket"``, or ``"http"`` once the server answered the upgrade with 426."""
        return "http" if self._fallback.over_http else "websocket"

    def _warm_up_request(self) -> dict[str, Any] | None:
        # The last turn's instructions and tools, with the settings as they are now.
        last = self._last_fields or {}
        instructions = last.get("instructions") or self._settings.system_instruction or None
        return {**self._fields(instructions, last.get("tools")), "input": []}


class ResponsesHTTPLLMService(ResponsesStage):
    """OpenAI Responses API over HTTP: each turn is one ``POST /responses`` streamed as server-sent events.

    For infrastructure that blocks WebSockets. The same stage as :class:`ResponsesWSLLMService`
    (frames, tools, reasoning, timeouts, replay safety, errors), without its lanes, warm-up and
    connection cache: every request carries the whole conversation unless ``store=True``, and
    a barge-in closes the answer's stream.

    Example::

        llm = ResponsesHTTPLLMService(
            settings=ResponsesHTTPLLMService.Settings(model="gpt-4.1", system_instruction="Be brief."),
        )
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        organization: str | None = None,
        project: str | None = None,
        default_headers: Mapping[str, str] | None = None,
        service_tier: str | None = None,
        settings: ResponsesWSSettings | None = None,
        retry_timeout_secs: float | None = 5.0,
        retry_on_timeout: bool | None = False,
        model: str | None = None,
        store: bool = False,
        connect_timeout: float = 10.0,
        first_event_timeout: float = 15.0,
        stall_timeout: float = 8.0,
        send_timeout: float = 5.0,
        text_pacing: float | None = TEXT_PACING_SECS,
        **kwargs: Any,
    ) -> None:
        """Create the service. The arguments up to ``retry_on_timeout`` are those of Pipecat's
        built-in ``OpenAIResponsesHttpLLMService``, with the same meaning.

        Args:
            api_key: The API key; defaults to ``OPENAI_API_KEY``. Sent as ``Authorization: Bearer``,
                or as ``api-key`` to Azure hosts (``*.openai.azure.com`` and the like).
            base_url: The HTTP base URL (``https://api.openai.com/v1`` unless given; an emulator's
                ``http_base_url`` for offline use); requests go to ``{base_url}/responses``.
            organization: Sent as ``OpenAI-Organization``.
            project: Sent as ``OpenAI-Project``.
            default_headers: Extra headers; they win over the key's header.
            service_tier: Sent as ``service_tier`` unless the settings set one.
            settings: Model, instructions and generation settings (updatable at run time).
            retry_timeout_secs: With ``retry_on_timeout``, how long a turn may wait for its first
                event before it is sent again (once, and only while nothing was spoken).
            retry_on_timeout: Send a turn again once when its first event is late.
            model: Deprecated, as in Pipecat's services: give ``Settings(model=...)``. Honoured
                with a ``DeprecationWarning``; the settings' model wins when both are given.
            store: Sent as ``store``; with ``True`` a turn continues the last one with
                ``previous_response_id`` instead of sending the whole conversation.
            connect_timeout: Seconds to open an HTTP connection.
            first_event_timeout: Seconds from sending a request to its first event.
            stall_timeout: Seconds allowed between two events of a streaming response.
            send_timeout: Seconds writing the request may take.
            text_pacing: As for ``ResponsesWSLLMService``.
            **kwargs: Passed to Pipecat's ``LLMService`` (``run_in_parallel``, …).
        """
        super().__init__(
            api_key=api_key,
            model=model,
            service_tier=service_tier,
            settings=settings,
            retry_timeout_secs=retry_timeout_secs,
            retry_on_timeout=retry_on_timeout,
            store=store,
            first_event_timeout=first_event_timeout,
            stall_timeout=stall_timeout,
            coalesce_text=False,  # nothing tells how much of an HTTP stream has already arrived
            text_pacing=text_pacing,
            session_options=SessionOptions(named_lanes=False, send_cancel=False),
            **kwargs,
        )
        url = http_base_url(DEFAULT_WS_URL, base_url)
        self._client = ResponsesHTTPClient(
            HTTPOptions(
                base_url=url,
                api_key=self._api_key,
                headers=handshake_headers(
                    url, self._api_key, organization=organization, project=project, default_headers=default_headers
                ),
                connect_timeout=connect_timeout,
                send_timeout=send_timeout,
                store=store,
            ),
            session=self._session,
            on_error=self._on_connection_error,
            on_tool_results=self._release_tool_results,
            name=f"{self}",
        )
        self._transport = self._client

    @property
    def client(self) -> ResponsesHTTPClient:
        """The request maker (request and early-close figures live on it)."""
        return self._client
