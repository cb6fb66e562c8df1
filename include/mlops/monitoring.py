"""Drift and performance monitoring of ``@champion``, and the storm guard of the retraining trigger.

No Airflow here: ``monitor_drift`` (and :class:`mlops.airflow.operators.drift.DriftCheckOperator`)
call these functions; the unit tests call them with small frames.

What a daily check compares
---------------------------
*Reference* - what the champion was trained on. The champion's MLflow run records its as-of date
and window (``mlops.as_of``, params ``window_days``/``holdout_days``), and ``train_model`` saved
that exact training set (features and labels, as Feast served them) at
``{lake}/training/as_of=.../<data key>/training_set.parquet`` with a manifest whose ``data_hash``
the run also carries. The check reads that file when its manifest hash matches the run's
(``reference_source = "training_set"``); otherwise it rebuilds the window from the offline store
with :func:`mlops.features.feature_store.training_frame` (``"offline_store"``). Feature drift uses the
whole window; prediction drift and the performance baseline use only the window's *holdout* days,
which the champion never fitted (its in-sample scores would be over-confident).

*Current* - the ``window_days`` local days ending with the check's day ``ds``. Rows come from
``{lake}/predictions/ds=...`` when ``batch_predict`` scored them with the champion's version
(features as scored + ``delay_probability``); other days (or rows of another version) are
rebuilt from the curated lake with point-in-time Feast features
(:func:`mlops.features.feature_store.historical_frame`) and scored with the champion in the task. The
source of each row is counted in ``predictions_source``. Labels count only when they had arrived
by the end of ``ds`` (:func:`mlops.features.compute.arrival_known_ts` <= local midnight after ``ds``),
so performance is measured on outcomes known at check time, never on later ones.

Sampling: each side is sampled to at most ``sample_size`` rows with ``seed`` (current flights
are sampled *before* their features are fetched, which bounds the Feast and scoring cost too).
Totals and sample sizes are recorded (``n_reference_total``/``n_reference``, ...).

Evidently 0.7 (``from evidently import Report``): one report with ``DataDriftPreset`` over the
monitored features (Wasserstein distance for numeric, Jensen-Shannon for categorical: fixed
methods, so a score means the same whatever the sample size) plus ``ValueDrift`` of the
prediction; a second with ``ClassificationPreset`` on the labelled current rows against the
reference holdout. Calibration (expected calibration error over 10 quantile bins, mean
prediction minus observed rate, Brier) is computed here. Both reports and a summary render into
one HTML page; the JSON holds the summary and both snapshots.

Thresholds (``DriftParams``; the DAG's Params): share of drifted features, prediction drift
score, ROC-AUC drop from the holdout baseline, expected calibration error. Any breach makes the
check ``breached``.

Storm guard
-----------
A breach becomes a ``retrain_request`` only through :func:`guarded_request`, under a lock
(``filelock`` for ``file://`` lakes; a PostgreSQL advisory lock when ``MLOPS_LOCK_URL`` or the
tracking URI is PostgreSQL: :func:`mlops.models.registry.promotion_lock`, reused with its own name). It
reads the ledger ``{lake}/reports/drift/requests/ledger.json`` and suppresses the request when:

1. the same day and data version was already decided by another run (a rerun: no duplicates);
2. the champion was trained as of a date after the window (a backfill of old days);
3. the champion was trained (promoted) less than ``cooldown_days`` before ``ds``;
4. a request was made for a day less than ``cooldown_days`` away from ``ds``;
5. the same drift signature (champion version + drifted features + breach kinds) was already
   requested: retraining on it again would not change the outcome until the champion changes;
6. a ``train_model`` run is queued or running (counted by the caller through the Task SDK).

Cooldowns count days of *data time* (``ds``), so backfills replay them faithfully. Every
decision, requested or suppressed with its reasons, is written to the ledger atomically before
the lock is released; a retry of the same Airflow run re-emits its own request.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from mlops import lake
from mlops.config import CHAMPION, MODEL_NAME, Settings, get_settings

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

    import numpy as np
    import pandas as pd

log = logging.getLogger(__name__)

#: MLflow experiment of the checks (training runs live in ``flight-delay``).
EXPERIMENT = "flight-delay-monitoring"
LABEL = "is_delayed"
PREDICTION = "prediction"
META_COLUMNS: tuple[str, ...] = ("flight_id", "sched_dep_ts", "ds")
#: Name under which :func:`mlops.models.registry.promotion_lock` keys the guard's lock.
GUARD_LOCK_NAME = f"{MODEL_NAME}.retrain-guard"
LOCK_TIMEOUT_SECONDS = 600
TRAIN_DAG_ID = "train_model"

HISTORY_COLUMNS: tuple[str, ...] = (
    "ds",
    "window_start",
    "window_end",
    "champion_version",
    "champion_as_of",
    "drift_share",
    "drift_detected",
    "n_drifted",
    "n_features",
    "prediction_drift",
    "prediction_drift_detected",
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
    "sample_size",
    "seed",
    "breached",
    "breaches",
    "reference_source",
    "predictions_source",
    "data_version",
    "signature",
    "report_uri",
    "mlflow_run_id",
    "seconds",
    "retrain_decision",
    "retrain_reason",
)
REQUEST_COLUMNS: tuple[str, ...] = (
    "ds",
    "decision",
    "reason",
    "reasons",
    "signature",
    "data_version",
    "champion_version",
    "drifted_features",
    "report_uri",
    "window_start",
    "window_end",
    "run_id",
    "request_id",
    "decided_at",
)


class NoChampion(LookupError):
    """There is no ``@champion``: nothing to monitor."""


class NoCurrentData(ValueError):
    """The check's window has no curated flights."""


# --------------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DriftParams:
    """Windows, sampling and thresholds of a check (keys of ``mlops.airflow.params.DRIFT_PARAMS``)."""

    window_days: int = 7
    sample_size: int = 20_000
    seed: int = 42
    #: Share of monitored features whose drift score passes their threshold => data drift.
    drift_share: float = 0.3
    #: Per-feature thresholds: Wasserstein distance (normed by the reference std) / Jensen-Shannon.
    #: Not Evidently's 0.1: half the model's features are 7/28-day aggregates and weather, whose
    #: one-week distribution is narrow, so a week *inside* the training month already scores
    #: above 0.1 on ~75% of them (above 1.0 on ~12%); see the DRIFT_PARAMS description.
    num_threshold: float = 1.0
    cat_threshold: float = 0.1
    #: Wasserstein distance (normed) of the predicted probability => prediction drift.
    prediction_threshold: float = 0.5
    #: Current ROC-AUC this far below the champion's holdout ROC-AUC => performance breach.
    max_auc_drop: float = 0.05
    #: Expected calibration error (10 quantile bins) above this => calibration breach (weekly
    #: delay rates swing by several points with the weather, so not tighter than this).
    max_calibration_error: float = 0.1
    min_current_rows: int = 500
    min_labelled_rows: int = 500
    #: Days (of data time) between requests, and after a promotion, before another request.
    cooldown_days: int = 7
    #: Calendar features whose window distribution differs from a longer reference by construction.
    ignore_features: tuple[str, ...] = ("month",)
    #: False: check and report only, never request retraining.
    allow_retrain: bool = True

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> DriftParams:
        """Build from Airflow params / JSON, ignoring unknown keys and ``None`` values."""
        values = dict(values or {})
        defaults = cls()
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            value = values.get(f.name)
            if value is None:
                continue
            kind = type(getattr(defaults, f.name))
            if kind is bool:
                kwargs[f.name] = (
                    value if isinstance(value, bool) else str(value).lower() in {"1", "true", "yes"}
                )
            elif kind is tuple:
                items = value.split(",") if isinstance(value, str) else list(value)
                kwargs[f.name] = tuple(str(v).strip() for v in items if str(v).strip())
            else:
                kwargs[f.name] = kind(value)
        params = cls(**kwargs)
        params.check()
        return params

    def check(self) -> None:
        if self.window_days < 1:
            raise ValueError(f"window_days={self.window_days}: need at least 1 day")
        if self.sample_size < 100:
            raise ValueError(f"sample_size={self.sample_size}: need at least 100 rows per side")
        if not 0 < self.drift_share <= 1:
            raise ValueError(f"drift_share={self.drift_share}: must be in (0, 1]")

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["ignore_features"] = list(self.ignore_features)
        return out

    def thresholds(self) -> dict[str, float]:
        return {
            "drift_share": self.drift_share,
            "num_threshold": self.num_threshold,
            "cat_threshold": self.cat_threshold,
            "prediction_threshold": self.prediction_threshold,
            "max_auc_drop": self.max_auc_drop,
            "max_calibration_error": self.max_calibration_error,
        }


