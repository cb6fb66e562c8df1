"""The comparison itself (pure: frames in, numbers out): sampling, feature and prediction drift,
performance and calibration, and the breaches of the thresholds.

Evidently 0.7 (``from evidently import Report``): ``DataDriftPreset`` over the monitored features
(Wasserstein distance for numeric, Jensen-Shannon for categorical: fixed methods, so a score means
the same whatever the sample size), ``ValueDrift`` of the prediction against the reference
holdout, and the performance of the labelled current rows against the holdout: the model spec's
task names the step (:func:`classification_performance`: ``ClassificationPreset``, ROC-AUC and
calibration - expected calibration error over 10 quantile bins, mean prediction minus observed
rate, Brier - computed here; :func:`regression_performance`: ``RegressionPreset``, MAE, RMSE, R²).
The spec also names the label, the meta columns and the performance metric whose degradation is a
breach. :func:`run_check` chains the steps; the unit tests and ``benchmarks/bench_drift.py`` call it
with small frames.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mlops.schema import LABEL
from mlops.spec.model import model_spec, resolve

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    import numpy as np
    import pandas as pd

    from mlops.monitoring.params import DriftParams
    from mlops.spec.model import ModelSpec

PREDICTION = "prediction"


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


@dataclass
class FeatureDrift:
    """Per-feature drift scores (``{name: {score, method, threshold, drifted}}``) and their share."""

    snapshot: Any
    scores: dict[str, dict[str, Any]]
    #: Features compared, plus those without values on one side (scored as drifted).
    n_features: int

    @property
    def n_drifted(self) -> int:
        return sum(1 for score in self.scores.values() if score["drifted"])

    @property
    def share(self) -> float:
        return self.n_drifted / self.n_features if self.n_features else 0.0

    def drifted(self) -> dict[str, float]:
        """The drifted features' scores, highest first."""
        ranked = sorted(self.scores.items(), key=lambda item: -item[1]["score"])
        return {name: score["score"] for name, score in ranked if score["drifted"]}


@dataclass
class Performance:
    """The performance of the labelled current rows and the holdout's (NaN: not judged): the spec's
    monitoring ``metric`` (``value``, ``reference``), and for a classifier ROC-AUC and calibration."""

    snapshot: Any = None
    roc_auc: float = float("nan")
    roc_auc_reference: float = float("nan")
    calibration: dict[str, Any] = field(default_factory=lambda: calibration([], []))
    calibration_reference: dict[str, Any] = field(default_factory=lambda: calibration([], []))
    n_labelled: int = 0
    positive_rate: float | None = None
    metric: str = "roc_auc"
    higher_is_better: bool = True
    value: float = float("nan")
    reference: float = float("nan")
    #: Every metric of the task on the current rows, and on the holdout.
    metrics: dict[str, float] = field(default_factory=dict)
    metrics_reference: dict[str, float] = field(default_factory=dict)

    @property
    def auc_drop(self) -> float:
        if math.isnan(self.roc_auc) or math.isnan(self.roc_auc_reference):
            return float("nan")
        return self.roc_auc_reference - self.roc_auc

    @property
    def degradation(self) -> float:
        """How much worse than the holdout, relative to it (0.1: 10% worse; NaN: not judged)."""
        if math.isnan(self.value) or math.isnan(self.reference) or self.reference == 0:
            return float("nan")
        worse = self.reference - self.value if self.higher_is_better else self.value - self.reference
        return worse / abs(self.reference)


# --------------------------------------------------------------------------------------------------
# Sampling and frames as Evidently reads them
# --------------------------------------------------------------------------------------------------


