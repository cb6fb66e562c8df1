"""Batch scoring: a day's flights scored with one registered model version (no Airflow).

Layout and columns (the contract ``monitor_drift`` and users read)
------------------------------------------------------------------
``{lake}/predictions/ds=YYYY-MM-DD/data.parquet`` holds one row per flight scheduled on local day
``ds`` (every curated flight of the day, including those later cancelled: the prediction is made
before departure; their label stays null and performance checks drop them). Columns, in order
(:data:`BATCH_COLUMNS`):

* the flight: ``flight_id``, ``ds``, ``carrier``, ``flight``, ``origin``, ``dest``, ``tailnum``,
  ``sched_dep_ts`` (UTC);
* the prediction: ``delay_probability`` (P(arrival delay >= 15 min)), ``predicted_delayed``
  (``delay_probability >= threshold``), ``threshold``, ``model_name``, ``model_version`` (the
  exact registered version that scored the row), ``source`` (``"batch"``);
* the model inputs: :data:`FEATURE_COLUMNS`, i.e. :data:`mlops.features.compute.MODEL_FEATURES` as scored
  (categorical ones as strings; ``carrier``, ``origin`` and ``dest`` are the flight columns above),
  so drift checks read the very values the model saw.

Served predictions (``mlops serve``) are logged with the same columns plus ``request_id``,
``served_at``, ``prediction_id``, ``alias`` and ``role`` (:data:`ONLINE_COLUMNS`; ``role`` is
``served`` for the answer, ``shadow`` for the other model's score), ``source == "online"``, under
``{lake}/predictions_online/ds=YYYY-MM-DD/part-<ts>-<pid>-<seq>.parquet`` (see
:mod:`mlops.serving.logger`).

Point in time and idempotence
-----------------------------
Features come from Feast ``get_historical_features`` at each flight's scheduled departure
(:func:`mlops.features.feature_store.historical_frame`, the training path), so a backfilled day is scored
with what was known before each departure. The version is resolved once (``@champion`` unless
given) and recorded per row; the partition is rewritten atomically, so a rerun replaces it
(same inputs and version -> byte-identical file), never duplicates it.

The pure core is :func:`assemble` / :func:`score_frame`; :func:`score_days` adds the I/O.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from mlops import lake, layout
from mlops.config import CHAMPION, MODEL_NAME, Settings, get_settings
from mlops.features import compute

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

log = logging.getLogger(__name__)

#: Decision threshold on ``delay_probability`` unless configured (batch param, ``mlops serve``).
DEFAULT_THRESHOLD = 0.5

ID_COLUMNS: list[str] = ["flight_id", "ds", "carrier", "flight", "origin", "dest", "tailnum", "sched_dep_ts"]
PREDICTION_COLUMNS: list[str] = [
    "delay_probability",
    "predicted_delayed",
    "threshold",
    "model_name",
    "model_version",
    "source",
]
#: Model inputs stored beside the prediction (``carrier``, ``origin``, ``dest`` are flight columns already).
FEATURE_COLUMNS: list[str] = [f for f in compute.MODEL_FEATURES if f not in ID_COLUMNS]
BATCH_COLUMNS: list[str] = [*ID_COLUMNS, *PREDICTION_COLUMNS, *FEATURE_COLUMNS]
#: Served predictions: one row per model that scored a flight (see :mod:`mlops.serving.logger`).
ONLINE_COLUMNS: list[str] = [*BATCH_COLUMNS, "request_id", "served_at", "prediction_id", "alias", "role"]

_ID_DTYPES: dict[str, str] = {
    "flight_id": "string",
    "ds": "string",
    "carrier": "string",
    "flight": "int64",
    "origin": "string",
    "dest": "string",
    "tailnum": "string",
    "sched_dep_ts": "datetime64[us, UTC]",
}

Predict = Callable[["pd.DataFrame"], "np.ndarray"]


class NoModelToScore(RuntimeError):
    """No version given and ``@champion`` is not set."""


# --------------------------------------------------------------------------------------------------
# Pure core
# --------------------------------------------------------------------------------------------------


def _broadcast(value: Any, n: int) -> list[Any]:
    if isinstance(value, list | tuple):
        if len(value) != n:
            raise ValueError(f"expected {n} values, got {len(value)}")
        return list(value)
    return [value] * n


def assemble(
    ids: pd.DataFrame,
    features: pd.DataFrame,
    probabilities: Sequence[float] | np.ndarray,
    *,
    threshold: float | Sequence[float],
    model_name: str | Sequence[str],
    model_version: str | Sequence[str],
    source: str,
) -> pd.DataFrame:
    """Rows of :data:`BATCH_COLUMNS` from flight ids, model features and probabilities (aligned by
    position). Scalars apply to every row; sequences give one value per row."""
    import numpy as np
    import pandas as pd

    n = len(ids)
    if len(features) != n or len(probabilities) != n:
        raise ValueError(
            f"ids ({n}), features ({len(features)}) and probabilities ({len(probabilities)}) differ"
        )
    lacking = [c for c in ID_COLUMNS if c not in ids]
    if lacking:
        raise ValueError(f"flight columns {lacking} missing: predictions need {ID_COLUMNS}")
    out = pd.DataFrame(index=pd.RangeIndex(n))
    for col, dtype in _ID_DTYPES.items():
        values = ids[col].to_numpy()
        if col == "sched_dep_ts":
            out[col] = pd.to_datetime(pd.Series(values), utc=True).astype(dtype)
        else:
            out[col] = pd.Series(values, dtype="object").where(pd.notna(values), None).astype(dtype)
    p = np.asarray(probabilities, dtype="float64")
    thr = np.asarray(_broadcast(threshold, n), dtype="float64")
    out["delay_probability"] = p
    out["predicted_delayed"] = p >= thr
    out["threshold"] = thr
    out["model_name"] = pd.array(_broadcast(model_name, n), dtype="string")
    out["model_version"] = pd.array([str(v) for v in _broadcast(model_version, n)], dtype="string")
    out["source"] = pd.array([source] * n, dtype="string")
    feats = features.reset_index(drop=True)
    for col in FEATURE_COLUMNS:
        src = feats[col] if col in feats else pd.Series([None] * n)
        if col in compute.CATEGORICAL_FEATURES:
            values = src.astype("object")
            out[col] = values.where(values.notna(), None).astype("string")
        else:
            out[col] = pd.to_numeric(src, errors="coerce").astype("float64").to_numpy()
    return out[BATCH_COLUMNS]


def score_frame(
    flights: pd.DataFrame,
    features: pd.DataFrame,
    predict: Predict,
    *,
    model_version: str,
    threshold: float = DEFAULT_THRESHOLD,
    model_name: str = MODEL_NAME,
) -> pd.DataFrame:
    """Score ``flights`` (curated rows) whose model features are ``features`` (same index)."""
    probabilities = predict(features) if len(features) else []
    return assemble(
        flights.reset_index(drop=True),
        features,
        probabilities,
        threshold=threshold,
        model_name=model_name,
        model_version=model_version,
        source="batch",
    )


def summary(predictions: pd.DataFrame) -> dict[str, Any]:
    """Counts for asset metadata and logs."""
    n = len(predictions)
    return {
        "rows": n,
        "predicted_delayed": int(predictions["predicted_delayed"].sum()) if n else 0,
        "mean_probability": round(float(predictions["delay_probability"].mean()), 6) if n else None,
    }


# --------------------------------------------------------------------------------------------------
# I/O
# --------------------------------------------------------------------------------------------------


def predictions_uri(ds: str, settings: Settings | None = None) -> str:
    """``{lake}/predictions/ds=YYYY-MM-DD/data.parquet`` (:func:`mlops.layout.predictions_file`)."""
    return layout.predictions_file((settings or get_settings()).lake_uri, ds)


def read_predictions(ds: str, settings: Settings | None = None) -> pd.DataFrame:
    return lake.read_parquet(predictions_uri(ds, settings))


def resolve_version(version: str | None = None, settings: Settings | None = None) -> dict[str, Any]:
    """The version to score with (``version``, else ``@champion``) and its lineage tags."""
    from mlops.models import registry

    resolved = str(version) if version else registry.alias_version(CHAMPION, settings)
    if resolved is None:
        raise NoModelToScore(
            f"{MODEL_NAME}@{CHAMPION} is not set and no model_version was given: nothing to score "
            "with. Run train_model until a version is promoted (or trigger with "
            '{"model_version": "N"}), then clear this task.'
        )
    info = registry.version_info(resolved, settings)
    tags = dict(info.tags or {})
    return {
        "model_name": MODEL_NAME,
        "model_version": resolved,
        "source": "param" if version else CHAMPION,
        "run_id": info.run_id,
        "as_of": tags.get("mlops.as_of"),
    }


@dataclass
class DayResult:
    """One day's scored partition (the ``flight_predictions`` asset metadata)."""

    ds: str
    uri: str
    rows: int
    model_name: str
    model_version: str
    threshold: float
    predicted_delayed: int
    mean_probability: float | None
    model_as_of: str | None
    model_trained_after_day: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def score_days(
    days: Sequence[str],
    model_version: str,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    settings: Settings | None = None,
    model_as_of: str | None = None,
    predict: Predict | None = None,
    timings: dict[str, float] | None = None,
) -> list[DayResult]:
    """Score every curated flight of ``days`` with ``model_version``; one partition per day.

    One ``get_historical_features`` call covers all the days (its cost is mostly fixed, so a
    month scores much faster in one call than day by day). Raises ``FileNotFoundError`` naming
    the partition when a day has no curated partition. ``timings`` (if given) receives the seconds
    of each step: ``read_curated``, ``load_model``, ``features``, ``predict``, ``write``, ``total``.
    """
    from mlops.features import feature_store
    from mlops.models import registry

    s = settings or get_settings()
    days = sorted(set(days))
    _require_curated(days, s)
    seconds: dict[str, float] = timings if timings is not None else {}
    started = time.perf_counter()
    with _timed(seconds, "read_curated"):
        flights = _read_flights(days, s)
    with _timed(seconds, "load_model"):
        model = predict or registry.predictor(model_version, s)
    with _timed(seconds, "features"):
        features = feature_store.historical_frame(flights, s)
    with _timed(seconds, "predict"):
        scored = score_frame(flights, features, model, model_version=str(model_version), threshold=threshold)
    with _timed(seconds, "write"):
        results = [
            _write_day(scored, ds, str(model_version), float(threshold), model_as_of, s) for ds in days
        ]
    seconds["total"] = time.perf_counter() - started
    _log_scored(scored, days, model_version, seconds)
    return results


