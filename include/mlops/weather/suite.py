"""The weather feed's Great Expectations suite (``weather_raw_v1``): one day's hourly export.

Checks, in the order failures are reported (:data:`CHECK_ORDER`):

- **schema**: the exact column set (:data:`mlops.weather.feed.RAW_COLUMNS`) and each column's type;
- **partition**: every row is dated the partition day (``year``/``month``/``day``) and its
  ``time_hour`` is one of that local day's hours, in UTC;
- **domains**: ``origin`` is one of EWR, JFK, LGA;
- **keys**: one observation per airport and hour (``origin``, ``time_hour``);
- **coverage**: each airport reports at least :data:`MIN_HOURS_FRACTION` of the day's hours
  (2013's worst: 19 of 24; a station that stops reporting for a quarter of the day, or an airport
  missing altogether, is a broken delivery);
- **nulls**: identifiers, precipitation and visibility are never null; temperature, dew point,
  humidity and wind speed at most 25% (2013's worst day: 1.6%), wind direction at most 50% (calm
  winds have none; worst 11%), pressure at most 75% (worst 58%), gusts are recorded only when
  there are gusts;
- **ranges**: physical ranges of each measurement (:data:`RANGES`: humidity 0-100 %, wind
  0-100 mph, pressure 900-1100 mb, visibility 0-10 miles...);
- **consistency**: the dew point is never above the air temperature (by more than
  :data:`DEWPOINT_TOLERANCE_F`, rounding).

The real 2013 data fails it once: EWR reported a wind speed of 1048 mph on 2013-02-12 at 03:00,
so that day is quarantined (``tests/unit/test_weather.py`` holds the whole year to this).

Types, nulls and ranges are the shared table-level expectations
(:func:`mlops.ingest.validation.custom_expectations`); coverage and consistency are one
table-level expectation of this module (:func:`weather_findings`, through the semantic checks hook of
``docs/feeds.md``).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from mlops.weather.feed import ORIGINS, RAW_COLUMNS

if TYPE_CHECKING:
    import pandas as pd

    from mlops.ingest.validation import Failure, Suite

SUITE_NAME = "weather_raw_v1"

CHECK_ORDER: tuple[str, ...] = (
    "file",
    "schema",
    "partition",
    "domains",
    "keys",
    "coverage",
    "nulls",
    "ranges",
    "consistency",
)

#: Share of the day's local hours each airport must report.
MIN_HOURS_FRACTION = 0.75
#: Degrees F a dew point may exceed the temperature by (the export rounds both).
DEWPOINT_TOLERANCE_F = 0.5

NEVER_NULL: tuple[str, ...] = ("origin", "year", "month", "day", "hour", "time_hour", "precip", "visib")
MAX_NULL_FRACTIONS: dict[str, float] = {
    **dict.fromkeys(NEVER_NULL, 0.0),
    "temp": 0.25,
    "dewp": 0.25,
    "humid": 0.25,
    "wind_speed": 0.25,
    "wind_dir": 0.5,
    "pressure": 0.75,
}

#: Inclusive physical ranges (2013: temp 10.9..100.0 F, wind 0..42 mph but for the one 1048 mph
#: reading, pressure 983.8..1042.1 mb, precipitation 0..1.21 in).
RANGES: dict[str, tuple[float, float]] = {
    "hour": (0, 23),
    "temp": (-40, 130),
    "dewp": (-60, 90),
    "humid": (0, 100),
    "wind_dir": (0, 360),
    "wind_speed": (0, 100),
    "wind_gust": (0, 150),
    "precip": (0, 5),
    "pressure": (900, 1100),
    "visib": (0, 10),
}


def _finding(
    ok: bool, message: str, count: int | None, examples: list[str], column: str | None
) -> dict[str, Any]:
    return {"ok": ok, "message": message, "unexpected_count": count, "examples": examples, "column": column}


def weather_findings(frame: pd.DataFrame, origins: list[str], hours: list[str]) -> dict[str, dict[str, Any]]:
    """Coverage per airport (``hours``: the day's UTC hours) and the dew point's consistency."""
    import pandas as pd

    out: dict[str, dict[str, Any]] = {}
    if not {"origin", "time_hour"} <= set(frame.columns):
        return out  # the schema check reports the missing columns
    wanted = set(hours)
    minimum = int(len(hours) * MIN_HOURS_FRACTION + 0.999)
    observed = frame[frame["time_hour"].astype("string").isin(wanted)]
    for origin in origins:
        have = set(observed.loc[observed["origin"] == origin, "time_hour"].astype(str))
        missing = sorted(wanted - have)
        ok = len(have) >= minimum
        message = (
            f"{origin} reported {len(have)} of the day's {len(hours)} hours (at least {minimum} expected)"
            + (f"; missing e.g. {', '.join(missing[:3])}" if missing else "")
        )
        out[f"coverage_{origin}"] = _finding(ok, message, len(missing), missing[:3], "origin")
    if {"temp", "dewp"} <= set(frame.columns) and all(
        pd.api.types.is_numeric_dtype(frame[c]) for c in ("temp", "dewp")
    ):
        bad = frame[frame["dewp"] > frame["temp"] + DEWPOINT_TOLERANCE_F]
        examples = [
            f"{r.origin} {r.time_hour}: dewp {r.dewp:g} > temp {r.temp:g}" for r in bad.head(3).itertuples()
        ]
        n = len(bad)
        message = f"{n} row{'s' if n != 1 else ''} with a dew point above the air temperature" + (
            f" (e.g. {'; '.join(examples)}): a sensor offset or a unit change?" if n else ""
        )
        out["dewpoint"] = _finding(not n, message, n, examples, "dewp")
    return out


@functools.cache
def _findings_expectation() -> type:
    """``ExpectWeatherDayToBeComplete`` (and its metric), defined once per process."""
    from great_expectations.expectations.expectation import BatchExpectation

    from mlops.ingest import expectations

    expectations.findings_metric("table.weather_findings", weather_findings, ("origins", "hours"))

    class ExpectWeatherDayToBeComplete(BatchExpectation):
        """Expect every airport to report most of the day's hours, and dew points not above temperatures."""

        origins: list[str]
        hours: Any  # the day's UTC hours, or its $PARAMETER

        metric_dependencies = ("table.weather_findings",)
        success_keys = ("origins", "hours")
        args_keys = ("origins",)

        def _validate(self, metrics, runtime_configuration=None, execution_engine=None):  # type: ignore[no-untyped-def]
            return expectations.findings_result(metrics["table.weather_findings"])

    return ExpectWeatherDayToBeComplete


def _ranges() -> dict[str, list[float]]:
    return {c: [float(lo), float(hi)] for c, (lo, hi) in RANGES.items()}


def build_suite(gx: Any = None) -> Any:
    """The ``weather_raw_v1`` expectation suite (day-specific values are ``$PARAMETER``s)."""
    from mlops.ingest import validation

    gx = gx or validation.import_gx()
    gxe = gx.expectations
    custom = validation.custom_expectations()
    complete = _findings_expectation()
    suite = gx.ExpectationSuite(name=SUITE_NAME)

    def add(expectation: Any, check: str, **meta: Any) -> None:
        expectation.meta = {"check": check, **meta}
        suite.add_expectation(expectation)

    add(gxe.ExpectTableColumnsToMatchSet(column_set=list(RAW_COLUMNS), exact_match=True), "schema")
    add(custom.column_types(column_types=validation.accepted_dtypes(RAW_COLUMNS)), "schema")
    for column in ("year", "month", "day", "time_hour"):
        add(gxe.ExpectColumnValuesToBeInSet(column=column, value_set={"$PARAMETER": column}), "partition")
    add(
        gxe.ExpectColumnValuesToBeInSet(column="origin", value_set=list(ORIGINS)),
        "domains",
        domain="New York's airports " + "/".join(ORIGINS),
    )
    add(gxe.ExpectCompoundColumnsToBeUnique(column_list=["origin", "time_hour"]), "keys")
    add(complete(origins=list(ORIGINS), hours={"$PARAMETER": "time_hour"}), "coverage")
    add(
        custom.null_fractions(max_null_fractions=MAX_NULL_FRACTIONS),
        "nulls",
        nulls_reason="a station's missing readings",
    )
    add(custom.ranges(ranges=_ranges()), "ranges")
    return suite


def parameters(ds: str, allow_partial: bool = False) -> dict[str, Any]:
    """The per-day values of the suite's ``$PARAMETER`` placeholders (a weather day is never partial:
    ``allow_partial`` is accepted for the operator's sake and changes nothing)."""
    import datetime as dt

    from mlops.ingest.validation import day_hours_utc

    day = dt.date.fromisoformat(ds)
    return {"year": [day.year], "month": [day.month], "day": [day.day], "time_hour": day_hours_utc(ds)}


def _describe_findings(failed: Any) -> list[Failure]:
    """Each failed finding, in its own words (coverage and consistency share one expectation)."""
    from mlops.ingest.validation import Failure

    return [
        Failure(
            "coverage" if name.startswith("coverage_") else "consistency",
            failed.expectation,
            v.get("column"),
            v["message"],
            v.get("unexpected_count"),
            tuple(v["examples"]),
        )
        for name, v in sorted((failed.details.get("violations") or {}).items())
    ]


def _describe_keys(failed: Any) -> list[Failure]:
    examples = ", ".join(
        " ".join(str(x) for x in e.values()) if isinstance(e, dict) else repr(e) for e in failed.examples
    )
    text = f"{failed.count or 0} rows repeat an airport's hour (origin, time_hour)" + (
        f" (e.g. {examples})" if examples else ""
    )
    return [failed.failure(None, text, failed.count, tuple(failed.examples))]


def weather_suite() -> Suite:
    """The weather feed's :class:`mlops.ingest.validation.Suite`."""
    from mlops.ingest.validation import Suite

    return Suite(
        name=SUITE_NAME,
        title="Weather",
        raw_columns=RAW_COLUMNS,
        build=build_suite,
        parameters=parameters,
        check_order=CHECK_ORDER,
        describers={
            "expect_weather_day_to_be_complete": _describe_findings,
            "expect_compound_columns_to_be_unique": _describe_keys,
        },
    )
