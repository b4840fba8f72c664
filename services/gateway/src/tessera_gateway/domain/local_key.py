"""The API key of a local run (`tessera up`): made once, kept in the data dir."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from tessera_contracts.operations import SCOPES

from tessera_gateway.domain.auth import (
    ApiKeyEntry,
    InvalidKey,
    KeyStore,
    digest,
    generate_key,
)

LOCAL_KEY_ID = "local"
KEY_FILE_NAME = "api-key"


@dataclass(frozen=True, slots=True)
class LocalApiKey:
    key: str
    """The plain key, for `Authorization: Bearer <key>`."""
    env_value: str
    """The `GATEWAY_API_KEYS` value that accepts it (a digest, not the key)."""
    path: Path
    """Where the plain key is stored (mode 0600)."""


def ensure_local_api_key(data_dir: Path) -> LocalApiKey:
    """Return the local key with every scope, creating `<data_dir>/api-key` the first time.

    Raises:
        ValueError: the file exists but does not hold a local key.
    """
    path = data_dir / KEY_FILE_NAME
    data_dir.mkdir(parents=True, exist_ok=True)
    key, entry = generate_key(LOCAL_KEY_ID, SCOPES)
    try:
        # O_EXCL: two `tessera up` racing must not end up with different keys.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_text().strip()
        entry = ApiKeyEntry(LOCAL_KEY_ID, digest(key), frozenset(SCOPES))
        try:
            KeyStore({LOCAL_KEY_ID: entry}).verify(key)
        except InvalidKey as error:
            raise ValueError(
                f"{path} does not hold a local API key (tsk_{LOCAL_KEY_ID}_...); "
                "delete it to have a new one made"
            ) from error
        # The file holds a secret: tighten it if someone loosened it.
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            path.chmod(0o600)
    else:
        with os.fdopen(fd, "w") as file:
            file.write(key + "\n")
    return LocalApiKey(key=key, env_value=entry.to_setting(), path=path)