@contextlib.contextmanager
def _timed(seconds: dict[str, float], step: str) -> Iterator[None]:
    """Record the wall time of the block under ``seconds[step]``."""
    mark = time.perf_counter()
    yield
    seconds[step] = time.perf_counter() - mark


def _require_curated(days: Sequence[str], settings: Settings) -> None:
    """Raise ``FileNotFoundError`` naming the days that have no curated partition."""
    missing = [ds for ds in days if not lake.exists(layout.curated_file(settings.lake_uri, ds))]
    if missing:
        raise FileNotFoundError(
            f"no curated partition for {missing} "
            f"(expected {layout.curated_file(settings.lake_uri, missing[0])}): "
            "ingest the day first (ingest_flights), then clear this task"
        )


def _read_flights(days: Sequence[str], settings: Settings) -> pd.DataFrame:
    """The curated flights of ``days`` in scoring order (departure, then flight id)."""
    flights = compute.read_curated(days, settings)
    return flights.sort_values(["sched_dep_ts", "flight_id"], kind="stable").reset_index(drop=True)


def _write_day(
    scored: pd.DataFrame,
    ds: str,
    model_version: str,
    threshold: float,
    model_as_of: str | None,
    settings: Settings,
) -> DayResult:
    """Write day ``ds`` of ``scored`` to its predictions partition; its :class:`DayResult`."""
    part = scored[scored["ds"] == ds].reset_index(drop=True)
    uri = predictions_uri(ds, settings)
    lake.write_parquet(uri, part)
    stats = summary(part)
    after = bool(model_as_of and model_as_of > ds)
    if after:
        log.warning(
            "ds=%s scored with %s v%s trained as of %s: the day may be in its training window "
            "(in-sample scores); pass model_version to score a backfill with an older model",
            ds,
            MODEL_NAME,
            model_version,
            model_as_of,
        )
    return DayResult(
        ds=ds,
        uri=uri,
        rows=stats["rows"],
        model_name=MODEL_NAME,
        model_version=model_version,
        threshold=threshold,
        predicted_delayed=stats["predicted_delayed"],
        mean_probability=stats["mean_probability"],
        model_as_of=model_as_of,
        model_trained_after_day=after,
    )


