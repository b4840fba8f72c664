"""Health reports shared by every service."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tessera_contracts._base import Contract


class HealthReport(Contract):
    """Body of a successful `/healthz` or `/readyz` response.

    A failing readiness check is reported as a `Problem` (503) whose `checks`
    names what is down, so this model only ever says "ok".
    """

    status: Literal["ok"] = "ok"
    """Always `ok`: an unhealthy service answers with a problem instead."""
    service: str
    """Service name, e.g. `catalog`."""
    version: str
    """Version of the running service distribution."""
    checks: dict[str, str] = Field(default_factory=dict)
    """Each readiness check by name with its state (`ok`); empty for liveness."""
