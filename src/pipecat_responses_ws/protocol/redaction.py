"""One redaction step for everything the project logs or puts in an error.

Servers quote what they were sent ("Incorrect API key provided: sk-..."), so a key can reach a
log line through a message nobody thought of. Every configured key is registered here, and
:func:`redact` replaces it, and anything shaped like a bearer token or an OpenAI key, before a
line is written or an error is raised.
"""

from __future__ import annotations

import re

REDACTED = "<redacted>"
_SHAPES = re.compile(
    r"(?P<bearer>(?i:bearer)\s+)[A-Za-z0-9._~+/=-]{8,}"
    r"|(?P<key>\b(?:sk|rk|pk|sess)-[A-Za-z0-9_-]{8,})"
    r"|(?P<header>(?i:api-key)[\"']?\s*[:=]\s*[\"']?)[A-Za-z0-9._~+/=-]{8,}"
)
# Keys this process was configured with; short ones are left out, since they would redact words.
_secrets: set[str] = set()
MIN_SECRET_CHARS = 6


def register_secret(secret: str | None) -> None:
    """Never let ``secret`` appear in a log line or an error message again."""
    if secret and len(secret) >= MIN_SECRET_CHARS:
        _secrets.add(secret)


def _replace(match: re.Match[str]) -> str:
    prefix = match.group("bearer") or match.group("header")
    return f"{prefix}{REDACTED}" if prefix else REDACTED


def redact(text: str) -> str:
    """``text`` without any registered secret or token-shaped string."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return _SHAPES.sub(_replace, text)