def sample_rows(frame: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """At most ``n`` rows of ``frame``, drawn with ``seed`` (same inputs -> same rows), in order."""
    if len(frame) <= n:
        return frame.reset_index(drop=True)
    return frame.sample(n=n, random_state=seed).sort_index().reset_index(drop=True)


def monitored_features(
    reference: pd.DataFrame, current: pd.DataFrame, ignore: Iterable[str] = (), spec: ModelSpec | None = None
) -> list[str]:
    """Model inputs present on both sides, in reference order, minus ``ignore`` (and the spec's
    meta columns and label)."""
    spec = model_spec(spec)
    skip = {*spec.meta_columns, spec.label, PREDICTION, *ignore}
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
    return out


def _metric_values(snapshot: Any) -> list[dict[str, Any]]:
    return list(snapshot.dict()["metrics"]) if snapshot is not None else []


def _fill_predictions(side: pd.DataFrame, predict: Callable[[pd.DataFrame], np.ndarray] | None) -> None:
    """Score the rows of ``side`` that have no prediction yet (in place)."""
    import numpy as np

    if PREDICTION not in side:
        side[PREDICTION] = np.nan
    missing = side[PREDICTION].isna()
    if not missing.any():
        return
    if predict is None:
        raise ValueError(f"{int(missing.sum())} rows have no prediction and no predict function was given")
    side.loc[missing, PREDICTION] = predict(side.loc[missing])


def _holdout(reference: pd.DataFrame, holdout_start: str | None, day: str = "ds") -> pd.DataFrame:
    """The reference rows from ``holdout_start`` on (all rows when None or when none is that late)."""
    if holdout_start is None:
        return reference
    holdout = reference[reference[day].astype(str) >= holdout_start]
    return reference if holdout.empty else holdout


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


# --------------------------------------------------------------------------------------------------
# The steps
# --------------------------------------------------------------------------------------------------


def _comparable(
    reference: pd.DataFrame, current: pd.DataFrame, features: list[str]
) -> tuple[list[str], dict[str, str]]:
    """The features with values on both sides, and why each of the others cannot be compared.

    All-null now but not before is drift: such a feature is listed as unavailable (drifted).
    """
    comparable, unavailable = [], {}
    for name in features:
        reference_null, current_null = reference[name].isna().all(), current[name].isna().all()
        if not (reference_null or current_null):
            comparable.append(name)
        elif current_null and not reference_null:
            unavailable[name] = "null in every current row"
        elif reference_null and not current_null:
            unavailable[name] = "null in every reference row"
    return comparable, unavailable


def feature_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: list[str],
    params: DriftParams,
    timestamp: datetime,
) -> FeatureDrift:
    """Drift of each of ``features`` (the whole training window as reference)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    comparable, unavailable = _comparable(reference, current, features)
    categorical = {name for name in comparable if _is_categorical(reference[name])}
    definition = DataDefinition(
        numerical_columns=[name for name in comparable if name not in categorical],
        categorical_columns=[name for name in comparable if name in categorical],
    )
    preset = DataDriftPreset(
        columns=comparable,
        drift_share=params.drift_share,
        num_method="wasserstein",
        cat_method="jensenshannon",
        num_threshold=params.num_threshold,
        cat_threshold=params.cat_threshold,
    )
    snapshot = Report([preset], metadata={"check": "feature drift"}).run(
        Dataset.from_pandas(_evidently_frame(current, comparable, categorical), data_definition=definition),
        Dataset.from_pandas(_evidently_frame(reference, comparable, categorical), data_definition=definition),
        timestamp=timestamp,
    )
    scores = _feature_scores(snapshot)
    for name, why in unavailable.items():
        scores[name] = {"score": 1.0, "method": why, "threshold": 0.0, "drifted": True}
    return FeatureDrift(snapshot, scores, len(comparable) + len(unavailable))


def _feature_scores(snapshot: Any) -> dict[str, dict[str, Any]]:
    scores = {}
    for metric in _metric_values(snapshot):
        config = metric.get("config", {})
        if str(config.get("type", "")).endswith("ValueDrift"):
            score, threshold = float(metric["value"]), float(config.get("threshold") or 0.0)
            scores[config["column"]] = {
                "score": round(score, 6),
                "method": config.get("method"),
                "threshold": threshold,
                "drifted": bool(score >= threshold),
            }
    return scores


def prediction_drift(
    holdout: pd.DataFrame, current: pd.DataFrame, params: DriftParams, timestamp: datetime
) -> tuple[Any, float]:
    """Drift of the predicted probability against the holdout's: (snapshot, Wasserstein distance)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    definition = DataDefinition(numerical_columns=[PREDICTION])

    def dataset(frame: pd.DataFrame) -> Any:
        return Dataset.from_pandas(frame[[PREDICTION]].astype("float64"), data_definition=definition)

    metric = ValueDrift(column=PREDICTION, method="wasserstein", threshold=params.prediction_threshold)
    snapshot = Report([metric]).run(dataset(current), dataset(holdout), timestamp=timestamp)
    value = float("nan")
    for result in _metric_values(snapshot):
        if str(result.get("config", {}).get("type", "")).endswith("ValueDrift"):
            value = float(result["value"])
    return snapshot, value


