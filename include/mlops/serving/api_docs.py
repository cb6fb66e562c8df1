"""The OpenAPI description of the prediction service (what ``/docs`` and ``/openapi.json`` show).

Pure data for :mod:`mlops.serving.app`, from the served model's spec (its
:class:`mlops.serving.online.OnlineSpec`): :func:`predict_route` is the ``POST /predict`` route's
documentation (headers, error statuses, the three accepted body shapes), :func:`install` replaces
the app's generated schema with one that also carries the spec's request/response models
(:func:`component_schemas`: the item's fields are the spec's ``request_fields``), the batch limit
included.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlops.serving.schemas import ErrorResponse, request_model

if TYPE_CHECKING:
    from fastapi import FastAPI

    from mlops.serving.online import OnlineSpec


def predict_errors(online: OnlineSpec) -> dict[int, str]:
    """``POST /predict``'s error statuses and what each means."""
    items, item = online.items, online.item
    semantic = ""
    if online.semantic_error_types:
        semantic = f"; a well-formed {item} can still be refused for its meaning: types " + ", ".join(
            sorted(online.semantic_error_types)
        )
    return {
        400: "the body is not JSON (or nests deeper than 200 levels)",
        408: "the body did not arrive whole within body_timeout_seconds (connection closed)",
        413: f"too many {items} (over max_batch), or the body is over max_body_bytes "
        "(the connection is closed: the rest of the body is not read)",
        415: "the body is not declared application/json",
        422: f"invalid {items}: each error names the {item}, the field and why (at most 50 errors; "
        f"a missing field is type missing){semantic}",
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


def predict_route(max_batch: int, online: OnlineSpec) -> dict[str, Any]:
    """The ``responses`` and ``openapi_extra`` arguments of the ``POST /predict`` route."""
    item_ref = f"#/components/schemas/{online.item_model.__name__}"
    one_of = [
        {"$ref": "#/components/schemas/PredictRequest"},
        {"$ref": item_ref},
        {"type": "array", "items": {"$ref": item_ref}, "minItems": 1, "maxItems": max_batch},
    ]
    body: dict[str, Any] = {"schema": {"oneOf": one_of}}
    if online.example:
        body["example"] = {online.items: [dict(online.example)]}
    return {
        "responses": {200: {"headers": _PREDICT_HEADERS}, **error_responses(predict_errors(online))},
        "openapi_extra": {"requestBody": {"required": True, "content": {"application/json": body}}},
    }


def component_schemas(max_batch: int, online: OnlineSpec) -> dict[str, Any]:
    """The request, item and error models as OpenAPI components (``maxItems`` = ``max_batch``)."""
    schema = request_model(online).model_json_schema(ref_template="#/components/schemas/{model}")
    defs = schema.pop("$defs", {})
    schema["properties"][online.items]["maxItems"] = max_batch
    errors = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
    return {
        **defs,
        **errors.pop("$defs", {}),
        "PredictRequest": schema,
        online.item_model.__name__: online.item_model.model_json_schema(),
        "ErrorResponse": errors,
    }


def install(app: FastAPI, max_batch: int, online: OnlineSpec) -> None:
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
        components = component_schemas(max_batch, online)
        schema.setdefault("components", {}).setdefault("schemas", {}).update(components)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
