"""The typed operations of each API version, generated from the operations tables.

Do not edit: regenerate with `uv run python -m tessera_client.generate`.
"""

from __future__ import annotations

from uuid import UUID

from tessera_contracts import v1, v2

from tessera_client._core import AsyncCore, SyncCore
from tessera_client._facade import C, Call, Facade, no_content, performed, returning


class V1Operations(Facade[C]):
    """The v1 operations, one method each (`client.v1`).

    Awaited on `TesseraClient`, blocking on `TesseraSyncClient`.
    """

    @performed
    def list_products(
        self,
        *,
        q: str | None = None,
        category: str | None = None,
        offset: int | None = None,
        limit: int | None = None,
    ) -> Call[v1.ProductPage]:
        """List products, oldest first, with the total count of matches.

        `GET /v1/products`, scope `catalog:read`.

        Args:
            q: Full-text search over name and description (web-search syntax: `lamp oak`, `"desk lamp"`, `lamp -oak`, `lamp or vase`).
            category: Exact category name.
            offset: Index of the first item.
            limit: Page size; values above 100 are served as 100.

        Raises:
            TesseraError: an error answer.
        """
        return Call(
            v1.LIST_PRODUCTS,
            {"query": {"q": q, "category": category, "offset": offset, "limit": limit}},
            returning(v1.ProductPage),
        )

    @performed
    def create_product(
        self, body: v1.ProductCreate, *, idempotency_key: str | None = None
    ) -> Call[v1.Product]:
        """Create a product; 201 with Location and ETag. Idempotent with an Idempotency-Key.

        `POST /v1/products`, scope `catalog:write`.

        Args:
            body: Body of `POST /v1/products`.
            idempotency_key: Makes a retry of this create return the first response (a different body with the same key is 409). Remembered for 24 h by default; the gateway itself retries such a request when the catalog is briefly unavailable.

        Raises:
            TesseraError: an error answer.
        """
        return Call(
            v1.CREATE_PRODUCT,
            {"headers": {"idempotency_key": idempotency_key}, "body": body},
            returning(v1.Product),
        )

    @performed
    def get_product(
        self, product_id: UUID, *, if_none_match: str | None = None
    ) -> Call[v1.Product]:
        """Get one product, with its ETag (If-None-Match gives 304 when unchanged).

        `GET /v1/products/{product_id}`, scope `catalog:read`.
        A 304 (the ETag in `if_none_match` is current) raises `NotModified`.

        Args:
            product_id: The product's catalog identifier.
            if_none_match: ETags you have: 304 when the product is unchanged.

        Raises:
            TesseraError: an error answer.
        """
        return Call(
            v1.GET_PRODUCT,
            {"path": {"product_id": product_id}, "headers": {"if_none_match": if_none_match}},
            returning(v1.Product),
        )

    @performed
    def update_product(
        self, product_id: UUID, body: v1.ProductUpdate, *, if_match: str | None = None
    ) -> Call[v1.Product]:
        """Change some fields; with If-Match, only if the product is still at that ETag (else 412).

        `PATCH /v1/products/{product_id}`, scope `catalog:write`.

        Args:
            product_id: The product's catalog identifier.
            body: Body of `PATCH /v1/products/{id}`: only the fields present change.
            if_match: ETag from a GET; the write happens only if the product is unchanged (else 412).

        Raises:
            TesseraError: an error answer.
        """
        return Call(
            v1.UPDATE_PRODUCT,
            {"path": {"product_id": product_id}, "headers": {"if_match": if_match}, "body": body},
            returning(v1.Product),
        )

    @performed
    def delete_product(self, product_id: UUID, *, if_match: str | None = None) -> Call[None]:
        """Delete a product with its reviews and inventory; If-Match is honoured.

        `DELETE /v1/products/{product_id}`, scope `catalog:write`.

        Args:
            product_id: The product's catalog identifier.
            if_match: ETag from a GET; the write happens only if the product is unchanged (else 412).

        Raises:
            TesseraError: an error answer.
        """
        return Call(
            v1.DELETE_PRODUCT,
            {"path": {"product_id": product_id}, "headers": {"if_match": if_match}},
            no_content,
        )

    @performed
    def get_enriched_product(self, product_id: UUID) -> Call[v1.EnrichedProduct]:
        """Product, recent reviews with summary, inventory and prediction, fetched concurrently.

        A part that fails or is slow is left out and named in `degraded`.

        `GET /v1/products/{product_id}/enriched`, scope `catalog:read`.

        Args:
            product_id: The product's catalog identifier.

        Raises:
            TesseraError: an error answer.
        """
        return Call(
            v1.GET_ENRICHED_PRODUCT,
            {"path": {"product_id": product_id}},
            returning(v1.EnrichedProduct),
        )

    @performed
    def list_reviews(
        self, product_id: UUID, *, offset: int | None = None, limit: int | None = None
    ) -> Call[v1.ReviewPage]:
        """A product's reviews, newest first, with the total count.

        `GET /v1/products/{product_id}/reviews`, scope `catalog:read`.

        Args:
            product_id: The product's catalog identifier.
            offset: Index of the first item.
            limit: Page size; values above 100 are served as 100.

        Raises:
            TesseraError: an error answer.
        """
        return Call(
            v1.LIST_REVIEWS,
            {"path": {"product_id": product_id}, "query": {"offset": offset, "limit": limit}},
            returning(v1.ReviewPage),
        )

    @performed
    def create_review(
        self, product_id: UUID, body: v1.ReviewCreate, *, idempotency_key: str | None = None
    ) -> Call[v1.Review]:
        """Post a review of a product. Idempotent with an Idempotency-Key.

        `POST /v1/products/{product_id}/reviews`, scope `catalog:write`.

        Args:
            product_id: The product's catalog identifier.
            body: Body of `POST /v1/products/{id}/reviews`.
            idempotency_key: Makes a retry of this create return the first response (a different body with the same key is 409). Remembered for 24 h by default; the gateway itself retries such a request when the catalog is briefly unavailable.

        Raises:
            TesseraError: an error answer.
        """
        return Call(
            v1.CREATE_REVIEW,
            {
                "path": {"product_id": product_id},
                "headers": {"idempotency_key": idempotency_key},
                "body": body,
            },
            returning(v1.Review),
        )

    @performed
    def get_inventory(self, product_id: UUID) -> Call[v1.Inventory]:
        """A product's stock (zero until it is first set).

        `GET /v1/products/{product_id}/inventory`, scope `catalog:read`.

        Args:
            product_id: The product's catalog identifier.

        Raises:
            TesseraError: an error answer.
        """
        return Call(v1.GET_INVENTORY, {"path": {"product_id": product_id}}, returning(v1.Inventory))

    @performed
    def set_inventory(self, product_id: UUID, body: v1.InventoryUpdate) -> Call[v1.Inventory]:
        """Set a product's stock (absolute values; `reserved` may not exceed `quantity`).

        `PUT /v1/products/{product_id}/inventory`, scope `catalog:write`.

        Args:
            product_id: The product's catalog identifier.
            body: Body of `PUT /v1/products/{id}/inventory`: the new absolute stock.

        Raises:
            TesseraError: an error answer.
        """
        return Call(
            v1.SET_INVENTORY,
            {"path": {"product_id": product_id}, "body": body},
            returning(v1.Inventory),
        )

    @performed
    def predict(self, body: v1.PredictionRequest) -> Call[v1.PredictionResponse]:
        """Classify one sample with the default model (`model_version` picks its version).

        `POST /v1/predict`, scope `inference:predict`.

        Args:
            body: Features of one sample to classify.

        Raises:
            TesseraError: an error answer.
        """
        return Call(v1.PREDICT_OPERATION, {"body": body}, returning(v1.PredictionResponse))


