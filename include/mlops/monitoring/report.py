"""The check's HTML page and JSON snapshots (Evidently's widgets, one copy of its JavaScript).

The page: a summary (counters - the model spec's performance metric, and a classifier's ROC-AUC and
calibration -, the check's window, samples, thresholds, breaches and notes), a classifier's
calibration curve against the holdout's, then Evidently's feature drift, prediction drift and
performance reports. The JSON (``drift.json``) holds the summary and the snapshots' metrics.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from mlops.monitoring.statistics import CheckResult

SECTIONS = (
    ("Feature drift (reference: the champion's training window)", "drift_snapshot"),
    ("Prediction drift (reference: the champion's holdout predictions)", "prediction_snapshot"),
    ("Performance on labelled rows (reference: the holdout)", "performance_snapshot"),
)


def render_html(result: CheckResult, context: Mapping[str, Any]) -> str:
    """One page: the check's summary and thresholds, calibration, then Evidently's drift and
    performance reports (a single copy of Evidently's JavaScript)."""
    from evidently.core.metric_types import render_widgets
    from evidently.legacy.renderers.html_widgets import group_widget

    summary = result.summary
    widgets = [_counters(summary, context), _check_table(summary, context)]
    plot = _calibration_plot(summary.get("calibration_bins"), summary.get("calibration_bins_reference"))
    if plot is not None:
        widgets.append(plot)
    parts = [group_widget(title="Summary", widgets=widgets)]
    for title, attribute in SECTIONS:
        snapshot = getattr(result, attribute)
        if snapshot is not None:
            parts.append(group_widget(title=title, widgets=snapshot.to_snapshot_model().widgets))
    return render_widgets(parts, as_iframe=False)


def _text(value: Any) -> str:
    if value is None:
        return "—"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _counters(summary: Mapping[str, Any], context: Mapping[str, Any]) -> Any:
    from evidently.legacy.renderers.html_widgets import CounterData, counter

    counters = [
        CounterData("drifted features", f"{summary['n_drifted']} / {summary['n_features']}"),
        CounterData("drift share", _text(summary["drift_share"])),
        CounterData("prediction drift", _text(summary["prediction_drift"])),
    ]
    metric = summary.get("performance_metric")
    if metric and metric != "roc_auc":
        value, reference = summary.get("performance"), summary.get("performance_reference")
        counters.append(CounterData(f"{metric} (holdout)", f"{_text(value)} ({_text(reference)})"))
    if summary.get("roc_auc") is not None or metric in (None, "roc_auc"):
        roc = f"{_text(summary['roc_auc'])} ({_text(summary['roc_auc_reference'])})"
        counters.append(CounterData("ROC-AUC (holdout)", roc))
        counters.append(CounterData("calibration error", _text(summary["calibration_error"])))
    counters.append(CounterData("breached", "yes" if summary["breached"] else "no"))
    model = context.get("model_name")
    return counter(
        title=f"Drift check ds={context.get('ds')} - {model + ' ' if model else ''}champion "
        f"v{context.get('champion_version')} (trained as of {context.get('champion_as_of')})",
        counters=counters,
    )


def _check_table(summary: Mapping[str, Any], context: Mapping[str, Any]) -> Any:
    from evidently.legacy.renderers.html_widgets import table_data

    rows = [
        ["window", f"{context.get('window_start')} .. {context.get('window_end')}"],
        ["reference", f"{context.get('reference_source')}: {context.get('reference_window')}"],
        [
            "rows (sampled / total)",
            f"reference {summary['n_reference']} / {summary['n_reference_total']}, current "
            f"{summary['n_current']} / {summary['n_current_total']}, labelled {summary['n_labelled']}",
        ],
        ["sample", f"at most {summary['sample_size']} rows per side, seed {summary['seed']}"],
        ["predictions", json.dumps(context.get("predictions_source"))],
        ["thresholds", json.dumps(summary["thresholds"])],
        ["breaches", "; ".join(b["message"] for b in summary["breaches"]) or "none"],
        ["notes", "; ".join(summary["notes"]) or "—"],
    ]
    return table_data(title="Check", column_names=["", ""], data=rows)


def _calibration_plot(
    bins: Sequence[Mapping[str, Any]] | None, reference_bins: Sequence[Mapping[str, Any]] | None
) -> Any:
    """Observed rate against mean prediction per bin, current and holdout (None: no labelled rows)."""
    from evidently.legacy.renderers.html_widgets import plotly_data

    if not bins:
        return None

    def curve(points: Sequence[Mapping[str, Any]], name: str) -> dict[str, Any]:
        x = [point["mean_predicted"] for point in points]
        y = [point["observed_rate"] for point in points]
        return {"x": x, "y": y, "mode": "lines+markers", "name": name}

    traces = [curve(bins, "current")]
    if reference_bins:
        traces.append(curve(reference_bins, "reference (holdout)"))
    traces.append({"x": [0, 1], "y": [0, 1], "mode": "lines", "name": "perfect", "line": {"dash": "dash"}})
    return plotly_data(
        title="Calibration (10 quantile bins)",
        data=traces,
        layout={"xaxis": {"title": "mean predicted"}, "yaxis": {"title": "observed positive rate"}},
    )


def snapshots_json(result: CheckResult) -> dict[str, Any]:
    """The Evidently snapshots' metrics and tests (``Snapshot.dict()``)."""
    snapshots = {
        "feature_drift": result.drift_snapshot,
        "prediction_drift": result.prediction_snapshot,
        "performance": result.performance_snapshot,
    }
    return {name: snapshot.dict() if snapshot is not None else None for name, snapshot in snapshots.items()}
