"""Batch scoring: a day's rows scored with one registered version of any model spec (no Airflow).

Every function takes the model spec (``spec=``: a :class:`~mlops.spec.model.ModelSpec`, a name of
:data:`mlops.spec.model.SPECS` or ``package.module:SPEC``; default the flight-delay spec, what the
callers before specs meant). The spec decides the registered model, the rows and features scored,
the output columns and where they go; nothing here names a model.

Layout and columns (the contract ``monitor_drift`` and users read)
------------------------------------------------------------------
``layout.predictions_file(lake, ds, spec.lake_folder)`` holds one row per row the spec scores on
day ``ds``: ``{lake}/predictions/ds=YYYY-MM-DD/data.parquet`` for the flight-delay spec (DESIGN.md's
path), ``{lake}/models/<name>/predictions/ds=.../data.parquet`` for any other. Columns, in order
(:func:`batch_columns`): the spec's ``batch_columns``, then its model inputs not already among them
(as scored: categorical ones as strings), so drift checks read the very values the model saw.
Each batch column is one of

* a column of the scored rows (ids, times: e.g. ``flight_id``, ``ds``, ``sched_dep_ts``), typed as
  the spec's first feed curates it;
* the spec's ``prediction_column`` (``float64``);
* ``model_name``, ``model_version`` (the exact registered version that scored the row), ``source``
  (``"batch"``; ``"online"`` in the serving log);
* ``threshold`` and the spec's *decision* column: a spec whose ``batch_columns`` list ``threshold``
  (a classifier with a decision) has exactly one other column that is none of the above, the
  boolean ``prediction >= threshold`` (the flight-delay spec's ``predicted_delayed``,
  :func:`decision_column`). A regressor lists neither and its runs take no threshold.

The flight-delay spec's columns are :data:`BATCH_COLUMNS` (``flight_id``, ``ds``, ``carrier``,
``flight``, ``origin``, ``dest``, ``tailnum``, ``sched_dep_ts``, ``delay_probability``,
``predicted_delayed``, ``threshold``, ``model_name``, ``model_version``, ``source``, then
:data:`FEATURE_COLUMNS`); the air-time spec's: the same flight columns, ``air_time_minutes``, the
provenance columns, then its inputs.

Served predictions (``mlops serve``) are logged with the batch columns plus ``request_id``,
``served_at``, ``prediction_id``, ``alias`` and ``role`` (:data:`ONLINE_COLUMNS`,
:func:`online_columns`; ``role`` is ``served`` for the answer, ``shadow`` for the other model's
score), ``source == "online"``, under ``{model root}/predictions_online/ds=YYYY-MM-DD/`` (see
:mod:`mlops.serving.logger`).

What is scored
--------------
A Feast-backed spec (its ``frame`` is :data:`FEAST_FRAME`, as both flight specs') scores every
curated row of its first feed on the day, including those whose label will never come (a
cancelled flight: the prediction is made before departure; performance checks drop them), with
the point-in-time features of its feature service: Feast ``get_historical_features`` at each row's
time (:func:`mlops.features.feature_store.historical_frame`, the training path), so a backfilled
day is scored with what was known before each row's time. Any other spec scores the rows its own
``frame`` returns for the days (the training path of that spec).

Point in time and idempotence
-----------------------------
The version is resolved once (``@champion`` unless given) and recorded per row; the partition is
rewritten atomically, so a rerun replaces it (same inputs and version -> byte-identical file),
never duplicates it.

The pure core is :func:`assemble` / :func:`score_frame`; :func:`score_days` adds the I/O.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from mlops import lake, layout
from mlops.config import CHAMPION, Settings, get_settings
from mlops.features import compute
from mlops.spec.features import feature_set
from mlops.spec.model import ModelSpec, model_spec

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

log = logging.getLogger(__name__)

#: Decision threshold on the prediction unless configured (batch param, ``mlops serve``), for a
#: spec with a decision (:func:`decision_column`).
DEFAULT_THRESHOLD = 0.5

#: A spec whose ``frame`` is this reads its rows from its first feed's curated partitions and its
#: features from Feast (its feature service); any other spec's rows and features are its ``frame``'s.
FEAST_FRAME = "mlops.training.dataset:feast_frame"
#: Columns the platform writes on every row (when a spec's ``batch_columns`` list them).
PROVENANCE_COLUMNS: tuple[str, ...] = ("model_name", "model_version", "source")
#: The decision threshold's column: listed in ``batch_columns`` by a spec with a decision.
THRESHOLD_COLUMN = "threshold"
#: What the serving log adds to the batch columns (:mod:`mlops.serving.logger`).
ONLINE_EXTRA_COLUMNS: tuple[str, ...] = ("request_id", "served_at", "prediction_id", "alias", "role")

Predict = Callable[["pd.DataFrame"], "np.ndarray"]
SpecRef = ModelSpec | str | None


class NoModelToScore(RuntimeError):
    """No version given and ``@champion`` is not set."""


# --------------------------------------------------------------------------------------------------
# The spec's columns
# --------------------------------------------------------------------------------------------------


def batch_columns(spec: SpecRef = None) -> list[str]:
    """The columns of the spec's batch predictions, in order: its ``batch_columns``, then its model
    inputs not already among them."""
    s = model_spec(spec)
    listed = list(s.batch_columns)
    return [*listed, *(f for f in s.features if f not in listed)]


def online_columns(spec: SpecRef = None) -> list[str]:
    """The columns of the spec's served-prediction log: :func:`batch_columns` + :data:`ONLINE_EXTRA_COLUMNS`."""
    return [*batch_columns(spec), *ONLINE_EXTRA_COLUMNS]


