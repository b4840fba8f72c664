"""v2: the Open Inference Protocol (KServe v2) REST API, `v2.OPERATIONS` owned by inference.

Errors on these routes are the protocol's `{"error": "..."}` (400 for a bad
request or tensor, a body that is not JSON included; 404 for an unknown model
or version; 503 while shutting down), not problem+json: existing OIP clients
parse that shape. The operations declare exactly that (`error_model`,
`validation_status=400`), so their documents have no 422 either.

Versions: a model's versions are "1.0", "2.0"; "1", "v1" and "v1.0" name "1.0"
too, and a response names the version as the request's URL spelled it. Without
a version, the latest version answers and the response names it ("2.0").
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from tessera_contracts import v2
from tessera_runtime import is_draining
from tessera_runtime.operations import OperationRoute, implements
from tessera_runtime.problems import field_errors, unparsable_body

from tessera_inference import __version__
from tessera_inference.deps import ServiceDep
from tessera_inference.domain.engine import OnnxModel, Rows
from tessera_inference.domain.service import InferenceService, as_rows
from tessera_inference.errors import InferenceError, InvalidInput

SERVER_NAME = "tessera-inference"
PLATFORM = "onnxruntime_onnx"  # Triton's name for ONNX models, which OIP clients know
_FLOAT_TYPES = {"FP32", "FP64"}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse(v2.InferenceErrorResponse(error=message).model_dump(), status_code=status)


def _validation_message(error: RequestValidationError) -> str:
    parts = []
    for item in field_errors(error):
        if item.loc == ["body"] and item.type == "model_attributes_type":
            # The body was not JSON at all (or binary tensor data, which is not supported).
            parts.append("the body must be a JSON inference request")
            continue
        # The same locations and messages as the 422 problems of /v1 (a JSON syntax
        # error is at "body", its offset in the message), written as a dotted path.
        loc = ".".join(str(part) for part in item.loc if part != "body")
        parts.append(f"{loc}: {item.msg}" if loc else item.msg)
    return "invalid request: " + "; ".join(parts)


class OipRoute(OperationRoute):
    """Renders an operation's errors in the protocol's format instead of problem+json."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def oip_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as error:
                return _error(400, _validation_message(error))
            except HTTPException as error:
                # A body FastAPI could not even decode (not UTF-8, say) is a bad
                # request like any other; the app's handler would say problem+json.
                unparsable = unparsable_body(error)
                if unparsable is None:
                    raise
                return _error(400, _validation_message(unparsable))
            except InferenceError as error:
                # The protocol has 400 for every bad request; keep 404 and 5xx.
                status = 400 if error.status_code in (400, 422) else error.status_code
                return _error(status, str(error))

        return oip_handler


router = APIRouter()

_OIP_ROUTE: dict[str, Any] = {
    "route_class": OipRoute,
    # Triton and KServe read a body without Content-Type as JSON, and some OIP
    # clients send none; FastAPI would otherwise refuse it.
    "strict_content_type": False,
}


@implements(router, v2.SERVER_METADATA, **_OIP_ROUTE)
async def server_metadata() -> v2.ServerMetadataResponse:
    return v2.ServerMetadataResponse(name=SERVER_NAME, version=__version__, extensions=[])


@implements(router, v2.SERVER_LIVE, **_OIP_ROUTE)
async def server_live() -> v2.ServerLiveResponse:
    return v2.ServerLiveResponse(live=True)


@implements(router, v2.SERVER_READY, **_OIP_ROUTE)
async def server_ready(request: Request, service: ServiceDep) -> Response:
    # Not ready is the operation's declared 503 answer, with the same body.
    ready = len(service.registry) > 0 and not is_draining(request.app)
    body = v2.ServerReadyResponse(ready=ready).model_dump()
    return JSONResponse(body, status_code=200 if ready else 503)


def _metadata(service: InferenceService, model: OnnxModel) -> v2.ModelMetadataResponse:
    card = model.card
    return v2.ModelMetadataResponse(
        name=card.name,
        versions=service.registry.versions(card.name),
        platform=PLATFORM,
        inputs=[
            v2.MetadataTensor(name=t.name, datatype=t.datatype, shape=t.shape) for t in card.inputs
        ],
        outputs=[
            v2.MetadataTensor(name=t.name, datatype=t.datatype, shape=t.shape) for t in card.outputs
        ],
    )


