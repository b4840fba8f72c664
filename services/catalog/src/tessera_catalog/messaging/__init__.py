"""NATS: stream CATALOG, the outbox relay to JetStream, and inference requests."""
