"""v1 products: float prices and offset pages with the total count of matches."""

from __future__ import annotations

from fastapi.responses import Response
from tessera_contracts import v1
from tessera_contracts.parameters import ProductOffsetQuery
from tessera_runtime.operations import implements

from tessera_catalog.api.common import clamp_limit, json_response
from tessera_catalog.api.products import ProductView, product_filter, product_router
from tessera_catalog.deps import ProductsDep
from tessera_catalog.domain import convert
from tessera_catalog.domain.enriched import Enriched


def enriched_v1(enriched: Enriched) -> v1.EnrichedProduct:
    return v1.EnrichedProduct(
        product=convert.product_v1(enriched.product),
        reviews=[convert.review(r) for r in enriched.reviews],
        review_summary=None
        if enriched.review_summary is None
        else convert.review_summary(enriched.review_summary),
        inventory=None if enriched.inventory is None else convert.inventory(enriched.inventory),
        prediction=enriched.prediction,
        degraded=enriched.degraded,
    )


VIEW = ProductView(
    get=v1.GET_PRODUCT,
    create=v1.CREATE_PRODUCT,
    update=v1.UPDATE_PRODUCT,
    delete=v1.DELETE_PRODUCT,
    get_enriched=v1.GET_ENRICHED_PRODUCT,
    product=convert.product_v1,
    new_product=convert.new_product_v1,
    changes=convert.changes_v1,
    enriched=enriched_v1,
)

router = product_router(VIEW)


@implements(router, v1.LIST_PRODUCTS)
async def list_products(query: ProductOffsetQuery, products: ProductsDep) -> Response:
    limit = clamp_limit(query.limit)
    records, total = await products.page(product_filter(query), offset=query.offset, limit=limit)
    page = v1.ProductPage(
        items=[VIEW.product(r) for r in records], total=total, offset=query.offset, limit=limit
    )
    return json_response(page)
