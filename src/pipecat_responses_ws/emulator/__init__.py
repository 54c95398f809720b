"""A local Responses WebSocket server with a deterministic scripted model, for tests and demos.

It speaks the protocol as documented: lanes, the connection-local cache, the limits,
``generate: false``, steering, the age limit, and a policy for the undocumented
``response.cancel``; with ``multiplexing="none"`` it plays a server without lanes (Azure OpenAI,
LocalAI, vLLM) instead. On the same port it serves ``POST /v1/responses`` (server-sent events or
one JSON ``Response``, :attr:`Emulator.http_base_url`, :mod:`.http`) and ``POST
/v1/responses/compact`` (:mod:`.compaction`), and with
``websocket="refuse"`` it answers every upgrade with 426 so a fallback to HTTP can be tested.
Tests script it with :class:`Reply`, break it with :class:`Fault` and inspect what happened
through :attr:`Emulator.records`.

Where the protocol is silent, the choices are written down next to the code that makes them:
cancel policies and steering in :mod:`.session`, lane-slot replacement in :mod:`.cache`, the
model's answers and call arguments in :mod:`.model`, what each fault does and when in :mod:`.faults`.
A steer's successor counts as a generated response, so it takes the next scripted reply and fault.
The options (:class:`.settings.Settings`) are declared once, with their help and bounds (:mod:`.options`).
"""

from .records import Handshake, HttpRequest, ReceivedFrame, Records, ResponseRecord, SentEvent
from .script import Fault, Reply, ToolCall
from .server import Emulator

__all__ = [
    "Emulator",
    "Fault",
    "Handshake",
    "HttpRequest",
    "ReceivedFrame",
    "Records",
    "Reply",
    "ResponseRecord",
    "SentEvent",
    "ToolCall",
]
