"""API key format, hashing, lookup and the headers that carry keys."""

from __future__ import annotations

import hashlib

import pytest
from pydantic import ValidationError
from tessera_contracts.operations import CATALOG_READ, SCOPES
from tessera_gateway.domain.auth import (
    InvalidKey,
    KeyStore,
    generate_key,
    parse_key_entries,
    presented_key,
)
from tessera_gateway.settings import Settings


class TestKeys:
    def test_generated_key_verifies_against_its_stored_digest(self) -> None:
        key, entry = generate_key("svc-1", [CATALOG_READ])
        store = KeyStore.from_setting(entry.to_setting())

        verified = store.verify(key)

        assert verified.key_id == "svc-1"
        assert verified.scopes == {CATALOG_READ}
        assert (
            entry.to_setting() == f"svc-1:{hashlib.sha256(key.encode()).hexdigest()}:catalog:read"
        )
        assert key not in entry.to_setting()

    def test_a_verified_key_is_remembered_and_only_that_exact_key(self) -> None:
        key, entry = generate_key("svc-1")
        store = KeyStore({entry.key_id: entry})

        assert store.verify(key) is store.verify(key) is entry
        for near in (key + "x", key[:-1], key.upper()):
            with pytest.raises(InvalidKey):
                store.verify(near)

    def test_keys_are_high_entropy_and_distinct(self) -> None:
        first, _ = generate_key("a")
        second, _ = generate_key("a")

        assert first != second
        assert len(first) > 40

    @pytest.mark.parametrize(
        "presented",
        ["", "tsk_", "nope", "tsk_svc-1_", "tsk_other_secret", "Bearer tsk_svc-1_x"],
    )
    def test_anything_else_is_invalid(self, presented: str) -> None:
        key, entry = generate_key("svc-1")
        store = KeyStore({entry.key_id: entry})

        with pytest.raises(InvalidKey) as raised:
            store.verify(presented)
        with pytest.raises(InvalidKey):
            store.verify(key + "x")
        assert key not in str(raised.value)


class TestSetting:
    def test_parses_several_entries(self) -> None:
        _, a = generate_key("a", SCOPES)
        _, b = generate_key("b", [CATALOG_READ])

        entries = parse_key_entries(f" {a.to_setting()} , {b.to_setting()},")

        assert entries == {"a": a, "b": b}

    @pytest.mark.parametrize(
        ("setting", "complaint"),
        [
            ("a:abc", "expected"),
            ("A:" + "0" * 64 + ":catalog:read", "id must match"),
            ("a:" + "0" * 63 + ":catalog:read", "64 lower-case hex"),
            ("a:" + "0" * 64 + ":catalog:admin", "unknown scopes"),
            ("a:" + "0" * 64 + ":catalog:read,a:" + "1" * 64 + ":", "twice"),
        ],
    )
    def test_bad_entries_fail_naming_the_problem(self, setting: str, complaint: str) -> None:
        with pytest.raises(ValueError, match=complaint):
            parse_key_entries(setting)

    def test_settings_refuse_a_bad_setting_at_startup(self) -> None:
        with pytest.raises(ValidationError, match="api_keys"):
            Settings(api_keys="broken")


class TestPresentedKey:
    def test_bearer_or_x_api_key(self) -> None:
        assert presented_key([(b"authorization", b"Bearer tsk_a_x")]) == "tsk_a_x"
        assert presented_key([(b"authorization", b"bearer  tsk_a_x ")]) == "tsk_a_x"
        assert presented_key([(b"x-api-key", b"tsk_a_y")]) == "tsk_a_y"
        assert presented_key([(b"accept", b"*/*")]) is None

    def test_same_key_in_both_headers_is_fine(self) -> None:
        headers = [(b"authorization", b"Bearer tsk_a_x"), (b"x-api-key", b"tsk_a_x")]

        assert presented_key(headers) == "tsk_a_x"

    @pytest.mark.parametrize(
        "headers",
        [
            [(b"authorization", b"Basic dXNlcjpwYXNz")],
            [(b"authorization", b"Bearer")],
            [(b"authorization", b"Bearer tsk_a_x"), (b"x-api-key", b"tsk_b_y")],
        ],
    )
    def test_unusable_credentials_are_invalid(self, headers: list[tuple[bytes, bytes]]) -> None:
        with pytest.raises(InvalidKey):
            presented_key(headers)
