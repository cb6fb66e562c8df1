"""Request and response schemas of ``POST /predict``, and the validation that makes bad input a 4xx.

The schemas are the model spec's (:class:`mlops.serving.online.OnlineSpec`, ``ModelSpec.online``):
its request item (e.g. a flight), whose fields are the spec's ``request_fields``, and a response
whose predictions carry the spec's id, time and prediction columns (:func:`request_model`,
:func:`response_model`). Input is checked in three steps, each answering with a clear error
instead of reaching the model:

1. the body: at most ``max_body_bytes`` (413; the app counts the bytes as they stream in and stops
   reading at the limit), valid JSON nested at most :data:`MAX_DEPTH` deep (400; the JSON parser
   is ``pydantic_core.from_json``, which has a recursion limit: a body of ``[`` x 200,000 is a
   400, not a ``RecursionError``);
2. the size: at most ``max_batch`` items (413), at least one (422);
3. every item (422, FastAPI's ``{"detail": [{"loc", "msg", "type", "input"}]}`` shape, ``loc``
   naming the item and the field, at most :data:`MAX_ERRORS` errors, long inputs shortened):
   first the structure, strictly (the spec's item model: fields, JSON types, patterns; no unknown
   field; a missing field is named), then, all at once, the meaning (the spec's
   ``semantic_errors``, e.g. an unknown carrier for a flight).

The OpenAPI schema says exactly what step 3's structure check accepts (patterns, ranges, lengths;
``schemathesis`` checks that in the tests); the meaning checks are the 422s it cannot express.

``x-request-id``: kept when it is at most 128 ASCII letters, digits and ``._:-``
(:func:`request_id`), otherwise replaced by a generated id, so what the service echoes and writes
to the prediction log is bounded.
"""

from __future__ import annotations

import functools
import math
import re
import threading
import uuid
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic_core import from_json

if TYPE_CHECKING:
    from mlops.serving.online import OnlineSpec
    from mlops.spec.model import ModelSpec

#: Defaults of the size limits (``mlops serve --max-batch``).
MAX_BATCH = 1000
MAX_BODY_BYTES = 2_000_000
#: Deepest JSON nesting the parser accepts (``pydantic_core.from_json``'s own limit; a valid body
#: is 3 deep: ``{"items": [{...}]}``).
MAX_DEPTH = 200
#: Most errors listed in one 422 answer (the rest are counted in a last entry).
MAX_ERRORS = 50
_REQUEST_ID = re.compile("[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")

