"""The flights suite's custom Great Expectations metrics and expectations (table-level).

Why custom ones: Great Expectations spends ~8 ms of bookkeeping per expectation per batch (it
re-serializes each expectation's configuration dozens of times), whatever the data size. One
expectation per column for types, nulls and ranges made a day cost ~0.33 s CPU, most of it
overhead, so 365 days took minutes. Table-level expectations that check every column in one pass
(and report each column in ``details``) cut that several-fold:

- ``ExpectTableColumnTypesToMatch``: each column's dtype (``table.column_types`` metric);
- ``ExpectColumnNullFractionsToBeAtMost``: each column's null share (``table.column_null_counts``);
- ``ExpectColumnValuesToBeInRanges``: each numeric column's range (``table.column_range_violations``);
- ``ExpectDestToBeKnownAirport``: ``ExpectColumnValuesToBeInSet`` with the airport list as the
  class default (GX's documented way to customize an expectation): GX copies non-default
  arguments on every one of those serializations, and 1,400 values made this check alone cost
  more than the rest of the suite.

The semantic checks (:mod:`mlops.ingest.semantics`) are table-level for the same reason (with the
ranges, which they leave to the range check, as a class default), and because most of them relate
several columns, which GX's column-pair and multicolumn expectations cover only as equality or
ordering (``UnexpectedRowsExpectation`` runs SQL, not on pandas batches):

- ``ExpectClockFieldsToBeTimesOfDay``: every ``hhmm`` field is a time of day;
- ``ExpectColumnRelationsToHold``: the relations between columns a real flight satisfies;
- ``ExpectDayProfileToBeNormal``: the shape of a whole day (off when ``whole_day`` is false, i.e.
  the day is known to be partial, and when the volume check already fails).

Great Expectations is imported inside :func:`define` (the caller,
:func:`mlops.ingest.validation.custom_expectations`, quiets its loggers first and calls it once
per process: defining a class registers it with GX). The suite's values (ranges, airports) are
passed in, so this module depends on :mod:`mlops.ingest.semantics` only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlops.ingest import semantics

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class CustomExpectations:
    """The expectation classes :func:`mlops.ingest.validation.build_suite` instantiates."""

    column_types: type
    null_fractions: type
    ranges: type
    known_dest: type
    clock: type
    consistency: type
    profile: type


def define(ranges: dict[str, list[float]], airports: list[str]) -> CustomExpectations:
    """Define (and so register with GX) the metrics and expectations; ``ranges`` is the range check's
    argument (a class default of the semantic ones), ``airports`` the known destinations."""
    _define_column_metrics()
    _define_semantic_metrics()
    column_types, null_fractions, value_ranges = _column_expectations()
    clock, consistency, profile = _semantic_expectations(ranges)
    return CustomExpectations(
        column_types=column_types,
        null_fractions=null_fractions,
        ranges=value_ranges,
        known_dest=_known_dest_expectation(airports),
        clock=clock,
        consistency=consistency,
        profile=profile,
    )


def _table(execution_engine: Any, domain_kwargs: dict[str, Any]) -> pd.DataFrame:
    """The batch's frame (a table-domain metric's input)."""
    from great_expectations.core.metric_domain_types import MetricDomainTypes

    frame, _, _ = execution_engine.get_compute_domain(
        domain_kwargs=domain_kwargs, domain_type=MetricDomainTypes.TABLE
    )
    return frame


def _range_violations(frame: pd.DataFrame, ranges: dict[str, list[float]]) -> dict[str, dict[str, Any]]:
    """Per numeric column of ``ranges``: rows outside ``[low, high]`` (count, a few values)."""
    import pandas as pd

    out: dict[str, dict[str, Any]] = {}
    for column, (low, high) in ranges.items():
        if column not in frame.columns:
            continue
        values = frame[column]
        if values.dropna().empty:
            continue  # no values (a header-only batch parses every column as text): nothing out of range
        if not pd.api.types.is_numeric_dtype(values):
            out[column] = {"error": f"not numeric ({values.dtype})"}
            continue
        bad = values[(values < low) | (values > high)]
        out[column] = {
            "unexpected_count": int(bad.size),
            "partial_unexpected_list": bad.drop_duplicates().head(3).tolist(),
        }
    return out


def _define_column_metrics() -> None:
    """``table.column_null_counts`` and ``table.column_range_violations`` (every column at once)."""
    from great_expectations.execution_engine import PandasExecutionEngine
    from great_expectations.expectations.metrics.metric_provider import metric_value
    from great_expectations.expectations.metrics.table_metric_provider import TableMetricProvider

    class TableColumnNullCounts(TableMetricProvider):
        metric_name = "table.column_null_counts"

        @metric_value(engine=PandasExecutionEngine)
        def _pandas(
            cls, execution_engine, metric_domain_kwargs, metric_value_kwargs, metrics, runtime_configuration
        ):  # type: ignore[no-untyped-def]  # noqa: E501
            frame = _table(execution_engine, metric_domain_kwargs)
            return {str(c): int(n) for c, n in frame.isna().sum().items()}

    class TableColumnRangeViolations(TableMetricProvider):
        metric_name = "table.column_range_violations"
        value_keys = ("ranges",)

        @metric_value(engine=PandasExecutionEngine)
        def _pandas(
            cls, execution_engine, metric_domain_kwargs, metric_value_kwargs, metrics, runtime_configuration
        ):  # type: ignore[no-untyped-def]  # noqa: E501
            frame = _table(execution_engine, metric_domain_kwargs)
            return _range_violations(frame, metric_value_kwargs["ranges"])


def _define_semantic_metrics() -> None:
    """``table.clock_findings``, ``table.consistency_findings``, ``table.profile_findings``: the
    findings of :mod:`mlops.ingest.semantics` on the batch."""
    findings_metric("table.clock_findings", semantics.clock_findings, "ranges")
    findings_metric("table.consistency_findings", semantics.consistency_findings, "ranges")
    findings_metric("table.profile_findings", semantics.profile_findings, "origins")


def findings_metric(name: str, findings: Any, value_key: str | tuple[str, ...]) -> type:
    """A table metric ``name`` whose value is ``findings(frame, <value of each value key>)`` (GX
    registers a metric provider when its class is created). Other feeds' suites define theirs with
    it too (e.g. :mod:`mlops.weather.suite`)."""
    from great_expectations.execution_engine import PandasExecutionEngine
    from great_expectations.expectations.metrics.metric_provider import metric_value
    from great_expectations.expectations.metrics.table_metric_provider import TableMetricProvider

    keys = (value_key,) if isinstance(value_key, str) else tuple(value_key)

    class TableFindings(TableMetricProvider):
        metric_name = name
        value_keys = keys

        @metric_value(engine=PandasExecutionEngine)
        def _pandas(
            cls, execution_engine, metric_domain_kwargs, metric_value_kwargs, metrics, runtime_configuration
        ):  # type: ignore[no-untyped-def]  # noqa: E501
            frame = _table(execution_engine, metric_domain_kwargs)
            return findings(frame, *(metric_value_kwargs[k] for k in keys))

    return TableFindings


def _column_expectations() -> tuple[type, type, type]:
    """Each column's type, null share and value range, checked in one expectation each."""
    return _column_types_expectation(), _null_fractions_expectation(), _ranges_expectation()