def window_days(ds: str, days: int) -> list[str]:
    """The ``days`` local days ending with ``ds`` (inclusive), oldest first."""
    end = date.fromisoformat(str(ds)[:10])
    return [(end - timedelta(days=days - 1 - i)).isoformat() for i in range(days)]


# --------------------------------------------------------------------------------------------------
# Sampling and the pure check
# --------------------------------------------------------------------------------------------------


def sample_rows(frame: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """At most ``n`` rows of ``frame``, drawn with ``seed`` (same inputs -> same rows), in order."""
    if len(frame) <= n:
        return frame.reset_index(drop=True)
    return frame.sample(n=n, random_state=seed).sort_index().reset_index(drop=True)


def monitored_features(
    reference: pd.DataFrame, current: pd.DataFrame, ignore: Iterable[str] = ()
) -> list[str]:
    """Model inputs present on both sides, in reference order, minus ``ignore``."""
    skip = {*META_COLUMNS, LABEL, PREDICTION, *ignore}
    return [c for c in reference.columns if c in current.columns and c not in skip]


def _is_categorical(series: pd.Series) -> bool:
    import pandas as pd

    return (
        isinstance(series.dtype, pd.CategoricalDtype)
        or series.dtype == object
        or str(series.dtype) == "string"
    )


def _evidently_frame(frame: pd.DataFrame, features: Sequence[str], categorical: set[str]) -> pd.DataFrame:
    """Features as Evidently reads them: categoricals as plain strings (None when missing)."""
    import pandas as pd

    out = pd.DataFrame(index=frame.index)
    for col in features:
        if col in categorical:
            values = frame[col].astype("object")
            out[col] = values.where(values.notna(), None)
        else:
            out[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
    if PREDICTION in frame:
        out[PREDICTION] = frame[PREDICTION].astype("float64")
    if LABEL in frame:
        out[LABEL] = frame[LABEL]
    return out


def calibration(
    y: Sequence[float] | np.ndarray, p: Sequence[float] | np.ndarray, bins: int = 10
) -> dict[str, Any]:
    """Expected calibration error over ``bins`` quantile bins, the calibration gap, Brier, and the bins."""
    import numpy as np

    y_arr, p_arr = np.asarray(y, dtype="float64"), np.asarray(p, dtype="float64")
    if len(y_arr) == 0:
        return {"ece": float("nan"), "gap": float("nan"), "brier": float("nan"), "bins": []}
    order = np.argsort(p_arr, kind="stable")
    table, ece = [], 0.0
    for chunk in np.array_split(order, min(bins, len(order))):
        if len(chunk) == 0:
            continue
        mean_p, rate = float(p_arr[chunk].mean()), float(y_arr[chunk].mean())
        ece += len(chunk) / len(y_arr) * abs(mean_p - rate)
        table.append(
            {"rows": len(chunk), "mean_predicted": round(mean_p, 6), "observed_rate": round(rate, 6)}
        )
    return {
        "ece": float(ece),
        "gap": float(p_arr.mean() - y_arr.mean()),
        "brier": float(np.mean((p_arr - y_arr) ** 2)),
        "bins": table,
    }


@dataclass
class CheckResult:
    """The outcome of one check (pure: no I/O). ``summary`` is JSON-able; snapshots are Evidently's."""

    summary: dict[str, Any]
    drift_snapshot: Any = None
    prediction_snapshot: Any = None
    performance_snapshot: Any = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def breached(self) -> bool:
        return bool(self.summary.get("breached"))


def _metric_values(snapshot: Any) -> list[dict[str, Any]]:
    return list(snapshot.dict()["metrics"]) if snapshot is not None else []


def run_check(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    params: DriftParams,
    *,
    predict: Callable[[pd.DataFrame], np.ndarray] | None = None,
    reference_holdout_start: str | None = None,
    features: Sequence[str] | None = None,
    timestamp: datetime | None = None,
    totals: Mapping[str, int] | None = None,
) -> CheckResult:
    """Compare ``current`` with ``reference``: feature drift, prediction drift, performance.

    Both frames hold the model features, ``ds``, and optionally ``is_delayed`` (NaN while unknown)
    and ``prediction``. Each side is first sampled to ``params.sample_size`` rows with
    ``params.seed``; rows without a prediction are then scored with ``predict``. Prediction drift
    and the performance baseline use the reference rows with ``ds >= reference_holdout_start``
    (all rows when None). ``totals`` may carry the pre-sampling sizes when the caller sampled.
    """
    import numpy as np
    from evidently import BinaryClassification, DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import ClassificationPreset, DataDriftPreset

    started = time.perf_counter()
    timings: dict[str, float] = {}
    totals = dict(totals or {})
    n_ref_total = int(totals.get("reference", len(reference)))
    n_cur_total = int(totals.get("current", len(current)))
    ref = sample_rows(reference, params.sample_size, params.seed)
    cur = sample_rows(current, params.sample_size, params.seed)
    timings["sample"] = time.perf_counter() - started

    t0 = time.perf_counter()
    for side in (ref, cur):
        if PREDICTION not in side:
            side[PREDICTION] = np.nan
        missing = side[PREDICTION].isna()
        if missing.any():
            if predict is None:
                raise ValueError(
                    f"{int(missing.sum())} rows have no prediction and no predict function was given"
                )
            side.loc[missing, PREDICTION] = predict(side.loc[missing])
    timings["score"] = time.perf_counter() - t0

    feats = list(features) if features is not None else monitored_features(ref, cur, params.ignore_features)
    feats = [f for f in feats if f not in params.ignore_features]
    categorical = {f for f in feats if _is_categorical(ref[f])}
    # A feature with no value on a side cannot be compared: all-null now but not before is drift.
    unavailable: dict[str, str] = {}
    for f in list(feats):
        ref_null, cur_null = ref[f].isna().all(), cur[f].isna().all()
        if ref_null or cur_null:
            feats.remove(f)
            if cur_null and not ref_null:
                unavailable[f] = "null in every current row"
            elif ref_null and not cur_null:
                unavailable[f] = "null in every reference row"
    numeric = [f for f in feats if f not in categorical]
    cats = [f for f in feats if f in categorical]
    ref_e, cur_e = _evidently_frame(ref, feats, categorical), _evidently_frame(cur, feats, categorical)
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=cats)

    holdout = (
        ref if reference_holdout_start is None else ref[ref["ds"].astype(str) >= reference_holdout_start]
    )
    if holdout.empty:
        holdout = ref
    hold_e = _evidently_frame(holdout, feats, categorical)
    stamp = timestamp or datetime(2000, 1, 1)

    # 1. Feature drift (whole training window) and prediction drift (holdout predictions).
    t0 = time.perf_counter()
    drift_report = Report(
        [
            DataDriftPreset(
                columns=feats,
                drift_share=params.drift_share,
                num_method="wasserstein",
                cat_method="jensenshannon",
                num_threshold=params.num_threshold,
                cat_threshold=params.cat_threshold,
            ),
        ],
        metadata={"check": "feature drift"},
    )
    drift_snapshot = drift_report.run(
        Dataset.from_pandas(cur_e[feats], data_definition=definition),
        Dataset.from_pandas(ref_e[feats], data_definition=definition),
        timestamp=stamp,
    )
    pred_snapshot = Report(
        [ValueDrift(column=PREDICTION, method="wasserstein", threshold=params.prediction_threshold)]
    ).run(
        Dataset.from_pandas(
            cur_e[[PREDICTION]], data_definition=DataDefinition(numerical_columns=[PREDICTION])
        ),
        Dataset.from_pandas(
            hold_e[[PREDICTION]], data_definition=DataDefinition(numerical_columns=[PREDICTION])
        ),
        timestamp=stamp,
    )
    timings["evidently_drift"] = time.perf_counter() - t0

    scores: dict[str, dict[str, Any]] = {}
    share, n_drifted = 0.0, 0
    for m in _metric_values(drift_snapshot):
        cfg = m.get("config", {})
        kind = str(cfg.get("type", ""))
        if kind.endswith("DriftedColumnsCount"):
            n_drifted, share = int(m["value"]["count"]), float(m["value"]["share"])
        elif kind.endswith("ValueDrift"):
            score, thr = float(m["value"]), float(cfg.get("threshold") or 0.0)
            scores[cfg["column"]] = {
                "score": round(score, 6),
                "method": cfg.get("method"),
                "threshold": thr,
                "drifted": bool(score >= thr),
            }
    for f, why in unavailable.items():
        scores[f] = {"score": 1.0, "method": why, "threshold": 0.0, "drifted": True}
    n_features = len(feats) + len(unavailable)
    n_drifted = sum(1 for s in scores.values() if s["drifted"])
    share = n_drifted / n_features if n_features else 0.0
    prediction_drift = float("nan")
    for m in _metric_values(pred_snapshot):
        if str(m.get("config", {}).get("type", "")).endswith("ValueDrift"):
            prediction_drift = float(m["value"])

    # 2. Performance and calibration on the current rows whose labels had arrived.
    t0 = time.perf_counter()
    labelled = cur[cur[LABEL].notna()] if LABEL in cur else cur.iloc[0:0]
    ref_lab = holdout[holdout[LABEL].notna()] if LABEL in holdout else holdout.iloc[0:0]
    perf_snapshot = None
    roc_auc = roc_auc_ref = float("nan")
    cal: dict[str, Any] = calibration([], [])
    cal_ref: dict[str, Any] = calibration([], [])
    if len(labelled) >= params.min_labelled_rows and labelled[LABEL].nunique() == 2:
        cls_def = DataDefinition(
            numerical_columns=[PREDICTION],
            classification=[BinaryClassification(target=LABEL, prediction_probas=PREDICTION)],
        )
        cur_l = labelled[[LABEL, PREDICTION]].astype({LABEL: "int64", PREDICTION: "float64"})
        ref_l = ref_lab[[LABEL, PREDICTION]].astype({LABEL: "int64", PREDICTION: "float64"})
        perf_snapshot = Report([ClassificationPreset()], metadata={"check": "performance"}).run(
            Dataset.from_pandas(cur_l.reset_index(drop=True), data_definition=cls_def),
            Dataset.from_pandas(ref_l.reset_index(drop=True), data_definition=cls_def)
            if len(ref_l)
            else None,
            timestamp=stamp,
        )
        for m in _metric_values(perf_snapshot):
            if str(m.get("config", {}).get("type", "")).endswith(":RocAuc"):
                roc_auc = float(m["value"])
        cal = calibration(cur_l[LABEL], cur_l[PREDICTION])
        if len(ref_l) and ref_l[LABEL].nunique() == 2:
            from sklearn.metrics import roc_auc_score

            roc_auc_ref = float(roc_auc_score(ref_l[LABEL], ref_l[PREDICTION]))
            cal_ref = calibration(ref_l[LABEL], ref_l[PREDICTION])
    timings["evidently_performance"] = time.perf_counter() - t0

    drift_detected = share >= params.drift_share
    pred_detected = bool(prediction_drift >= params.prediction_threshold)
    auc_drop = roc_auc_ref - roc_auc if not (math.isnan(roc_auc) or math.isnan(roc_auc_ref)) else float("nan")
    drifted = {
        f: s["score"] for f, s in sorted(scores.items(), key=lambda kv: -kv[1]["score"]) if s["drifted"]
    }
    breaches: list[dict[str, Any]] = []
    enough = len(cur) >= params.min_current_rows
    if enough and drift_detected:
        breaches.append(
            {
                "kind": "data_drift",
                "value": round(share, 4),
                "threshold": params.drift_share,
                "message": f"{n_drifted} of {n_features} features drifted (share {share:.2f} >= "
                f"{params.drift_share}): {', '.join(list(drifted)[:8])}",
            }
        )
    if enough and pred_detected:
        breaches.append(
            {
                "kind": "prediction_drift",
                "value": round(prediction_drift, 4),
                "threshold": params.prediction_threshold,
                "message": f"prediction drift {prediction_drift:.3f} >= {params.prediction_threshold} "
                "(Wasserstein distance, normed, vs the champion's holdout predictions)",
            }
        )
    if not math.isnan(auc_drop) and auc_drop > params.max_auc_drop:
        breaches.append(
            {
                "kind": "performance",
                "value": round(auc_drop, 4),
                "threshold": params.max_auc_drop,
                "message": f"ROC-AUC {roc_auc:.3f} is {auc_drop:.3f} below the holdout's {roc_auc_ref:.3f} "
                f"(> {params.max_auc_drop})",
            }
        )
    if not math.isnan(cal["ece"]) and cal["ece"] > params.max_calibration_error:
        breaches.append(
            {
                "kind": "calibration",
                "value": round(cal["ece"], 4),
                "threshold": params.max_calibration_error,
                "message": f"expected calibration error {cal['ece']:.3f} > {params.max_calibration_error} "
                f"(mean predicted - observed = {cal['gap']:+.3f})",
            }
        )
    notes = []
    if not enough:
        notes.append(f"only {len(cur)} current rows (< {params.min_current_rows}): drift not judged")
    if len(labelled) < params.min_labelled_rows:
        notes.append(
            f"only {len(labelled)} labelled current rows (< {params.min_labelled_rows}): performance not judged"
        )
    summary = {
        "drift_share": round(share, 6),
        "drift_detected": bool(enough and drift_detected),
        "n_drifted": n_drifted,
        "n_features": n_features,
        "feature_scores": scores,
        "drifted_features": drifted,
        "prediction_drift": _round(prediction_drift),
        "prediction_drift_detected": bool(enough and pred_detected),
        "prediction_mean": _round(float(cur[PREDICTION].mean())) if len(cur) else None,
        "prediction_mean_reference": _round(float(holdout[PREDICTION].mean())) if len(holdout) else None,
        "roc_auc": _round(roc_auc),
        "roc_auc_reference": _round(roc_auc_ref),
        "roc_auc_drop": _round(auc_drop),
        "calibration_error": _round(cal["ece"]),
        "calibration_gap": _round(cal["gap"]),
        "brier": _round(cal["brier"]),
        "calibration_bins": cal["bins"],
        "calibration_error_reference": _round(cal_ref["ece"]),
        "calibration_bins_reference": cal_ref["bins"],
        "positive_rate": _round(float(labelled[LABEL].mean())) if len(labelled) else None,
        "n_reference": len(ref),
        "n_reference_total": n_ref_total,
        "n_reference_holdout": len(holdout),
        "n_current": len(cur),
        "n_current_total": n_cur_total,
        "n_labelled": len(labelled),
        "sample_size": params.sample_size,
        "seed": params.seed,
        "thresholds": params.thresholds(),
        "ignored_features": list(params.ignore_features),
        "breaches": breaches,
        "breached": bool(breaches),
        "notes": notes,
    }
    timings["total"] = time.perf_counter() - started
    summary["timings"] = {k: round(v, 3) for k, v in timings.items()}
    return CheckResult(
        summary,
        drift_snapshot=drift_snapshot,
        prediction_snapshot=pred_snapshot,
        performance_snapshot=perf_snapshot,
        timings=timings,
    )


def _round(value: float | None, digits: int = 6) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return round(float(value), digits)


# --------------------------------------------------------------------------------------------------
# The HTML report
# --------------------------------------------------------------------------------------------------


def render_html(result: CheckResult, context: Mapping[str, Any]) -> str:
    """One page: the check's summary and thresholds, calibration, then Evidently's drift and
    performance reports (a single copy of Evidently's JavaScript)."""
    from evidently.core.metric_types import render_widgets
    from evidently.legacy.renderers.html_widgets import (
        CounterData,
        counter,
        group_widget,
        plotly_data,
        table_data,
    )

    s = result.summary
    fmt = lambda v: "—" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v))  # noqa: E731
    head = counter(
        title=f"Drift check ds={context.get('ds')} - champion v{context.get('champion_version')} "
        f"(trained as of {context.get('champion_as_of')})",
        counters=[
            CounterData("drifted features", f"{s['n_drifted']} / {s['n_features']}"),
            CounterData("drift share", fmt(s["drift_share"])),
            CounterData("prediction drift", fmt(s["prediction_drift"])),
            CounterData("ROC-AUC (holdout)", f"{fmt(s['roc_auc'])} ({fmt(s['roc_auc_reference'])})"),
            CounterData("calibration error", fmt(s["calibration_error"])),
            CounterData("breached", "yes" if s["breached"] else "no"),
        ],
    )
    rows = [
        ["window", f"{context.get('window_start')} .. {context.get('window_end')}"],
        ["reference", f"{context.get('reference_source')}: {context.get('reference_window')}"],
        [
            "rows (sampled / total)",
            f"reference {s['n_reference']} / {s['n_reference_total']}, current "
            f"{s['n_current']} / {s['n_current_total']}, labelled {s['n_labelled']}",
        ],
        ["sample", f"at most {s['sample_size']} rows per side, seed {s['seed']}"],
        ["predictions", json.dumps(context.get("predictions_source"))],
        ["thresholds", json.dumps(s["thresholds"])],
        ["breaches", "; ".join(b["message"] for b in s["breaches"]) or "none"],
        ["notes", "; ".join(s["notes"]) or "—"],
    ]
    widgets = [head, table_data(title="Check", column_names=["", ""], data=rows)]
    bins, ref_bins = s.get("calibration_bins") or [], s.get("calibration_bins_reference") or []
    if bins:
        traces = [
            {
                "x": [b["mean_predicted"] for b in bins],
                "y": [b["observed_rate"] for b in bins],
                "mode": "lines+markers",
                "name": "current",
            },
            {"x": [0, 1], "y": [0, 1], "mode": "lines", "name": "perfect", "line": {"dash": "dash"}},
        ]
        if ref_bins:
            traces.insert(
                1,
                {
                    "x": [b["mean_predicted"] for b in ref_bins],
                    "y": [b["observed_rate"] for b in ref_bins],
                    "mode": "lines+markers",
                    "name": "reference (holdout)",
                },
            )
        widgets.append(
            plotly_data(
                title="Calibration (10 quantile bins)",
                data=traces,
                layout={"xaxis": {"title": "mean predicted"}, "yaxis": {"title": "observed delayed rate"}},
            )
        )
    parts = [group_widget(title="Summary", widgets=widgets)]
    sections = (
        ("Feature drift (reference: the champion's training window)", result.drift_snapshot),
        ("Prediction drift (reference: the champion's holdout predictions)", result.prediction_snapshot),
        ("Performance on labelled rows (reference: the holdout)", result.performance_snapshot),
    )
    for title, snap in sections:
        if snap is not None:
            parts.append(group_widget(title=title, widgets=snap.to_snapshot_model().widgets))
    return render_widgets(parts, as_iframe=False)


