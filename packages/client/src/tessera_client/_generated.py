"""The typed operations of each API version, generated from the operations tables.

Do not edit: regenerate with `uv run python -m tessera_client.generate`.
"""

from __future__ import annotations

from uuid import UUID

from tessera_contracts import v1, v2

from tessera_client._core import AsyncCore, SyncCore


class AsyncV1Operations:
    """The v1 operations, one method each (`client.v1`)."""

    def __init__(self, core: AsyncCore) -> None:
        self._core = core

    async def list_products(
        self,
        *,
        q: str | None = None,
        category: str | None = None,
        offset: int | None = None,
        limit: int | None = None,
    ) -> v1.ProductPage:
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
        return await self._core.call_as(
            v1.ProductPage,
            v1.LIST_PRODUCTS,
            query={"q": q, "category": category, "offset": offset, "limit": limit},
        )

    async def create_product(
        self, body: v1.ProductCreate, *, idempotency_key: str | None = None
    ) -> v1.Product:
        """Create a product; 201 with Location and ETag. Idempotent with an Idempotency-Key.

        `POST /v1/products`, scope `catalog:write`.

        Args:
            body: Body of `POST /v1/products`.
            idempotency_key: Makes a retry of this create return the first response (a different body with the same key is 409). Remembered for 24 h by default; the gateway itself retries such a request when the catalog is briefly unavailable.

        Raises:
            TesseraError: an error answer.
        """
        return await self._core.call_as(
            v1.Product, v1.CREATE_PRODUCT, headers={"idempotency_key": idempotency_key}, body=body
        )

    async def get_product(
        self, product_id: UUID, *, if_none_match: str | None = None
    ) -> v1.Product:
        """Get one product, with its ETag (If-None-Match gives 304 when unchanged).

        `GET /v1/products/{product_id}`, scope `catalog:read`.
        A 304 (the ETag in `if_none_match` is current) raises `NotModified`.

        Args:
            product_id: The product's catalog identifier.
            if_none_match: ETags you have: 304 when the product is unchanged.

        Raises:
            TesseraError: an error answer.
        """
        return await self._core.call_as(
            v1.Product,
            v1.GET_PRODUCT,
            path={"product_id": product_id},
            headers={"if_none_match": if_none_match},
        )

    async def update_product(
        self, product_id: UUID, body: v1.ProductUpdate, *, if_match: str | None = None
    ) -> v1.Product:
        """Change some fields; with If-Match, only if the product is still at that ETag (else 412).

        `PATCH /v1/products/{product_id}`, scope `catalog:write`.

        Args:
            product_id: The product's catalog identifier.
            body: Body of `PATCH /v1/products/{id}`: only the fields present change.
            if_match: ETag from a GET; the write happens only if the product is unchanged (else 412).

        Raises:
            TesseraError: an error answer.
        """
        return await self._core.call_as(
            v1.Product,
            v1.UPDATE_PRODUCT,
            path={"product_id": product_id},
            headers={"if_match": if_match},
            body=body,
        )

    async def delete_product(self, product_id: UUID, *, if_match: str | None = None) -> None:
        """Delete a product with its reviews and inventory; If-Match is honoured.

        `DELETE /v1/products/{product_id}`, scope `catalog:write`.

        Args:
            product_id: The product's catalog identifier.
            if_match: ETag from a GET; the write happens only if the product is unchanged (else 412).

        Raises:
            TesseraError: an error answer.
        """
        await self._core.send(
            v1.DELETE_PRODUCT, path={"product_id": product_id}, headers={"if_match": if_match}
        )

    async def get_enriched_product(self, product_id: UUID) -> v1.EnrichedProduct:
        """Product, recent reviews with summary, inventory and prediction, fetched concurrently.

        A part that fails or is slow is left out and named in `degraded`.

        `GET /v1/products/{product_id}/enriched`, scope `catalog:read`.

        Args:
            product_id: The product's catalog identifier.

        Raises:
            TesseraError: an error answer.
        """
        return await self._core.call_as(
            v1.EnrichedProduct, v1.GET_ENRICHED_PRODUCT, path={"product_id": product_id}
        )

    async def list_reviews(
        self, product_id: UUID, *, offset: int | None = None, limit: int | None = None
    ) -> v1.ReviewPage:
        """A product's reviews, newest first, with the total count.

        `GET /v1/products/{product_id}/reviews`, scope `catalog:read`.

        Args:
            product_id: The product's catalog identifier.
            offset: Index of the first item.
            limit: Page size; values above 100 are served as 100.

        Raises:
            TesseraError: an error answer.
        """
        return await self._core.call_as(
            v1.ReviewPage,
            v1.LIST_REVIEWS,
            path={"product_id": product_id},
            query={"offset": offset, "limit": limit},
        )

    async def create_review(
        self, product_id: UUID, body: v1.ReviewCreate, *, idempotency_key: str | None = None
    ) -> v1.Review:
        """Post a review of a product. Idempotent with an Idempotency-Key.

        `POST /v1/products/{product_id}/reviews`, scope `catalog:write`.

        Args:
            product_id: The product's catalog identifier.
            body: Body of `POST /v1/products/{id}/reviews`.
            idempotency_key: Makes a retry of this create return the first response (a different body with the same key is 409). Remembered for 24 h by default; the gateway itself retries such a request when the catalog is briefly unavailable.

        Raises:
            TesseraError: an error answer.
        """
        return await self._core.call_as(
            v1.Review,
            v1.CREATE_REVIEW,
            path={"product_id": product_id},
            headers={"idempotency_key": idempotency_key},
            body=body,
        )

    async def get_inventory(self, product_id: UUID) -> v1.Inventory:
        """A product's stock (zero until it is first set).

        `GET /v1/products/{product_id}/inventory`, scope `catalog:read`.

        Args:
            product_id: The product's catalog identifier.

        Raises:
            TesseraError: an error answer.
        """
        return await self._core.call_as(
            v1.Inventory, v1.GET_INVENTORY, path={"product_id": product_id}
        )

    async def set_inventory(self, product_id: UUID, body: v1.InventoryUpdate) -> v1.Inventory:
        """Set a product's stock (absolute values; `reserved` may not exceed `quantity`).

        `PUT /v1/products/{product_id}/inventory`, scope `catalog:write`.

        Args:
            product_id: The product's catalog identifier.
            body: Body of `PUT /v1/products/{id}/inventory`: the new absolute stock.

        Raises:
            TesseraError: an error answer.
        """
        return await self._core.call_as(
            v1.Inventory, v1.SET_INVENTORY, path={"product_id": product_id}, body=body
        )

    async def predict(self, body: v1.PredictionRequest) -> v1.PredictionResponse:
        """Classify one sample with the default model (`model_version` picks its version).

        `POST /v1/predict`, scope `inference:predict`.

        Args:
            body: Features of one sample to classify.

        Raises:
            TesseraError: an error answer.
        """
        return await self._core.call_as(v1.PredictionResponse, v1.PREDICT_OPERATION, body=body)


