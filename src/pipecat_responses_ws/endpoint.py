"""Where the service connects and what its handshake carries, from the constructor's arguments.

The arguments are Pipecat's built-in ones (``base_url``, ``organization``, ``project``,
``default_headers``) plus ``ws_url``; each ends up in the URL or a header of the one handshake.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

DEFAULT_WS_URL = "wss://api.openai.com/v1/responses"
_AZURE_HOSTS = (".openai.azure.com", ".cognitiveservices.azure.com", ".services.ai.azure.com")


def websocket_url(ws_url: str | None, base_url: str | None) -> str:
    """``ws_url`` as given, or the Responses WebSocket endpoint under an HTTP ``base_url``
    (``https://host/v1`` → ``wss://host/v1/responses``), or OpenAI's."""
    if ws_url:
        _check_websocket_url(ws_url)
    derived = _from_base_url(base_url) if base_url else None
    if ws_url and derived and ws_url != derived:
        raise ValueError(
            f"base_url {base_url!r} means {derived!r}, but ws_url is {ws_url!r}: give one of them "
            "(the WebSocket endpoint is under base_url, which is also where HTTP goes after a 426)"
        )
    return ws_url or derived or DEFAULT_WS_URL


def http_base_url(ws_url: str, base_url: str | None) -> str:
    """``base_url`` as given, or the HTTP base under a Responses WebSocket endpoint
    (``wss://host/v1/responses`` → ``https://host/v1``): where requests go over HTTP."""
    if base_url:
        return base_url.rstrip("/")
    parts = urlsplit(ws_url)
    scheme = {"wss": "https", "ws": "http", "https": "https", "http": "http"}.get(parts.scheme)
    if scheme is None or not parts.netloc:
        raise ValueError(f"ws_url must be a ws(s) URL such as {DEFAULT_WS_URL}, not {ws_url!r}")
    path = parts.path.rstrip("/")
    path = path.removesuffix("/responses")
    return urlunsplit((scheme, parts.netloc, path, parts.query, ""))


def _check_websocket_url(ws_url: str) -> None:
    """Refused at construction: a ``ws_url`` no WebSocket can open would fail every turn instead."""
    parts = urlsplit(ws_url)
    if parts.scheme in ("ws", "wss") and parts.netloc:
        return
    if parts.scheme in ("http", "https") and parts.netloc:
        raise ValueError(
            f"ws_url must be a ws:// or wss:// URL, not {ws_url!r}; an http(s) URL is a base_url "
            f"(base_url={ws_url!r} connects to {_from_base_url(ws_url)!r})"
        )
    raise ValueError(f"ws_url must be a ws:// or wss:// URL such as {DEFAULT_WS_URL}, not {ws_url!r}")


def _from_base_url(base_url: str) -> str:
    parts = urlsplit(base_url)
    scheme = {"https": "wss", "http": "ws", "wss": "wss", "ws": "ws"}.get(parts.scheme)
    if scheme is None or not parts.netloc:
        raise ValueError(f"base_url must be an http(s) URL such as https://api.openai.com/v1, not {base_url!r}")
    path = parts.path.rstrip("/")
    if not path.endswith("/responses"):
        path += "/responses"
    return urlunsplit((scheme, parts.netloc, path, parts.query, ""))


def handshake_headers(
    url: str,
    api_key: str,
    *,
    organization: str | None = None,
    project: str | None = None,
    default_headers: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The key as the host takes it, the organization and project as OpenAI's SDK sends them, and
    ``default_headers`` last, so they win (an Azure Entra token: ``{"Authorization": "Bearer …"}``)."""
    host = urlsplit(url).hostname or ""
    headers = {"api-key": api_key} if host.endswith(_AZURE_HOSTS) else {"Authorization": f"Bearer {api_key}"}
    if organization:
        headers["OpenAI-Organization"] = organization
    if project:
        headers["OpenAI-Project"] = project
    headers.update(default_headers or {})
    return headers
