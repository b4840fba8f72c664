"""Who may call an operation: API key authentication, scopes and rate limits.

Failed key checks are limited too, per client address (brute-force protection):
each 401 for a presented key spends a token of the address's failure bucket,
and once it is empty every request from that address that carries a key is 429
without the key being checked, so guessing keys gains nothing until the bucket
refills, whether a guess is right or wrong. Requests without a key and 403s (a
genuine key lacking a scope) are not guesses and do not count.

Both limits key on the client address as uvicorn saw it (behind the ingress,
the one the ingress put in `X-Forwarded-For`), an IPv6 address by its /64: one
subscriber, and so one attacker, gets a whole /64 and could otherwise take a
fresh bucket for every request.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from starlette.types import Scope

from tessera_gateway.domain.auth import InvalidKey, KeyStore, Principal, presented_key
from tessera_gateway.domain.ratelimit import Policy, RateLimiter
from tessera_gateway.errors import Forbidden, RateLimited, Unauthorized


def client_address_key(host: str) -> str:
    """What the per-address limits key on: an IPv4 address as it is, an IPv6 address
    as its /64 network (`2001:db8:1:2::/64`), an IPv4-mapped IPv6 address as the
    IPv4 address (a dual-stack listener's IPv4 clients), anything else as it is."""
    if ":" not in host:  # IPv4 (the common case, without parsing), or a name
        return host
    try:
        address = ipaddress.IPv6Address(host)
    except ValueError:
        return host
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.IPv6Network((address, 64), strict=False))


@dataclass(frozen=True, slots=True)
class Access:
    """What an operation needs: a scope, and whether anonymous callers may use it."""

    scope: str
    anonymous: bool = False


@dataclass(frozen=True, slots=True)
class Admission:
    """An admitted request: who is calling, and the RateLimit headers its response carries."""

    principal: Principal
    headers: list[tuple[bytes, bytes]]


class Gatekeeper:
    """Authentication and rate limiting, shared by proxied and gateway-own routes."""

    def __init__(
        self,
        keys: KeyStore,
        limiter: RateLimiter,
        *,
        anonymous_reads: bool,
        key_policy: Policy,
        anonymous_policy: Policy,
        failures: RateLimiter,
        failure_policy: Policy,
    ) -> None:
        self.keys = keys
        self.limiter = limiter
        self.anonymous_reads = anonymous_reads
        self.key_policy = key_policy
        self.anonymous_policy = anonymous_policy
        # A table of its own: a flood of failures must not evict request buckets.
        self.failures = failures
        self.failure_policy = failure_policy

    def admit(self, scope: Scope, access: Access) -> list[tuple[bytes, bytes]]:
        """Authorize and rate limit one request; return the RateLimit headers to send.

        Raises:
            Unauthorized: no usable key (where one is needed) or an invalid one.
            Forbidden: the key lacks the operation's scope.
            RateLimited: the caller's bucket is empty, or its address is blocked
                after too many failed key checks.
        """
        return self._take(self.principal(scope, access))

    def admission(self, scope: Scope, access: Access) -> Admission:
        """`admit`, also returning the principal (for routes that use it).

        Raises:
            Unauthorized, Forbidden, RateLimited: as `admit` does.
        """
        principal = self.principal(scope, access)
        return Admission(principal, self._take(principal))

    def _take(self, principal: Principal) -> list[tuple[bytes, bytes]]:
        policy = self.anonymous_policy if principal.anonymous else self.key_policy
        decision = self.limiter.take(principal.rate_limit_key, policy)
        headers = decision.headers()
        if not decision.allowed:
            raise RateLimited(
                f"rate limit of {policy.burst} requests per {policy.window_s} s exceeded",
                headers={name.decode(): value.decode() for name, value in headers},
            )
        return headers

    def principal(self, scope: Scope, access: Access) -> Principal:
        client = scope.get("client")
        address = client_address_key(client[0]) if client else "unknown"
        try:
            key = presented_key(scope["headers"])
        except InvalidKey as error:
            raise self._failed(address, error) from None
        if key is None:
            if access.anonymous and self.anonymous_reads:
                return Principal(key_id=None, scopes=frozenset(), client=address)
            raise Unauthorized("an API key is required: `Authorization: Bearer <key>`")
        blocked_s = self.failures.retry_after_s(address, self.failure_policy)
        if blocked_s:
            raise self._blocked(blocked_s)
        try:
            entry = self.keys.verify(key)
        except InvalidKey as error:
            raise self._failed(address, error) from None
        if access.scope not in entry.scopes:
            raise Forbidden(f"the API key {entry.key_id!r} lacks the scope {access.scope!r}")
        return Principal(key_id=entry.key_id, scopes=entry.scopes, client=address)

    def _failed(self, address: str, error: InvalidKey) -> Unauthorized | RateLimited:
        decision = self.failures.take(address, self.failure_policy)
        if not decision.allowed:
            return self._blocked(decision.retry_after_s)
        return Unauthorized(str(error))

    def _blocked(self, retry_after_s: int) -> RateLimited:
        return RateLimited(
            "too many failed API key checks from this address; "
            f"keys are not checked for {retry_after_s} s",
            headers={"Retry-After": str(retry_after_s)},
        )
