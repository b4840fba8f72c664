"""v2 products: exact money, keyset cursors and predictions with class probabilities."""

from __future__ import annotations

from fastapi.responses import Response
from tessera_contracts import conversions, v2
from tessera_contracts.parameters import ProductCursorQuery
from tessera_runtime.operations import implements

from tessera_catalog.api.common import clamp_limit, json_response
from tessera_catalog.api.products import ProductView, product_filter, product_router
from tessera_catalog.api.v2.cursor import decode_cursor, encode_cursor
from tessera_catalog.deps import ProductsDep
from tessera_catalog.domain import convert
from tessera_catalog.domain.enriched import Enriched


def enriched_v2(enriched: Enriched) -> v2.EnrichedProduct:
    degraded = list(enriched.degraded)
    prediction = None
    if enriched.prediction is not None:
        prediction = conversions.prediction_v1_to_v2(enriched.prediction)
        if prediction is None:
            # An inference service too old to send class probabilities cannot
            # answer a v2 prediction: leave it out and say so.
            degraded.append("prediction")
    return v2.EnrichedProduct(
        product=convert.product_v2(enriched.product),
        reviews=[convert.review(r) for r in enriched.reviews],
        review_summary=None
        if enriched.review_summary is None
        else convert.review_summary(enriched.review_summary),
        inventory=None if enriched.inventory is None else convert.inventory(enriched.inventory),
        prediction=prediction,
        degraded=degraded,
    )


VIEW = ProductView(
    get=v2.GET_PRODUCT,
    create=v2.CREATE_PRODUCT,
    update=v2.UPDATE_PRODUCT,
    delete=v2.DELETE_PRODUCT,
    get_enriched=v2.GET_ENRICHED_PRODUCT,
    product=convert.product_v2,
    new_product=convert.new_product_v2,
    changes=convert.changes_v2,
    enriched=enriched_v2,
)

router = product_router(VIEW)


@implements(router, v2.LIST_PRODUCTS)
async def list_products(query: ProductCursorQuery, products: ProductsDep) -> Response:
    limit = clamp_limit(query.limit)
    after = None if query.cursor is None else decode_cursor(query.cursor)
    # One extra row tells whether another page exists without a count query.
    records = await products.after(product_filter(query), after=after, limit=limit + 1)
    next_cursor = None
    if len(records) > limit:
        records = records[:limit]
        last = records[-1]
        next_cursor = encode_cursor(last.created_at, last.id)
    page = v2.ProductPage(
        items=[VIEW.product(r) for r in records], next_cursor=next_cursor, limit=limit
    )
    return json_response(page)
