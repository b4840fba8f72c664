"""A consumer of tessera-client, checked with `mypy --strict` by test_packaging.py.

Not a test (pytest does not collect it): it shows the typed facade as a service
team would use it, so a change that loses a type fails that test.
"""

from __future__ import annotations

import asyncio
from uuid import UUID

from tessera_client import (
    NotModified,
    TesseraClient,
    TesseraError,
    TesseraSyncClient,
    trace_context,
)
from tessera_contracts import v1, v2


async def main(base_url: str, api_key: str, product_id: UUID) -> float:
    async with TesseraClient(base_url, api_key=api_key, max_retries=3) as client:
        product: v1.Product = await client.v1.get_product(product_id)
        try:
            await client.v1.get_product(product_id, if_none_match='"1"')
        except NotModified as unchanged:
            etag: str | None = unchanged.etag
            del etag
        page: v2.ProductPage = await client.v2.list_products(limit=10, cursor=None)
        names: list[str] = [p.name async for p in client.v1.iter_products(q="lamp")]
        prices: list[v2.Money] = [p.price async for p in client.v2.iter_products()]
        request = v1.PredictionRequest(features=[0.1] * 10)
        with trace_context(request_id="consumer-1"):
            prediction: v1.PredictionResponse = await client.v1.predict(request)
        try:
            await client.v1.delete_product(product.id, if_match='"7"')
        except TesseraError as error:
            status: int = error.status
            fields: list[str] = [str(e.loc) for e in error.errors]
            del status, fields
        async with client.v1.events() as stream:
            async for event in stream:
                if isinstance(event.data, v1.ProductCreated):
                    created: UUID = event.data.product.id
                    del created
                resume_at: int | None = stream.last_event_id
                del resume_at
                break
        del page, names, prices
        return prediction.confidence


def sync_main(base_url: str, product_id: UUID) -> v2.InferenceResponse:
    with TesseraSyncClient(base_url) as client:
        reviews: list[v1.Review] = list(client.v1.iter_reviews(product_id))
        del reviews
        body = v2.InferenceRequest.model_validate({"inputs": []})
        return client.v2.infer("breast-cancer", body)


if __name__ == "__main__":
    asyncio.run(main("http://127.0.0.1:8000", "tsk_example", UUID(int=1)))