def feature_columns(spec: SpecRef = None) -> list[str]:
    """The model inputs stored beside the prediction that are not batch columns already."""
    s = model_spec(spec)
    return [f for f in s.features if f not in s.batch_columns]


def _feed_columns(spec: ModelSpec) -> dict[str, str]:
    """The curated columns (and dtypes) of the spec's first feed (none for a spec without feeds)."""
    from mlops.spec.feed import feed_spec

    return dict(feed_spec(spec.feeds[0]).curated_columns) if spec.feeds else {}


def row_columns(spec: SpecRef = None) -> list[str]:
    """The spec's batch columns that come from the scored rows (ids, times), in order."""
    s = model_spec(spec)
    decision = decision_column(s)
    made = {s.prediction_column, THRESHOLD_COLUMN, *PROVENANCE_COLUMNS, decision}
    return [c for c in s.batch_columns if c not in made]


def decision_column(spec: SpecRef = None) -> str | None:
    """The spec's decision column (``prediction >= threshold``), or None for a spec without one.

    A spec has a decision when its ``batch_columns`` list :data:`THRESHOLD_COLUMN`; the decision is
    then the one batch column that is neither the prediction, nor provenance, nor a column the rows
    carry (the spec's id/time/day columns, request fields and first feed's curated columns), nor a
    model input. Anything else is a clear error naming the spec and the columns.
    """
    s = model_spec(spec)
    known = {
        s.prediction_column,
        THRESHOLD_COLUMN,
        *PROVENANCE_COLUMNS,
        *s.meta_columns,
        *s.request_fields,
        *_feed_columns(s),
        *s.features,
    }
    others = [c for c in s.batch_columns if c not in known]
    if THRESHOLD_COLUMN not in s.batch_columns:
        return None
    if len(others) != 1:
        raise ValueError(
            f"model spec {s.name!r} lists {THRESHOLD_COLUMN!r} in batch_columns, so exactly one other "
            f"batch column must be its decision ({s.prediction_column} >= threshold); found "
            f"{others or 'none'}: fix ModelSpec.batch_columns (docs/specs.md, 'Batch scoring')"
        )
    return others[0]


