"""The local API key that `tessera up` makes once and passes to the gateway."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from tessera_contracts.operations import SCOPES
from tessera_gateway.domain.auth import KeyStore
from tessera_gateway.domain.local_key import ensure_local_api_key


def test_first_call_creates_a_private_key_file_with_every_scope(tmp_path: Path) -> None:
    local = ensure_local_api_key(tmp_path / "data")

    assert local.path == tmp_path / "data" / "api-key"
    assert local.path.read_text().strip() == local.key
    assert stat.S_IMODE(local.path.stat().st_mode) == 0o600
    assert local.key not in local.env_value
    entry = KeyStore.from_setting(local.env_value).verify(local.key)
    assert entry.scopes == set(SCOPES)


def test_later_calls_return_the_same_key(tmp_path: Path) -> None:
    first = ensure_local_api_key(tmp_path)

    second = ensure_local_api_key(tmp_path)

    assert second == first


def test_a_loosened_file_is_tightened(tmp_path: Path) -> None:
    first = ensure_local_api_key(tmp_path)
    first.path.chmod(0o644)

    ensure_local_api_key(tmp_path)

    assert stat.S_IMODE(first.path.stat().st_mode) == 0o600


def test_a_foreign_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "api-key").write_text("not a key\n")

    with pytest.raises(ValueError, match="delete it"):
        ensure_local_api_key(tmp_path)
