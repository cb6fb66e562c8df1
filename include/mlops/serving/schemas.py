"""Request and response schemas of ``POST /predict``, and the validation that makes bad input a 4xx.

Input is checked in three steps, each answering with a clear error instead of reaching the model:

1. the body: at most ``max_body_bytes`` (413; the app counts the bytes as they stream in and stops
   reading at the limit), valid JSON nested at most :data:`MAX_DEPTH` deep (400; the JSON parser
   is ``pydantic_core.from_json``, which has a recursion limit: a body of ``[`` x 200,000 is a
   400, not a ``RecursionError``);
2. the size: at most ``max_batch`` flights (413), at least one (422);
3. every flight (422, FastAPI's ``{"detail": [{"loc", "msg", "type", "input"}]}`` shape, ``loc``
   naming the flight and the field, at most :data:`MAX_ERRORS` errors, long inputs shortened):
   first the structure, strictly (the fields and their JSON types: ``flight`` is a JSON integer,
   ``12`` or ``12.0`` as JSON Schema has it, never ``"12"``, ``true`` or ``12.5``; no unknown
   field; codes of ASCII letters and digits, checked before upper-casing, so ``"ﬂ"`` is not
   ``"FL"``; a scheduled departure in the documented ISO 8601 form), then, all at once, the
   meaning: a known carrier, an origin the model serves, a known destination, a departure that
   exists on the calendar (:data:`SEMANTIC_ERRORS`).

The OpenAPI schema says exactly what step 3's structure check accepts (patterns, ranges, lengths;
``schemathesis`` checks that in the tests); the meaning checks are the 422s it cannot express.

Scheduled departure: with a UTC offset (``2013-05-01T08:30:00-04:00``, ``...Z``) it is that
instant; without one (``2013-05-01T08:30``) it is New York local time, as in the schedule data
(a time skipped by the spring DST switch moves forward to 03:00, an ambiguous autumn time is
standard time, like :func:`mlops.ingest.normalize.normalize`).

``x-request-id``: kept when it is at most 128 ASCII letters, digits and ``._:-``
(:func:`request_id`), otherwise replaced by a generated id, so what the service echoes and writes
to the prediction log is bounded.
"""

from __future__ import annotations

import functools
import math
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError, from_json

from mlops.schema import TIMEZONE
from mlops.serving.online import FlightRequest

#: Defaults of the size limits (``mlops serve --max-batch``).
MAX_BATCH = 1000
MAX_BODY_BYTES = 2_000_000
#: Deepest JSON nesting the parser accepts (``pydantic_core.from_json``'s own limit; a valid body
#: is 3 deep: ``{"flights": [{...}]}``).
MAX_DEPTH = 200
#: Most errors listed in one 422 answer (the rest are counted in a last entry).
MAX_ERRORS = 50
_YEARS = (1970, 2100)

#: Error types of a flight that is well-formed (valid by the OpenAPI schema) but that the model
#: cannot score: unknown codes, a route from an airport to itself, a date that does not exist.
SEMANTIC_ERRORS = frozenset({"unknown_carrier", "unknown_airport", "invalid_route", "invalid_departure"})

# What the structure check accepts, as regular expressions (published in the OpenAPI schema with
# ^...$, matched whole here). Codes: ASCII only, any case, up to 4 spaces or tabs around.
_PAD = "[ \\t]{0,4}"
CODE_PATTERN = f"{_PAD}[A-Za-z0-9]{{2,4}}{_PAD}"
TAILNUM_PATTERN = f"{_PAD}[A-Za-z0-9]{{0,10}}{_PAD}"
#: Scheduled departure: date, ``T`` or space, hours:minutes[:seconds[.fraction]], optional offset.
DEPARTURE_PATTERN = (
    "(19[7-9][0-9]|20[0-9]{2})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[T ]"
    "([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\\.[0-9]{1,6})?)?"
    "([Zz]|[+-]([01][0-9]|2[0-3]):?[0-5][0-9])?"
)
_CODE = re.compile(f"{_PAD}([A-Za-z0-9]{{2,4}}){_PAD}")
_TAILNUM = re.compile(f"{_PAD}([A-Za-z0-9]{{0,10}}){_PAD}")
# The syntax of DEPARTURE_PATTERN with plain digit fields: the ranges get their own messages.
_DEPARTURE = re.compile(
    "[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\\.[0-9]{1,6})?)?([Zz]|[+-][0-9]{2}:?[0-9]{2})?"
)
_DEPARTURE_RANGES = re.compile(DEPARTURE_PATTERN)
_REQUEST_ID = re.compile("[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")