def has_decision(spec: SpecRef = None) -> bool:
    """True when the spec's predictions carry a threshold and a decision (:func:`decision_column`)."""
    return decision_column(spec) is not None


#: The flight-delay spec's columns (what callers before specs import).
ID_COLUMNS: list[str] = row_columns("flight_delay")
PREDICTION_COLUMNS: list[str] = [c for c in model_spec("flight_delay").batch_columns if c not in ID_COLUMNS]
FEATURE_COLUMNS: list[str] = feature_columns("flight_delay")
BATCH_COLUMNS: list[str] = batch_columns("flight_delay")
#: Served predictions: one row per model that scored a flight (see :mod:`mlops.serving.logger`).
ONLINE_COLUMNS: list[str] = online_columns("flight_delay")


# --------------------------------------------------------------------------------------------------
# Pure core
# --------------------------------------------------------------------------------------------------


def _broadcast(value: Any, n: int) -> list[Any]:
    if isinstance(value, list | tuple):
        if len(value) != n:
            raise ValueError(f"expected {n} values, got {len(value)}")
        return list(value)
    return [value] * n


def _typed_row_column(values: Any, dtype: str | None) -> Any:
    """A column of the scored rows as the spec's feed curates it (inferred without a feed dtype:
    datetimes in UTC, text as ``string``, the rest as they are)."""
    import pandas as pd

    series = pd.Series(values).reset_index(drop=True)
    if dtype is None:
        if isinstance(series.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(series):
            dtype = "datetime64[us, UTC]"
        elif pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
            return series.to_numpy()
        else:
            dtype = "string"
    if dtype.startswith("datetime64"):
        return pd.to_datetime(series, utc=True).astype(dtype)
    objects = series.astype("object")
    return objects.where(objects.notna(), None).astype(dtype)


def _typed_feature(src: Any, categorical: bool) -> Any:
    import pandas as pd

    if categorical:
        values = src.astype("object")
        return values.where(values.notna(), None).astype("string")
    return pd.to_numeric(src, errors="coerce").astype("float64").to_numpy()


@functools.cache
def _categorical_columns(ref: str) -> frozenset[str]:
    """The categorical features of a feature set (by name or import path), once per process: its
    ``categorical_dtypes`` reads reference tables (0.7 ms), and online logs are assembled often."""
    return frozenset(feature_set(ref).dtypes())


def _is_categorical(column: str, values: Any, categorical: Collection[str]) -> bool:
    """A model input stored as text: a categorical feature of its feature set (``categorical``), or
    values that are not numbers."""
    import pandas as pd

    if column in categorical:
        return True
    if values is None:
        return False
    return not (pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)) and bool(
        values.notna().any()
    )


