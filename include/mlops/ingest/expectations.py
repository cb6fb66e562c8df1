"""The table-level Great Expectations metrics and expectations every feed's suite may use.

Why custom ones: Great Expectations spends ~8 ms of bookkeeping per expectation per batch (it
re-serializes each expectation's configuration dozens of times), whatever the data size. One
expectation per column for types, nulls and ranges made a day cost ~0.33 s CPU, most of it
overhead, so 365 days took minutes. Table-level expectations that check every column in one pass
(and report each column in ``details``) cut that several-fold:

- ``ExpectTableColumnTypesToMatch``: each column's dtype (``table.column_types`` metric);
- ``ExpectColumnNullFractionsToBeAtMost``: each column's null share (``table.column_null_counts``);
- ``ExpectColumnValuesToBeInRanges``: each numeric column's range (``table.column_range_violations``).

A feed's own semantic checks (relations between columns, the shape of a day: what GX's column-pair
and multicolumn expectations cover only as equality or ordering, and ``UnexpectedRowsExpectation``
runs SQL, not on pandas batches) are table-level too, built from two helpers here: a plain-pandas
function ``findings(frame, ...) -> {rule: finding}`` becomes a metric with :func:`findings_metric`,
and an expectation's result with :func:`findings_result` (``docs/feeds.md``, "Semantic checks";
e.g. :mod:`mlops.weather.suite`; every shipped feed's suite does).

Great Expectations is imported inside :func:`define` (the caller,
:func:`mlops.ingest.validation.custom_expectations`, quiets its loggers first and calls it once
per process: defining a class registers it with GX).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class CustomExpectations:
    """The shared expectation classes a suite's builder instantiates."""

    column_types: type
    null_fractions: type
    ranges: type


def define() -> CustomExpectations:
    """Define (and so register with GX) the shared metrics and expectations."""
    _define_column_metrics()
    column_types, null_fractions, value_ranges = _column_expectations()
    return CustomExpectations(column_types=column_types, null_fractions=null_fractions, ranges=value_ranges)


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


def findings_metric(name: str, findings: Any, value_key: str | tuple[str, ...]) -> type:
    """A table metric ``name`` whose value is ``findings(frame, <value of each value key>)`` (GX
    registers a metric provider when its class is created): how a feed's suite wraps its own
    plain-pandas checks (e.g. :mod:`mlops.weather.suite`)."""
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
    """A table-level check's result from its findings (``{rule: {"ok", "message", "unexpected_count",
    "examples", "column"?, "observed"?}}``): fails on any finding not ``ok``, each one in
    ``details.violations`` (:func:`mlops.ingest.validation.describe_findings` puts them in words)."""
    violations = {name: f for name, f in findings.items() if not f["ok"]}
    observed = {
        name: f["observed"] if "observed" in f else f["unexpected_count"] for name, f in findings.items()
    }
    return {
        "success": not violations,
        "result": {"observed_value": observed, "details": {"violations": violations}},
    }