def _log_scored(
    scored: pd.DataFrame, days: Sequence[str], model_version: str, seconds: dict[str, float]
) -> None:
    log.info(
        "scored %d flights of %s..%s with %s v%s in %.1fs (%s)",
        len(scored),
        days[0] if days else "-",
        days[-1] if days else "-",
        MODEL_NAME,
        model_version,
        seconds["total"],
        {k: round(v, 2) for k, v in seconds.items()},
    )


def require_features(days: Sequence[str], settings: Settings | None = None) -> None:
    """Raise ``FileNotFoundError`` naming the days whose feature tables are not built yet (their
    scores would use stale or missing features)."""
    s = settings or get_settings()
    missing = [ds for ds in days if not lake.exists(layout.features_built_file(s.lake_uri, ds))]
    if missing:
        raise FileNotFoundError(
            f"no feature tables for {len(missing)} day(s) {missing[0]}..{missing[-1]} "
            f"(expected {layout.features_built_file(s.lake_uri, missing[0])}): run materialize_features "
            "for them (trigger it with start_ds/end_ds), then clear this task"
        )


def event_metadata(results: Sequence[DayResult]) -> dict[str, Any]:
    """The ``flight_predictions`` event of a run: one day's :class:`DayResult`, or for a range the
    first/last day, totals and every day's result under ``days``."""
    if len(results) == 1:
        return results[0].as_dict()
    first = results[0]
    rows = sum(r.rows for r in results)
    means = [(r.mean_probability, r.rows) for r in results if r.mean_probability is not None and r.rows]
    return {
        "ds": first.ds,
        "end_ds": results[-1].ds,
        "rows": rows,
        "model_name": first.model_name,
        "model_version": first.model_version,
        "threshold": first.threshold,
        "predicted_delayed": sum(r.predicted_delayed for r in results),
        "mean_probability": sum(m * n for m, n in means) / sum(n for _, n in means) if means else None,
        "model_as_of": first.model_as_of,
        "model_trained_after_day": any(r.model_trained_after_day for r in results),
        "days": [r.as_dict() for r in results],
    }


def score_day(
    ds: str,
    model_version: str | None = None,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    settings: Settings | None = None,
) -> DayResult:
    """Score one day with ``model_version`` (default: the current ``@champion``)."""
    model = resolve_version(model_version, settings)
    return score_days(
        [ds],
        model["model_version"],
        threshold=threshold,
        settings=settings,
        model_as_of=model["as_of"],
    )[0]