def _labelled(frame: pd.DataFrame, label: str = LABEL, dtype: str = "int64") -> pd.DataFrame:
    """The rows whose label had arrived, as ``(label, prediction float)``."""
    rows = frame[frame[label].notna()] if label in frame else frame.iloc[0:0]
    if label not in rows:
        return rows
    return rows[[label, PREDICTION]].astype({label: dtype, PREDICTION: "float64"}).reset_index(drop=True)


def performance(
    holdout: pd.DataFrame,
    current: pd.DataFrame,
    params: DriftParams,
    timestamp: datetime,
    spec: ModelSpec | None = None,
) -> Performance:
    """The spec's task's performance step (``Task.performance``) on the labelled current rows."""
    spec = model_spec(spec)
    return resolve(spec.task.performance)(holdout, current, params, timestamp, spec)


def regression_performance(
    holdout: pd.DataFrame,
    current: pd.DataFrame,
    params: DriftParams,
    timestamp: datetime,
    spec: ModelSpec | None = None,
) -> Performance:
    """MAE, RMSE and R² on the current rows whose labels had arrived, against the holdout's
    (Evidently ``RegressionPreset`` for the report); the spec's monitoring metric is judged."""
    from evidently import DataDefinition, Dataset, Regression, Report
    from evidently.presets import RegressionPreset

    spec = model_spec(spec)
    label, watch = spec.label, spec.monitoring
    current_labelled = _labelled(current, label, "float64")
    holdout_labelled = _labelled(holdout, label, "float64")
    out = Performance(
        n_labelled=len(current_labelled), metric=watch.metric, higher_is_better=watch.higher_is_better
    )
    if len(current_labelled):
        out.positive_rate = _round(float(current_labelled[label].mean()))
    if len(current_labelled) < params.min_labelled_rows:
        return out
    definition = DataDefinition(
        numerical_columns=[label, PREDICTION], regression=[Regression(target=label, prediction=PREDICTION)]
    )
    out.snapshot = Report([RegressionPreset()], metadata={"check": "performance"}).run(
        Dataset.from_pandas(current_labelled, data_definition=definition),
        Dataset.from_pandas(holdout_labelled, data_definition=definition) if len(holdout_labelled) else None,
        timestamp=timestamp,
    )
    out.metrics = spec.evaluate(current_labelled[label], current_labelled[PREDICTION])
    out.value = float(out.metrics[watch.metric])
    if len(holdout_labelled):
        out.metrics_reference = spec.evaluate(holdout_labelled[label], holdout_labelled[PREDICTION])
        out.reference = float(out.metrics_reference[watch.metric])
    return out


def classification_performance(
    holdout: pd.DataFrame,
    current: pd.DataFrame,
    params: DriftParams,
    timestamp: datetime,
    spec: ModelSpec | None = None,
) -> Performance:
    """ROC-AUC and calibration on the current rows whose labels had arrived, against the holdout."""
    from evidently import BinaryClassification, DataDefinition, Dataset, Report
    from evidently.presets import ClassificationPreset

    spec = model_spec(spec)
    label = spec.label
    current_labelled, holdout_labelled = _labelled(current, label), _labelled(holdout, label)
    out = Performance(
        n_labelled=len(current_labelled),
        metric=spec.monitoring.metric,
        higher_is_better=spec.monitoring.higher_is_better,
    )
    if len(current_labelled):
        out.positive_rate = _round(float(current_labelled[label].mean()))
    if len(current_labelled) < params.min_labelled_rows or current_labelled[label].nunique() != 2:
        return out
    definition = DataDefinition(
        numerical_columns=[PREDICTION],
        classification=[BinaryClassification(target=label, prediction_probas=PREDICTION)],
    )
    out.snapshot = Report([ClassificationPreset()], metadata={"check": "performance"}).run(
        Dataset.from_pandas(current_labelled, data_definition=definition),
        Dataset.from_pandas(holdout_labelled, data_definition=definition) if len(holdout_labelled) else None,
        timestamp=timestamp,
    )
    for metric in _metric_values(out.snapshot):
        if str(metric.get("config", {}).get("type", "")).endswith(":RocAuc"):
            out.roc_auc = float(metric["value"])
    out.calibration = calibration(current_labelled[label], current_labelled[PREDICTION])
    if len(holdout_labelled) and holdout_labelled[label].nunique() == 2:
        from sklearn.metrics import roc_auc_score

        out.roc_auc_reference = float(roc_auc_score(holdout_labelled[label], holdout_labelled[PREDICTION]))
        out.calibration_reference = calibration(holdout_labelled[label], holdout_labelled[PREDICTION])
    out.metrics = spec.evaluate(current_labelled[label], current_labelled[PREDICTION])
    out.value = float(out.metrics.get(out.metric, float("nan")))
    if len(holdout_labelled) and holdout_labelled[label].nunique() == 2:
        out.metrics_reference = spec.evaluate(holdout_labelled[label], holdout_labelled[PREDICTION])
        out.reference = float(out.metrics_reference.get(out.metric, float("nan")))
    return out