def _column_types_expectation() -> type:
    """Each listed column's pandas dtype (``table.column_types``)."""
    from great_expectations.expectations.expectation import BatchExpectation

    class ExpectTableColumnTypesToMatch(BatchExpectation):
        """Expect each listed column's pandas dtype to be one of its allowed dtype names."""

        column_types: dict[str, list[str]]

        metric_dependencies = ("table.column_types", "table.row_count")
        success_keys = ("column_types",)
        args_keys = ("column_types",)

        def _validate(self, metrics, runtime_configuration=None, execution_engine=None):  # type: ignore[no-untyped-def]
            actual = {str(c["name"]): str(c["type"]) for c in metrics["table.column_types"]}
            mismatched = {
                column: {"expected": allowed, "observed": actual[column]}
                for column, allowed in self.column_types.items()
                if column in actual and actual[column] not in allowed
            }
            if not metrics["table.row_count"]:
                mismatched = {}  # no rows, no types to infer: the volume check reports the batch
            return {
                "success": not mismatched,
                "result": {"observed_value": actual, "details": {"mismatched": mismatched}},
            }

    return ExpectTableColumnTypesToMatch


def _null_fractions_expectation() -> type:
    """Each listed column's share of nulls (``table.column_null_counts``)."""
    from great_expectations.expectations.expectation import BatchExpectation

    class ExpectColumnNullFractionsToBeAtMost(BatchExpectation):
        """Expect each listed column's share of nulls to be at most its ``max_null_fractions`` value."""

        max_null_fractions: dict[str, float]

        metric_dependencies = ("table.column_null_counts", "table.row_count")
        success_keys = ("max_null_fractions",)
        args_keys = ("max_null_fractions",)

        def _validate(self, metrics, runtime_configuration=None, execution_engine=None):  # type: ignore[no-untyped-def]
            counts, rows = metrics["table.column_null_counts"], metrics["table.row_count"]
            violations = {
                column: {"null_count": counts[column], "rows": rows, "max_null_fraction": limit}
                for column, limit in self.max_null_fractions.items()
                if column in counts and rows and counts[column] / rows > limit
            }
            return {
                "success": not violations,
                "result": {"observed_value": counts, "details": {"violations": violations}},
            }

    return ExpectColumnNullFractionsToBeAtMost


