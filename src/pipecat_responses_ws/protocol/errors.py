"""Errors with what a user needs to act on them: code, response id, lane and phase."""

from __future__ import annotations

from .redaction import redact


class ResponsesWSError(Exception):
    """Something went wrong talking to a Responses WebSocket server."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        response_id: str | None = None,
        lane: str | None = None,
        phase: str | None = None,
    ) -> None:
        self.code = code
        self.response_id = response_id
        self.lane = lane
        self.phase = phase
        details = ", ".join(
            f"{name}={value}"
            for name, value in (("code", code), ("response", response_id), ("lane", lane), ("phase", phase))
            if value
        )
        super().__init__(redact(f"{message} ({details})" if details else message))


class HandshakeRejected(ResponsesWSError):
    """The server answered the upgrade with an HTTP error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message, code=f"http_{status}", phase="connect")
        self.status = status


class UpgradeRequired(HandshakeRejected):
    """The server answered the upgrade with HTTP 426: it does not speak WebSocket mode (a gateway
    that only passes HTTP), so retrying is pointless; the client goes over HTTP instead."""


class AuthenticationError(HandshakeRejected):
    """The key was refused at the handshake: nothing will work until it is fixed."""

    @classmethod
    def refused(cls, status: int, *, key_sent: bool = True) -> AuthenticationError:
        """The refusal in words that say what to fix, whether a key was sent or none was.

        No ``name=`` or ``name:`` after a word like "key": Pipecat's log redaction blanks what follows one.
        """
        if not key_sent:
            return cls(
                status,
                f"the server refused the connection (HTTP {status}) and no API key was sent: "
                "set OPENAI_API_KEY or give the service an api_key",
            )
        return cls(
            status, f"the server refused the API key (HTTP {status}); check OPENAI_API_KEY or the service's api_key"
        )


def describe_close(code: int | None, reason: str) -> str:
    """How a closed socket is named in errors and logs: its close code and reason."""
    if code is None:
        return reason
    return f"close code {code}" + (f": {reason}" if reason else "")


class ConnectionLost(ResponsesWSError):
    """The socket closed, or the server said the connection is spent, while a request was in flight."""

    def __init__(self, message: str, *, close_code: int | None = None, **details: str | None) -> None:
        super().__init__(message, **details)
        self.close_code = close_code


class PhaseTimeout(ResponsesWSError):
    """A phase (connect, first event, stall between events) took longer than allowed."""


class PreviousResponseNotFound(ResponsesWSError):
    """The server no longer holds the parent response: nothing was generated, a resend is safe."""
