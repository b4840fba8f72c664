"""NATS: the connection, the outbox relay to JetStream, and inference requests."""
