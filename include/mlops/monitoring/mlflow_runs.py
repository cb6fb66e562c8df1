"""MLflow: one run per checked day in the model spec's monitoring experiment
(``Monitoring.experiment``; a rerun updates the day's run).

The retrain request behind a training run is tagged on that run by the training DAG
(:func:`mlops.airflow.events.request_context`), not here."""

from __future__ import annotations

import json
import math
import time
from typing import TYPE_CHECKING, Any

from mlops.config import Settings, get_settings
from mlops.spec.model import model_spec

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mlops.monitoring.params import DriftParams

#: Metrics of a check, from its summary.
SUMMARY_METRICS = (
    "drift_share",
    "n_drifted",
    "prediction_drift",
    "roc_auc",
    "roc_auc_reference",
    "roc_auc_drop",
    "calibration_error",
    "calibration_gap",
    "brier",
    "n_reference",
    "n_reference_total",
    "n_current",
    "n_current_total",
    "n_labelled",
    "performance",
    "performance_reference",
    "performance_degradation",
)


def ensure_experiment(settings: Settings | None = None, name: str | None = None) -> str:
    """The id of the monitoring experiment ``name`` (a model spec's ``Monitoring.experiment``;
    default: the default spec's), created with local artifacts like training's."""
    from mlflow.exceptions import MlflowException

    from mlops.models import tracking

    name = name or model_spec().monitoring.experiment
    s = settings or get_settings()
    client = tracking.client(s)
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = None
    if not s.mlflow_tracking_uri.startswith(("http://", "https://", "databricks")):
        location = (s.home / "mlartifacts").resolve().as_uri()
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException:  # created by a concurrent check
        return client.get_experiment_by_name(name).experiment_id


def log_check(
    ds: str,
    summary: Mapping[str, Any],
    ctx: Mapping[str, Any],
    params: DriftParams,
    html: str,
    document: Mapping[str, Any],
    settings: Settings | None = None,
    airflow_context: Mapping[str, Any] | None = None,
    experiment: str | None = None,
) -> tuple[str, str]:
    """Log the check as one MLflow run per ``ds`` (a rerun updates the same run). Returns (id, url)."""
    from mlflow.entities import Metric, Param, RunTag

    from mlops.models import tracking

    s = settings or get_settings()
    client = tracking.client(s)
    experiment_id = ensure_experiment(s, experiment)
    run_id, existing = _run_of_day(client, experiment_id, ds)
    now = int(time.time() * 1000)
    metrics = [Metric(key, float(value), now, 0) for key, value in check_metrics(summary).items()]
    params_list = [Param(k, str(v)[:6000]) for k, v in params.as_dict().items() if k not in existing]
    tags = [RunTag(k, v[:5000]) for k, v in check_tags(ds, summary, ctx, airflow_context).items()]
    client.log_batch(run_id, metrics=metrics, params=params_list, tags=tags)
    _log_reports(client, run_id, html, document)
    client.set_terminated(run_id)
    return run_id, tracking.run_url(experiment_id, run_id, s)


def _run_of_day(client: Any, experiment_id: str, ds: str) -> tuple[str, set[str]]:
    """The day's run (created the first time) and the params it already has (params are immutable)."""
    found = client.search_runs(
        [experiment_id], filter_string=f"tags.`mlops.drift_ds` = '{ds}'", max_results=1
    )
    if not found:
        return client.create_run(experiment_id, run_name=f"drift ds={ds}").info.run_id, set()
    run_id = found[0].info.run_id
    return run_id, set(client.get_run(run_id).data.params)


def check_metrics(summary: Mapping[str, Any]) -> dict[str, float]:
    """The summary's numbers, per-feature drift scores and timings (missing and NaN left out)."""
    values = {
        **{key: summary.get(key) for key in SUMMARY_METRICS},
        "breached": float(bool(summary.get("breached"))),
        **{f"performance.{k}": v for k, v in (summary.get("performance_metrics") or {}).items()},
        **{f"drift.{k}": v["score"] for k, v in summary.get("feature_scores", {}).items()},
        **{f"time_{k}_s": v for k, v in summary.get("timings", {}).items()},
    }
    return {key: float(value) for key, value in values.items() if value is not None and not _nan(value)}


def check_tags(
    ds: str, summary: Mapping[str, Any], ctx: Mapping[str, Any], airflow_context: Mapping[str, Any] | None
) -> dict[str, str]:
    """The run's tags: the day, the champion, the window, the data, the report, the Airflow task."""
    return {
        "mlops.drift_ds": ds,
        "mlops.kind": "drift_check",
        "mlops.spec": str(ctx.get("spec")),
        "mlops.model_name": str(ctx.get("model_name")),
        "mlops.champion_version": str(ctx.get("champion_version")),
        "mlops.champion_as_of": str(ctx.get("champion_as_of")),
        "mlops.window": f"{ctx.get('window_start')}..{ctx.get('window_end')}",
        "mlops.reference_source": str(ctx.get("reference_source")),
        "mlops.data_version": str(ctx.get("data_version")),
        "mlops.signature": str(ctx.get("signature")),
        "mlops.report_uri": str(ctx.get("report_uri")),
        "mlops.breaches": "; ".join(b["kind"] for b in summary.get("breaches", [])) or "none",
        **{f"airflow.{k}": str(v) for k, v in (airflow_context or {}).items() if v is not None},
    }


def _log_reports(client: Any, run_id: str, html: str, document: Mapping[str, Any]) -> None:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "report.html").write_text(html)
        (Path(tmp) / "drift.json").write_text(json.dumps(document, indent=1, default=str))
        client.log_artifact(run_id, str(Path(tmp) / "report.html"), "drift")
        client.log_artifact(run_id, str(Path(tmp) / "drift.json"), "drift")


def _nan(value: Any) -> bool:
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return True
