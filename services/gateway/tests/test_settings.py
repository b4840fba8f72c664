"""Settings that only make sense together are checked when the gateway starts."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from tessera_gateway.settings import Settings


class TestShutdownBounds:
    def test_the_defaults_fit(self) -> None:
        settings = Settings(_env_file=None)

        assert settings.events_shutdown_grace_s < settings.graceful_shutdown_s

    @pytest.mark.parametrize(("grace_s", "graceful_s"), [(5.0, 5.0), (6.0, 5.0), (1.0, 0.0)])
    def test_streams_must_end_within_the_graceful_shutdown(
        self, grace_s: float, graceful_s: float
    ) -> None:
        with pytest.raises(ValidationError) as raised:
            Settings(
                _env_file=None, events_shutdown_grace_s=grace_s, graceful_shutdown_s=graceful_s
            )

        message = str(raised.value)
        assert "GATEWAY_EVENTS_SHUTDOWN_GRACE_S" in message
        assert f"below GATEWAY_GRACEFUL_SHUTDOWN_S ({graceful_s} s)" in message

    def test_streams_without_a_goodbye_fit_any_shutdown(self) -> None:
        settings = Settings(_env_file=None, events_shutdown_grace_s=0, graceful_shutdown_s=0)

        assert settings.events_shutdown_grace_s == 0

    def test_it_is_checked_for_the_environment_too(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("GATEWAY_EVENTS_SHUTDOWN_GRACE_S", "3")
        monkeypatch.setenv("GATEWAY_GRACEFUL_SHUTDOWN_S", "2")

        with pytest.raises(ValidationError, match="GATEWAY_EVENTS_SHUTDOWN_GRACE_S"):
            Settings(_env_file=None)


class TestPort:
    def test_is_the_base_field_with_the_gateway_default(self) -> None:
        port = Settings.model_fields["port"]

        assert Settings(_env_file=None).port == 8000
        # The base's docstring, shown by `python -m tessera_gateway --help`.
        assert port.description == "Port to listen on (each service has its own default)."
