"""Validation of a feed's raw daily export: the suite runner, the outcome and the reports.

A feed's suite is a :class:`Suite` (its feed spec names the function that returns it,
:attr:`mlops.spec.feed.FeedSpec.suite`): the Great Expectations suite builder, the per-day
parameters, the order its checks are reported in and how its own expectations' failures are put
in words (``describers``: the semantic checks hook, ``docs/feeds.md``). :class:`SuiteValidator`
runs any suite; :class:`ValidationOutcome` turns the GX result into messages and renders the JSON
and HTML reports. Nothing here knows a feed: each shipped feed's suite lives in its spec package
(the feeds of :data:`mlops.spec.feed.FEEDS`, e.g. :func:`mlops.weather.suite.weather_suite`).

What every suite may use from here: the table-level expectations of types, nulls and ranges
(:func:`custom_expectations`, see :mod:`mlops.ingest.expectations` for why they are table-level:
GX's per-expectation overhead), :func:`accepted_dtypes`, :func:`day_hours_utc`, and the sentences
of the shared expectations (:data:`_DESCRIBERS`: column set, types, nulls, ranges, value sets,
regexes, compound keys, and the findings of a table-level check, :func:`describe_findings`).

A suite is built once per process and parameterized per day with GX expectation parameters
(``$PARAMETER``), so validating many days reuses one ephemeral context, one suite and one batch
definition (:func:`default_validator`). :class:`ValidationOutcome` turns the GX result into
messages that name the failed check and example values (the ingest step adds the partition and the
next step), and renders the JSON and HTML reports.

Great Expectations is imported lazily by :func:`import_gx`, which first quiets its loggers (its
import logs hundreds of "Skipping registering function" lines at INFO).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import html
import importlib
import json
import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlops.config import QUIET_LOGGERS
from mlops.ingest import expectations
from mlops.schema import TIMEZONE

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    import pandas as pd

log = logging.getLogger(__name__)

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


@functools.cache
def custom_expectations() -> expectations.CustomExpectations:
    """The table-level expectations every suite may use (types, nulls, ranges), defined once per
    process (GX registers them; :mod:`mlops.ingest.expectations` says why they are table-level)."""
    import_gx()
    return expectations.define()


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


@dataclass(frozen=True)
class Failure:
    """One failed check, in words."""

    check: str
    expectation: str
    column: str | None
    message: str
    unexpected_count: int | None = None
    examples: tuple[Any, ...] = ()

    def with_message(self, message: str) -> Failure:
        """The same failure, said differently (a suite's describer adding what to do)."""
        return dataclasses.replace(self, message=message)


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
    #: The suite's name and the feed's title (:class:`Suite`); the default feed's when not given.
    suite: str = ""
    title: str = ""

    def __post_init__(self) -> None:
        if not self.suite or not self.title:
            default = _default_suite()
            self.suite, self.title = self.suite or default.name, self.title or default.title

    @classmethod
    def unreadable(cls, ds: str, reason: str, suite: str = "", title: str = "") -> ValidationOutcome:
        """An outcome for a batch that could not even be parsed (empty, truncated, corrupt); ``suite``
        and ``title`` are the feed's suite name and title (the default feed's when not given)."""
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

        self.definition = suite or _default_suite()
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


def _default_suite() -> Suite:
    """The suite of the default feed (:func:`mlops.spec.feed.feed_spec` with no argument)."""
    from mlops.spec.feed import feed_spec

    return feed_spec().build_suite()


def default_validator(suite: str | None = None) -> SuiteValidator:
    """The process-wide validator of the suite ``module:function`` returns (built on first use: a
    GX context and the suite); ``None`` is the default feed's suite (:func:`mlops.spec.feed.feed_spec`)."""
    if suite is None:
        from mlops.spec.feed import feed_spec

        suite = feed_spec().suite
    return _validator(suite)


@functools.cache
def _validator(suite: str) -> SuiteValidator:
    from mlops.spec import resolve

    return SuiteValidator(resolve(suite)())


def validate(frame: pd.DataFrame, ds: str, allow_partial: bool = False) -> ValidationOutcome:
    """Validate one day's raw export of the default feed with the process-wide validator."""
    return default_validator().validate(frame, ds, allow_partial=allow_partial)


def __getattr__(name: str) -> Any:
    """Names this module held before the feed specs (the default feed's suite constants and
    helpers, e.g. ``NYC_ORIGINS``, ``known_airports``, ``NORMAL_ROWS_BY_WEEKDAY``) live in that
    feed's suite module now; an old ``from mlops.ingest.validation import X`` is forwarded there.
    New code imports them from that module."""
    if name.startswith("__"):
        raise AttributeError(name)
    from mlops.spec.feed import feed_spec

    module = importlib.import_module(feed_spec().suite.partition(":")[0])
    try:
        return getattr(module, name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


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


def examples_text(values: list[Any]) -> str:
    """`` (e.g. 'a', 'b')`` for a failure's example values (nothing without any)."""

    def fmt(v: Any) -> str:
        if isinstance(v, dict):
            return " ".join(str(x) for x in v.values())
        return repr(v)

    return f" (e.g. {', '.join(fmt(v) for v in values)})" if values else ""


def rows_text(n: int) -> str:
    """``"1 row"``, ``"3 rows"``."""
    return f"{n} row" if n == 1 else f"{n} rows"


def _exception_message(exc: dict[str, Any]) -> str | None:
    """The first exception message of a GX result's ``exception_info`` (flat or per metric)."""
    if exc.get("raised_exception"):
        return exc.get("exception_message") or "error"
    for value in exc.values():
        if isinstance(value, dict) and (value.get("raised_exception") or value.get("exception_message")):
            return value.get("exception_message") or "error"
    return None


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
        text = f"{rows_text(n)} ({100 * n / v['rows']:.1f}%) with null {c} ({allowed})"
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
        text = (
            f"{rows_text(v['unexpected_count'])} with {c} outside [{low:g}, {high:g}]{examples_text(values)}"
        )
        out.append(failed.failure(c, text, v["unexpected_count"], tuple(values)))
    return out


def describe_findings(failed: _FailedResult) -> list[Failure]:
    """The findings of a table-level check (:func:`mlops.ingest.expectations.findings_result`:
    ``details.violations``, each with its ``message``, ``column``, ``unexpected_count`` and
    ``examples``), one failure each; a suite maps its own expectations to it in ``describers``."""
    out = []
    for v in (failed.details.get("violations") or {}).values():
        if v.get("column") in failed.reported:
            continue
        text = v["message"]
        out.append(failed.failure(v.get("column"), text, v.get("unexpected_count"), tuple(v["examples"])))
    return out


def _describe_regex(failed: _FailedResult) -> list[Failure]:
    text = (
        f"{rows_text(failed.count or 0)} with {failed.column} not matching {failed.kwargs['regex']} "
        f"({failed.meta.get('domain')}){examples_text(failed.examples)}: codes in lower case or padded?"
    )
    return [failed.failure(failed.column, text, failed.count, tuple(failed.examples))]


def describe_in_set(failed: _FailedResult) -> list[Failure]:
    if failed.check == "partition" and failed.expectation == "expect_column_values_to_be_in_set":
        allowed = f"of the partition day {failed.ds}"
    else:
        allowed = f"in {failed.meta.get('domain', 'the allowed values')}"
    text = (
        f"{rows_text(failed.count or 0)} with {failed.column} not {allowed}{examples_text(failed.examples)}"
    )
    return [failed.failure(failed.column, text, failed.count, tuple(failed.examples))]


def _describe_keys(failed: _FailedResult) -> list[Failure]:
    key = ", ".join(failed.kwargs["column_list"])
    examples = examples_text(failed.examples)
    text = f"{rows_text(failed.count or 0)} share a key ({key}) with another row{examples}"
    return [failed.failure(None, text, failed.count, tuple(failed.examples))]


def _describe_other(failed: _FailedResult) -> list[Failure]:
    text = f"{failed.expectation} failed on {failed.column or 'table'}: {failed.result}"
    return [failed.failure(failed.column, text, failed.count)]


#: How each expectation's failure is put in words (others: :func:`_describe_other`).
_DESCRIBERS: dict[str, Callable[[_FailedResult], list[Failure]]] = {
    "expect_table_columns_to_match_set": _describe_columns,
    "expect_table_column_types_to_match": _describe_types,
    "expect_column_null_fractions_to_be_at_most": _describe_nulls,
    "expect_column_values_to_be_in_ranges": _describe_ranges,
    "expect_column_values_to_match_regex": _describe_regex,
    "expect_column_values_to_be_in_set": describe_in_set,
    "expect_compound_columns_to_be_unique": _describe_keys,
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
                observed = f"{res['unexpected_count']} unexpected{examples_text(_examples(res))}"
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
