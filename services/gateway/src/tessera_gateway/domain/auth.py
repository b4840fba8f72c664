"""API keys: format, hashing, lookup and scope checks.

A key is `tsk_<id>_<secret>`. The gateway stores only `sha256(key)` per id; a
request's key is found by its id (not secret) and then checked with a
constant-time comparison of digests, so neither lookup nor comparison time
depends on the secret. A key that passed is remembered (at most one entry per
configured key: only the exact key string verifies), so a client's later
requests skip the hash; a key that fails is checked in full every time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

# The scopes are the contract's: each operation names the one it needs.
from tessera_contracts.operations import SCOPES

KEY_PREFIX: Final = "tsk_"
_ID_PATTERN: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
_DIGEST_PATTERN: Final = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class ApiKeyEntry:
    """One configured key: its id, the digest of the full key and its scopes."""

    key_id: str
    digest: bytes
    scopes: frozenset[str]

    def to_setting(self) -> str:
        """Render as one `GATEWAY_API_KEYS` entry."""
        return f"{self.key_id}:{self.digest.hex()}:{' '.join(sorted(self.scopes))}"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who made a request: a key id, or an anonymous client address (its rate limit
    key: an IPv6 address as its /64, see `access.client_address_key`)."""

    key_id: str | None
    scopes: frozenset[str]
    client: str

    @property
    def anonymous(self) -> bool:
        return self.key_id is None

    @property
    def rate_limit_key(self) -> str:
        return f"key:{self.key_id}" if self.key_id is not None else f"addr:{self.client}"


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def generate_key(key_id: str, scopes: Iterable[str] = SCOPES) -> tuple[str, ApiKeyEntry]:
    """Create a new key (256 bits of randomness) and the entry that configures it."""
    if not _ID_PATTERN.fullmatch(key_id):
        raise ValueError(f"key id {key_id!r} must match {_ID_PATTERN.pattern}")
    key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    return key, ApiKeyEntry(key_id, digest(key), frozenset(scopes))


def parse_key_entries(setting: str) -> dict[str, ApiKeyEntry]:
    """Parse `GATEWAY_API_KEYS`; raise `ValueError` naming the bad entry (never a digest)."""
    entries: dict[str, ApiKeyEntry] = {}
    for position, raw in enumerate(setting.split(","), start=1):
        raw = raw.strip()
        if not raw:
            continue
        parts = raw.split(":", 2)
        if len(parts) != 3:
            raise ValueError(f"api key entry {position}: expected `id:sha256-hex:scopes`")
        key_id, hex_digest, scope_text = (part.strip() for part in parts)
        if not _ID_PATTERN.fullmatch(key_id):
            raise ValueError(f"api key entry {position}: id must match {_ID_PATTERN.pattern}")
        if not _DIGEST_PATTERN.fullmatch(hex_digest):
            raise ValueError(f"api key {key_id!r}: digest must be 64 lower-case hex digits")
        scopes = frozenset(scope_text.split())
        unknown = scopes - set(SCOPES)
        if unknown:
            raise ValueError(f"api key {key_id!r}: unknown scopes {sorted(unknown)}")
        if key_id in entries:
            raise ValueError(f"api key {key_id!r} is configured twice")
        entries[key_id] = ApiKeyEntry(key_id, bytes.fromhex(hex_digest), scopes)
    return entries


class InvalidKey(Exception):
    """A key was presented but is not one of ours (the message never holds the key)."""


class KeyStore:
    """The configured keys, looked up by the id embedded in a presented key."""

    def __init__(self, entries: Mapping[str, ApiKeyEntry]) -> None:
        self._entries = dict(entries)
        self._verified: dict[str, ApiKeyEntry] = {}

    @classmethod
    def from_setting(cls, setting: str) -> KeyStore:
        return cls(parse_key_entries(setting))

    def verify(self, key: str) -> ApiKeyEntry:
        verified = self._verified.get(key)
        if verified is not None:
            return verified
        if not key.startswith(KEY_PREFIX):
            raise InvalidKey("malformed API key")
        key_id, _, secret = key[len(KEY_PREFIX) :].partition("_")
        entry = self._entries.get(key_id)
        # Hash even when the id is unknown so an unknown id costs the same time.
        presented = digest(key)
        if entry is None or not secret or not hmac.compare_digest(presented, entry.digest):
            raise InvalidKey("unknown API key")
        self._verified[key] = entry
        return entry


def presented_key(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The key from `Authorization: Bearer <key>` or `X-API-Key: <key>`, if any.

    Raises:
        InvalidKey: an Authorization header of another scheme, or two different keys.
    """
    bearer: str | None = None
    header_key: str | None = None
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").strip().partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise InvalidKey("Authorization must be `Bearer <key>`")
            bearer = token.strip()
        elif name == b"x-api-key":
            header_key = value.decode("latin-1").strip()
    if bearer is not None and header_key is not None and bearer != header_key:
        raise InvalidKey("Authorization and X-API-Key carry different keys")
    return bearer if bearer is not None else header_key
