"""The OpenAPI description of the prediction service (what ``/docs`` and ``/openapi.json`` show).

Pure data for :mod:`mlops.serving.app`: :func:`predict_route` is the ``POST /predict`` route's
documentation (headers, error statuses, the three accepted body shapes), :func:`install` replaces
the app's generated schema with one that also carries the request/response models
(:func:`component_schemas`), the batch limit included.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlops.serving.schemas import EXAMPLE_FLIGHT, ErrorResponse, Flight, PredictRequest

if TYPE_CHECKING:
    from fastapi import FastAPI

#: ``POST /predict``'s error statuses and what each means.
PREDICT_ERRORS: dict[int, str] = {
    400: "the body is not JSON (or nests deeper than 200 levels)",
    408: "the body did not arrive whole within body_timeout_seconds (connection closed)",
    413: "too many flights (over max_batch), or the body is over max_body_bytes "
    "(the connection is closed: the rest of the body is not read)",
    415: "the body is not declared application/json",
    422: "invalid flights: each error names the flight, the field and why (at most "
    "50 errors); a well-formed flight can still be refused for its meaning: types "
    "unknown_carrier, unknown_airport, invalid_route, invalid_departure",
    500: "internal error while scoring (logged server side, with the request id)",
    503: "no model or no features loaded yet (see /health)",
}

_PREDICT_HEADERS: dict[str, Any] = {
    "x-model-version": {
        "description": "the version that scored",
        "schema": {"type": "string"},
    },
    "x-request-id": {
        "description": "the client's x-request-id when it is 1-128 ASCII letters, digits "
        "and ._:- (else a generated id); also in the body and the prediction log",
        "schema": {"type": "string"},
    },
}


def error_responses(statuses: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """FastAPI ``responses`` for error statuses, each with the ``ErrorResponse`` body."""
    ref = {"$ref": "#/components/schemas/ErrorResponse"}
    return {
        k: {"description": v, "content": {"application/json": {"schema": ref}}} for k, v in statuses.items()
    }


def predict_route(max_batch: int) -> dict[str, Any]:
    """The ``responses`` and ``openapi_extra`` arguments of the ``POST /predict`` route."""
    one_of = [
        {"$ref": "#/components/schemas/PredictRequest"},
        {"$ref": "#/components/schemas/Flight"},
        {
            "type": "array",
            "items": {"$ref": "#/components/schemas/Flight"},
            "minItems": 1,
            "maxItems": max_batch,
        },
    ]
    body = {"schema": {"oneOf": one_of}, "example": {"flights": [EXAMPLE_FLIGHT]}}
    return {
        "responses": {200: {"headers": _PREDICT_HEADERS}, **error_responses(PREDICT_ERRORS)},
        "openapi_extra": {"requestBody": {"required": True, "content": {"application/json": body}}},
    }


def component_schemas(max_batch: int) -> dict[str, Any]:
    """The request, flight and error models as OpenAPI components (``maxItems`` = ``max_batch``)."""
    schema = PredictRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = schema.pop("$defs", {})
    schema["properties"]["flights"]["maxItems"] = max_batch
    errors = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
    return {
        **defs,
        **errors.pop("$defs", {}),
        "PredictRequest": schema,
        "Flight": Flight.model_json_schema(),
        "ErrorResponse": errors,
    }


def install(app: FastAPI, max_batch: int) -> None:
    """Make ``app.openapi()`` the generated schema plus :func:`component_schemas` (built once)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        from fastapi.openapi.utils import get_openapi

        schema = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            description=app.description,
            routes=app.routes,
        )
        schema.setdefault("components", {}).setdefault("schemas", {}).update(component_schemas(max_batch))
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
