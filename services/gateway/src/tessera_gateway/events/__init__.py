"""`GET /v1/events`: catalog events from JetStream as Server-Sent Events.

Each client gets its own ephemeral pull consumer on stream CATALOG, starting
after its `Last-Event-ID` (the stream sequence, which is also the SSE `id`).

- `hub`: the NATS connection, followed in the background, and what every
  client shares (the signal that NATS is back, logging once per change of state).
- `stream`: one client's stream, batch by batch from its consumer.
- `route`: the endpoint (admission, where a stream starts), bound to `v1.EVENTS`.
"""

from tessera_gateway.events.hub import EventHub
from tessera_gateway.events.route import install_events

__all__ = ["EventHub", "install_events"]