def assemble(
    ids: pd.DataFrame,
    features: pd.DataFrame,
    predictions: Sequence[float] | np.ndarray,
    *,
    threshold: float | Sequence[float] | None = None,
    model_name: str | Sequence[str],
    model_version: str | Sequence[str],
    source: str,
    spec: SpecRef = None,
) -> pd.DataFrame:
    """Rows of :func:`batch_columns` from the scored rows ``ids``, their model ``features`` and
    ``predictions`` (aligned by position). Scalars apply to every row; sequences give one value
    per row. ``threshold`` is required by a spec with a decision, refused by one without."""
    import numpy as np
    import pandas as pd

    s = model_spec(spec)
    n = len(ids)
    if len(features) != n or len(predictions) != n:
        raise ValueError(f"ids ({n}), features ({len(features)}) and predictions ({len(predictions)}) differ")
    rows = row_columns(s)
    lacking = [c for c in rows if c not in ids]
    if lacking:
        raise ValueError(
            f"row columns {lacking} missing: the predictions of model spec {s.name!r} need {rows} from the "
            "scored rows (ModelSpec.batch_columns)"
        )
    decision = decision_column(s)
    if decision is not None and threshold is None:
        raise ValueError(
            f"model spec {s.name!r} decides {decision} = prediction >= threshold: pass a threshold"
        )
    if decision is None and threshold is not None:
        raise ValueError(
            f"model spec {s.name!r} has no decision (no {THRESHOLD_COLUMN!r} in its batch_columns): "
            "pass no threshold"
        )
    dtypes = _feed_columns(s)
    p = np.asarray(predictions, dtype="float64")
    made: dict[str, Any] = {
        s.prediction_column: p,
        "model_name": pd.array(_broadcast(model_name, n), dtype="string"),
        "model_version": pd.array([str(v) for v in _broadcast(model_version, n)], dtype="string"),
        "source": pd.array([source] * n, dtype="string"),
    }
    if decision is not None:
        thr = np.asarray(_broadcast(threshold, n), dtype="float64")
        made[THRESHOLD_COLUMN] = thr
        made[decision] = p >= thr
    out = pd.DataFrame(index=pd.RangeIndex(n))
    feats = features.reset_index(drop=True)
    categorical_features = _categorical_columns(s.feature_set)
    for col in batch_columns(s):
        if col in made:
            out[col] = made[col]
        elif col in rows:
            out[col] = _typed_row_column(ids[col].to_numpy(), dtypes.get(col))
        else:  # a model input
            src = feats[col] if col in feats else None
            categorical = _is_categorical(col, src, categorical_features)
            out[col] = _typed_feature(src if src is not None else pd.Series([None] * n), categorical)
    return out


def score_frame(
    rows: pd.DataFrame,
    features: pd.DataFrame,
    predict: Predict,
    *,
    model_version: str,
    threshold: float | None = DEFAULT_THRESHOLD,
    model_name: str | None = None,
    spec: SpecRef = None,
) -> pd.DataFrame:
    """Score ``rows`` whose model inputs are ``features`` (same order) with ``predict``. The
    threshold counts only for a spec with a decision."""
    s = model_spec(spec)
    predictions = predict(features[list(s.features)]) if len(features) else []
    return assemble(
        rows.reset_index(drop=True),
        features,
        predictions,
        threshold=threshold if has_decision(s) else None,
        model_name=model_name or s.model_name,
        model_version=model_version,
        source="batch",
        spec=s,
    )


def summary(predictions: pd.DataFrame, spec: SpecRef = None) -> dict[str, Any]:
    """Counts for asset metadata and logs: rows, the mean prediction and, for a spec with a
    decision, the rows whose decision is true (under the decision column's name)."""
    s = model_spec(spec)
    n = len(predictions)
    out: dict[str, Any] = {
        "rows": n,
        "mean_prediction": round(float(predictions[s.prediction_column].mean()), 6) if n else None,
    }
    decision = decision_column(s)
    if decision is not None:
        out[decision] = int(predictions[decision].sum()) if n else 0
    return out


# --------------------------------------------------------------------------------------------------
# I/O
# --------------------------------------------------------------------------------------------------


def predictions_uri(ds: str, settings: Settings | None = None, *, spec: SpecRef = None) -> str:
    """The day's batch predictions of the spec (:func:`mlops.layout.predictions_file` under the
    spec's ``lake_folder``; ``{lake}/predictions/ds=YYYY-MM-DD/data.parquet`` for flight delay)."""
    return layout.predictions_file((settings or get_settings()).lake_uri, ds, model_spec(spec).lake_folder)


def read_predictions(ds: str, settings: Settings | None = None, *, spec: SpecRef = None) -> pd.DataFrame:
    return lake.read_parquet(predictions_uri(ds, settings, spec=spec))


