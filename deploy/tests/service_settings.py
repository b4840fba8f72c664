"""Each service's Settings class, read as it is now (fields, prefix, aliases)."""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from typing import Any

import pytest
from pydantic import AliasChoices, TypeAdapter
from pydantic_settings import BaseSettings


def settings_class(service: str) -> type[BaseSettings]:
    module = importlib.import_module(f"tessera_{service}.settings")
    cls = module.Settings
    assert isinstance(cls, type)
    assert issubclass(cls, BaseSettings)
    return cls


def env_names(cls: type[BaseSettings]) -> dict[str, str]:
    """Lower-cased environment variable name -> field name."""
    prefix = cls.model_config.get("env_prefix", "")
    assert not cls.model_config.get("case_sensitive"), "names are compared case-insensitively"
    names = {}
    for field_name, field in cls.model_fields.items():
        alias = field.validation_alias or field.alias
        if isinstance(alias, str):
            names[alias.lower()] = field_name
        elif isinstance(alias, AliasChoices):
            names.update({str(choice).lower(): field_name for choice in alias.choices})
        else:
            names[f"{prefix}{field_name}".lower()] = field_name
    return names


def load_settings(
    cls: type[BaseSettings], env: Mapping[str, str], monkeypatch: pytest.MonkeyPatch
) -> BaseSettings:
    """`cls` built from exactly `env`: no variable of this shell, no .env file."""
    prefix = str(cls.model_config.get("env_prefix", "")).lower()
    for name in list(os.environ):
        if name.lower().startswith(prefix):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return cls(_env_file=None)


def setting_value(cls: type[BaseSettings], field_name: str, env: Mapping[str, str]) -> Any:
    """The value field `field_name` of `cls` gets from `env`, or its default."""
    keys = {name for name, field in env_names(cls).items() if field == field_name}
    raw = next((value for key, value in env.items() if key.lower() in keys), None)
    field = cls.model_fields[field_name]
    if raw is None:
        return field.get_default(call_default_factory=True)
    assert field.annotation is not None
    return TypeAdapter(field.annotation).validate_python(raw)
