"""Version 2 of the Tessera contracts: `from tessera_contracts import v2`; `v2.Product`.

Defines only what changed from v1 and re-exports the unchanged v1 models, so
`v2.Review is v1.Review`.
"""

from tessera_contracts._types import FEATURE_COUNT
from tessera_contracts.v1.catalog import (
    DegradedPart,
    Inventory,
    InventoryUpdate,
    Review,
    ReviewCreate,
    ReviewPage,
    ReviewSummary,
)
from tessera_contracts.v2.catalog import (
    AMOUNT_PATTERN,
    Amount,
    EnrichedProduct,
    Money,
    Prediction,
    Product,
    ProductCreate,
    ProductPage,
    ProductUpdate,
)
from tessera_contracts.v2.inference import (
    Datatype,
    InferenceErrorResponse,
    InferenceRequest,
    InferenceResponse,
    MetadataTensor,
    ModelMetadataResponse,
    ModelReadyResponse,
    Parameters,
    RequestInput,
    RequestOutput,
    ResponseOutput,
    ServerLiveResponse,
    ServerMetadataResponse,
    ServerReadyResponse,
)

__all__ = [
    "AMOUNT_PATTERN",
    "FEATURE_COUNT",
    "Amount",
    "Datatype",
    "DegradedPart",
    "EnrichedProduct",
    "InferenceErrorResponse",
    "InferenceRequest",
    "InferenceResponse",
    "Inventory",
    "InventoryUpdate",
    "MetadataTensor",
    "ModelMetadataResponse",
    "ModelReadyResponse",
    "Money",
    "Parameters",
    "Prediction",
    "Product",
    "ProductCreate",
    "ProductPage",
    "ProductUpdate",
    "RequestInput",
    "RequestOutput",
    "ResponseOutput",
    "Review",
    "ReviewCreate",
    "ReviewPage",
    "ReviewSummary",
    "ServerLiveResponse",
    "ServerMetadataResponse",
    "ServerReadyResponse",
]