def _ranges_expectation() -> type:
    """Each listed numeric column's range (``table.column_range_violations``)."""
    from great_expectations.expectations.expectation import BatchExpectation

    class ExpectColumnValuesToBeInRanges(BatchExpectation):
        """Expect each listed numeric column's values within ``[low, high]`` (nulls ignored)."""

        ranges: dict[str, list[float]]

        metric_dependencies = ("table.column_range_violations",)
        success_keys = ("ranges",)
        args_keys = ("ranges",)

        def _validate(self, metrics, runtime_configuration=None, execution_engine=None):  # type: ignore[no-untyped-def]
            found = metrics["table.column_range_violations"]
            violations = {c: v for c, v in found.items() if v.get("error") or v.get("unexpected_count")}
            observed = {c: v.get("unexpected_count", v.get("error")) for c, v in found.items()}
            return {
                "success": not violations,
                "result": {"observed_value": observed, "details": {"violations": violations}},
            }

    return ExpectColumnValuesToBeInRanges


def findings_result(findings: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A semantic expectation's result: fails on any finding not ``ok``, each one in ``details``."""
    violations = {name: f for name, f in findings.items() if not f["ok"]}
    observed = {
        name: f["observed"] if "observed" in f else f["unexpected_count"] for name, f in findings.items()
    }
    return {
        "success": not violations,
        "result": {"observed_value": observed, "details": {"violations": violations}},
    }


def _semantic_expectations(default_ranges: dict[str, list[float]]) -> tuple[type, type, type]:
    """Clock fields, column relations, a whole day's profile (:mod:`mlops.ingest.semantics`)."""
    from great_expectations.expectations.expectation import BatchExpectation

    class ExpectClockFieldsToBeTimesOfDay(BatchExpectation):
        """Expect every clock field to be a time of day ``hhmm`` (values outside ``ranges`` excepted)."""

        ranges: dict[str, list[float]] = default_ranges  # a class default: see the module docstring

        metric_dependencies = ("table.clock_findings",)
        success_keys = ("ranges",)
        args_keys = ("ranges",)

        def _validate(self, metrics, runtime_configuration=None, execution_engine=None):  # type: ignore[no-untyped-def]
            return findings_result(metrics["table.clock_findings"])

    class ExpectColumnRelationsToHold(BatchExpectation):
        """Expect the relations between a flight's columns to hold (see :mod:`mlops.ingest.semantics`)."""

        ranges: dict[str, list[float]] = default_ranges  # a class default: see the module docstring

        metric_dependencies = ("table.consistency_findings",)
        success_keys = ("ranges",)
        args_keys = ("ranges",)

        def _validate(self, metrics, runtime_configuration=None, execution_engine=None):  # type: ignore[no-untyped-def]
            return findings_result(metrics["table.consistency_findings"])

    return ExpectClockFieldsToBeTimesOfDay, ExpectColumnRelationsToHold, _profile_expectation()


def _profile_expectation() -> type:
    """A whole day's shape (not evaluated for a partial day or one the volume check rejects)."""
    from great_expectations.expectations.expectation import BatchExpectation

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
            return findings_result(metrics["table.profile_findings"])

    return ExpectDayProfileToBeNormal


def _known_dest_expectation(airports: list[str]) -> type:
    """``ExpectColumnValuesToBeInSet`` on ``dest`` with ``airports`` as the class default."""
    import great_expectations as gx

    class ExpectDestToBeKnownAirport(gx.expectations.ExpectColumnValuesToBeInSet):
        """Expect ``dest`` to be a reference airport or a documented supplementary one."""

        column: str = "dest"
        value_set: list[str] = airports

    return ExpectDestToBeKnownAirport
