"""The gateway's own routes take admission and settings as FastAPI dependencies.

`/v1/events` is admitted by the `authenticate_or_anonymous` dependency, so an
override (`app.dependency_overrides`) decides who may open a stream: the
proxied operations, served by the ProxyRouter, keep their own admission.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
from fastapi.security import SecurityScopes
from tessera_contracts.operations import CATALOG_READ, INFERENCE_PREDICT
from tessera_gateway.app import create_app
from tessera_gateway.deps import authenticate_or_anonymous
from tessera_gateway.domain.access import Admission
from tessera_gateway.domain.auth import Principal
from tessera_gateway.errors import Forbidden
from tessera_gateway.settings import Settings

from .conftest import Keys, serve
from .test_events import add_catalog_stream


def as_principal(*scopes: str) -> Callable[[SecurityScopes], Admission]:
    """An admission override: the caller is a key with `scopes`, whatever it sent."""

    def admit(security_scopes: SecurityScopes) -> Admission:
        missing = set(security_scopes.scopes) - set(scopes)
        if missing:
            raise Forbidden(f"the test principal lacks {sorted(missing)}")
        principal = Principal(key_id="override", scopes=frozenset(scopes), client="test")
        return Admission(principal, [(b"ratelimit-limit", b"7")])

    return admit


class TestEventsAdmission:
    async def test_an_override_decides_who_may_open_a_stream(
        self, gateway_settings: Callable[..., Settings], nats_url: str, keys: Keys
    ) -> None:
        await add_catalog_stream(nats_url)
        app = create_app(gateway_settings(anonymous_reads=False))
        async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
            without_key = await client.head("/v1/events")

            app.dependency_overrides[authenticate_or_anonymous] = as_principal(CATALOG_READ)
            overridden = await client.head("/v1/events")
            # The proxied operations are not FastAPI routes at run time: no override
            # reaches them, their Proxy admits with the Gatekeeper as before.
            proxied = await client.get("/v1/products")

            app.dependency_overrides[authenticate_or_anonymous] = as_principal(INFERENCE_PREDICT)
            refused = await client.head("/v1/events", headers=Keys.bearer(keys.reader))

            app.dependency_overrides.clear()
            with_key = await client.head("/v1/events", headers=Keys.bearer(keys.reader))

        assert without_key.status_code == 401
        assert overridden.status_code == 200
        assert overridden.headers["ratelimit-limit"] == "7"
        assert proxied.status_code == 401
        # A key the gateway would admit, refused by the override's principal.
        assert refused.status_code == 403
        assert refused.headers["content-type"] == "application/problem+json"
        assert with_key.status_code == 200
        assert with_key.headers["ratelimit-limit"] != "7"