def snapshots_json(result: CheckResult) -> dict[str, Any]:
    """The Evidently snapshots' metrics and tests (``Snapshot.dict()``)."""
    snaps = {
        "feature_drift": result.drift_snapshot,
        "prediction_drift": result.prediction_snapshot,
        "performance": result.performance_snapshot,
    }
    return {k: v.dict() if v is not None else None for k, v in snaps.items()}


# --------------------------------------------------------------------------------------------------
# The champion, its reference, and the current window
# --------------------------------------------------------------------------------------------------


def champion_info(settings: Settings | None = None, version: str | None = None) -> dict[str, Any]:
    """The champion (or ``version``): its run, as-of date, training window and training set URI."""
    from mlops.models import registry, tracking
    from mlops.training.dataset import training_dir
    from mlops.training.params import TrainParams, Window

    s = settings or get_settings()
    version = version or registry.alias_version(CHAMPION, s)
    if version is None:
        raise NoChampion(
            f"{MODEL_NAME}@{CHAMPION} is not set: nothing to monitor yet (run train_model first)"
        )
    mv = registry.version_info(version, s)
    run = tracking.client(s).get_run(mv.run_id)
    tags = {**run.data.tags, **(mv.tags or {})}
    as_of = tags.get("mlops.as_of")
    if not as_of:
        raise ValueError(
            f"{MODEL_NAME} v{version} (run {mv.run_id}) has no mlops.as_of tag: cannot tell its window"
        )
    tp = TrainParams.from_mapping(run.data.params)
    window = Window.of(as_of, tp)
    holdout_auc = tags.get("holdout.roc_auc") or run.data.metrics.get("roc_auc")
    return {
        "version": str(version),
        "run_id": mv.run_id,
        "as_of": window.as_of.isoformat(),
        "window": window.as_dict(),
        "window_days": tp.window_days,
        "holdout_days": tp.holdout_days,
        "data_hash": tags.get("mlops.data_hash"),
        "training_dir": training_dir(window, tp, s),
        "holdout_roc_auc": float(holdout_auc) if holdout_auc is not None else None,
    }


