"""Base of partial-update bodies (`PATCH`): only the fields present change."""

from __future__ import annotations

from typing import Any, ClassVar, Self, cast

from pydantic import (
    ConfigDict,
    GetJsonSchemaHandler,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from tessera_contracts._base import Contract


class Patch(Contract):
    """A partial update: absent fields stay unchanged.

    At least one field must be present, and `null` is accepted only for the
    fields in `nullable` (where it clears the value). A patch serializes only
    the fields that were set, so forwarding it (gateway -> catalog) keeps
    "absent" distinct from "null".
    """

    # Strict: a wrong JSON type is a 422, not a coercion (see docs/contracts.md).
    model_config = ConfigDict(strict=True)

    nullable: ClassVar[frozenset[str]] = frozenset()
    """Fields for which `null` means "clear the value"."""

    @model_validator(mode="after")
    def _changes_something(self) -> Self:
        # An empty patch is a client mistake rather than a no-op, and a null
        # for a field that cannot be empty would otherwise be silently dropped.
        if not self.model_fields_set:
            raise ValueError("at least one field is required")
        nulls = sorted(
            name
            for name in self.model_fields_set
            if name not in self.nullable and getattr(self, name) is None
        )
        if nulls:
            raise ValueError(f"may not be null: {', '.join(nulls)}")
        return self

    @model_serializer(mode="wrap")
    def _only_fields_set(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        return {name: value for name, value in data.items() if name in self.model_fields_set}

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        # The serializer above returns a plain dict, which Pydantic would
        # publish as the serialization schema (`{"type": "object"}`). It only
        # omits fields, so the fields' own schema is the truthful one.
        return handler(_without_serializer(core_schema))


def _without_serializer(schema: CoreSchema) -> CoreSchema:
    # The model schema sits under the wrappers of its model validators.
    copy: dict[str, Any] = dict(schema)
    if copy["type"] == "model":
        copy.pop("serialization", None)
    elif "schema" in copy:
        copy["schema"] = _without_serializer(copy["schema"])
    return cast(CoreSchema, copy)