EXAMPLE_FLIGHT = {
    "carrier": "UA",
    "flight": 1545,
    "origin": "EWR",
    "dest": "IAH",
    "sched_dep_ts": "2013-06-12T05:15:00-04:00",
    "tailnum": "N14228",
}


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


def _ascii(field: str, value: str) -> None:
    if not value.isascii():
        raise PydanticCustomError(
            "non_ascii",
            "{field} {value} has non-ASCII characters: codes and times are ASCII (e.g. UA, EWR, N14228)",
            {"field": field, "value": shorten(value)},
        )


class Flight(BaseModel):
    """One flight to score: who flies it, from where to where, when, and with which aircraft."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [EXAMPLE_FLIGHT]})

    carrier: str = Field(
        description="IATA carrier code, e.g. UA (one of the 16 nycflights13 carriers; any case)",
        json_schema_extra={"pattern": f"^{CODE_PATTERN}$"},
    )
    flight: int = Field(ge=1, le=9999, description="flight number (a JSON integer)")
    origin: str = Field(
        description="FAA code of the departure airport: EWR, JFK or LGA",
        json_schema_extra={"pattern": f"^{CODE_PATTERN}$"},
    )
    dest: str = Field(
        description="FAA code of the destination airport",
        json_schema_extra={"pattern": f"^{CODE_PATTERN}$"},
    )
    sched_dep_ts: str = Field(
        description="scheduled departure, ISO 8601 (YYYY-MM-DDTHH:MM[:SS[.ffffff]], years 1970-2099); "
        "with an offset (…-04:00, …Z) an instant, without one New York local time",
        json_schema_extra={"pattern": f"^{DEPARTURE_PATTERN}$"},
    )
    tailnum: str | None = Field(
        default=None,
        description="aircraft tail number, e.g. N14228 (optional; empty = unknown)",
        json_schema_extra={"pattern": f"^{TAILNUM_PATTERN}$"},
    )

    @field_validator("flight", mode="before")
    @classmethod
    def _integer(cls, v: Any) -> Any:
        # A JSON integer, as JSON Schema means it: 12 or 12.0, not "12", true or 12.5.
        if isinstance(v, float) and v.is_integer():
            return int(v)
        return v

    @field_validator("carrier", "origin", "dest")
    @classmethod
    def _code(cls, v: str, info: ValidationInfo) -> str:
        _ascii(str(info.field_name), v)  # before upper(): "ﬂ".upper() is "FL"
        match = _CODE.fullmatch(v)
        if match is None:
            raise PydanticCustomError(
                "code_syntax",
                "{field} {value} is not an IATA/FAA code (2-4 ASCII letters or digits, e.g. UA, EWR)",
                {"field": str(info.field_name), "value": shorten(v)},
            )
        return match.group(1).upper()

    @field_validator("tailnum")
    @classmethod
    def _tail(cls, v: str | None) -> str | None:
        if v is None:
            return None
        _ascii("tailnum", v)
        match = _TAILNUM.fullmatch(v)
        if match is None:
            raise PydanticCustomError(
                "tailnum_syntax",
                "tailnum {value} must be up to 10 ASCII letters and digits, e.g. N14228",
                {"value": shorten(v)},
            )
        return match.group(1).upper() or None

    @field_validator("sched_dep_ts")
    @classmethod
    def _time(cls, v: str) -> str:
        parse_departure(v)  # raises a PydanticCustomError with the reason
        return v


class PredictRequest(BaseModel):
    """A batch of flights. ``POST /predict`` also accepts a single flight object or a bare list."""

    model_config = ConfigDict(
        extra="forbid", strict=True, json_schema_extra={"examples": [{"flights": [EXAMPLE_FLIGHT]}]}
    )

    flights: list[Flight] = Field(min_length=1, description="the flights to score (at most max_batch)")


class ServedBy(BaseModel):
    alias: str = Field(description="champion, or challenger for a flight in the canary share")
    version: str = Field(description="the registered version that scored this flight")


class Prediction(BaseModel):
    flight_id: str = Field(description="{ds}_{carrier}_{flight}_{origin}, as in the lake")
    sched_dep_ts: str = Field(description="scheduled departure as understood, UTC")
    delay_probability: float = Field(description="P(arrival delay >= 15 minutes)")
    delayed: bool = Field(description="delay_probability >= threshold")
    missing_feature_views: list[str] = Field(
        description="feature views with no online row for this flight (their features count as missing)"
    )
    served_by: ServedBy = Field(
        description="the model that answered for this flight (canary: sticky by flight)"
    )


class PredictResponse(BaseModel):
    model_name: str
    model_version: str = Field(
        description="the registered version that scored the flights of this request (with a canary, "
        "the versions that answered, comma-separated, the champion's first: see served_by)"
    )
    threshold: float
    request_id: str
    predictions: list[Prediction]


class ErrorItem(BaseModel):
    loc: list[str | int] = Field(description='where: ["body", "flights", <index>, <field>]')
    msg: str = Field(description="what is wrong and what is expected")
    type: str = Field(description="the error's kind, e.g. missing, int_type, code_syntax, unknown_airport")
    input: Any = Field(default=None, description="the value refused (long values shortened)")


class ErrorResponse(BaseModel):
    detail: str | list[ErrorItem] = Field(description="why the request was refused")
    request_id: str | None = Field(default=None, description="on a 500: the id to find it in the logs")


def _departure_error(kind: str, what: str, value: str) -> PydanticCustomError:
    return PydanticCustomError(kind, "sched_dep_ts {value} " + what, {"value": shorten(value)})


def parse_departure(value: str) -> datetime:
    """An ISO 8601 date-time as an aware UTC datetime (naive = New York local; see module doc).

    Raises :class:`pydantic_core.PydanticCustomError` (a ``ValueError``) naming what is wrong:
    ``non_ascii``, ``departure_syntax`` (not the documented form), ``departure_range`` (a field
    out of its range, e.g. month 13 or year 1900) or ``invalid_departure`` (a day that does not
    exist, e.g. 2013-02-30: well-formed, but not on the calendar).
    """
    if not isinstance(value, str):
        raise _departure_error("departure_syntax", "is not a string", str(value))
    _ascii("sched_dep_ts", value)
    if _DEPARTURE_RANGES.fullmatch(value) is None:  # the documented form; else say what is off
        if _DEPARTURE.fullmatch(value) is None:
            raise _departure_error(
                "departure_syntax",
                "is not an ISO 8601 date-time with a time of day, e.g. 2013-05-01T08:30:00-04:00, "
                "2013-05-01T12:30:00Z or 2013-05-01T08:30 (New York time)",
                value,
            )
        raise _departure_error(
            "departure_range",
            f"is not a valid ISO 8601 date-time: a field is outside its range (years "
            f"{_YEARS[0]}..{_YEARS[1] - 1}, month 01-12, day 01-31, hours 00-23, minutes and seconds "
            "00-59, offset under 24:00)",
            value,
        )
    try:
        ts = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError as exc:
        raise _departure_error("invalid_departure", f"is not a date on the calendar ({exc})", value) from None
    if ts.tzinfo is None:
        import pandas as pd

        local = pd.Timestamp(ts).tz_localize(TIMEZONE, nonexistent="shift_forward", ambiguous=False)
        return local.tz_convert("UTC").to_pydatetime()
    return ts.astimezone(UTC)


@dataclass(frozen=True)
class Vocabulary:
    """What the model knows: carriers, origins served, airports."""

    carriers: frozenset[str]
    origins: frozenset[str]
    airports: frozenset[str]


@functools.cache
def vocabulary() -> Vocabulary:
    from mlops import reference
    from mlops.features.compute import categorical_dtypes

    cats = categorical_dtypes()
    return Vocabulary(
        carriers=frozenset(reference.carriers()) | frozenset(cats["carrier"].categories),
        origins=frozenset(cats["origin"].categories),
        airports=frozenset(reference.airports()) | frozenset(cats["dest"].categories),
    )


def _error(loc: list[Any], msg: str, kind: str, value: Any) -> dict[str, Any]:
    return {"loc": loc, "msg": msg, "type": kind, "input": value}


def _vocabulary_errors(i: int, f: Flight, vocab: Vocabulary) -> list[dict[str, Any]]:
    loc = ["body", "flights", i]
    errors = []
    if f.carrier not in vocab.carriers:
        errors.append(
            _error(
                [*loc, "carrier"],
                f"unknown carrier {f.carrier!r}: expected one of {', '.join(sorted(vocab.carriers))}",
                "unknown_carrier",
                f.carrier,
            )
        )
    if f.origin not in vocab.origins:
        known = "a known airport, but" if f.origin in vocab.airports else "not a known airport;"
        errors.append(
            _error(
                [*loc, "origin"],
                f"origin {f.origin!r} is {known} this model serves departures from "
                f"{', '.join(sorted(vocab.origins))} only",
                "unknown_airport",
                f.origin,
            )
        )
    if f.dest not in vocab.airports:
        errors.append(
            _error(
                [*loc, "dest"],
                f"dest {f.dest!r} is not a known airport (FAA code, e.g. IAH, ORD, LAX)",
                "unknown_airport",
                f.dest,
            )
        )
    elif f.dest == f.origin:
        errors.append(_error([*loc, "dest"], "dest equals origin", "invalid_route", f.dest))
    return errors


def _bounded(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if len(errors) <= MAX_ERRORS:
        return errors
    more = len(errors) - MAX_ERRORS
    return [
        *errors[:MAX_ERRORS],
        _error(["body"], f"{more} more errors not shown: fix these first", "too_many_errors", None),
    ]


def parse_json(body: bytes) -> Any:
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
                f'({reason}); a request is at most 3 deep: {{"flights": [{{...}}]}}',
            ) from None
        raise RequestError(400, f"request body is not valid JSON: {reason}") from None


def _too_many_fields(data: dict[str, Any]) -> list[dict[str, Any]]:
    """A 422 for objects with far more keys than a request has (before pydantic lists each one)."""
    fields = ", ".join(Flight.model_fields)
    errors = []
    if len(data) > 8:
        errors.append(
            _error(["body"], f"{len(data)} keys; a request has flights only", "too_many_fields", None)
        )
    flights = data.get("flights")
    for i, f in enumerate(flights if isinstance(flights, list) else ()):
        if isinstance(f, dict) and len(f) > 16:
            errors.append(
                _error(
                    ["body", "flights", i],
                    f"{len(f)} fields; a flight has {fields}",
                    "too_many_fields",
                    None,
                )
            )
    return errors


def parse_request(
    body: bytes, *, max_batch: int = MAX_BATCH, max_body_bytes: int = MAX_BODY_BYTES
) -> list[FlightRequest]:
    """Validate a ``POST /predict`` body into flights, or raise :class:`RequestError` (4xx)."""
    if len(body) > max_body_bytes:
        raise RequestError(413, f"request body of {len(body)} bytes exceeds {max_body_bytes} bytes")
    data = parse_json(body)
    if isinstance(data, list):
        data = {"flights": data}
    elif isinstance(data, dict) and "flights" not in data:
        data = {"flights": [data]}
    if not isinstance(data, dict):
        raise RequestError(
            422,
            [
                _error(
                    ["body"],
                    'expected a flight object, a list of flights or {"flights": [...]}',
                    "type_error",
                    shown(data),
                )
            ],
        )
    flights = data.get("flights")
    if isinstance(flights, list) and len(flights) > max_batch:
        raise RequestError(
            413, f"{len(flights)} flights in one request; at most {max_batch} (split the batch)"
        )
    crowded = _too_many_fields(data)
    if crowded:
        raise RequestError(422, _bounded(crowded))
    try:
        req = PredictRequest.model_validate(data)
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
    vocab = vocabulary()
    errors = [err for i, f in enumerate(req.flights) for err in _vocabulary_errors(i, f, vocab)]
    if errors:
        raise RequestError(422, _bounded(errors))
    return [
        FlightRequest(
            carrier=f.carrier,
            flight=f.flight,
            origin=f.origin,
            dest=f.dest,
            sched_dep_ts=parse_departure(f.sched_dep_ts),
            tailnum=f.tailnum,
        )
        for f in req.flights
    ]
