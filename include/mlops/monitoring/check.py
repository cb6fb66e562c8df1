"""The daily check of ``ds`` (I/O): what ``DriftCheckOperator`` runs.

The sequence for one model spec, each step in its own module: the champion and both sides
(:mod:`.frames`), the comparison (:mod:`.statistics`), the reports (:mod:`.report`, to the spec's
``{root}/reports/drift/ds=YYYY-MM-DD/``), the MLflow run (:mod:`.mlflow_runs`, the spec's
monitoring experiment), the history row (:mod:`.history`, under the spec's
:func:`mlops.monitoring.guard.guard_lock`). Returns the summary with a ``request`` block that the
drift DAG's ``request_retrain`` hands to the spec's storm guard.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from mlops import lake
from mlops.config import Settings, get_settings
from mlops.monitoring import frames, guard, history, mlflow_runs, report, statistics
from mlops.monitoring.params import window_days
from mlops.spec.model import model_spec

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mlops.monitoring.params import DriftParams
    from mlops.monitoring.statistics import CheckResult
    from mlops.spec.model import ModelSpec

#: Summary keys left out of the returned value (XCom): per-feature scores and calibration bins.
BULKY_KEYS = ("feature_scores", "calibration_bins", "calibration_bins_reference")


def check(
    ds: str,
    params: DriftParams,
    settings: Settings | None = None,
    *,
    airflow_context: Mapping[str, Any] | None = None,
    champion_version: str | None = None,
    spec: ModelSpec | str | None = None,
) -> dict[str, Any]:
    """Run the daily check of ``ds`` of the spec's champion (default: the flight-delay model): build
    both sides, compare, save reports, log to MLflow (the spec's monitoring experiment), record the
    history row. Returns the JSON-able summary (with a ``request`` block for the guard).

    Raises :class:`~mlops.monitoring.frames.NoChampion` when there is no champion,
    :class:`~mlops.monitoring.frames.NoCurrentData` when the window has no rows.
    Idempotent: a rerun replaces the reports, the MLflow run's values and the history row of ``ds``.
    """
    model = model_spec(spec)
    s = settings or get_settings()
    started = time.perf_counter()
    champion = frames.champion_info(s, champion_version, model)
    result, reference_info, current_info = compare(ds, params, champion, s, started, model)
    summary = result.summary
    context = check_context(ds, params, champion, reference_info, current_info, summary, s, model)
    document = {
        "ds": ds,
        "context": context,
        "champion": champion,
        "reference": reference_info,
        "current": current_info,
        "params": params.as_dict(),
        "summary": summary,
        "evidently": report.snapshots_json(result),
    }
    json_uri = history.report_json_file(ds, s, model)
    html = _timed(summary, "save_reports", lambda: save_reports(result, context, document, json_uri))
    context["mlflow_run_id"], context["mlflow_run_url"] = _timed(
        summary,
        "mlflow",
        lambda: mlflow_runs.log_check(
            ds, summary, context, params, html, document, s, airflow_context, model.monitoring.experiment
        ),
    )
    summary["timings"]["total_with_io"] = round(time.perf_counter() - started, 3)
    with guard.guard_lock(s, spec=model):
        history.upsert_history(history.history_row(ds, summary, context), s, model)
    return _returned(summary, context, json_uri)


def compare(
    ds: str,
    params: DriftParams,
    champion: Mapping[str, Any],
    settings: Settings,
    started: float,
    spec: ModelSpec | None = None,
) -> tuple[CheckResult, dict[str, Any], dict[str, Any]]:
    """Both sides of the check, compared (``started``: when the check began, for its timings)."""
    from mlops.models import registry

    spec = model_spec(spec)
    predict = registry.predictor(champion["version"], settings, spec.model_name)
    reference, reference_info = frames.reference_frame(champion, settings, spec)
    current, current_info = frames.current_frame(ds, params, champion, settings, predict=predict, spec=spec)
    prepared = time.perf_counter() - started
    result = statistics.run_check(
        reference,
        current,
        params,
        predict=predict,
        reference_holdout_start=champion["window"]["holdout_start"],
        timestamp=frames.check_instant(window_days(ds, params.window_days)[-1]),
        totals={"reference": len(reference), "current": current_info["rows_total"]},
        spec=spec,
    )
    result.summary["timings"]["prepare_frames"] = round(prepared, 3)
    return result, reference_info, current_info


def check_context(
    ds: str,
    params: DriftParams,
    champion: Mapping[str, Any],
    reference_info: Mapping[str, Any],
    current_info: Mapping[str, Any],
    summary: Mapping[str, Any],
    settings: Settings,
    spec: ModelSpec | None = None,
) -> dict[str, Any]:
    """What the check was about: the model, the day, the window, the champion, where each side
    came from."""
    spec = model_spec(spec)
    days = window_days(ds, params.window_days)
    return {
        "spec": spec.ref,
        "model_name": spec.model_name,
        "ds": ds,
        "window_start": days[0],
        "window_end": days[-1],
        "champion_version": champion["version"],
        "champion_as_of": champion["as_of"],
        "reference_source": reference_info["source"],
        "reference_window": reference_info["window"],
        "predictions_source": current_info["predictions_source"],
        "data_version": frames.data_version(days, settings, spec),
        "signature": guard.drift_signature(champion["version"], summary),
        "report_uri": history.report_file(ds, settings, spec),
    }


def save_reports(
    result: CheckResult, context: Mapping[str, Any], document: Mapping[str, Any], json_uri: str
) -> str:
    """Write the day's ``report.html`` (at ``context["report_uri"]``) and ``drift.json``; returns the
    HTML (logged to MLflow too)."""
    html = report.render_html(result, context)
    lake.write_text(context["report_uri"], html)
    lake.write_text(json_uri, json.dumps(document, indent=1, default=str))
    return html


def _timed(summary: dict[str, Any], name: str, step: Any) -> Any:
    started = time.perf_counter()
    out = step()
    summary["timings"][name] = round(time.perf_counter() - started, 3)
    return out


def _returned(summary: Mapping[str, Any], context: Mapping[str, Any], json_uri: str) -> dict[str, Any]:
    """The XCom: the summary without its bulky parts, the context, and the guard's ``request``."""
    return {
        **{key: value for key, value in summary.items() if key not in BULKY_KEYS},
        "context": context,
        "json_uri": json_uri,
        "request": {
            **context,
            "breached": summary["breached"],
            "breaches": summary["breaches"],
            "drifted_features": summary["drifted_features"],
            "reason": "; ".join(b["message"] for b in summary["breaches"]),
        },
    }