class SyncV1Operations:
    """The v1 operations, one method each (`client.v1`)."""

    def __init__(self, core: SyncCore) -> None:
        self._core = core

    def list_products(
        self,
        *,
        q: str | None = None,
        category: str | None = None,
        offset: int | None = None,
        limit: int | None = None,
    ) -> v1.ProductPage:
        """List products, oldest first, with the total count of matches.

        Blocking; arguments, answers and errors as `AsyncV1Operations.list_products`.
        """
        return self._core.call_as(
            v1.ProductPage,
            v1.LIST_PRODUCTS,
            query={"q": q, "category": category, "offset": offset, "limit": limit},
        )

    def create_product(
        self, body: v1.ProductCreate, *, idempotency_key: str | None = None
    ) -> v1.Product:
        """Create a product; 201 with Location and ETag. Idempotent with an Idempotency-Key.

        Blocking; arguments, answers and errors as `AsyncV1Operations.create_product`.
        """
        return self._core.call_as(
            v1.Product, v1.CREATE_PRODUCT, headers={"idempotency_key": idempotency_key}, body=body
        )

    def get_product(self, product_id: UUID, *, if_none_match: str | None = None) -> v1.Product:
        """Get one product, with its ETag (If-None-Match gives 304 when unchanged).

        Blocking; arguments, answers and errors as `AsyncV1Operations.get_product`.
        """
        return self._core.call_as(
            v1.Product,
            v1.GET_PRODUCT,
            path={"product_id": product_id},
            headers={"if_none_match": if_none_match},
        )

    def update_product(
        self, product_id: UUID, body: v1.ProductUpdate, *, if_match: str | None = None
    ) -> v1.Product:
        """Change some fields; with If-Match, only if the product is still at that ETag (else 412).

        Blocking; arguments, answers and errors as `AsyncV1Operations.update_product`.
        """
        return self._core.call_as(
            v1.Product,
            v1.UPDATE_PRODUCT,
            path={"product_id": product_id},
            headers={"if_match": if_match},
            body=body,
        )

    def delete_product(self, product_id: UUID, *, if_match: str | None = None) -> None:
        """Delete a product with its reviews and inventory; If-Match is honoured.

        Blocking; arguments, answers and errors as `AsyncV1Operations.delete_product`.
        """
        self._core.send(
            v1.DELETE_PRODUCT, path={"product_id": product_id}, headers={"if_match": if_match}
        )

    def get_enriched_product(self, product_id: UUID) -> v1.EnrichedProduct:
        """Product, recent reviews with summary, inventory and prediction, fetched concurrently.

        Blocking; arguments, answers and errors as `AsyncV1Operations.get_enriched_product`.
        """
        return self._core.call_as(
            v1.EnrichedProduct, v1.GET_ENRICHED_PRODUCT, path={"product_id": product_id}
        )

    def list_reviews(
        self, product_id: UUID, *, offset: int | None = None, limit: int | None = None
    ) -> v1.ReviewPage:
        """A product's reviews, newest first, with the total count.

        Blocking; arguments, answers and errors as `AsyncV1Operations.list_reviews`.
        """
        return self._core.call_as(
            v1.ReviewPage,
            v1.LIST_REVIEWS,
            path={"product_id": product_id},
            query={"offset": offset, "limit": limit},
        )

    def create_review(
        self, product_id: UUID, body: v1.ReviewCreate, *, idempotency_key: str | None = None
    ) -> v1.Review:
        """Post a review of a product. Idempotent with an Idempotency-Key.

        Blocking; arguments, answers and errors as `AsyncV1Operations.create_review`.
        """
        return self._core.call_as(
            v1.Review,
            v1.CREATE_REVIEW,
            path={"product_id": product_id},
            headers={"idempotency_key": idempotency_key},
            body=body,
        )

    def get_inventory(self, product_id: UUID) -> v1.Inventory:
        """A product's stock (zero until it is first set).

        Blocking; arguments, answers and errors as `AsyncV1Operations.get_inventory`.
        """
        return self._core.call_as(v1.Inventory, v1.GET_INVENTORY, path={"product_id": product_id})

    def set_inventory(self, product_id: UUID, body: v1.InventoryUpdate) -> v1.Inventory:
        """Set a product's stock (absolute values; `reserved` may not exceed `quantity`).

        Blocking; arguments, answers and errors as `AsyncV1Operations.set_inventory`.
        """
        return self._core.call_as(
            v1.Inventory, v1.SET_INVENTORY, path={"product_id": product_id}, body=body
        )

    def predict(self, body: v1.PredictionRequest) -> v1.PredictionResponse:
        """Classify one sample with the default model (`model_version` picks its version).

        Blocking; arguments, answers and errors as `AsyncV1Operations.predict`.
        """
        return self._core.call_as(v1.PredictionResponse, v1.PREDICT_OPERATION, body=body)


