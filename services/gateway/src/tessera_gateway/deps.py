"""FastAPI dependencies of the gateway's own routes (`/v1/events`).

`Security(authenticate, scopes=[...])` (or `authenticate_or_anonymous`, for
operations callers without a key may use) is the caller's admission (key, scope,
rate limit) as a real dependency: it runs for the route, documents the key
schemes with the route's scopes, and tests replace it with
`app.dependency_overrides[authenticate_or_anonymous]`. The proxied operations are not FastAPI
routes at run time (`api/router.py` serves them, for speed), so no dependency
runs for them: their `Proxy` admits each request through the same `Gatekeeper`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import (
    APIKeyHeader,
    HTTPAuthorizationCredentials,
    HTTPBearer,
    SecurityScopes,
)
from tessera_runtime.deps import from_state

from tessera_gateway.domain.access import Access, Admission, Gatekeeper
from tessera_gateway.messaging.hub import EventHub
from tessera_gateway.settings import Settings

# The schemes tell /docs (and clients) how to send a key. They never refuse a
# request themselves (auto_error=False): the Gatekeeper decides, with the
# gateway's answers (401 with a challenge, 403, 429, the brute-force block).
BEARER = HTTPBearer(
    scheme_name="bearer",
    bearerFormat="tsk_<id>_<secret>",
    description="`Authorization: Bearer <key>`",
    auto_error=False,
)
API_KEY = APIKeyHeader(
    name="X-API-Key",
    scheme_name="apiKey",
    description="The same key in `X-API-Key`",
    auto_error=False,
)


get_settings = from_state("settings", Settings)
get_gatekeeper = from_state("gatekeeper", Gatekeeper)
get_event_hub = from_state("events", EventHub)

SettingsDep = Annotated[Settings, Depends(get_settings)]
GatekeeperDep = Annotated[Gatekeeper, Depends(get_gatekeeper)]
EventHubDep = Annotated[EventHub, Depends(get_event_hub)]


class Authenticate:
    """The admission of a request to a route, with the scopes the route requires.

    Each instance is a dependency of its own (and the key of its override):
    `authenticate` needs a key, `authenticate_or_anonymous` also admits callers
    without one where the deployment allows anonymous reads.
    """

    def __init__(self, *, anonymous: bool) -> None:
        self.anonymous = anonymous

    async def __call__(
        self,
        request: Request,
        security_scopes: SecurityScopes,
        gatekeeper: GatekeeperDep,
        # Declared for the document (each scheme with the route's scopes); the
        # Gatekeeper reads the key from the headers itself, both schemes alike.
        _bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
        _api_key: Annotated[str | None, Depends(API_KEY)],
    ) -> Admission:
        # One scope per route: the operation's.
        (scope,) = security_scopes.scopes
        return gatekeeper.admission(request.scope, Access(scope, self.anonymous))


authenticate = Authenticate(anonymous=False)
authenticate_or_anonymous = Authenticate(anonymous=True)