def reference_frame(
    champion: Mapping[str, Any], settings: Settings | None = None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The champion's training set (see the module docstring) and where it came from."""
    from mlops.training.dataset import load_training_set

    s = settings or get_settings()
    window = champion["window"]
    uri = lake.join(champion["training_dir"], "training_set.parquet")
    manifest_uri = lake.join(champion["training_dir"], "manifest.json")
    info: dict[str, Any] = {
        "window": f"{window['start']}..{window['end']}",
        "holdout_start": window["holdout_start"],
    }
    reason = ""
    if lake.exists(uri) and lake.exists(manifest_uri):
        saved_hash = json.loads(lake.read_text(manifest_uri)).get("data_hash")
        if not champion.get("data_hash") or saved_hash == champion["data_hash"]:
            frame = load_training_set(uri)
            info.update(source="training_set", uri=uri, rows=len(frame))
            return frame, info
        reason = f"{uri} was rewritten since (hash {saved_hash} != run's {champion['data_hash']})"
    else:
        reason = f"no saved training set at {uri}"
    from mlops.features import feature_store

    log.warning(
        "reference of v%s: %s; rebuilding %s from the offline store",
        champion["version"],
        reason,
        info["window"],
    )
    frame = feature_store.training_frame(window["start"], window["end"], s)
    info.update(source="offline_store", reason=reason, rows=len(frame))
    return frame, info


def current_frame(
    ds: str,
    params: DriftParams,
    champion: Mapping[str, Any],
    settings: Settings | None = None,
    predict: Callable[[pd.DataFrame], np.ndarray] | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The window's flights (sampled), their model features, predictions and arrived labels."""
    import numpy as np
    import pandas as pd

    from mlops.features import compute
    from mlops.serving import scoring

    s = settings or get_settings()
    days = window_days(ds, params.window_days)
    curated = compute.read_curated(days, s)
    if curated.empty:
        raise NoCurrentData(
            f"ds={ds}: no curated flights in {days[0]}..{days[-1]}; run (or backfill) ingest_flights "
            "for these days, then clear this task"
        )
    total = len(curated)
    cutoff = compute.local_midnight((date.fromisoformat(days[-1]) + timedelta(days=1)).isoformat())
    arrived = compute.arrival_known_ts(curated) <= cutoff
    curated = curated.assign(
        **{LABEL: curated[LABEL].astype("float64").where(arrived.fillna(False).astype(bool))}
    )
    sampled = sample_rows(
        curated.sort_values(["sched_dep_ts", "flight_id"], kind="stable"), params.sample_size, params.seed
    )
    sources = {"batch_predictions": 0, "scored_in_task": 0}
    parts: list[pd.DataFrame] = []
    dtypes = compute.categorical_dtypes()
    need: list[pd.DataFrame] = []
    for day, rows in sampled.groupby("ds", sort=True):
        uri = scoring.predictions_uri(str(day), s)
        if lake.exists(uri):
            preds = lake.read_parquet(uri)
            preds = preds[preds["model_version"].astype(str) == str(champion["version"])]
            found = rows[["flight_id", LABEL]].merge(
                preds[["flight_id", "delay_probability", *compute.MODEL_FEATURES]],
                on="flight_id",
                how="inner",
            )
            if len(found):
                frame = found.rename(columns={"delay_probability": PREDICTION})
                for col in compute.CATEGORICAL_FEATURES:
                    values = frame[col].astype("object")
                    frame[col] = values.where(values.notna(), None).astype(dtypes[col])
                frame["ds"] = str(day)
                parts.append(frame)
                sources["batch_predictions"] += len(frame)
            rows = rows[~rows["flight_id"].isin(found["flight_id"])]
        if len(rows):
            need.append(rows)
    if need:
        from mlops.features import feature_store

        rows = pd.concat(need).reset_index(drop=True)
        feats = feature_store.historical_frame(rows, s)
        frame = pd.concat(
            [rows[["flight_id", "ds", LABEL]].reset_index(drop=True), feats.reset_index(drop=True)], axis=1
        )
        frame[PREDICTION] = predict(feats) if predict is not None else np.nan
        parts.append(frame)
        sources["scored_in_task"] += len(frame)
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["flight_id", "ds", LABEL])
    out["ds"] = out["ds"].astype(str)
    info = {
        "days": days,
        "days_present": sorted(curated["ds"].astype(str).unique().tolist()),
        "rows_total": total,
        "labels_arrived": int(arrived.sum()),
        "cutoff": cutoff.isoformat(),
        "predictions_source": sources,
    }
    return out, info


def data_version(days: Sequence[str], settings: Settings | None = None) -> str:
    """Digest of the window's curated partitions (their ingestion content hashes)."""
    from mlops.training.dataset import partition_lineage, partitions_digest
    from mlops.training.params import Window

    first, last = date.fromisoformat(days[0]), date.fromisoformat(days[-1]) + timedelta(days=1)
    window = Window(as_of=last, start=first, valid_start=first, holdout_start=first, end=last)
    return partitions_digest(partition_lineage(window, settings))[:16]


def drift_signature(champion_version: str, summary: Mapping[str, Any]) -> str:
    """What a repeat looks like: the champion, the drifted features and the kinds of breach."""
    payload = json.dumps(
        {
            "champion": str(champion_version),
            "features": sorted(summary.get("drifted_features", {})),
            "breaches": sorted(b["kind"] for b in summary.get("breaches", [])),
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


# --------------------------------------------------------------------------------------------------
# Lake paths, the history table and the ledger
# --------------------------------------------------------------------------------------------------


def drift_root(settings: Settings | None = None) -> str:
    return lake.join((settings or get_settings()).lake_uri, "reports", "drift")


def report_dir(ds: str, settings: Settings | None = None) -> str:
    """``{lake}/reports/drift/ds=YYYY-MM-DD``."""
    return lake.join(drift_root(settings), f"ds={ds}")


def history_uri(settings: Settings | None = None) -> str:
    return lake.join(drift_root(settings), "history.parquet")


def ledger_uri(settings: Settings | None = None) -> str:
    return lake.join(drift_root(settings), "requests", "ledger.json")


@contextlib.contextmanager
def guard_lock(
    settings: Settings | None = None, timeout: float = LOCK_TIMEOUT_SECONDS
) -> Iterator[dict[str, Any]]:
    """The lock around the ledger and the history table (see the module docstring).

    Reuses :func:`mlops.models.registry.promotion_lock` under its own name, so the same ``MLOPS_LOCK_URL``
    rules apply and drift checks never wait for a promotion. Shared stores (an ``s3://`` lake)
    require a PostgreSQL lock (a file lock only serializes one host):
    :func:`mlops.models.registry.require_shared_lock` refuses the file lock.
    """
    from mlops.models import registry

    s = settings or get_settings()
    with registry.promotion_lock(
        s, name=GUARD_LOCK_NAME, timeout=timeout, purpose="the retrain guard's lock"
    ) as info:
        yield info


def _read_history(settings: Settings) -> pd.DataFrame:
    import pandas as pd

    uri = history_uri(settings)
    if not lake.exists(uri):
        return pd.DataFrame({c: pd.Series(dtype="object") for c in HISTORY_COLUMNS})
    return lake.read_parquet(uri)


def _write_history(frame: pd.DataFrame, settings: Settings) -> None:
    frame = frame.sort_values("ds", kind="stable").reset_index(drop=True)
    lake.write_parquet(history_uri(settings), frame)


def upsert_history(row: Mapping[str, Any], settings: Settings | None = None) -> None:
    """Insert or replace the history row of ``row["ds"]`` (call under :func:`guard_lock`)."""
    import pandas as pd

    s = settings or get_settings()
    frame = _read_history(s)
    keep = frame[frame["ds"].astype(str) != str(row["ds"])]
    row = dict(row)
    decided = day_decision(str(row["ds"]), read_ledger(s))
    if decided is not None and decided[0] == "requested":
        # A rerun's check replaces the day's metrics, never the request the day already made.
        row["retrain_decision"], row["retrain_reason"] = decided
    new = pd.DataFrame([{c: row.get(c) for c in HISTORY_COLUMNS}])
    new = new.astype({c: "object" for c in new.columns if new[c].isna().all()})
    merged = pd.concat([keep, new], ignore_index=True) if len(keep) else new
    _write_history(merged, s)


def history_row(ds: str, summary: Mapping[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
    return {
        **{k: summary.get(k) for k in HISTORY_COLUMNS if k in summary},
        "ds": ds,
        "window_start": context.get("window_start"),
        "window_end": context.get("window_end"),
        "champion_version": context.get("champion_version"),
        "champion_as_of": context.get("champion_as_of"),
        "breaches": "; ".join(b["kind"] for b in summary.get("breaches", [])),
        "reference_source": context.get("reference_source"),
        "predictions_source": json.dumps(context.get("predictions_source")),
        "data_version": context.get("data_version"),
        "signature": context.get("signature"),
        "report_uri": context.get("report_uri"),
        "mlflow_run_id": context.get("mlflow_run_id"),
        "seconds": summary.get("timings", {}).get("total"),
        "retrain_decision": "pending" if summary.get("breached") else "none",
        "retrain_reason": None if summary.get("breached") else "no threshold breached",
    }


def day_decision(ds: str, ledger: Sequence[Mapping[str, Any]]) -> tuple[str, str] | None:
    """The retraining decision the history shows for day ``ds``, from every ledger entry of it.

    A day that requested retraining stays ``requested`` (an event was emitted and started
    ``train_model``), whatever its later reruns decided; their suppressions are appended to the
    reason. Otherwise the latest decision. None: nothing decided for ``ds`` yet.
    """
    mine = sorted((e for e in ledger if str(e["ds"]) == ds), key=lambda e: str(e.get("decided_at") or ""))
    if not mine:
        return None
    requested = [e for e in mine if e["decision"] == "requested"]
    if not requested:
        return str(mine[-1]["decision"]), str(mine[-1].get("reason") or "")[:2000]
    first = requested[0]
    reason = f"requested by run {first.get('run_id')}: {first.get('reason') or ''}"
    later = [e for e in mine if e["decision"] != "requested" and e is not first]
    if later:
        e = later[-1]
        reason += (
            f"; {len(later)} later check(s) of this day suppressed, the last by run {e.get('run_id')}: "
            f"{e.get('reason') or ''}"
        )
    return "requested", reason[:2000]


def drift_history(settings: Settings | None = None) -> pd.DataFrame:
    """One row per checked day (the latest check's metrics), oldest first: the trend table.

    ``retrain_decision`` summarizes every decision of the day (:func:`day_decision`): a day that
    requested retraining keeps ``requested``. Each check run's own decision is in
    :func:`retrain_requests`.
    """
    frame = _read_history(settings or get_settings()).sort_values("ds", kind="stable").reset_index(drop=True)
    return _json_safe(frame)


def _json_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Missing values as None (not NaN), so ``to_dict`` rows serialize as JSON (the plugin's API)."""
    return frame.astype("object").where(frame.notna(), None)


def read_ledger(settings: Settings | None = None) -> list[dict[str, Any]]:
    uri = ledger_uri(settings)
    if not lake.exists(uri):
        return []
    return list(json.loads(lake.read_text(uri)).get("entries", []))


def _write_ledger(entries: list[dict[str, Any]], settings: Settings) -> None:
    entries = sorted(entries, key=lambda e: (e["ds"], e.get("decided_at", "")))
    lake.write_text(ledger_uri(settings), json.dumps({"entries": entries}, indent=1, default=str))


def retrain_requests(settings: Settings | None = None) -> pd.DataFrame:
    """Every retraining decision (``requested`` or ``suppressed``) with its reason, by day."""
    import pandas as pd

    entries = read_ledger(settings)
    frame = pd.DataFrame(
        [{c: e.get(c) for c in REQUEST_COLUMNS} for e in entries], columns=list(REQUEST_COLUMNS)
    )
    return _json_safe(frame.sort_values(["ds", "decided_at"], kind="stable").reset_index(drop=True))


# --------------------------------------------------------------------------------------------------
# The storm guard
# --------------------------------------------------------------------------------------------------


@dataclass
class Decision:
    """A retraining decision; ``extra`` is the ``retrain_request`` event metadata when requested."""

    requested: bool
    reason: str
    reasons: list[str]
    entry: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _days_between(a: str, b: str) -> int:
    return abs((date.fromisoformat(a[:10]) - date.fromisoformat(b[:10])).days)


def decide(
    check: Mapping[str, Any],
    ledger: Sequence[Mapping[str, Any]],
    params: DriftParams,
    *,
    run_id: str,
    active_training_runs: int,
) -> tuple[bool, list[str], Mapping[str, Any] | None]:
    """The guard's rules (pure). ``check`` holds ``ds``, ``data_version``, ``signature``,
    ``champion_version``, ``champion_as_of``, ``window_end`` and ``breached``.

    Returns (request?, reasons it was suppressed, the ledger entry of this same run to re-emit).
    """
    ds = str(check["ds"])
    reasons: list[str] = []
    if not check.get("breached"):
        return False, ["no threshold breached"], None
    if not params.allow_retrain:
        reasons.append("allow_retrain is off: check and report only")
    own = [e for e in ledger if e["ds"] == ds and e.get("run_id") == run_id and e["decision"] == "requested"]
    if own:  # a retry of the run that made the request: emit it again (the event may be lost)
        return True, [], own[-1]
    same = [e for e in ledger if e["ds"] == ds and e.get("data_version") == check.get("data_version")]
    if same:
        e = same[-1]
        reasons.append(
            f"already decided for ds={ds} with the same data (version {check.get('data_version')}) by run "
            f"{e.get('run_id')}: {e['decision']}"
        )
    champ_as_of = check.get("champion_as_of")
    if champ_as_of and champ_as_of > str(check.get("window_end", ds)):
        reasons.append(
            f"stale check: champion v{check.get('champion_version')} was trained as of {champ_as_of}, after this "
            f"window (ends {check.get('window_end')}); retraining cannot help an older window"
        )
    elif champ_as_of and _days_between(ds, champ_as_of) < params.cooldown_days:
        reasons.append(
            f"cooldown after promotion: champion v{check.get('champion_version')} was trained as of {champ_as_of}, "
            f"{_days_between(ds, champ_as_of)} day(s) before ds={ds} (< cooldown_days={params.cooldown_days})"
        )
    recent = [
        e
        for e in ledger
        if e["decision"] == "requested"
        and e["ds"] != ds
        and _days_between(e["ds"], ds) < params.cooldown_days
    ]
    if recent:
        e = max(recent, key=lambda r: r["ds"])
        reasons.append(
            f"cooldown after request: retraining was requested for ds={e['ds']} ({_days_between(e['ds'], ds)} "
            f"day(s) from ds={ds}, < cooldown_days={params.cooldown_days}) by run {e.get('run_id')}"
        )
    repeat = [
        e for e in ledger if e["decision"] == "requested" and e.get("signature") == check.get("signature")
    ]
    if repeat:
        e = repeat[-1]
        reasons.append(
            f"same drift signature {check.get('signature')} (champion v{check.get('champion_version')}, same "
            f"drifted features and breaches) was already requested for ds={e['ds']}"
        )
    if active_training_runs > 0:
        reasons.append(f"{active_training_runs} {TRAIN_DAG_ID} run(s) already queued or running")
    return not reasons, reasons, None


def guarded_request(
    check: Mapping[str, Any],
    params: DriftParams,
    *,
    run_id: str,
    active_training_runs: Callable[[], int],
    settings: Settings | None = None,
    now: Callable[[], str] | None = None,
) -> Decision:
    """Decide under the guard lock, record the decision in the ledger and the history row.

    ``check`` is what :func:`check` returned (its ``request`` block). ``active_training_runs`` is
    called inside the lock (it asks Airflow how many ``train_model`` runs are queued or running).
    """
    s = settings or get_settings()
    ds = str(check["ds"])
    if not check.get("breached"):
        return Decision(False, "no threshold breached", ["no threshold breached"], {})
    # decided_at is informational (wall clock); every rule works on data time.
    stamp = (now or (lambda: datetime.now().astimezone().isoformat(timespec="seconds")))()
    with guard_lock(s) as lock:
        ledger = read_ledger(s)
        requested, reasons, own = decide(
            check, ledger, params, run_id=run_id, active_training_runs=active_training_runs()
        )
        if own is not None:
            entry = dict(own)
            reason = f"retry of run {run_id}: re-emitting its request"
        else:
            reason = check.get("reason", "") if requested else "; ".join(reasons)
            entry = {
                "ds": ds,
                "decision": "requested" if requested else "suppressed",
                "reason": reason,
                "reasons": reasons,
                "signature": check.get("signature"),
                "data_version": check.get("data_version"),
                "champion_version": check.get("champion_version"),
                "drifted_features": check.get("drifted_features", {}),
                "report_uri": check.get("report_uri"),
                "window_start": check.get("window_start"),
                "window_end": check.get("window_end"),
                "run_id": run_id,
                "request_id": f"{ds}:{check.get('data_version')}:{check.get('signature')}",
                "decided_at": stamp,
                "lock": {k: lock.get(k) for k in ("kind", "waited_s")},
            }
            ledger.append(entry)
            _write_ledger(ledger, s)
            frame = _read_history(s)
            mask = frame["ds"].astype(str) == ds
            if mask.any():
                day, day_reason = day_decision(ds, ledger) or (entry["decision"], reason)
                frame["retrain_decision"] = frame["retrain_decision"].astype("object")
                frame["retrain_reason"] = frame["retrain_reason"].astype("object")
                frame.loc[mask, "retrain_decision"] = day
                frame.loc[mask, "retrain_reason"] = day_reason
                _write_history(frame, s)
    extra = request_extra(check, entry) if requested else {}
    log.info("ds=%s: retraining %s: %s", ds, "requested" if requested else "suppressed", reason)
    return Decision(requested, reason, reasons, entry, extra)


def request_extra(check: Mapping[str, Any], entry: Mapping[str, Any]) -> dict[str, Any]:
    """The ``retrain_request`` event metadata (see :mod:`mlops.airflow.assets`)."""
    end = str(check["window_end"])
    return {
        "reason": check.get("reason"),
        "drifted_features": dict(check.get("drifted_features", {})),
        "breaches": [{k: b[k] for k in ("kind", "value", "threshold")} for b in check.get("breaches", [])],
        "report_uri": check.get("report_uri"),
        "window_start": check.get("window_start"),
        "window_end": end,
        #: Train as of the day after the window: the data the request is about, not the wall clock.
        "as_of": (date.fromisoformat(end) + timedelta(days=1)).isoformat(),
        "ds": check.get("ds"),
        "signature": check.get("signature"),
        "data_version": check.get("data_version"),
        "champion_version": check.get("champion_version"),
        "request_id": entry.get("request_id"),
        "mlflow_run_id": check.get("mlflow_run_id"),
    }


# --------------------------------------------------------------------------------------------------
# The whole check (I/O): what DriftCheckOperator runs
# --------------------------------------------------------------------------------------------------


def check(
    ds: str,
    params: DriftParams,
    settings: Settings | None = None,
    *,
    airflow_context: Mapping[str, Any] | None = None,
    champion_version: str | None = None,
) -> dict[str, Any]:
    """Run the daily check of ``ds``: build both sides, compare, save reports, log to MLflow,
    record the history row. Returns the JSON-able summary (with a ``request`` block for the guard).

    Raises :class:`NoChampion` when there is no champion, :class:`NoCurrentData` when the window
    has no curated flights. Idempotent: a rerun replaces the reports, the MLflow run's values and
    the history row of ``ds``.
    """
    from mlops.models import registry

    s = settings or get_settings()
    started = time.perf_counter()
    champ = champion_info(s, champion_version)
    days = window_days(ds, params.window_days)
    predict = registry.predictor(champ["version"], s)
    reference, ref_info = reference_frame(champ, s)
    current, cur_info = current_frame(ds, params, champ, s, predict=predict)
    prepared = time.perf_counter() - started
    stamp = check_instant(days[-1])
    result = run_check(
        reference,
        current,
        params,
        predict=predict,
        reference_holdout_start=champ["window"]["holdout_start"],
        timestamp=stamp,
        totals={"reference": len(reference), "current": cur_info["rows_total"]},
    )
    summary = result.summary
    summary["timings"]["prepare_frames"] = round(prepared, 3)
    version = data_version(days, s)
    signature = drift_signature(champ["version"], summary)
    ctx = {
        "ds": ds,
        "window_start": days[0],
        "window_end": days[-1],
        "champion_version": champ["version"],
        "champion_as_of": champ["as_of"],
        "reference_source": ref_info["source"],
        "reference_window": ref_info["window"],
        "predictions_source": cur_info["predictions_source"],
        "data_version": version,
        "signature": signature,
    }
    directory = report_dir(ds, s)
    report_uri = lake.join(directory, "report.html")
    json_uri = lake.join(directory, "drift.json")
    ctx["report_uri"] = report_uri
    t0 = time.perf_counter()
    html = render_html(result, ctx)
    document = {
        "ds": ds,
        "context": ctx,
        "champion": champ,
        "reference": ref_info,
        "current": cur_info,
        "params": params.as_dict(),
        "summary": summary,
        "evidently": snapshots_json(result),
    }
    lake.write_text(report_uri, html)
    lake.write_text(json_uri, json.dumps(document, indent=1, default=str))
    summary["timings"]["save_reports"] = round(time.perf_counter() - t0, 3)
    t0 = time.perf_counter()
    ctx["mlflow_run_id"], ctx["mlflow_run_url"] = log_check(
        ds, summary, ctx, params, html, document, s, airflow_context
    )
    summary["timings"]["mlflow"] = round(time.perf_counter() - t0, 3)
    summary["timings"]["total_with_io"] = round(time.perf_counter() - started, 3)
    with guard_lock(s):
        upsert_history(history_row(ds, summary, ctx), s)
    reason = "; ".join(b["message"] for b in summary["breaches"])
    return {
        **{
            k: v
            for k, v in summary.items()
            if k not in ("feature_scores", "calibration_bins", "calibration_bins_reference")
        },
        "context": ctx,
        "json_uri": json_uri,
        "request": {
            **ctx,
            "breached": summary["breached"],
            "breaches": summary["breaches"],
            "drifted_features": summary["drifted_features"],
            "reason": reason,
        },
    }


def check_instant(ds: str) -> datetime:
    """End of local day ``ds`` (UTC): the check's as-of instant, and its Evidently timestamp."""
    from mlops.features import compute

    return compute.local_midnight((date.fromisoformat(ds) + timedelta(days=1)).isoformat()).to_pydatetime()


# --------------------------------------------------------------------------------------------------
# MLflow
# --------------------------------------------------------------------------------------------------


def ensure_experiment(settings: Settings | None = None) -> str:
    """The ``flight-delay-monitoring`` experiment id (created with local artifacts like training's)."""
    from mlflow.exceptions import MlflowException

    from mlops.models import tracking

    s = settings or get_settings()
    c = tracking.client(s)
    exp = c.get_experiment_by_name(EXPERIMENT)
    if exp is not None:
        return exp.experiment_id
    location = None
    if not s.mlflow_tracking_uri.startswith(("http://", "https://", "databricks")):
        location = (s.home / "mlartifacts").resolve().as_uri()
    try:
        return c.create_experiment(EXPERIMENT, artifact_location=location)
    except MlflowException:  # created by a concurrent check
        return c.get_experiment_by_name(EXPERIMENT).experiment_id


def log_check(
    ds: str,
    summary: Mapping[str, Any],
    ctx: Mapping[str, Any],
    params: DriftParams,
    html: str,
    document: Mapping[str, Any],
    settings: Settings | None = None,
    airflow_context: Mapping[str, Any] | None = None,
) -> tuple[str, str]:
    """Log the check as one MLflow run per ``ds`` (a rerun updates the same run). Returns (id, url)."""
    import tempfile
    from pathlib import Path

    from mlflow.entities import Metric, Param, RunTag

    from mlops.models import tracking

    s = settings or get_settings()
    c = tracking.client(s)
    experiment_id = ensure_experiment(s)
    found = c.search_runs([experiment_id], filter_string=f"tags.`mlops.drift_ds` = '{ds}'", max_results=1)
    run_id = (
        found[0].info.run_id if found else c.create_run(experiment_id, run_name=f"drift ds={ds}").info.run_id
    )
    now = int(time.time() * 1000)
    values = {
        "drift_share": summary.get("drift_share"),
        "n_drifted": summary.get("n_drifted"),
        "prediction_drift": summary.get("prediction_drift"),
        "roc_auc": summary.get("roc_auc"),
        "roc_auc_reference": summary.get("roc_auc_reference"),
        "roc_auc_drop": summary.get("roc_auc_drop"),
        "calibration_error": summary.get("calibration_error"),
        "calibration_gap": summary.get("calibration_gap"),
        "brier": summary.get("brier"),
        "n_reference": summary.get("n_reference"),
        "n_reference_total": summary.get("n_reference_total"),
        "n_current": summary.get("n_current"),
        "n_current_total": summary.get("n_current_total"),
        "n_labelled": summary.get("n_labelled"),
        "breached": float(bool(summary.get("breached"))),
        **{f"drift.{k}": v["score"] for k, v in summary.get("feature_scores", {}).items()},
        **{f"time_{k}_s": v for k, v in summary.get("timings", {}).items()},
    }
    metrics = [Metric(k, float(v), now, 0) for k, v in values.items() if v is not None and not _nan(v)]
    af = dict(airflow_context or {})
    tags = {
        "mlops.drift_ds": ds,
        "mlops.kind": "drift_check",
        "mlops.champion_version": str(ctx.get("champion_version")),
        "mlops.champion_as_of": str(ctx.get("champion_as_of")),
        "mlops.window": f"{ctx.get('window_start')}..{ctx.get('window_end')}",
        "mlops.reference_source": str(ctx.get("reference_source")),
        "mlops.data_version": str(ctx.get("data_version")),
        "mlops.signature": str(ctx.get("signature")),
        "mlops.report_uri": str(ctx.get("report_uri")),
        "mlops.breaches": "; ".join(b["kind"] for b in summary.get("breaches", [])) or "none",
        **{f"airflow.{k}": str(v) for k, v in af.items() if v is not None},
    }
    existing = set(c.get_run(run_id).data.params) if found else set()
    plist = [Param(k, str(v)[:6000]) for k, v in params.as_dict().items() if k not in existing]
    c.log_batch(run_id, metrics=metrics, params=plist, tags=[RunTag(k, v[:5000]) for k, v in tags.items()])
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "report.html").write_text(html)
        (Path(tmp) / "drift.json").write_text(json.dumps(document, indent=1, default=str))
        c.log_artifact(run_id, str(Path(tmp) / "report.html"), "drift")
        c.log_artifact(run_id, str(Path(tmp) / "drift.json"), "drift")
    c.set_terminated(run_id)
    return run_id, tracking.run_url(experiment_id, run_id, s)


def _nan(value: Any) -> bool:
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return True


# --------------------------------------------------------------------------------------------------
# For train_model: the request behind an asset-triggered run
# --------------------------------------------------------------------------------------------------


def _request_events(triggering_asset_events: Any) -> list[Any]:
    if not triggering_asset_events:
        return []
    if hasattr(triggering_asset_events, "items"):
        out = []
        for key, events in triggering_asset_events.items():
            name = getattr(key, "name", key)
            if name in ("retrain_request", "mlops://requests/retrain") or name is None:
                out.extend(events)
            else:
                out.extend(e for e in events if _event_asset_name(e) == "retrain_request")
        return out
    return [e for e in triggering_asset_events if _event_asset_name(e) in ("retrain_request", None)]


def _event_asset_name(event: Any) -> str | None:
    asset = getattr(event, "asset", None)
    if asset is None and isinstance(event, dict):
        asset = event.get("asset")
    return (
        getattr(asset, "name", None)
        if asset is not None and not isinstance(asset, dict)
        else (asset or {}).get("name")
    )


def _extra(event: Any) -> dict[str, Any]:
    extra = getattr(event, "extra", None)
    if extra is None and isinstance(event, dict):
        extra = event.get("extra")
    return dict(extra or {})


def request_context(triggering_asset_events: Any) -> dict[str, str]:
    """The ``retrain_request`` behind an asset-triggered ``train_model`` run, as MLflow tags.

    ``triggering_asset_events`` is the run's context value (asset -> events) or a list of events.
    Several requests queued for one run are all listed; the latest one's metadata is used. Returns
    ``{}`` for runs no request triggered (scheduled, backfill, manual). Keys (all strings):
    ``retrain.reason``, ``retrain.report_uri``, ``retrain.drifted_features`` (JSON name -> score),
    ``retrain.window``, ``retrain.as_of``, ``retrain.ds``, ``retrain.signature``,
    ``retrain.data_version``, ``retrain.champion_version``, ``retrain.request_id``,
    ``retrain.source``, ``retrain.events``.
    """
    events = [e for e in _request_events(triggering_asset_events) if _extra(e)]
    if not events:
        return {}

    def when(e: Any) -> str:
        ts = getattr(e, "timestamp", None) if not isinstance(e, dict) else e.get("timestamp")
        return str(ts or "")

    events = sorted(events, key=when)
    last = _extra(events[-1])
    source_dag = (
        getattr(events[-1], "source_dag_id", None)
        if not isinstance(events[-1], dict)
        else events[-1].get("source_dag_id")
    )
    source_run = (
        getattr(events[-1], "source_run_id", None)
        if not isinstance(events[-1], dict)
        else events[-1].get("source_run_id")
    )
    out = {
        "retrain.requested": "true",
        "retrain.reason": str(last.get("reason") or ""),
        "retrain.report_uri": str(last.get("report_uri") or ""),
        "retrain.drifted_features": json.dumps(last.get("drifted_features") or {}, sort_keys=True),
        "retrain.window": f"{last.get('window_start')}..{last.get('window_end')}",
        "retrain.as_of": str(last.get("as_of") or ""),
        "retrain.ds": str(last.get("ds") or ""),
        "retrain.signature": str(last.get("signature") or ""),
        "retrain.data_version": str(last.get("data_version") or ""),
        "retrain.champion_version": str(last.get("champion_version") or ""),
        "retrain.request_id": str(last.get("request_id") or ""),
        "retrain.source": f"{source_dag or ''}/{source_run or ''}",
        "retrain.events": str(len(events)),
    }
    if len(events) > 1:
        out["retrain.request_ids"] = json.dumps([_extra(e).get("request_id") for e in events])
    return {k: v[:5000] for k, v in out.items()}


def request_as_of(triggering_asset_events: Any) -> str | None:
    """The data-time as-of of the latest request (the day after its window), or None."""
    return request_context(triggering_asset_events).get("retrain.as_of") or None


def tag_training_run(run_id: str, context: Mapping[str, str], settings: Settings | None = None) -> None:
    """Write :func:`request_context` tags on a training run (no-op when ``context`` is empty)."""
    if not context:
        return
    from mlflow.entities import RunTag

    from mlops.models import tracking

    tracking.client(settings).log_batch(run_id, tags=[RunTag(k, str(v)[:5000]) for k, v in context.items()])