def breaches(
    drift: FeatureDrift,
    prediction: float,
    quality: Performance,
    n_current: int,
    params: DriftParams,
    spec: ModelSpec | None = None,
) -> list[dict[str, Any]]:
    """The thresholds passed (``kind``, ``value``, ``threshold``, ``message``); drift needs enough rows.

    Performance: a spec with ``Monitoring.max_relative_degradation`` breaches when its metric is that
    much worse than on the holdout (relative); otherwise by the absolute ROC-AUC drop
    (``params.max_auc_drop``). Calibration: a classifier's expected calibration error.
    """
    limit = model_spec(spec).monitoring.max_relative_degradation
    out: list[dict[str, Any]] = []
    enough = n_current >= params.min_current_rows
    if enough and drift.share >= params.drift_share:
        message = (
            f"{drift.n_drifted} of {drift.n_features} features drifted (share {drift.share:.2f} >= "
            f"{params.drift_share}): {', '.join(list(drift.drifted())[:8])}"
        )
        out.append(_breach("data_drift", drift.share, params.drift_share, message))
    if enough and prediction >= params.prediction_threshold:
        message = (
            f"prediction drift {prediction:.3f} >= {params.prediction_threshold} "
            "(Wasserstein distance, normed, vs the champion's holdout predictions)"
        )
        out.append(_breach("prediction_drift", prediction, params.prediction_threshold, message))
    worse = quality.degradation
    if limit is not None and not math.isnan(worse) and worse > limit:
        message = (
            f"{quality.metric} {quality.value:.3f} is {worse:.1%} worse than the holdout's "
            f"{quality.reference:.3f} (> {limit:.0%})"
        )
        out.append(_breach("performance", worse, limit, message))
    drop = quality.auc_drop
    if limit is None and not math.isnan(drop) and drop > params.max_auc_drop:
        message = (
            f"ROC-AUC {quality.roc_auc:.3f} is {drop:.3f} below the holdout's "
            f"{quality.roc_auc_reference:.3f} (> {params.max_auc_drop})"
        )
        out.append(_breach("performance", drop, params.max_auc_drop, message))
    ece = quality.calibration["ece"]
    if not math.isnan(ece) and ece > params.max_calibration_error:
        message = (
            f"expected calibration error {ece:.3f} > {params.max_calibration_error} "
            f"(mean predicted - observed = {quality.calibration['gap']:+.3f})"
        )
        out.append(_breach("calibration", ece, params.max_calibration_error, message))
    return out


def _breach(kind: str, value: float, threshold: float, message: str) -> dict[str, Any]:
    return {"kind": kind, "value": round(value, 4), "threshold": threshold, "message": message}


def _notes(n_current: int, n_labelled: int, params: DriftParams) -> list[str]:
    notes = []
    if n_current < params.min_current_rows:
        notes.append(f"only {n_current} current rows (< {params.min_current_rows}): drift not judged")
    if n_labelled < params.min_labelled_rows:
        notes.append(
            f"only {n_labelled} labelled current rows (< {params.min_labelled_rows}): performance not judged"
        )
    return notes


