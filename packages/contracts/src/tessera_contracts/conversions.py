"""Conversions between contract versions, for services that serve both.

Prices: a v1 price is a binary float, a v2 amount an exact decimal with at most
two places. v1 -> v2 takes the float's shortest repr (`19.99`, not
`19.989999...`) and rounds it half-to-even to two places; v2 -> v1 is
`float(amount)`, exact to the cent for every amount a `Money` can hold (at most
14 significant digits, below a float's 15). So v2 -> v1 -> v2 is lossless and
v1 -> v2 -> v1 is lossless for prices with at most two decimals.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Final, TypeVar

from pydantic import BaseModel

from tessera_contracts import v1, v2

M = TypeVar("M", bound=BaseModel)

CENT: Final = Decimal("0.01")

V1_MODEL_INPUT: Final = "features"
"""OIP input tensor of the v1 classifier: FP32, shape `[batch, 10]` (as the inference
service's model metadata names it)."""
V1_MODEL_PROBABILITIES: Final = "probabilities"
"""OIP output tensor of the v1 classifier: FP32, shape `[batch, classes]`, one row per sample."""


def price_to_money(price: float, currency: str) -> v2.Money:
    """Turn a v1 float price into an exact v2 amount, rounded half-to-even to cents.

    Args:
        price: The v1 price.
        currency: Its ISO 4217 code.

    Returns:
        The v2 money.
    """
    return v2.Money(amount=Decimal(repr(price)).quantize(CENT, ROUND_HALF_EVEN), currency=currency)


def money_to_price(money: v2.Money) -> float:
    """Turn a v2 amount into a v1 float price (exact to the cent).

    Args:
        money: The v2 money.

    Returns:
        The nearest float to the amount.
    """
    return float(money.amount)


def product_v1_to_v2(product: v1.Product) -> v2.Product:
    """The same product in v2: its price as `Money`."""
    return _with_money(v2.Product, product)


def product_v2_to_v1(product: v2.Product) -> v1.Product:
    """The same product in v1: a float price and a separate currency."""
    return _with_float_price(v1.Product, product)


def product_create_v1_to_v2(create: v1.ProductCreate) -> v2.ProductCreate:
    """The same create body in v2."""
    return _with_money(v2.ProductCreate, create)


def product_create_v2_to_v1(create: v2.ProductCreate) -> v1.ProductCreate:
    """The same create body in v1."""
    return _with_float_price(v1.ProductCreate, create)


def _with_money(model: type[M], source: v1.Product | v1.ProductCreate) -> M:
    fields = source.model_dump(exclude={"price", "currency"})
    return model(**fields, price=price_to_money(source.price, source.currency))


def _with_float_price(model: type[M], source: v2.Product | v2.ProductCreate) -> M:
    fields = source.model_dump(exclude={"price"})
    return model(**fields, price=money_to_price(source.price), currency=source.price.currency)


def product_update_v1_to_v2(update: v1.ProductUpdate, current_currency: str) -> v2.ProductUpdate:
    """Convert a v1 patch to v2, keeping "absent means unchanged".

    Args:
        update: The v1 patch.
        current_currency: The product's currency now; v2 sets amount and
            currency together, so a v1 patch of `price` alone needs it.

    Returns:
        The v2 patch.

    Raises:
        ValueError: The patch changes `currency` but not `price`; v2 cannot
            express that without knowing the current amount.
    """
    fields: dict[str, Any] = update.model_dump(exclude_unset=True, exclude={"price", "currency"})
    if update.price is not None:
        fields["price"] = price_to_money(update.price, update.currency or current_currency)
    elif update.currency is not None:
        raise ValueError("a v1 patch of currency without price has no v2 equivalent")
    return v2.ProductUpdate(**fields)


def product_update_v2_to_v1(update: v2.ProductUpdate) -> v1.ProductUpdate:
    """Convert a v2 patch to v1, keeping "absent means unchanged".

    Args:
        update: The v2 patch.

    Returns:
        The v1 patch; a v2 `price` sets both v1 `price` and `currency`.
    """
    fields: dict[str, Any] = update.model_dump(exclude_unset=True, exclude={"price"})
    if update.price is not None:
        fields["price"] = money_to_price(update.price)
        fields["currency"] = update.price.currency
    return v1.ProductUpdate(**fields)


def classify(probabilities: Sequence[float], confidence_threshold: float) -> tuple[int, float]:
    """Apply the v1 decision rule to class probabilities.

    Two classes: the prediction is 1 when the probability of class 1 is at
    least the threshold, else 0. More classes: the most probable class
    (the threshold does not apply).

    Args:
        probabilities: Probability of each class, by class index.
        confidence_threshold: `PredictionRequest.confidence_threshold`.

    Returns:
        The predicted class index and its probability (the confidence).

    Raises:
        ValueError: Fewer than two probabilities.
    """
    if len(probabilities) < 2:
        raise ValueError(f"need at least two class probabilities, got {len(probabilities)}")
    if len(probabilities) == 2:
        prediction = 1 if probabilities[1] >= confidence_threshold else 0
    else:
        prediction = max(range(len(probabilities)), key=probabilities.__getitem__)
    return prediction, float(probabilities[prediction])


def prediction_request_v1_to_infer(
    request: v1.PredictionRequest,
    *,
    input_name: str = V1_MODEL_INPUT,
    request_id: str | None = None,
) -> v2.InferenceRequest:
    """Express a v1 prediction request as an OIP inference request.

    The model and version go in the URL:
    `POST /v2/models/<model>/versions/<request.model_version>/infer`.

    Args:
        request: The v1 request.
        input_name: Name of the model's input tensor.
        request_id: OIP request id, echoed in the response.

    Returns:
        A one-sample batch: input `[1, 10]` FP32.
    """
    tensor = v2.RequestInput(
        name=input_name, shape=[1, len(request.features)], datatype="FP32", data=request.features
    )
    return v2.InferenceRequest(id=request_id, inputs=[tensor])


def infer_response_to_prediction(
    request: v1.PredictionRequest,
    response: v2.InferenceResponse,
    *,
    processing_time_ms: float,
    labels: Sequence[str] = v1.BREAST_CANCER_LABELS,
    output_name: str = V1_MODEL_PROBABILITIES,
    timestamp: datetime | None = None,
) -> v1.PredictionResponse:
    """Answer a v1 prediction request from the OIP response to its conversion.

    Args:
        request: The v1 request (for its threshold and model version).
        response: The OIP response to `prediction_request_v1_to_infer(request)`.
        processing_time_ms: Time spent answering, measured by the caller.
        labels: Class names by index.
        output_name: Name of the probabilities output tensor.
        timestamp: When the prediction was made; now (UTC) by default.

    Returns:
        The v1 response, with `label` and `probabilities` filled in.

    Raises:
        ValueError: The response has no such output, or not one row of as
            many probabilities as there are labels.
    """
    output = next((o for o in response.outputs if o.name == output_name), None)
    if output is None:
        names = [o.name for o in response.outputs]
        raise ValueError(f"inference response has no output {output_name!r} (has {names})")
    # One sample: accept the row flat ([C] or [1, C] flattened) or nested ([[...]]).
    row = output.data[0] if output.data and isinstance(output.data[0], list) else output.data
    if len(row) != len(labels) or not all(isinstance(p, int | float) for p in row):
        raise ValueError(f"output {output_name!r} is not one row of {len(labels)} probabilities")
    probabilities = [float(p) for p in row]
    prediction, confidence = classify(probabilities, request.confidence_threshold)
    return v1.PredictionResponse(
        prediction=prediction,
        confidence=confidence,
        model_version=response.model_version or request.model_version,
        timestamp=timestamp or datetime.now(UTC),
        processing_time_ms=processing_time_ms,
        label=labels[prediction],
        probabilities=dict(zip(labels, probabilities, strict=True)),
    )


def prediction_v1_to_v2(prediction: v1.PredictionResponse) -> v2.Prediction | None:
    """Convert a v1 prediction to v2, if it carries what v2 requires.

    Args:
        prediction: The v1 prediction.

    Returns:
        The v2 prediction, or None when the v1 one lacks `label` or
        `probabilities` (a service older than those optional fields).
    """
    if prediction.label is None or prediction.probabilities is None:
        return None
    # Every v2 field is a v1 one: v2 reads them by name and leaves the rest out.
    return v2.Prediction.model_validate(prediction, from_attributes=True)


def enriched_v1_to_v2(enriched: v1.EnrichedProduct) -> v2.EnrichedProduct:
    """Convert a v1 enriched product to v2.

    Args:
        enriched: The v1 enriched product.

    Returns:
        The v2 enriched product. A v1 prediction without class probabilities
        cannot be a v2 one; it is left out and `prediction` named in `degraded`.
    """
    degraded = list(enriched.degraded)
    prediction = None
    if enriched.prediction is not None:
        prediction = prediction_v1_to_v2(enriched.prediction)
        if prediction is None and "prediction" not in degraded:
            degraded.append("prediction")
    return v2.EnrichedProduct(
        product=product_v1_to_v2(enriched.product),
        reviews=enriched.reviews,
        review_summary=enriched.review_summary,
        inventory=enriched.inventory,
        prediction=prediction,
        degraded=degraded,
    )