@implements(router, v2.MODEL_METADATA, **_OIP_ROUTE)
async def model_metadata(name: str, service: ServiceDep) -> v2.ModelMetadataResponse:
    return _metadata(service, service.registry.get(name))


@implements(router, v2.MODEL_VERSION_METADATA, **_OIP_ROUTE)
async def model_version_metadata(
    name: str, version: str, service: ServiceDep
) -> v2.ModelMetadataResponse:
    return _metadata(service, service.registry.get(name, version))


@implements(router, v2.MODEL_READY, **_OIP_ROUTE)
async def model_ready(name: str, service: ServiceDep) -> v2.ModelReadyResponse:
    # Every loaded model can infer: only an unknown one is not ready (404).
    service.registry.get(name)
    return v2.ModelReadyResponse(name=name, ready=True)


@implements(router, v2.MODEL_VERSION_READY, **_OIP_ROUTE)
async def model_version_ready(
    name: str, version: str, service: ServiceDep
) -> v2.ModelReadyResponse:
    service.registry.get(name, version)
    return v2.ModelReadyResponse(name=name, ready=True)


# Responses leave out null members (`parameters`): some OIP clients reject a null map.
_INFER_ROUTE: dict[str, Any] = _OIP_ROUTE | {"response_model_exclude_none": True}


@implements(router, v2.INFER, **_INFER_ROUTE)
async def infer(name: str, body: v2.InferenceRequest, service: ServiceDep) -> v2.InferenceResponse:
    model = service.registry.get(name)
    return await _infer(service, model, body, model.card.version)


@implements(router, v2.INFER_VERSION, **_INFER_ROUTE)
async def infer_version(
    name: str, version: str, body: v2.InferenceRequest, service: ServiceDep
) -> v2.InferenceResponse:
    # The response names the version as the caller spelled it ("v1.0", "1"), so a
    # v1 client going through the protocol (tessera_contracts.conversions) gets
    # back the string it sent.
    return await _infer(service, service.registry.get(name, version), body, version)


async def _infer(
    service: InferenceService, model: OnnxModel, body: v2.InferenceRequest, version: str
) -> v2.InferenceResponse:
    try:
        rows = _rows(service, model, body)
        output = model.card.outputs[0]
        for requested in body.outputs or ():
            if requested.name != output.name:
                raise InvalidInput(
                    f"unknown output {requested.name!r}; the model has {output.name!r}"
                )
    except InvalidInput:
        service.reject(model, "v2")
        raise
    probabilities = await service.infer(model, rows, "v2")
    return v2.InferenceResponse(
        model_name=model.card.name,
        model_version=version,
        id=body.id,
        outputs=[
            v2.ResponseOutput(
                name=output.name,
                shape=list(probabilities.shape),
                datatype=output.datatype,
                data=probabilities.ravel().tolist(),
            )
        ],
    )


def _rows(service: InferenceService, model: OnnxModel, body: v2.InferenceRequest) -> Rows:
    spec = model.card.inputs[0]
    if len(body.inputs) != 1:
        raise InvalidInput(f"the model takes 1 input ({spec.name!r}), got {len(body.inputs)}")
    tensor = body.inputs[0]
    # Like KServe's and MLServer's runtimes for single-input models, the input's
    # name is not checked: clients that call it "input-0" keep working.
    if tensor.datatype not in _FLOAT_TYPES:
        raise InvalidInput(
            f"input {tensor.name!r}: datatype {tensor.datatype} is not supported; send FP32 or FP64"
        )
    if tensor.parameters and "binary_data_size" in tensor.parameters:
        raise InvalidInput("binary tensor data is not supported; send JSON data")
    if len(tensor.shape) == 2 and tensor.shape[0] > service.settings.max_rows_per_request:
        raise InvalidInput(
            f"at most {service.settings.max_rows_per_request} rows per request, got {tensor.shape[0]}"
        )
    return as_rows(tensor.data, tensor.shape, model.n_features)
