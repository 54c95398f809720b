"""Whether an upgrade request becomes a connection, decided from its path and headers alone.

The upgrade is served at any path ending in ``/responses`` (the SDK appends it to whatever base
URL it was given), with any query string (``?model=`` included, which some gateways want). The
key comes as ``Authorization: Bearer <key>`` or as Azure's ``api-key: <key>``; either is enough,
and when the emulator has a key, every one presented must be it (the same rule for HTTP
requests, :func:`key_refusal`). Bodies are shaped like the API's HTTP errors; none repeats the
key that was sent.

The ``websocket`` policy ``refuse`` answers every upgrade to ``/responses`` with 426, as a
gateway without WebSocket mode does, while HTTP requests are still served. A test may also plan
what happens to the next upgrades one by one (:class:`PlannedHandshake`): let through, refused
with a status, or never answered.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

ACCEPT = 101
WEBSOCKET_POLICIES = frozenset({"accept", "refuse"})
UPGRADE_REQUIRED = 426


@dataclass(frozen=True)
class Decision:
    status: int
    body: str = ""

    @property
    def accepted(self) -> bool:
        return self.status == ACCEPT


@dataclass(frozen=True)
class PlannedHandshake:
    """What happens to one coming upgrade to ``/responses``: ``status`` refuses it (``None`` lets it
    through to the usual checks); ``hang`` never answers it, as a server that takes the TCP
    connection and then says nothing, so only the client's connect timeout ends it."""

    status: int | None = None
    hang: bool = False


def split_target(target: str) -> tuple[str, dict[str, str]]:
    """The path and the query (last value wins) of a request target."""
    parts = urlsplit(target)
    return parts.path, dict(parse_qsl(parts.query, keep_blank_values=True))


def error_body(message: str, error_type: str, code: str | None, param: str | None = None) -> str:
    """An HTTP error body as the API shapes it: ``{"error": {message, type, param, code}}``."""
    return json.dumps({"error": {"message": message, "type": error_type, "param": param, "code": code}})


def bearer_token(authorization: str | None) -> str | None:
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def azure_key(header: str | None) -> str | None:
    """The key of an ``api-key`` header (Azure OpenAI's way), if it holds one."""
    key = header.strip() if header is not None else ""
    return key or None


def decide(
    path: str,
    authorization: str | None,
    *,
    api_key: str | None,
    forced_status: int | None,
    api_key_header: str | None = None,
) -> Decision:
    """Accept, or the HTTP status and body to refuse with; path first, then forced rejections, then auth."""
    if not path.endswith("/responses"):
        return Decision(404, error_body(f"No WebSocket endpoint at {path!r}; use .../responses.", "not_found", None))
    if forced_status is not None:
        return _forced(forced_status)
    return key_refusal(authorization, api_key_header, api_key=api_key) or Decision(ACCEPT)


def key_refusal(authorization: str | None, api_key_header: str | None, *, api_key: str | None) -> Decision | None:
    """The 401 for a request whose key is missing or is not the emulator's; ``None`` when it may go on."""
    presented = [key for key in (bearer_token(authorization), azure_key(api_key_header)) if key is not None]
    if not presented:
        message = "You didn't provide an API key. Send 'Authorization: Bearer <key>' or 'api-key: <key>'."
        return Decision(401, error_body(message, "invalid_request_error", None))
    # Two different keys are refused rather than one picked: a client sending both should send the same.
    if api_key is not None and any(key != api_key for key in presented):
        return Decision(401, error_body("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"))
    return None


def _forced(status: int) -> Decision:
    if status == 401:
        return Decision(401, error_body("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"))
    if status == UPGRADE_REQUIRED:
        message = "WebSocket mode is not available for this request; use HTTP."
        return Decision(UPGRADE_REQUIRED, error_body(message, "invalid_request_error", "upgrade_required"))
    if status >= 500:
        message = "The server had an error while processing your request."
        return Decision(status, error_body(message, "server_error", None))
    return Decision(status, error_body(f"The upgrade was refused ({status}).", "invalid_request_error", None))
