"""A local Responses WebSocket server with a deterministic scripted model, for tests and demos.

It speaks the protocol as documented: lanes, the connection-local cache, the limits,
``generate: false``, steering, the age limit, and a policy for the undocumented
``response.cancel``; with ``multiplexing="none"`` it plays a server without lanes (Azure OpenAI,
LocalAI, vLLM) instead. Tests script it with :class:`Reply`, break it with :class:`Fault` and
inspect what happened through :attr:`Emulator.records`.

Where the protocol is silent, the choices are written down next to the code that makes them:
cancel policies and steering in :mod:`.session`, lane-slot replacement in :mod:`.cache`, the
model's answers and call arguments in :mod:`.model`, fault timing in :class:`Fault`. A steer's
successor counts as a generated response, so it takes the next scripted reply and fault.
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