def resolve_version(
    version: str | None = None, settings: Settings | None = None, *, spec: SpecRef = None
) -> dict[str, Any]:
    """The version of the spec's model to score with (``version``, else ``@champion``) and its lineage tags."""
    from mlops.models import registry

    s = model_spec(spec)
    resolved = str(version) if version else registry.alias_version(CHAMPION, settings, s.model_name)
    if resolved is None:
        raise NoModelToScore(
            f"{s.model_name}@{CHAMPION} is not set and no model_version was given: nothing to score "
            f"with. Run the training DAG of model spec {s.name!r} (train_model for flight_delay, "
            f"train_<spec> for the others) until a version is promoted (or trigger with "
            '{"model_version": "N"}), then clear this task.'
        )
    info = registry.version_info(resolved, settings, s.model_name)
    tags = dict(info.tags or {})
    return {
        "model_name": s.model_name,
        "model_version": resolved,
        "source": "param" if version else CHAMPION,
        "run_id": info.run_id,
        "as_of": tags.get("mlops.as_of"),
        "spec": s.ref if (s.name in _registered() or s.import_path) else s.name,
    }


def _registered() -> set[str]:
    from mlops.spec.model import SPECS

    return set(SPECS)


@dataclass
class DayResult:
    """One day's scored partition (the predictions asset's metadata: :meth:`as_dict`)."""

    ds: str
    uri: str
    rows: int
    model_name: str
    model_version: str
    prediction_column: str
    mean_prediction: float | None
    model_as_of: str | None
    model_trained_after_day: bool
    #: With a decision: the threshold, and the decision column with its count of true rows.
    threshold: float | None = None
    decision_column: str | None = None
    decided: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """``ds``, ``uri``, ``rows``, ``model_name``, ``model_version``, ``prediction_column``,
        ``mean_prediction``, ``model_as_of``, ``model_trained_after_day`` and, with a decision,
        ``threshold`` and ``{decision column: rows decided true}`` (flight delay: ``predicted_delayed``)."""
        out = {
            "ds": self.ds,
            "uri": self.uri,
            "rows": self.rows,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "prediction_column": self.prediction_column,
            "mean_prediction": self.mean_prediction,
            "model_as_of": self.model_as_of,
            "model_trained_after_day": self.model_trained_after_day,
        }
        if self.decision_column is not None:
            out["threshold"] = self.threshold
            out[self.decision_column] = self.decided
        return out


def score_days(
    days: Sequence[str],
    model_version: str,
    *,
    spec: SpecRef = None,
    threshold: float | None = DEFAULT_THRESHOLD,
    settings: Settings | None = None,
    model_as_of: str | None = None,
    predict: Predict | None = None,
    timings: dict[str, float] | None = None,
) -> list[DayResult]:
    """Score every row the spec scores on ``days`` with ``model_version``; one partition per day.

    One feature retrieval covers all the days (its cost is mostly fixed, so a month scores much
    faster in one call than day by day). Raises ``FileNotFoundError`` naming the partition when a
    day has no curated partition of the spec's first feed. ``threshold`` counts only for a spec
    with a decision. ``timings`` (if given) receives the seconds of each step: ``read_rows``,
    ``load_model``, ``features``, ``predict``, ``write``, ``total``.
    """
    from mlops.models import registry

    spec_ = model_spec(spec)
    s = settings or get_settings()
    days = sorted(set(days))
    _require_curated(days, s, spec_)
    threshold = (
        float(threshold if threshold is not None else DEFAULT_THRESHOLD) if has_decision(spec_) else None
    )
    seconds: dict[str, float] = timings if timings is not None else {}
    started = time.perf_counter()
    with _timed(seconds, "read_rows"):
        rows = _read_rows(days, s, spec_)
    with _timed(seconds, "load_model"):
        model = predict or registry.predictor(model_version, s, spec_.model_name)
    with _timed(seconds, "features"):
        features = _features(rows, s, spec_)
    with _timed(seconds, "predict"):
        scored = score_frame(
            rows, features, model, model_version=str(model_version), threshold=threshold, spec=spec_
        )
    with _timed(seconds, "write"):
        day_of = rows[spec_.day_column].astype(str).to_numpy()
        results = [
            _write_day(scored[day_of == ds], ds, str(model_version), threshold, model_as_of, s, spec_)
            for ds in days
        ]
    seconds["total"] = time.perf_counter() - started
    _log_scored(scored, days, model_version, seconds, spec_)
    return results


