"""Open Inference Protocol bodies."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from tessera_contracts import v2

from .conftest import FEATURES


def tensor(shape: list[int], data: list[Any], datatype: str = "FP32") -> dict[str, Any]:
    return {"name": "input", "shape": shape, "datatype": datatype, "data": data}


class TestRequestInput:
    @pytest.mark.parametrize(
        ("shape", "data"),
        [
            ([1, 10], FEATURES),
            ([1, 10], [FEATURES]),
            ([2, 10], [FEATURES, FEATURES]),
            ([2, 10], FEATURES + FEATURES),
            ([0, 10], []),
        ],
    )
    def test_flat_or_nested_data_matching_shape_is_accepted(
        self, shape: list[int], data: list[Any]
    ) -> None:
        assert v2.RequestInput.model_validate(tensor(shape, data)).shape == shape

    @pytest.mark.parametrize(("shape", "data"), [([1, 10], FEATURES[:9]), ([2, 10], [FEATURES])])
    def test_data_not_matching_shape_is_rejected(self, shape: list[int], data: list[Any]) -> None:
        with pytest.raises(ValidationError, match=r"tensor 'input': shape .* needs \d+ elements"):
            v2.RequestInput.model_validate(tensor(shape, data))

    def test_unknown_datatype_is_rejected(self) -> None:
        with pytest.raises(ValidationError):
            v2.RequestInput.model_validate(tensor([1], [1.0], datatype="FLOAT"))

    def test_bytes_tensor_holds_strings(self) -> None:
        assert v2.RequestInput.model_validate(tensor([2], ["a", "b"], datatype="BYTES")).data == [
            "a",
            "b",
        ]


def test_inference_request_needs_an_input() -> None:
    with pytest.raises(ValidationError):
        v2.InferenceRequest.model_validate({"inputs": []})


def test_parameters_keep_their_json_types() -> None:
    request = v2.InferenceRequest.model_validate(
        {"parameters": {"flag": True, "n": 3, "x": 0.5, "s": "y"}, "inputs": [tensor([1], [1.0])]}
    )

    assert request.parameters == {"flag": True, "n": 3, "x": 0.5, "s": "y"}
    assert [type(v) for v in request.parameters.values()] == [bool, int, float, str]


def test_response_output_checks_shape_too() -> None:
    with pytest.raises(ValidationError):
        v2.ResponseOutput.model_validate(
            {"name": "probabilities", "shape": [1, 2], "datatype": "FP32", "data": [1.0]}
        )


def test_metadata_shape_may_be_variable() -> None:
    tensor_meta = v2.MetadataTensor(name="input", datatype="FP32", shape=[-1, 10])

    assert tensor_meta.shape == [-1, 10]


def test_model_fields_named_model_are_plain_fields() -> None:
    response = v2.InferenceResponse(model_name="m", outputs=[])

    assert response.model_dump(exclude_none=True) == {"model_name": "m", "outputs": []}