# --------------------------------------------------------------------------------------------------
# The sequence
# --------------------------------------------------------------------------------------------------


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
    spec: ModelSpec | None = None,
) -> CheckResult:
    """Compare ``current`` with ``reference``: feature drift, prediction drift, performance, breaches.

    Both frames hold the model features, the spec's day column, and optionally its label (NaN while
    unknown) and ``prediction``. Each side is first sampled to ``params.sample_size`` rows with
    ``params.seed``; rows without a prediction are then scored with ``predict``. Prediction drift
    and the performance baseline use the reference rows with ``ds >= reference_holdout_start``
    (all rows when None). ``totals`` may carry the pre-sampling sizes when the caller sampled.
    """
    spec = model_spec(spec)
    clock = _Clock()
    reference_sample = sample_rows(reference, params.sample_size, params.seed)
    current_sample = sample_rows(current, params.sample_size, params.seed)
    clock.lap("sample")
    for side in (reference_sample, current_sample):
        _fill_predictions(side, predict)
    clock.lap("score")
    names = (
        list(features)
        if features is not None
        else monitored_features(reference_sample, current_sample, params.ignore_features, spec)
    )
    ignored = {*params.ignore_features, *spec.monitoring.ignore_features}
    names = [name for name in names if name not in ignored]
    holdout = _holdout(reference_sample, reference_holdout_start, spec.day_column)
    stamp = timestamp or datetime(2000, 1, 1)
    drift = feature_drift(reference_sample, current_sample, names, params, stamp)
    prediction_snapshot, prediction = prediction_drift(holdout, current_sample, params, stamp)
    clock.lap("evidently_drift")
    quality = performance(holdout, current_sample, params, stamp, spec)
    clock.lap("evidently_performance")
    found = breaches(drift, prediction, quality, len(current_sample), params, spec)
    totals = dict(totals or {})
    sizes = {
        "n_reference": len(reference_sample),
        "n_reference_total": int(totals.get("reference", len(reference))),
        "n_reference_holdout": len(holdout),
        "n_current": len(current_sample),
        "n_current_total": int(totals.get("current", len(current))),
        "n_labelled": quality.n_labelled,
    }
    summary = _summary(drift, prediction, quality, found, params, sizes)
    summary["ignored_features"] = sorted(ignored)
    summary["prediction_mean"] = _mean(current_sample[PREDICTION])
    summary["prediction_mean_reference"] = _mean(holdout[PREDICTION])
    summary["timings"] = clock.done()
    return CheckResult(
        summary,
        drift_snapshot=drift.snapshot,
        prediction_snapshot=prediction_snapshot,
        performance_snapshot=quality.snapshot,
        timings=clock.timings,
    )


def _summary(
    drift: FeatureDrift,
    prediction: float,
    quality: Performance,
    found: list[dict[str, Any]],
    params: DriftParams,
    sizes: Mapping[str, int],
) -> dict[str, Any]:
    """The JSON-able summary of the steps' outcomes (keys of the history table, the XCom)."""
    enough = sizes["n_current"] >= params.min_current_rows
    return {
        "drift_share": round(drift.share, 6),
        "drift_detected": bool(enough and drift.share >= params.drift_share),
        "n_drifted": drift.n_drifted,
        "n_features": drift.n_features,
        "feature_scores": drift.scores,
        "drifted_features": drift.drifted(),
        "prediction_drift": _round(prediction),
        "prediction_drift_detected": bool(enough and prediction >= params.prediction_threshold),
        "roc_auc": _round(quality.roc_auc),
        "roc_auc_reference": _round(quality.roc_auc_reference),
        "roc_auc_drop": _round(quality.auc_drop),
        "calibration_error": _round(quality.calibration["ece"]),
        "calibration_gap": _round(quality.calibration["gap"]),
        "brier": _round(quality.calibration["brier"]),
        "calibration_bins": quality.calibration["bins"],
        "calibration_error_reference": _round(quality.calibration_reference["ece"]),
        "calibration_bins_reference": quality.calibration_reference["bins"],
        "positive_rate": quality.positive_rate,
        "performance_metric": quality.metric,
        "performance": _round(quality.value),
        "performance_reference": _round(quality.reference),
        "performance_degradation": _round(quality.degradation),
        "performance_metrics": {k: _round(v) for k, v in quality.metrics.items()},
        **sizes,
        "sample_size": params.sample_size,
        "seed": params.seed,
        "thresholds": params.thresholds(),
        "ignored_features": list(params.ignore_features),
        "breaches": found,
        "breached": bool(found),
        "notes": _notes(sizes["n_current"], sizes["n_labelled"], params),
    }


class _Clock:
    """Seconds spent in each step (``lap``), and the total (``done``)."""

    def __init__(self) -> None:
        self.started = self.last = time.perf_counter()
        self.timings: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = now - self.last
        self.last = now

    def done(self) -> dict[str, float]:
        self.timings["total"] = time.perf_counter() - self.started
        return {name: round(seconds, 3) for name, seconds in self.timings.items()}


def _mean(values: pd.Series) -> float | None:
    return _round(float(values.mean())) if len(values) else None


def _round(value: float | None, digits: int = 6) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return round(float(value), digits)