@contextlib.contextmanager
def _timed(seconds: dict[str, float], step: str) -> Iterator[None]:
    """Record the wall time of the block under ``seconds[step]``."""
    mark = time.perf_counter()
    yield
    seconds[step] = time.perf_counter() - mark


def feast_backed(spec: SpecRef = None) -> bool:
    """True when the spec's rows are its first feed's curated rows and its features Feast's
    (its ``frame`` is :data:`FEAST_FRAME`)."""
    return model_spec(spec).frame == FEAST_FRAME


def _require_curated(days: Sequence[str], settings: Settings, spec: ModelSpec) -> None:
    """Raise ``FileNotFoundError`` naming the days that have no curated partition of the spec's first feed."""
    from mlops.spec.feed import feed_spec

    if not spec.feeds:
        return
    feed = feed_spec(spec.feeds[0])
    missing = [ds for ds in days if not lake.exists(feed.curated_file(settings.lake_uri, ds))]
    if missing:
        raise FileNotFoundError(
            f"no curated {feed.name} partition for {missing} "
            f"(expected {feed.curated_file(settings.lake_uri, missing[0])}): "
            f"ingest the day first (ingest_{feed.name}), then clear this task"
        )


def _read_rows(days: Sequence[str], settings: Settings, spec: ModelSpec) -> pd.DataFrame:
    """The rows of ``days`` the spec scores, in scoring order (time, then id).

    A Feast-backed spec: every curated row of its first feed; any other: its ``frame`` of the days
    (model inputs included, :func:`_features` takes them from there)."""
    if feast_backed(spec):
        rows = compute.read_curated(days, settings, feed=spec.feeds[0] if spec.feeds else None)
    else:
        first = date.fromisoformat(days[0])
        end = (date.fromisoformat(days[-1]) + timedelta(days=1)).isoformat()
        frame = spec.build_frame(first.isoformat(), end, settings)
        rows = frame[frame[spec.day_column].astype(str).isin(set(days))]
    return rows.sort_values([spec.time_column, spec.id_column], kind="stable").reset_index(drop=True)


def _features(rows: pd.DataFrame, settings: Settings, spec: ModelSpec) -> pd.DataFrame:
    """The model inputs of ``rows`` (aligned): point-in-time Feast features of the spec's feature
    service, or the columns of the spec's own frame."""
    if feast_backed(spec):
        from mlops.features import feature_store

        features = feature_store.historical_frame(rows, settings, service=spec.feature_service)
    else:
        features = rows
    missing = [f for f in spec.features if f not in features.columns]
    if missing:
        raise ValueError(
            f"model spec {spec.name!r}: features {missing} are not in the scored frame "
            f"({'feature service ' + spec.feature_service if feast_backed(spec) else spec.frame}): "
            "fix ModelSpec.features or the feature source"
        )
    return features[list(spec.features)].reset_index(drop=True)


def _write_day(
    part: pd.DataFrame,
    ds: str,
    model_version: str,
    threshold: float | None,
    model_as_of: str | None,
    settings: Settings,
    spec: ModelSpec,
) -> DayResult:
    """Write day ``ds``'s scored rows to its predictions partition; its :class:`DayResult`."""
    part = part.reset_index(drop=True)
    uri = predictions_uri(ds, settings, spec=spec)
    lake.write_parquet(uri, part)
    stats = summary(part, spec)
    after = bool(model_as_of and model_as_of > ds)
    if after:
        log.warning(
            "ds=%s scored with %s v%s trained as of %s: the day may be in its training window "
            "(in-sample scores); pass model_version to score a backfill with an older model",
            ds,
            spec.model_name,
            model_version,
            model_as_of,
        )
    decision = decision_column(spec)
    return DayResult(
        ds=ds,
        uri=uri,
        rows=stats["rows"],
        model_name=spec.model_name,
        model_version=model_version,
        prediction_column=spec.prediction_column,
        mean_prediction=stats["mean_prediction"],
        model_as_of=model_as_of,
        model_trained_after_day=after,
        threshold=threshold if decision else None,
        decision_column=decision,
        decided=stats.get(decision) if decision else None,
    )