AsyncV1Operations = V1Operations[AsyncCore]
SyncV1Operations = V1Operations[SyncCore]


class V2Operations(Facade[C]):
    """The v2 operations, one method each (`client.v2`).

    Awaited on `TesseraClient`, blocking on `TesseraSyncClient`.
    """

    @performed
    def list_products(
        self,
        *,
        q: str | None = None,
        category: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Call[v2.ProductPage]:
        """List products, oldest first, one keyset page at a time.

        `GET /v2/products`, scope `catalog:read`.

        Args:
            q: Full-text search over name and description (web-search syntax: `lamp oak`, `"desk lamp"`, `lamp -oak`, `lamp or vase`).
            category: Exact category name.
            cursor: `next_cursor` of the previous page; omit for the first page. A cursor this API did not issue is 400.
            limit: Page size; values above 100 are served as 100.

        Raises:
            TesseraError: an error answer.
        """
        return Call(
            v2.LIST_PRODUCTS,
            {"query": {"q": q, "category": category, "cursor": cursor, "limit": limit}},
            returning(v2.ProductPage),
        )

    @performed
    def create_product(
        self, body: v2.ProductCreate, *, idempotency_key: str | None = None
    ) -> Call[v2.Product]:
        """Create a product; 201 with Location and ETag. Idempotent with an Idempotency-Key.

        `POST /v2/products`, scope `catalog:write`.

        Args:
            body: Body of `POST /v2/products`.
            idempotency_key: Makes a retry of this create return the first response (a different body with the same key is 409). Remembered for 24 h by default; the gateway itself retries such a request when the catalog is briefly unavailable.

        Raises:
            TesseraError: an error answer.
        """
        return Call(
            v2.CREATE_PRODUCT,
            {"headers": {"idempotency_key": idempotency_key}, "body": body},
            returning(v2.Product),
        )

    @performed
    def get_product(
        self, product_id: UUID, *, if_none_match: str | None = None
    ) -> Call[v2.Product]:
        """Get one product, with its ETag (If-None-Match gives 304 when unchanged).

        `GET /v2/products/{product_id}`, scope `catalog:read`.
        A 304 (the ETag in `if_none_match` is current) raises `NotModified`.

        Args:
            product_id: The product's catalog identifier.
            if_none_match: ETags you have: 304 when the product is unchanged.

        Raises:
            TesseraError: an error answer.
        """
        return Call(
            v2.GET_PRODUCT,
            {"path": {"product_id": product_id}, "headers": {"if_none_match": if_none_match}},
            returning(v2.Product),
        )

    @performed
    def update_product(
        self, product_id: UUID, body: v2.ProductUpdate, *, if_match: str | None = None
    ) -> Call[v2.Product]:
        """Change some fields; with If-Match, only if the product is still at that ETag (else 412).

        `PATCH /v2/products/{product_id}`, scope `catalog:write`.

        Args:
            product_id: The product's catalog identifier.
            body: Body of `PATCH /v2/products/{id}`: only the fields present change.
            if_match: ETag from a GET; the write happens only if the product is unchanged (else 412).

        Raises:
            TesseraError: an error answer.
        """
        return Call(
            v2.UPDATE_PRODUCT,
            {"path": {"product_id": product_id}, "headers": {"if_match": if_match}, "body": body},
            returning(v2.Product),
        )

    @performed
    def delete_product(self, product_id: UUID, *, if_match: str | None = None) -> Call[None]:
        """Delete a product with its reviews and inventory; If-Match is honoured.

        `DELETE /v2/products/{product_id}`, scope `catalog:write`.

        Args:
            product_id: The product's catalog identifier.
            if_match: ETag from a GET; the write happens only if the product is unchanged (else 412).

        Raises:
            TesseraError: an error answer.
        """
        return Call(
            v2.DELETE_PRODUCT,
            {"path": {"product_id": product_id}, "headers": {"if_match": if_match}},
            no_content,
        )

    @performed
    def get_enriched_product(self, product_id: UUID) -> Call[v2.EnrichedProduct]:
        """Product, recent reviews with summary, inventory and a prediction with class probabilities.

        A part that fails or is slow is left out and named in `degraded`.

        `GET /v2/products/{product_id}/enriched`, scope `catalog:read`.

        Args:
            product_id: The product's catalog identifier.

        Raises:
            TesseraError: an error answer.
        """
        return Call(
            v2.GET_ENRICHED_PRODUCT,
            {"path": {"product_id": product_id}},
            returning(v2.EnrichedProduct),
        )

    @performed
    def server_metadata(self) -> Call[v2.ServerMetadataResponse]:
        """Open Inference Protocol: server name, version and extensions.

        `GET /v2`, scope `inference:predict`.

        Raises:
            TesseraError: an error answer.
        """
        return Call(v2.SERVER_METADATA, {}, returning(v2.ServerMetadataResponse))

    @performed
    def server_live(self) -> Call[v2.ServerLiveResponse]:
        """Open Inference Protocol: whether the inference server is alive.

        `GET /v2/health/live`, scope `inference:predict`.

        Raises:
            TesseraError: an error answer.
        """
        return Call(v2.SERVER_LIVE, {}, returning(v2.ServerLiveResponse))

    @performed
    def server_ready(self) -> Call[v2.ServerReadyResponse]:
        """Open Inference Protocol: whether the inference server can infer (models loaded, not shutting down).

        `GET /v2/health/ready`, scope `inference:predict`.

        Raises:
            TesseraError: an error answer.
        """
        return Call(v2.SERVER_READY, {}, returning(v2.ServerReadyResponse))

    @performed
    def model_metadata(self, name: str) -> Call[v2.ModelMetadataResponse]:
        """Inputs, outputs and versions of a model (its latest version).

        `GET /v2/models/{name}`, scope `inference:predict`.

        Args:
            name: The model's name.

        Raises:
            TesseraError: an error answer.
        """
        return Call(
            v2.MODEL_METADATA, {"path": {"name": name}}, returning(v2.ModelMetadataResponse)
        )

    @performed
    def model_version_metadata(self, name: str, version: str) -> Call[v2.ModelMetadataResponse]:
        """Inputs, outputs and versions of one model version (`1.0`, `1`, `v1` name the same).

        `GET /v2/models/{name}/versions/{version}`, scope `inference:predict`.

        Args:
            name: The model's name.
            version: The model version: `1.0`, `1` and `v1` name the same one.

        Raises:
            TesseraError: an error answer.
        """
        return Call(
            v2.MODEL_VERSION_METADATA,
            {"path": {"name": name, "version": version}},
            returning(v2.ModelMetadataResponse),
        )

    @performed
    def model_ready(self, name: str) -> Call[v2.ModelReadyResponse]:
        """Whether a model can infer (every loaded model can; unknown ones are 404).

        `GET /v2/models/{name}/ready`, scope `inference:predict`.

        Args:
            name: The model's name.

        Raises:
            TesseraError: an error answer.
        """
        return Call(v2.MODEL_READY, {"path": {"name": name}}, returning(v2.ModelReadyResponse))

    @performed
    def model_version_ready(self, name: str, version: str) -> Call[v2.ModelReadyResponse]:
        """Whether a model version can infer.

        `GET /v2/models/{name}/versions/{version}/ready`, scope `inference:predict`.

        Args:
            name: The model's name.
            version: The model version: `1.0`, `1` and `v1` name the same one.

        Raises:
            TesseraError: an error answer.
        """
        return Call(
            v2.MODEL_VERSION_READY,
            {"path": {"name": name, "version": version}},
            returning(v2.ModelReadyResponse),
        )

    @performed
    def infer(self, name: str, body: v2.InferenceRequest) -> Call[v2.InferenceResponse]:
        """Class probabilities for a batch of rows, from the model's latest version.

        `POST /v2/models/{name}/infer`, scope `inference:predict`.

        Args:
            name: The model's name.
            body: Body of `POST /v2/models/{name}[/versions/{version}]/infer`.

        Raises:
            TesseraError: an error answer.
        """
        return Call(
            v2.INFER, {"path": {"name": name}, "body": body}, returning(v2.InferenceResponse)
        )

    @performed
    def infer_version(
        self, name: str, version: str, body: v2.InferenceRequest
    ) -> Call[v2.InferenceResponse]:
        """Class probabilities for a batch of rows, from one model version.

        `POST /v2/models/{name}/versions/{version}/infer`, scope `inference:predict`.

        Args:
            name: The model's name.
            version: The model version: `1.0`, `1` and `v1` name the same one.
            body: Body of `POST /v2/models/{name}[/versions/{version}]/infer`.

        Raises:
            TesseraError: an error answer.
        """
        return Call(
            v2.INFER_VERSION,
            {"path": {"name": name, "version": version}, "body": body},
            returning(v2.InferenceResponse),
        )


AsyncV2Operations = V2Operations[AsyncCore]
SyncV2Operations = V2Operations[SyncCore]