class AsyncV2Operations:
    """The v2 operations, one method each (`client.v2`)."""

    def __init__(self, core: AsyncCore) -> None:
        self._core = core

    async def list_products(
        self,
        *,
        q: str | None = None,
        category: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> v2.ProductPage:
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
        return await self._core.call_as(
            v2.ProductPage,
            v2.LIST_PRODUCTS,
            query={"q": q, "category": category, "cursor": cursor, "limit": limit},
        )

    async def create_product(
        self, body: v2.ProductCreate, *, idempotency_key: str | None = None
    ) -> v2.Product:
        """Create a product; 201 with Location and ETag. Idempotent with an Idempotency-Key.

        `POST /v2/products`, scope `catalog:write`.

        Args:
            body: Body of `POST /v2/products`.
            idempotency_key: Makes a retry of this create return the first response (a different body with the same key is 409). Remembered for 24 h by default; the gateway itself retries such a request when the catalog is briefly unavailable.

        Raises:
            TesseraError: an error answer.
        """
        return await self._core.call_as(
            v2.Product, v2.CREATE_PRODUCT, headers={"idempotency_key": idempotency_key}, body=body
        )

    async def get_product(
        self, product_id: UUID, *, if_none_match: str | None = None
    ) -> v2.Product:
        """Get one product, with its ETag (If-None-Match gives 304 when unchanged).

        `GET /v2/products/{product_id}`, scope `catalog:read`.
        A 304 (the ETag in `if_none_match` is current) raises `NotModified`.

        Args:
            product_id: The product's catalog identifier.
            if_none_match: ETags you have: 304 when the product is unchanged.

        Raises:
            TesseraError: an error answer.
        """
        return await self._core.call_as(
            v2.Product,
            v2.GET_PRODUCT,
            path={"product_id": product_id},
            headers={"if_none_match": if_none_match},
        )

    async def update_product(
        self, product_id: UUID, body: v2.ProductUpdate, *, if_match: str | None = None
    ) -> v2.Product:
        """Change some fields; with If-Match, only if the product is still at that ETag (else 412).

        `PATCH /v2/products/{product_id}`, scope `catalog:write`.

        Args:
            product_id: The product's catalog identifier.
            body: Body of `PATCH /v2/products/{id}`: only the fields present change.
            if_match: ETag from a GET; the write happens only if the product is unchanged (else 412).

        Raises:
            TesseraError: an error answer.
        """
        return await self._core.call_as(
            v2.Product,
            v2.UPDATE_PRODUCT,
            path={"product_id": product_id},
            headers={"if_match": if_match},
            body=body,
        )

    async def delete_product(self, product_id: UUID, *, if_match: str | None = None) -> None:
        """Delete a product with its reviews and inventory; If-Match is honoured.

        `DELETE /v2/products/{product_id}`, scope `catalog:write`.

        Args:
            product_id: The product's catalog identifier.
            if_match: ETag from a GET; the write happens only if the product is unchanged (else 412).

        Raises:
            TesseraError: an error answer.
        """
        await self._core.send(
            v2.DELETE_PRODUCT, path={"product_id": product_id}, headers={"if_match": if_match}
        )

    async def get_enriched_product(self, product_id: UUID) -> v2.EnrichedProduct:
        """Product, recent reviews with summary, inventory and a prediction with class probabilities.

        A part that fails or is slow is left out and named in `degraded`.

        `GET /v2/products/{product_id}/enriched`, scope `catalog:read`.

        Args:
            product_id: The product's catalog identifier.

        Raises:
            TesseraError: an error answer.
        """
        return await self._core.call_as(
            v2.EnrichedProduct, v2.GET_ENRICHED_PRODUCT, path={"product_id": product_id}
        )

    async def server_metadata(self) -> v2.ServerMetadataResponse:
        """Open Inference Protocol: server name, version and extensions.

        `GET /v2`, scope `inference:predict`.

        Raises:
            TesseraError: an error answer.
        """
        return await self._core.call_as(
            v2.ServerMetadataResponse,
            v2.SERVER_METADATA,
        )

    async def server_live(self) -> v2.ServerLiveResponse:
        """Open Inference Protocol: whether the inference server is alive.

        `GET /v2/health/live`, scope `inference:predict`.

        Raises:
            TesseraError: an error answer.
        """
        return await self._core.call_as(
            v2.ServerLiveResponse,
            v2.SERVER_LIVE,
        )

    async def server_ready(self) -> v2.ServerReadyResponse:
        """Open Inference Protocol: whether the inference server can infer (models loaded, not shutting down).

        `GET /v2/health/ready`, scope `inference:predict`.

        Raises:
            TesseraError: an error answer.
        """
        return await self._core.call_as(
            v2.ServerReadyResponse,
            v2.SERVER_READY,
        )

    async def model_metadata(self, name: str) -> v2.ModelMetadataResponse:
        """Inputs, outputs and versions of a model (its latest version).

        `GET /v2/models/{name}`, scope `inference:predict`.

        Args:
            name: The model's name.

        Raises:
            TesseraError: an error answer.
        """
        return await self._core.call_as(
            v2.ModelMetadataResponse, v2.MODEL_METADATA, path={"name": name}
        )

    async def model_version_metadata(self, name: str, version: str) -> v2.ModelMetadataResponse:
        """Inputs, outputs and versions of one model version (`1.0`, `1`, `v1` name the same).

        `GET /v2/models/{name}/versions/{version}`, scope `inference:predict`.

        Args:
            name: The model's name.
            version: The model version: `1.0`, `1` and `v1` name the same one.

        Raises:
            TesseraError: an error answer.
        """
        return await self._core.call_as(
            v2.ModelMetadataResponse,
            v2.MODEL_VERSION_METADATA,
            path={"name": name, "version": version},
        )

    async def model_ready(self, name: str) -> v2.ModelReadyResponse:
        """Whether a model can infer (every loaded model can; unknown ones are 404).

        `GET /v2/models/{name}/ready`, scope `inference:predict`.

        Args:
            name: The model's name.

        Raises:
            TesseraError: an error answer.
        """
        return await self._core.call_as(v2.ModelReadyResponse, v2.MODEL_READY, path={"name": name})

    async def model_version_ready(self, name: str, version: str) -> v2.ModelReadyResponse:
        """Whether a model version can infer.

        `GET /v2/models/{name}/versions/{version}/ready`, scope `inference:predict`.

        Args:
            name: The model's name.
            version: The model version: `1.0`, `1` and `v1` name the same one.

        Raises:
            TesseraError: an error answer.
        """
        return await self._core.call_as(
            v2.ModelReadyResponse, v2.MODEL_VERSION_READY, path={"name": name, "version": version}
        )

    async def infer(self, name: str, body: v2.InferenceRequest) -> v2.InferenceResponse:
        """Class probabilities for a batch of rows, from the model's latest version.

        `POST /v2/models/{name}/infer`, scope `inference:predict`.

        Args:
            name: The model's name.
            body: Body of `POST /v2/models/{name}[/versions/{version}]/infer`.

        Raises:
            TesseraError: an error answer.
        """
        return await self._core.call_as(
            v2.InferenceResponse, v2.INFER, path={"name": name}, body=body
        )

    async def infer_version(
        self, name: str, version: str, body: v2.InferenceRequest
    ) -> v2.InferenceResponse:
        """Class probabilities for a batch of rows, from one model version.

        `POST /v2/models/{name}/versions/{version}/infer`, scope `inference:predict`.

        Args:
            name: The model's name.
            version: The model version: `1.0`, `1` and `v1` name the same one.
            body: Body of `POST /v2/models/{name}[/versions/{version}]/infer`.

        Raises:
            TesseraError: an error answer.
        """
        return await self._core.call_as(
            v2.InferenceResponse,
            v2.INFER_VERSION,
            path={"name": name, "version": version},
            body=body,
        )


class SyncV2Operations:
    """The v2 operations, one method each (`client.v2`)."""

    def __init__(self, core: SyncCore) -> None:
        self._core = core

    def list_products(
        self,
        *,
        q: str | None = None,
        category: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> v2.ProductPage:
        """List products, oldest first, one keyset page at a time.

        Blocking; arguments, answers and errors as `AsyncV2Operations.list_products`.
        """
        return self._core.call_as(
            v2.ProductPage,
            v2.LIST_PRODUCTS,
            query={"q": q, "category": category, "cursor": cursor, "limit": limit},
        )

    def create_product(
        self, body: v2.ProductCreate, *, idempotency_key: str | None = None
    ) -> v2.Product:
        """Create a product; 201 with Location and ETag. Idempotent with an Idempotency-Key.

        Blocking; arguments, answers and errors as `AsyncV2Operations.create_product`.
        """
        return self._core.call_as(
            v2.Product, v2.CREATE_PRODUCT, headers={"idempotency_key": idempotency_key}, body=body
        )

    def get_product(self, product_id: UUID, *, if_none_match: str | None = None) -> v2.Product:
        """Get one product, with its ETag (If-None-Match gives 304 when unchanged).

        Blocking; arguments, answers and errors as `AsyncV2Operations.get_product`.
        """
        return self._core.call_as(
            v2.Product,
            v2.GET_PRODUCT,
            path={"product_id": product_id},
            headers={"if_none_match": if_none_match},
        )

    def update_product(
        self, product_id: UUID, body: v2.ProductUpdate, *, if_match: str | None = None
    ) -> v2.Product:
        """Change some fields; with If-Match, only if the product is still at that ETag (else 412).

        Blocking; arguments, answers and errors as `AsyncV2Operations.update_product`.
        """
        return self._core.call_as(
            v2.Product,
            v2.UPDATE_PRODUCT,
            path={"product_id": product_id},
            headers={"if_match": if_match},
            body=body,
        )

    def delete_product(self, product_id: UUID, *, if_match: str | None = None) -> None:
        """Delete a product with its reviews and inventory; If-Match is honoured.

        Blocking; arguments, answers and errors as `AsyncV2Operations.delete_product`.
        """
        self._core.send(
            v2.DELETE_PRODUCT, path={"product_id": product_id}, headers={"if_match": if_match}
        )

    def get_enriched_product(self, product_id: UUID) -> v2.EnrichedProduct:
        """Product, recent reviews with summary, inventory and a prediction with class probabilities.

        Blocking; arguments, answers and errors as `AsyncV2Operations.get_enriched_product`.
        """
        return self._core.call_as(
            v2.EnrichedProduct, v2.GET_ENRICHED_PRODUCT, path={"product_id": product_id}
        )

    def server_metadata(self) -> v2.ServerMetadataResponse:
        """Open Inference Protocol: server name, version and extensions.

        Blocking; arguments, answers and errors as `AsyncV2Operations.server_metadata`.
        """
        return self._core.call_as(
            v2.ServerMetadataResponse,
            v2.SERVER_METADATA,
        )

    def server_live(self) -> v2.ServerLiveResponse:
        """Open Inference Protocol: whether the inference server is alive.

        Blocking; arguments, answers and errors as `AsyncV2Operations.server_live`.
        """
        return self._core.call_as(
            v2.ServerLiveResponse,
            v2.SERVER_LIVE,
        )

    def server_ready(self) -> v2.ServerReadyResponse:
        """Open Inference Protocol: whether the inference server can infer (models loaded, not shutting down).

        Blocking; arguments, answers and errors as `AsyncV2Operations.server_ready`.
        """
        return self._core.call_as(
            v2.ServerReadyResponse,
            v2.SERVER_READY,
        )

    def model_metadata(self, name: str) -> v2.ModelMetadataResponse:
        """Inputs, outputs and versions of a model (its latest version).

        Blocking; arguments, answers and errors as `AsyncV2Operations.model_metadata`.
        """
        return self._core.call_as(v2.ModelMetadataResponse, v2.MODEL_METADATA, path={"name": name})

    def model_version_metadata(self, name: str, version: str) -> v2.ModelMetadataResponse:
        """Inputs, outputs and versions of one model version (`1.0`, `1`, `v1` name the same).

        Blocking; arguments, answers and errors as `AsyncV2Operations.model_version_metadata`.
        """
        return self._core.call_as(
            v2.ModelMetadataResponse,
            v2.MODEL_VERSION_METADATA,
            path={"name": name, "version": version},
        )

    def model_ready(self, name: str) -> v2.ModelReadyResponse:
        """Whether a model can infer (every loaded model can; unknown ones are 404).

        Blocking; arguments, answers and errors as `AsyncV2Operations.model_ready`.
        """
        return self._core.call_as(v2.ModelReadyResponse, v2.MODEL_READY, path={"name": name})

    def model_version_ready(self, name: str, version: str) -> v2.ModelReadyResponse:
        """Whether a model version can infer.

        Blocking; arguments, answers and errors as `AsyncV2Operations.model_version_ready`.
        """
        return self._core.call_as(
            v2.ModelReadyResponse, v2.MODEL_VERSION_READY, path={"name": name, "version": version}
        )

    def infer(self, name: str, body: v2.InferenceRequest) -> v2.InferenceResponse:
        """Class probabilities for a batch of rows, from the model's latest version.

        Blocking; arguments, answers and errors as `AsyncV2Operations.infer`.
        """
        return self._core.call_as(v2.InferenceResponse, v2.INFER, path={"name": name}, body=body)

    def infer_version(
        self, name: str, version: str, body: v2.InferenceRequest
    ) -> v2.InferenceResponse:
        """Class probabilities for a batch of rows, from one model version.

        Blocking; arguments, answers and errors as `AsyncV2Operations.infer_version`.
        """
        return self._core.call_as(
            v2.InferenceResponse,
            v2.INFER_VERSION,
            path={"name": name, "version": version},
            body=body,
        )