def _log_scored(
    scored: pd.DataFrame,
    days: Sequence[str],
    model_version: str,
    seconds: dict[str, float],
    spec: ModelSpec,
) -> None:
    log.info(
        "scored %d rows of %s..%s with %s v%s in %.1fs (%s)",
        len(scored),
        days[0] if days else "-",
        days[-1] if days else "-",
        spec.model_name,
        model_version,
        seconds["total"],
        {k: round(v, 2) for k, v in seconds.items()},
    )


def require_features(days: Sequence[str], settings: Settings | None = None, *, spec: SpecRef = None) -> None:
    """Raise ``FileNotFoundError`` naming the days whose feature tables are not built yet (their
    scores would use stale or missing features). Only a Feast-backed spec has feature tables."""
    if not feast_backed(spec):
        return
    s = settings or get_settings()
    missing = [ds for ds in days if not lake.exists(layout.features_built_file(s.lake_uri, ds))]
    if missing:
        raise FileNotFoundError(
            f"no feature tables for {len(missing)} day(s) {missing[0]}..{missing[-1]} "
            f"(expected {layout.features_built_file(s.lake_uri, missing[0])}): run materialize_features "
            "for them (trigger it with start_ds/end_ds), then clear this task"
        )


def inputs_ready_file(spec: SpecRef, lake_root: str, ds: str) -> str | None:
    """The file whose presence says day ``ds`` can be scored: a Feast-backed spec's last feature
    table, else its first feed's curated partition, else None (a spec without feeds: nothing to wait for)."""
    from mlops.spec.feed import feed_spec

    s = model_spec(spec)
    if feast_backed(s):
        return layout.features_built_file(lake_root, ds)
    if s.feeds:
        return feed_spec(s.feeds[0]).curated_file(lake_root, ds)
    return None


def event_metadata(results: Sequence[DayResult]) -> dict[str, Any]:
    """The predictions event of a run: one day's :meth:`DayResult.as_dict`, or for a range the
    first/last day, totals and every day's result under ``days``."""
    if len(results) == 1:
        return results[0].as_dict()
    first = results[0]
    rows = sum(r.rows for r in results)
    means = [(r.mean_prediction, r.rows) for r in results if r.mean_prediction is not None and r.rows]
    out: dict[str, Any] = {
        "ds": first.ds,
        "end_ds": results[-1].ds,
        "rows": rows,
        "model_name": first.model_name,
        "model_version": first.model_version,
        "prediction_column": first.prediction_column,
        "mean_prediction": sum(m * n for m, n in means) / sum(n for _, n in means) if means else None,
        "model_as_of": first.model_as_of,
        "model_trained_after_day": any(r.model_trained_after_day for r in results),
    }
    if first.decision_column is not None:
        out["threshold"] = first.threshold
        out[first.decision_column] = sum(r.decided or 0 for r in results)
    out["days"] = [r.as_dict() for r in results]
    return out


def score_day(
    ds: str,
    model_version: str | None = None,
    *,
    spec: SpecRef = None,
    threshold: float | None = DEFAULT_THRESHOLD,
    settings: Settings | None = None,
) -> DayResult:
    """Score one day with ``model_version`` (default: the spec's current ``@champion``)."""
    model = resolve_version(model_version, settings, spec=spec)
    return score_days(
        [ds],
        model["model_version"],
        spec=spec,
        threshold=threshold,
        settings=settings,
        model_as_of=model["as_of"],
    )[0]
