"""The two sides of a check: the champion's reference and the current window (reads the lake,
MLflow and Feast; no Airflow).

*Reference* - what the champion was trained on. The champion's MLflow run records its as-of date
and window (``mlops.as_of``, params ``window_days``/``holdout_days``), and ``train_model`` saved
that exact training set (features and labels, as Feast served them) at
``{lake}/training/as_of=.../<data key>/training_set.parquet`` with a manifest whose ``data_hash``
the run also carries. :func:`reference_frame` reads that file when its manifest hash matches the
run's (``reference_source = "training_set"``); otherwise it rebuilds the window from the offline
store with :func:`mlops.features.feature_store.training_frame` (``"offline_store"``). Feature
drift uses the whole window; prediction drift and the performance baseline use only the window's
*holdout* days, which the champion never fitted (its in-sample scores would be over-confident).

*Current* - the ``window_days`` local days ending with the check's day ``ds``
(:func:`current_frame`): the curated rows of the spec's first feed (a spec without feeds: its
``frame``). Rows come from the spec's batch predictions (``{root}/predictions/ds=...``, root =
:func:`mlops.layout.model_root` of the spec's ``lake_folder``) when batch scoring scored them
with the champion's version (features as scored + the spec's ``prediction_column``); other rows
are scored with the champion in the task, on their features (:func:`features_of`: point-in-time
features of the spec's feature service, :func:`mlops.features.feature_store.historical_frame`, or
the spec's own ``frame`` when it does not read the feature store). The source of each row is counted in ``predictions_source``. Labels
(``spec.labels``) count only when they had arrived by the end of ``ds`` (:func:`label_known_at`
<= local midnight after ``ds``), so performance is measured on outcomes known at check time, never
on later ones. Current rows are sampled *before* their features are fetched, which bounds the
Feast and scoring cost too.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from mlops import lake, layout
from mlops.config import CHAMPION, Settings, get_settings
from mlops.monitoring.params import window_days
from mlops.monitoring.statistics import PREDICTION, sample_rows
from mlops.params import parse_ds
from mlops.spec.model import model_spec

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    import numpy as np
    import pandas as pd

    from mlops.monitoring.params import DriftParams
    from mlops.spec.model import ModelSpec

log = logging.getLogger(__name__)


class NoChampion(LookupError):
    """There is no ``@champion``: nothing to monitor."""


class NoCurrentData(ValueError):
    """The check's window has no rows (no curated partition of the spec's feed)."""


def label_known_at(spec: ModelSpec, rows: pd.DataFrame) -> pd.Series:
    """When each row's label becomes known (UTC; NaT: never).

    The spec's ``Monitoring.label_known_at`` (``module:function``, rows -> timestamps) when it
    has one (the flight models': at arrival); else the row's own time (``time_column``: the label
    is known when the row is).
    """
    import pandas as pd

    from mlops.spec.model import resolve

    if spec.monitoring.label_known_at:
        return resolve(spec.monitoring.label_known_at)(rows)
    return pd.to_datetime(rows[spec.time_column], utc=True)


def check_instant(ds: str) -> datetime:
    """End of local day ``ds`` (UTC): the check's as-of instant, and its Evidently timestamp."""
    from mlops.features import compute

    next_day = (parse_ds(ds) + timedelta(days=1)).isoformat()
    return compute.local_midnight(next_day).to_pydatetime()


# --------------------------------------------------------------------------------------------------
# The champion and its reference
# --------------------------------------------------------------------------------------------------


def champion_info(
    settings: Settings | None = None, version: str | None = None, spec: ModelSpec | None = None
) -> dict[str, Any]:
    """The champion (or ``version``) of the spec's model: its run, as-of date, training window and
    training set URI, and its holdout value of the spec's monitoring metric."""
    from mlops.models import registry, tracking
    from mlops.training.dataset import training_dir
    from mlops.training.params import TrainParams, Window

    spec = model_spec(spec)
    name = spec.model_name
    s = settings or get_settings()
    version = version or registry.alias_version(CHAMPION, s, name)
    if version is None:
        raise NoChampion(f"{name}@{CHAMPION} is not set: nothing to monitor yet (run its training first)")
    model_version = registry.version_info(version, s, name)
    run = tracking.client(s).get_run(model_version.run_id)
    tags = {**run.data.tags, **(model_version.tags or {})}
    as_of = tags.get("mlops.as_of")
    if not as_of:
        raise ValueError(
            f"{name} v{version} (run {model_version.run_id}) has no mlops.as_of tag: cannot tell its window"
        )
    train_params = TrainParams.from_mapping(run.data.params)
    window = Window.of(as_of, train_params)
    holdout_auc = tags.get("holdout.roc_auc") or run.data.metrics.get("roc_auc")
    metric = spec.monitoring.metric
    holdout_value = tags.get(f"holdout.{metric}") or run.data.metrics.get(metric)
    return {
        "spec": spec.ref,
        "model_name": name,
        "version": str(version),
        "run_id": model_version.run_id,
        "as_of": window.as_of.isoformat(),
        "window": window.as_dict(),
        "window_days": train_params.window_days,
        "holdout_days": train_params.holdout_days,
        "data_hash": tags.get("mlops.data_hash"),
        "training_dir": training_dir(window, train_params, s, spec),
        "holdout_roc_auc": float(holdout_auc) if holdout_auc is not None else None,
        "holdout_metric": metric,
        "holdout_value": float(holdout_value) if holdout_value is not None else None,
    }


def reference_frame(
    champion: Mapping[str, Any], settings: Settings | None = None, spec: ModelSpec | None = None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The champion's training set (see the module docstring) and where it came from."""
    from mlops.training.dataset import load_training_set

    spec = model_spec(spec)
    s = settings or get_settings()
    window = champion["window"]
    uri = lake.join(champion["training_dir"], "training_set.parquet")
    manifest_uri = lake.join(champion["training_dir"], "manifest.json")
    info: dict[str, Any] = {
        "window": f"{window['start']}..{window['end']}",
        "holdout_start": window["holdout_start"],
    }
    if lake.exists(uri) and lake.exists(manifest_uri):
        saved_hash = json.loads(lake.read_text(manifest_uri)).get("data_hash")
        if not champion.get("data_hash") or saved_hash == champion["data_hash"]:
            frame = load_training_set(uri, spec)
            info.update(source="training_set", uri=uri, rows=len(frame))
            return frame, info
        reason = f"{uri} was rewritten since (hash {saved_hash} != run's {champion['data_hash']})"
    else:
        reason = f"no saved training set at {uri}"
    log.warning(
        "reference of v%s: %s; rebuilding %s from the offline store",
        champion["version"],
        reason,
        info["window"],
    )
    frame = spec.build_frame(window["start"], window["end"], s)
    info.update(source="offline_store", reason=reason, rows=len(frame))
    return frame, info


# --------------------------------------------------------------------------------------------------
# The current window
# --------------------------------------------------------------------------------------------------


def current_frame(
    ds: str,
    params: DriftParams,
    champion: Mapping[str, Any],
    settings: Settings | None = None,
    predict: Callable[[pd.DataFrame], np.ndarray] | None = None,
    spec: ModelSpec | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The window's rows (sampled), their model features (the spec's), predictions and arrived
    labels (the spec's label, where known by the end of ``ds``)."""
    import pandas as pd

    from mlops.features import compute

    spec = model_spec(spec)
    label, key, day = spec.label, spec.id_column, spec.day_column
    s = settings or get_settings()
    days = window_days(ds, params.window_days)
    curated = window_rows(days, s, spec)
    cutoff = compute.local_midnight((parse_ds(days[-1]) + timedelta(days=1)).isoformat())
    known = pd.to_datetime(label_known_at(spec, curated), utc=True)
    arrived = (known <= cutoff).fillna(False).astype(bool)
    labelled = curated.assign(**{label: spec.labels(curated).astype("float64").where(arrived)})
    ordered = labelled.sort_values([spec.time_column, key], kind="stable")
    sampled = sample_rows(ordered, params.sample_size, params.seed)
    parts, unscored = _batch_predictions(sampled, str(champion["version"]), s, spec)
    sources = {"batch_predictions": sum(len(part) for part in parts), "scored_in_task": len(unscored)}
    if len(unscored):
        parts.append(_scored_in_task(unscored, predict, s, spec))
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=[key, day, label])
    out[day] = out[day].astype(str)
    info = {
        "days": days,
        "days_present": sorted(curated[day].astype(str).unique().tolist()),
        "rows_total": len(curated),
        "labels_arrived": int(arrived.sum()),
        "cutoff": cutoff.isoformat(),
        "predictions_source": sources,
    }
    return out, info


def window_rows(days: Sequence[str], settings: Settings, spec: ModelSpec) -> pd.DataFrame:
    """The rows of ``days``: the curated partitions of the spec's first feed, or (a spec without
    feeds) its ``frame`` of those days. :class:`NoCurrentData` when there are none."""
    from mlops.features import compute

    if spec.feeds:
        rows = compute.read_curated(days, settings, feed=spec.feeds[0])
        source = f"curated {spec.feeds[0]} partitions"
    else:
        after = (parse_ds(days[-1]) + timedelta(days=1)).isoformat()
        rows = spec.build_frame(days[0], after, settings)
        source = f"rows of the {spec.name} spec's frame"
    if rows.empty:
        raise NoCurrentData(
            f"no {source} in {days[0]}..{days[-1]} to check {spec.model_name} on: run (or backfill) "
            "the feed's ingestion for these days, then clear this task"
        )
    return rows


def _batch_predictions(
    sampled: pd.DataFrame, version: str, settings: Settings, spec: ModelSpec | None = None
) -> tuple[list[pd.DataFrame], pd.DataFrame]:
    """The sampled rows that batch scoring scored with ``version`` of the spec's model (features
    as scored; the spec's predictions folder), by day, and the rows it did not score."""
    import pandas as pd

    spec = model_spec(spec)
    key = spec.id_column
    found_parts: list[pd.DataFrame] = []
    missing: list[pd.DataFrame] = []
    for day, rows in sampled.groupby(spec.day_column, sort=True):
        uri = layout.predictions_file(settings.lake_uri, str(day), spec.lake_folder)
        if lake.exists(uri):
            found = _scored_rows(rows, lake.read_parquet(uri), version, spec)
            if len(found):
                found[spec.day_column] = str(day)
                found_parts.append(found)
            rows = rows[~rows[key].isin(found[key])]
        if len(rows):
            missing.append(rows)
    unscored = pd.concat(missing).reset_index(drop=True) if missing else sampled.iloc[0:0]
    return found_parts, unscored


def _scored_rows(
    rows: pd.DataFrame, predictions: pd.DataFrame, version: str, spec: ModelSpec | None = None
) -> pd.DataFrame:
    """``rows`` joined with the day's predictions of ``version`` of the spec's model (none when the
    file lacks the spec's prediction column or features: another model's), categoricals typed as
    training's."""
    from mlops.spec.features import feature_set

    spec = model_spec(spec)
    label, column, key = spec.label, spec.prediction_column, spec.id_column
    mine = predictions["model_version"].astype(str) == version
    if column not in predictions or not {key, *spec.features} <= set(predictions.columns):
        mine &= False
    predictions = predictions[mine]
    found = rows[[key, label]].merge(predictions[[key, column, *spec.features]], on=key, how="inner")
    frame = found.rename(columns={column: PREDICTION})
    dtypes = feature_set(spec.feature_set).dtypes()
    for column in (c for c in spec.features if c in dtypes):
        values = frame[column].astype("object")
        frame[column] = values.where(values.notna(), None).astype(dtypes[column])
    return frame


def _scored_in_task(
    rows: pd.DataFrame,
    predict: Callable[[pd.DataFrame], np.ndarray] | None,
    settings: Settings,
    spec: ModelSpec | None = None,
) -> pd.DataFrame:
    """The features of ``rows`` (:func:`features_of`) scored with ``predict`` (NaN without one)."""
    import numpy as np
    import pandas as pd

    spec = model_spec(spec)
    features = features_of(rows, settings, spec)
    meta = [spec.id_column, spec.day_column, spec.label]
    frame = pd.concat([rows[meta].reset_index(drop=True), features.reset_index(drop=True)], axis=1)
    frame[PREDICTION] = predict(features) if predict is not None else np.nan
    return frame


#: The ``ModelSpec.frame`` of the specs whose features the feature store serves (point in time).
FEAST_FRAME = "mlops.training.dataset:feast_frame"


def features_of(rows: pd.DataFrame, settings: Settings, spec: ModelSpec) -> pd.DataFrame:
    """The spec's features of ``rows``, in order, aligned with them: point-in-time features of the
    spec's feature service for a Feast-backed spec (``frame`` = :data:`FEAST_FRAME`), else the
    spec's own ``frame`` of the rows' days (typed as training typed them), joined on the id and
    day columns (a row the frame lacks has null features)."""
    names = list(spec.features)
    if spec.frame == FEAST_FRAME:
        from mlops.features import feature_store

        return feature_store.historical_frame(rows, settings, service=spec.feature_service)[names]
    key, day = spec.id_column, spec.day_column
    days = sorted(rows[day].astype(str).unique())
    after = (parse_ds(days[-1]) + timedelta(days=1)).isoformat()
    frame = spec.build_frame(days[0], after, settings)
    frame = frame.assign(**{day: frame[day].astype(str)}).drop_duplicates([key, day], keep="last")
    left = rows[[key, day]].assign(**{day: rows[day].astype(str)}).reset_index(drop=True)
    return left.merge(frame[[key, day, *names]], on=[key, day], how="left")[names]


def data_version(days: Sequence[str], settings: Settings | None = None, spec: ModelSpec | None = None) -> str:
    """Digest of the window's curated partitions of the spec's feeds (their ingestion content hashes)."""
    from mlops.training.dataset import partition_lineage, partitions_digest
    from mlops.training.params import Window

    first, last = parse_ds(days[0]), parse_ds(days[-1]) + timedelta(days=1)
    window = Window(as_of=last, start=first, valid_start=first, holdout_start=first, end=last)
    return partitions_digest(partition_lineage(window, settings, spec))[:16]
