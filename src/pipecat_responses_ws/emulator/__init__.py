"""A local Responses WebSocket server with a deterministic scripted model, for tests and demos.

It speaks the protocol as documented:
lanes, the connection-local cache, the limits, ``generate: false``, steering, and a policy for
the undocumented ``response.cancel``. Tests script it with :class:`Reply`, break it with
:class:`Fault` and inspect what happened through :attr:`Emulator.records`.
"""

from .records import Handshake, ReceivedFrame, Records, ResponseRecord, SentEvent
from .script import Fault, Reply, ToolCall
from .server import Emulator

__all__ = [
    "Emulator",
    "Fault",
    "Handshake",
    "ReceivedFrame",
    "Records",
    "Reply",
    "ResponseRecord",
    "SentEvent",
    "ToolCall",
]
