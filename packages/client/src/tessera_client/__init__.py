"""tessera-client: the Tessera API, typed, built from the tessera-contracts operations.

    from tessera_client import TesseraClient
    from tessera_contracts import v1

    async with TesseraClient("http://127.0.0.1:8000", api_key=key) as client:
        product = await client.v1.get_product(product_id)           # v1.Product
        answer = await client.v1.predict(v1.PredictionRequest(features=[...]))
        async for event in client.v1.events():                      # CloudEvent[CatalogEvent]
            ...

`TesseraSyncClient` is the same, blocking. Any operation, one declared ad hoc
included, can be performed with `client.send(operation, ...)`/`client.call(...)`.
"""

from tessera_client._client import TesseraClient, TesseraSyncClient
from tessera_client._errors import NotModified, TesseraConnectionError, TesseraError
from tessera_client._events import AsyncEventStream, SyncEventStream
from tessera_client._request import Reply
from tessera_client._trace import TraceContext, current_trace_context, trace_context
from tessera_client._versions import CatalogCloudEvent

__all__ = [
    "AsyncEventStream",
    "CatalogCloudEvent",
    "NotModified",
    "Reply",
    "SyncEventStream",
    "TesseraClient",
    "TesseraConnectionError",
    "TesseraError",
    "TesseraSyncClient",
    "TraceContext",
    "current_trace_context",
    "trace_context",
]
