"""The local runner behind `tessera up`: infrastructure, database, services, shutdown."""