#: Names that lived here before the flight-specific code moved to :mod:`mlops.flight_delay.serving`.
_MOVED = frozenset(
    {
        "EXAMPLE_FLIGHT",
        "Flight",
        "parse_departure",
        "Vocabulary",
        "vocabulary",
        "SEMANTIC_ERRORS",
        "CODE_PATTERN",
        "TAILNUM_PATTERN",
        "DEPARTURE_PATTERN",
    }
)


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        from mlops.flight_delay import serving

        return getattr(serving, name)
    if name in ("PredictRequest", "PredictResponse"):  # the default spec's (flight delay)
        from mlops.serving.online import _default_spec, online_spec

        spec = _default_spec()
        online = online_spec(spec)
        return request_model(online) if name == "PredictRequest" else response_model(spec, online)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class RequestError(Exception):
    """A request the service refuses: HTTP ``status``, FastAPI-shaped ``detail``, extra ``headers``."""

    def __init__(self, status: int, detail: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(str(detail))
        self.status = status
        self.detail = detail
        self.headers = headers


def shorten(value: Any, limit: int = 64) -> str:
    """``repr(value)``, cut to ``limit`` characters (an error message never echoes a whole body)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def shown(value: Any, depth: int = 0) -> Any:
    """A bounded, JSON-safe rendering of a request value for an error's ``input``.

    Strings over 64 characters are cut, containers show their first 10 items down to 2 levels,
    non-finite floats and integers beyond 64 bits become strings.
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else shorten(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, str):
        return value if len(value) <= 64 else f"{value[:64]}... ({len(value)} characters)"
    if isinstance(value, list | tuple):
        if depth >= 2:
            return f"<list of {len(value)} items>"
        items = [shown(v, depth + 1) for v in value[:10]]
        return items + ([f"... {len(value) - 10} more items"] if len(value) > 10 else [])
    if isinstance(value, dict):
        if depth >= 2:
            return f"<object of {len(value)} keys>"
        out = {
            shorten(k, 32) if not isinstance(k, str) or len(k) > 32 else k: shown(v, depth + 1)
            for k, v in list(value.items())[:10]
        }
        if len(value) > 10:
            out["..."] = f"{len(value) - 10} more keys"
        return out
    return shorten(value)


def request_id(header: str | None) -> str:
    """The request's id: the client's ``x-request-id`` if it is a safe token, else a new one."""
    if header and _REQUEST_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


class ServedBy(BaseModel):
    alias: str = Field(description="champion, or challenger for an item in the canary share")
    version: str = Field(description="the registered version that scored this item")


class ErrorItem(BaseModel):
    loc: list[str | int] = Field(description='where: ["body", <items>, <index>, <field>]')
    msg: str = Field(description="what is wrong and what is expected")
    type: str = Field(description="the error's kind, e.g. missing, int_type, string_pattern_mismatch")
    input: Any = Field(default=None, description="the value refused (long values shortened)")


class ErrorResponse(BaseModel):
    detail: str | list[ErrorItem] = Field(description="why the request was refused")
    request_id: str | None = Field(default=None, description="on a 500: the id to find it in the logs")


def _error(loc: list[Any], msg: str, kind: str, value: Any) -> dict[str, Any]:
    return {"loc": loc, "msg": msg, "type": kind, "input": value}


def _bounded(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if len(errors) <= MAX_ERRORS:
        return errors
    more = len(errors) - MAX_ERRORS
    return [
        *errors[:MAX_ERRORS],
        _error(["body"], f"{more} more errors not shown: fix these first", "too_many_errors", None),
    ]


def parse_json(body: bytes, items: str = "items") -> Any:
    """The body as Python values, or a 400 naming where the JSON breaks.

    ``pydantic_core.from_json`` (jiter): no ``NaN``/``Infinity``, strict UTF-8 (no lone
    surrogates), and a recursion limit of :data:`MAX_DEPTH` levels, so deep nesting is a clean
    error instead of a ``RecursionError``.
    """
    try:
        return from_json(body, allow_inf_nan=False, cache_strings="keys")
    except ValueError as exc:
        reason = str(exc)
        if "recursion limit" in reason:
            raise RequestError(
                400,
                f"request body is not valid JSON for this API: nested deeper than {MAX_DEPTH} levels "
                f'({reason}); a request is at most 3 deep: {{"{items}": [{{...}}]}}',
            ) from None
        raise RequestError(400, f"request body is not valid JSON: {reason}") from None


# --------------------------------------------------------------------------------------------------
# The spec's request and response models
# --------------------------------------------------------------------------------------------------

_MODELS: dict[tuple[Any, ...], Any] = {}
_MODELS_LOCK = threading.Lock()


@functools.cache
def _default_online() -> OnlineSpec:
    from mlops.serving.online import _default_spec, online_spec

    return online_spec(_default_spec())


def _cached(key: tuple[Any, ...], build: Any) -> Any:
    hit = _MODELS.get(key)  # the request path: no lock once built
    if hit is not None:
        return hit[0]
    with _MODELS_LOCK:
        hit = _MODELS.get(key)
        if hit is None:
            hit = _MODELS[key] = (build(), key)  # the key's objects stay alive with the model
        return hit[0]


def request_model(online: OnlineSpec) -> type[BaseModel]:
    """``PredictRequest``: ``{<items>: [<item>, ...]}`` (at least one item) of the spec's item model."""

    def build() -> type[BaseModel]:
        example = {online.items: [dict(online.example)]} if online.example else None
        return create_model(
            "PredictRequest",
            __config__=ConfigDict(
                extra="forbid",
                strict=True,
                json_schema_extra={"examples": [example]} if example else None,
            ),
            __doc__=f"A batch of {online.items}. ``POST /predict`` also accepts a single "
            f"{online.item} object or a bare list.",
            **{
                online.items: (
                    list[online.item_model],  # type: ignore[name-defined]
                    Field(min_length=1, description=f"the {online.items} to score (at most max_batch)"),
                )
            },
        )

    return _cached(("request", id(online), online), build)


def response_model(spec: ModelSpec, online: OnlineSpec) -> type[BaseModel]:
    """``PredictResponse``: the model and version, the threshold when the spec has a decision, and
    one ``Prediction`` per item: the spec's id and time columns, its ``prediction_column`` (and
    decision), the feature views with no online row, and the model that answered."""

    def build() -> type[BaseModel]:
        item = online.item
        fields: dict[str, Any] = {
            spec.id_column: (str, Field(description=f"the {item}'s id ({spec.id_column}, as in the lake)")),
            spec.time_column: (str, Field(description=f"{spec.time_column} as understood, UTC")),
            spec.prediction_column: (float, Field(description=online.prediction_doc or spec.description)),
        }
        if online.decision:
            fields[online.decision] = (
                bool,
                Field(description=online.decision_doc or "prediction >= threshold"),
            )
        fields["missing_feature_views"] = (
            list[str],
            Field(
                description=f"feature views with no online row for this {item} (their features count as missing)"
            ),
        )
        fields["served_by"] = (
            ServedBy,
            Field(description=f"the model that answered for this {item} (canary: sticky by {item})"),
        )
        prediction = create_model("Prediction", **fields)
        top: dict[str, Any] = {
            "model_name": (str, Field(description=f"the registered model ({spec.model_name})")),
            "model_version": (
                str,
                Field(
                    description=f"the registered version that scored the {online.items} of this request "
                    "(with a canary, the versions that answered, comma-separated, the champion's first: "
                    "see served_by)"
                ),
            ),
        }
        if online.decision:
            top["threshold"] = (
                float,
                Field(description=f"{online.decision} = {spec.prediction_column} >= threshold"),
            )
        top["request_id"] = (str, Field(description="the request's id (x-request-id)"))
        top["predictions"] = (list[prediction], Field(description=f"one per {item}, in order"))  # type: ignore[valid-type]
        return create_model("PredictResponse", **top)

    return _cached(("response", id(spec), spec.name, id(online), online), build)


def _too_many_fields(data: dict[str, Any], online: OnlineSpec) -> list[dict[str, Any]]:
    """A 422 for objects with far more keys than a request has (before pydantic lists each one)."""
    names = list(online.item_model.model_fields)
    fields = ", ".join(names)
    errors = []
    if len(data) > 8:
        errors.append(
            _error(["body"], f"{len(data)} keys; a request has {online.items} only", "too_many_fields", None)
        )
    items = data.get(online.items)
    for i, f in enumerate(items if isinstance(items, list) else ()):
        if isinstance(f, dict) and len(f) > max(16, 2 * len(names)):
            errors.append(
                _error(
                    ["body", online.items, i],
                    f"{len(f)} fields; a {online.item} has {fields}",
                    "too_many_fields",
                    None,
                )
            )
    return errors


def parse_request(
    body: bytes,
    *,
    max_batch: int = MAX_BATCH,
    max_body_bytes: int = MAX_BODY_BYTES,
    online: OnlineSpec | None = None,
) -> list[Any]:
    """Validate a ``POST /predict`` body into the spec's rows (``online.to_row`` of each item), or
    raise :class:`RequestError` (4xx). ``online``: the spec's (default: the flight-delay spec's)."""
    if online is None:
        online = _default_online()
    items, item = online.items, online.item
    if len(body) > max_body_bytes:
        raise RequestError(413, f"request body of {len(body)} bytes exceeds {max_body_bytes} bytes")
    data = parse_json(body, items)
    if isinstance(data, list):
        data = {items: data}
    elif isinstance(data, dict) and items not in data:
        data = {items: [data]}
    if not isinstance(data, dict):
        raise RequestError(
            422,
            [
                _error(
                    ["body"],
                    f'expected a {item} object, a list of {items} or {{"{items}": [...]}}',
                    "type_error",
                    shown(data),
                )
            ],
        )
    given = data.get(items)
    if isinstance(given, list) and len(given) > max_batch:
        raise RequestError(413, f"{len(given)} {items} in one request; at most {max_batch} (split the batch)")
    crowded = _too_many_fields(data, online)
    if crowded:
        raise RequestError(422, _bounded(crowded))
    try:
        req = request_model(online).model_validate(data)
    except ValidationError as exc:
        raise RequestError(
            422,
            _bounded(
                [
                    _error(["body", *e["loc"]], e["msg"], e["type"], shown(e.get("input")))
                    for e in exc.errors(include_url=False, include_context=False)
                ]
            ),
        ) from None
    validated = getattr(req, items)
    check = online.semantic_errors
    if check is not None:
        errors = [err for i, one in enumerate(validated) for err in check(["body", items, i], one)]
        if errors:
            raise RequestError(422, _bounded(errors))
    to_row = online.to_row
    return [to_row(one) for one in validated]
