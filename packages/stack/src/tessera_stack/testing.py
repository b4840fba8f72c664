"""pytest plugin: real PostgreSQL and NATS servers for tests (being written)."""
