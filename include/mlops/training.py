"""Train the flight-delay model: build, validate, split, search, fit, evaluate (no Airflow, no MLflow).

Every step is a plain function of frames and :class:`TrainParams`, so the DAG, the CLI
(``mlops reproduce``), the benchmarks and the unit tests run the same code.

Time discipline ("as of")
-------------------------
A run trains *as of* a date ``D`` (the DAG's data interval end, or a retrain request's time, floored
to its UTC date). It sees the curated days ``[D - window_days, D)`` only, as local (New York) days,
which is exactly what ingestion has published by then. The holdout is the latest ``holdout_days``
of the window; the search validates on the ``holdout_days`` just before it, so the holdout is used
once, to score the refit challenger and the champion on the same rows.

Determinism
-----------
Same as-of + params + data => the same model, bit for bit: rows are sorted by
(``sched_dep_ts``, ``flight_id``), categories are fixed (:func:`mlops.features.compute.categorical_dtypes`),
candidates are drawn from ``numpy.random.default_rng(seed)``, and XGBoost runs ``hist`` with a fixed
``seed`` and ``nthread``. ``mlops reproduce`` relies on it and compares holdout predictions exactly.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    import numpy as np
    import pandas as pd
    import xgboost as xgb

    from mlops.config import Settings

log = logging.getLogger(__name__)

#: Columns of a training frame that are not model inputs.
META_COLUMNS: tuple[str, ...] = ("flight_id", "sched_dep_ts", "ds")
LABEL = "is_delayed"
#: Early stopping patience of the search (rounds without validation improvement).
EARLY_STOPPING_ROUNDS = 30
#: Hyperparameters a candidate may set (the XGBoost ``train`` parameter names).
HYPERPARAMETERS: tuple[str, ...] = (
    "max_depth",
    "learning_rate",
    "min_child_weight",
    "subsample",
    "colsample_bytree",
    "reg_lambda",
)


class TrainingSetInvalid(ValueError):
    """The training set failed validation; nothing was trained. ``report`` holds every check."""

    def __init__(self, message: str, report: dict[str, Any]) -> None:
        super().__init__(message)
        self.report = report


# --------------------------------------------------------------------------------------------------
# Parameters and the window
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainParams:
    """Everything that decides a model besides the data (keys of ``mlops.airflow.params.TRAIN_PARAMS``)."""

    window_days: int = 120
    holdout_days: int = 14
    n_estimators: int = 400
    max_depth: int = 6
    learning_rate: float = 0.1
    min_child_weight: float = 1.0
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    reg_lambda: float = 1.0
    n_candidates: int = 4
    seed: int = 42
    promotion_margin: float = 0.002
    dry_run: bool = False
    #: XGBoost threads: part of the model's identity (float sums are ordered by thread).
    nthread: int = 2
    max_bin: int = 256
    # Training-set validation thresholds.
    min_rows: int = 2000
    min_holdout_rows: int = 500
    min_positive_rate: float = 0.05
    max_positive_rate: float = 0.60
    max_null_rate: float = 0.95
    #: A day whose rows average more null features than this has no feature tables (a day without
    #: them measured ~0.81 on 2013; the first day of the lake, with no history yet, 0.46).
    max_day_null_rate: float = 0.6
    max_missing_days: int = 0

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> TrainParams:
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
                    value if isinstance(value, bool) else str(value).lower() in {"1", "true", "yes", "on"}
                )
            else:
                kwargs[f.name] = kind(value)
        params = cls(**kwargs)
        params.check()
        return params

    def check(self) -> None:
        if self.holdout_days * 2 >= self.window_days:
            raise ValueError(
                f"window_days={self.window_days} must exceed twice holdout_days={self.holdout_days}: "
                "the window holds the search's training days, its validation days and the holdout"
            )
        if self.n_candidates < 1:
            raise ValueError(f"n_candidates={self.n_candidates}: need at least 1")

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def base_hyperparameters(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in HYPERPARAMETERS}

    def data_key(self) -> str:
        """Short hash of what decides the training *set* (not the model)."""
        payload = json.dumps({"window_days": self.window_days, "holdout_days": self.holdout_days})
        return hashlib.sha256(payload.encode()).hexdigest()[:10]


@dataclass(frozen=True)
class Window:
    """Local days ``[start, end)``; the holdout is ``[holdout_start, end)``; search validates on
    ``[valid_start, holdout_start)`` after fitting on ``[start, valid_start)``."""

    as_of: date
    start: date
    valid_start: date
    holdout_start: date
    end: date

    @classmethod
    def of(cls, as_of: date | datetime | str, params: TrainParams) -> Window:
        day = as_of_date(as_of)
        return cls(
            as_of=day,
            start=day - timedelta(days=params.window_days),
            valid_start=day - timedelta(days=2 * params.holdout_days),
            holdout_start=day - timedelta(days=params.holdout_days),
            end=day,
        )

    def days(self) -> list[str]:
        n = (self.end - self.start).days
        return [(self.start + timedelta(days=i)).isoformat() for i in range(n)]

    def as_dict(self) -> dict[str, str]:
        return {k: v.isoformat() for k, v in dataclasses.asdict(self).items()}


def as_of_date(value: date | datetime | str) -> date:
    """The as-of *date*: a datetime is floored to its UTC date; ``YYYY-MM-DD`` or ISO strings parse."""
    if isinstance(value, str):
        value = (
            datetime.fromisoformat(value.replace("Z", "+00:00"))
            if "T" in value
            else date.fromisoformat(value)
        )
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.date()
    return value


# --------------------------------------------------------------------------------------------------
# The training set
# --------------------------------------------------------------------------------------------------


def feature_columns(frame: pd.DataFrame) -> list[str]:
    """Model inputs of a training frame: every column but the meta columns and the label."""
    return [c for c in frame.columns if c not in META_COLUMNS and c != LABEL]


def categorical_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in feature_columns(frame) if str(frame[c].dtype) == "category"]


def sort_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Canonical row order (what determinism rests on).

    A frame already in that order (a saved training set is) is not copied: the result shares its
    data (a shallow copy with a fresh index), which keeps a 10x-volume year within memory.
    """
    import numpy as np
    import pandas as pd

    ts, ids = frame["sched_dep_ts"], frame["flight_id"]
    if pd.api.types.is_datetime64_any_dtype(ts) and not (ts.isna().any() or ids.isna().any()):
        t, i = ts.array.asi8, ids.to_numpy(dtype=object)
        if bool(np.all((t[1:] > t[:-1]) | ((t[1:] == t[:-1]) & (i[1:] >= i[:-1])))):
            out = frame.copy(deep=False)
            out.index = pd.RangeIndex(len(out))
            return out
    return frame.sort_values(["sched_dep_ts", "flight_id"], kind="stable", ignore_index=True)


def partition_lineage(window: Window, settings: Settings | None = None) -> list[dict[str, Any]]:
    """The curated partitions of the window, as read now.

    Each: ``ds``, ``uri``, ``rows``, ``sha256`` (of the file), ``content_hash`` (the ingestion's
    row hash from the parquet footer, the one the ``curated_flights`` event carried) and the
    partition's ingestion validation summary when its report exists; ``missing`` when absent.
    """
    import io

    import pyarrow.parquet as pq

    from mlops import lake
    from mlops.config import get_settings

    s = settings or get_settings()
    out = []
    for ds in window.days():
        uri = lake.join(s.lake_uri, "curated", "flights", f"ds={ds}", "data.parquet")
        if not lake.exists(uri):
            out.append({"ds": ds, "uri": uri, "missing": True})
            continue
        data = lake.read_bytes(uri)
        meta = pq.ParquetFile(io.BytesIO(data)).metadata
        footer = meta.metadata or {}
        entry: dict[str, Any] = {
            "ds": ds,
            "uri": uri,
            "rows": meta.num_rows,
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        if b"mlops.content_hash" in footer:
            entry["content_hash"] = footer[b"mlops.content_hash"].decode()
        report = lake.join(s.lake_uri, "reports", "validation", f"ds={ds}", "validation.json")
        if lake.exists(report):
            summary = json.loads(lake.read_text(report))
            keep = ("suite", "success", "evaluated", "successful")
            entry["validation"] = {"report_uri": report, **{k: summary[k] for k in keep if k in summary}}
        out.append(entry)
    return out


def partition_fingerprint(partition: Mapping[str, Any]) -> str | None:
    """What identifies a partition's content: its ingestion content hash, else its file sha256."""
    return partition.get("content_hash") or partition.get("sha256")


def build_training_set(
    window: Window, settings: Settings | None = None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Labelled flights of the window with their point-in-time features, from Feast.

    Returns the frame (sorted canonically) and its manifest: the window, the feature service,
    the features, and every curated partition read with its row count and hash.
    """
    from mlops.config import FEATURE_SERVICE
    from mlops.features import feature_store

    partitions = partition_lineage(window, settings)
    frame = feature_store.training_frame(window.start.isoformat(), window.end.isoformat(), settings)
    frame = sort_frame(frame)
    manifest = {
        "window": window.as_dict(),
        "feature_service": FEATURE_SERVICE,
        "features": feature_columns(frame),
        "categorical": categorical_columns(frame),
        "rows": len(frame),
        "partitions": partitions,
        "data_hash": frame_hash(frame),
    }
    return frame, manifest


def frame_hash(frame: pd.DataFrame) -> str:
    """A content hash of a frame (values and column names, order-sensitive)."""
    import pandas as pd

    digest = hashlib.sha256(json.dumps([str(c) for c in frame.columns]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------------


def validate_training_set(
    frame: pd.DataFrame, window: Window, params: TrainParams, manifest: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Check volume, coverage, label balance and null rates before anything is trained.

    Returns a report ``{"passed": bool, "checks": [...], "summary": {...}}``; each check has
    ``name``, ``passed``, ``value``, ``threshold`` and ``message``. Raises nothing (see
    :func:`require_valid`).
    """
    import pandas as pd

    checks: list[dict[str, Any]] = []

    def check(name: str, passed: bool, value: Any, threshold: Any, message: str) -> None:
        checks.append(
            {"name": name, "passed": bool(passed), "value": value, "threshold": threshold, "message": message}
        )

    ds = frame["ds"].astype(str)
    holdout = ds >= window.holdout_start.isoformat()
    train = ~holdout
    n, n_hold = int(len(frame)), int(holdout.sum())
    check("volume", n >= params.min_rows, n, params.min_rows, f"{n} labelled rows in the window")
    check(
        "holdout_volume",
        n_hold >= params.min_holdout_rows,
        n_hold,
        params.min_holdout_rows,
        f"{n_hold} rows in the holdout {window.holdout_start}..{window.end - timedelta(days=1)}",
    )
    present = set(ds.unique())
    # Days before the first curated day of the window are "not yet started" (data begins there);
    # a gap after it is a missing partition.
    first = min(present) if present else window.end.isoformat()
    missing = [d for d in window.days() if d >= first and d not in present]
    check(
        "missing_days",
        len(missing) <= params.max_missing_days and bool(present),
        len(missing) if present else len(window.days()),
        params.max_missing_days,
        f"days without labelled flights after {first}: {missing[:10]}{'...' if len(missing) > 10 else ''}"
        if present
        else f"no labelled flights on any day of {window.start}..{window.end - timedelta(days=1)}",
    )
    holdout_days = {d for d in present if d >= window.holdout_start.isoformat()}
    check(
        "holdout_coverage",
        len(holdout_days) == params.holdout_days,
        len(holdout_days),
        params.holdout_days,
        f"holdout days with data: {len(holdout_days)} of {params.holdout_days}",
    )
    y = frame[LABEL].astype("float64")
    for part, mask in (("train", train), ("holdout", holdout)):
        rate = float(y[mask].mean()) if mask.any() else float("nan")
        ok = params.min_positive_rate <= rate <= params.max_positive_rate
        check(
            f"label_balance_{part}",
            ok,
            round(rate, 4) if not math.isnan(rate) else None,
            [params.min_positive_rate, params.max_positive_rate],
            f"{part} delayed rate {rate:.3f}",
        )
    check("label_not_null", int(y.isna().sum()) == 0, int(y.isna().sum()), 0, "null labels in the set")
    dup = int(frame["flight_id"].duplicated().sum())
    check("unique_flights", dup == 0, dup, 0, f"{dup} duplicated flight_id")
    null_rates = {c: round(float(frame[c].isna().mean()), 4) for c in feature_columns(frame)}
    too_null = {c: r for c, r in null_rates.items() if r > params.max_null_rate}
    check(
        "null_rates",
        not too_null,
        too_null,
        params.max_null_rate,
        f"features with null rate above {params.max_null_rate}: {sorted(too_null)}",
    )
    # A day whose feature tables were not built yet (e.g. a stranded asset event) comes back from
    # the point-in-time join with (nearly) every feature null: the overall null rate hides it when
    # the day is a small part of the window, but it is most of a holdout.
    # Null count per row, column by column (no copy of the feature columns).
    cols = feature_columns(frame)
    row_nulls = sum(frame[c].isna().to_numpy(dtype="int64") for c in cols) if cols else 0
    per_day = pd.Series(row_nulls / max(len(cols), 1), index=frame.index).groupby(ds).mean()
    unfeatured = sorted(d for d, r in per_day.items() if r > params.max_day_null_rate)
    check(
        "feature_coverage",
        not unfeatured,
        len(unfeatured),
        params.max_day_null_rate,
        f"days whose rows have on average more than {params.max_day_null_rate:.0%} null features (feature "
        f"tables not built? run materialize_features for them): {unfeatured[:10]}"
        f"{'...' if len(unfeatured) > 10 else ''}",
    )
    if manifest is not None:
        parts = manifest.get("partitions", [])
        gone = [p["ds"] for p in parts if p.get("missing") and p["ds"] >= first]
        check(
            "curated_partitions",
            len(gone) <= params.max_missing_days,
            len(gone),
            params.max_missing_days,
            f"curated partitions missing in the window after {first}: {gone[:10]}",
        )
    report = {
        "passed": all(c["passed"] for c in checks),
        "checks": checks,
        "summary": {
            "rows": n,
            "train_rows": int(train.sum()),
            "holdout_rows": n_hold,
            "positive_rate": round(float(y.mean()), 4) if n else None,
            "first_day": first,
            "null_rates": null_rates,
        },
    }
    return report


def require_valid(report: Mapping[str, Any], window: Window) -> None:
    """Raise :class:`TrainingSetInvalid` naming every failed check, its value and the next step."""
    failed = [c for c in report["checks"] if not c["passed"]]
    if not failed:
        return
    lines = "; ".join(
        f"{c['name']}: {c['message']} (value {c['value']}, threshold {c['threshold']})" for c in failed
    )
    raise TrainingSetInvalid(
        f"training set as of {window.as_of} ({window.start}..{window.end - timedelta(days=1)}) failed "
        f"{len(failed)} check(s): {lines}. Nothing was trained and the champion is untouched; "
        "backfill the missing curated partitions / feature tables or change window_days, then clear the run.",
        dict(report),
    )


# --------------------------------------------------------------------------------------------------
# Split, model, fit
# --------------------------------------------------------------------------------------------------


def _rows(frame: pd.DataFrame, mask: pd.Series) -> pd.DataFrame:
    """``frame[mask]`` with a fresh index. Contiguous rows (the days of a sorted frame) are a view
    that shares the frame's data instead of a copy: treat the parts as read-only."""
    import numpy as np
    import pandas as pd

    idx = np.flatnonzero(mask.to_numpy())
    if len(idx) and idx[-1] - idx[0] + 1 == len(idx):
        out = frame.iloc[idx[0] : idx[-1] + 1].copy(deep=False)
        out.index = pd.RangeIndex(len(out))
        return out
    return frame[mask].reset_index(drop=True)


def split(frame: pd.DataFrame, window: Window) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, holdout) by local day: the holdout is ``[holdout_start, end)``."""
    ds = frame["ds"].astype(str)
    inside = (ds >= window.start.isoformat()) & (ds < window.end.isoformat())
    hold = ds >= window.holdout_start.isoformat()
    return _rows(frame, inside & ~hold), _rows(frame, inside & hold)


def search_split(train: pd.DataFrame, window: Window) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(fit, validation) of the search: validation is ``[valid_start, holdout_start)``."""
    ds = train["ds"].astype(str)
    valid = ds >= window.valid_start.isoformat()
    return _rows(train, ~valid), _rows(train, valid)


@dataclass
class DelayModel:
    """An XGBoost booster with the columns and fixed categories it was trained on."""

    booster: xgb.Booster
    features: list[str]
    categories: dict[str, list[str]]

    def matrix(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Select and type the model's columns (unknown categories -> missing)."""
        import pandas as pd

        missing = [c for c in self.features if c not in frame.columns]
        if missing:
            raise KeyError(f"input lacks model features {missing}")
        out = {}
        for col in self.features:
            if col in self.categories:
                values = frame[col].astype("object")
                out[col] = values.where(values.notna(), None).astype(
                    pd.CategoricalDtype(self.categories[col])
                )
            else:
                out[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64", copy=False)
        # No copy of float64 columns, no consolidation into one block: XGBoost reads column by column.
        return pd.DataFrame(out, index=frame.index, copy=False)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """P(arrival delay >= 15 min) for each row, float64."""
        import xgboost as xgb

        dm = xgb.DMatrix(self.matrix(frame), enable_categorical=True, nthread=1)
        return self.booster.predict(dm).astype("float64")

    def to_bytes(self) -> tuple[bytes, str]:
        """(UBJSON booster, JSON metadata)."""
        meta = json.dumps({"features": self.features, "categories": self.categories}, sort_keys=True)
        return bytes(self.booster.save_raw(raw_format="ubj")), meta

    @classmethod
    def from_bytes(cls, booster: bytes, meta: str) -> DelayModel:
        import xgboost as xgb

        b = xgb.Booster()
        b.load_model(bytearray(booster))
        m = json.loads(meta)
        return cls(booster=b, features=list(m["features"]), categories=dict(m["categories"]))

    def importance(self) -> dict[str, float]:
        """Total gain per feature (0 for unused features), in feature order."""
        gain = self.booster.get_score(importance_type="total_gain")
        return {f: float(gain.get(f, 0.0)) for f in self.features}


def _categories(frame: pd.DataFrame, features: Sequence[str]) -> dict[str, list[str]]:
    out = {}
    for col in features:
        if str(frame[col].dtype) == "category":
            out[col] = [str(v) for v in frame[col].cat.categories]
    return out


def xgb_params(hp: Mapping[str, Any], params: TrainParams) -> dict[str, Any]:
    return {
        "objective": "binary:logistic",
        "eval_metric": ["logloss", "auc"],
        "tree_method": "hist",
        "max_bin": params.max_bin,
        "nthread": params.nthread,
        "seed": params.seed,
        "max_cat_to_onehot": 1,
        "verbosity": 0,
        **{k: hp[k] for k in HYPERPARAMETERS if k in hp},
    }


def fit_booster(
    train: pd.DataFrame,
    hp: Mapping[str, Any],
    params: TrainParams,
    rounds: int,
    valid: pd.DataFrame | None = None,
) -> DelayModel:
    """Fit one booster (early stopping on ``valid`` when given)."""
    import xgboost as xgb

    features = feature_columns(train)
    model = DelayModel(booster=None, features=features, categories=_categories(train, features))  # type: ignore[arg-type]
    # QuantileDMatrix: the ``hist`` bins straight from the frame, without DMatrix's copy of every
    # value (8 bytes each): same bins, same model, bit for bit. (For the validation rows a
    # DMatrix costs less than a QuantileDMatrix with ``ref``; see benchmarks/bench_memory.py.)
    dtrain = xgb.QuantileDMatrix(
        model.matrix(train),
        label=train[LABEL].astype("float64"),
        enable_categorical=True,
        nthread=params.nthread,
        max_bin=params.max_bin,
    )
    evals, kwargs = [], {}
    if valid is not None:
        dvalid = xgb.DMatrix(
            model.matrix(valid),
            label=valid[LABEL].astype("float64"),
            enable_categorical=True,
            nthread=params.nthread,
        )
        evals = [(dvalid, "valid")]
        kwargs["early_stopping_rounds"] = EARLY_STOPPING_ROUNDS
    model.booster = xgb.train(
        xgb_params(hp, params), dtrain, num_boost_round=rounds, evals=evals, verbose_eval=False, **kwargs
    )
    return model


# --------------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------------


def evaluate(y: Sequence[float] | np.ndarray, p: Sequence[float] | np.ndarray) -> dict[str, float]:
    """ROC-AUC, PR-AUC (average precision), log loss, Brier score, and the base rates."""
    import numpy as np
    from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

    y_arr, p_arr = np.asarray(y, dtype="float64"), np.asarray(p, dtype="float64")
    both = len(np.unique(y_arr)) == 2
    return {
        "roc_auc": float(roc_auc_score(y_arr, p_arr)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y_arr, p_arr)) if both else float("nan"),
        "log_loss": float(log_loss(y_arr, np.clip(p_arr, 1e-7, 1 - 1e-7), labels=[0, 1])),
        "brier": float(brier_score_loss(y_arr, p_arr)),
        "positive_rate": float(y_arr.mean()) if len(y_arr) else float("nan"),
        "mean_prediction": float(p_arr.mean()) if len(p_arr) else float("nan"),
        "rows": float(len(y_arr)),
    }


# --------------------------------------------------------------------------------------------------
# Search
# --------------------------------------------------------------------------------------------------


def candidates(params: TrainParams) -> list[dict[str, Any]]:
    """``n_candidates`` hyperparameter sets: the params' own values first, then seeded random draws."""
    import numpy as np

    rng = np.random.default_rng(params.seed)
    out = [{"candidate": 0, **params.base_hyperparameters()}]
    for i in range(1, params.n_candidates):
        out.append(
            {
                "candidate": i,
                "max_depth": int(rng.integers(3, 10)),
                "learning_rate": round(float(10 ** rng.uniform(-1.6, -0.7)), 4),
                "min_child_weight": float(rng.choice([1.0, 2.0, 5.0, 10.0, 20.0])),
                "subsample": round(float(rng.uniform(0.6, 1.0)), 3),
                "colsample_bytree": round(float(rng.uniform(0.5, 1.0)), 3),
                "reg_lambda": round(float(10 ** rng.uniform(-0.5, 1.3)), 3),
            }
        )
    return out


def score_candidate(
    frame: pd.DataFrame, window: Window, params: TrainParams, candidate: Mapping[str, Any]
) -> dict[str, Any]:
    """Fit a candidate on the search's training days, score it on its validation days.

    Returns the candidate with ``valid_roc_auc``, ``valid_log_loss``, ``best_rounds`` and ``seconds``.
    """
    started = time.perf_counter()
    train, _ = split(frame, window)
    fit_part, valid_part = search_split(train, window)
    if fit_part.empty or valid_part.empty:
        raise ValueError(
            f"as of {window.as_of}: the search needs rows before and after {window.valid_start} "
            f"(got {len(fit_part)} and {len(valid_part)}); widen window_days"
        )
    model = fit_booster(fit_part, candidate, params, params.n_estimators, valid=valid_part)
    rounds = int(model.booster.best_iteration) + 1
    p = model.booster.predict(
        __import__("xgboost").DMatrix(model.matrix(valid_part), enable_categorical=True),
        iteration_range=(0, rounds),
    )
    metrics = evaluate(valid_part[LABEL], p)
    return {
        **dict(candidate),
        "best_rounds": rounds,
        "valid_roc_auc": metrics["roc_auc"],
        "valid_log_loss": metrics["log_loss"],
        "seconds": round(time.perf_counter() - started, 3),
    }


def best_candidate(scores: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Highest validation ROC-AUC; ties by lower log loss, then lower candidate number."""
    if not scores:
        raise ValueError("no search candidate finished")
    return dict(min(scores, key=lambda s: (-s["valid_roc_auc"], s["valid_log_loss"], s["candidate"])))


# --------------------------------------------------------------------------------------------------
# Refit, evaluate, and the whole thing
# --------------------------------------------------------------------------------------------------


@dataclass
class Result:
    """A trained challenger and everything needed to log, register, gate and reproduce it."""

    model: DelayModel
    window: Window
    params: TrainParams
    best: dict[str, Any]
    scores: list[dict[str, Any]]
    metrics: dict[str, float]
    holdout_predictions: pd.DataFrame
    timings: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "window": self.window.as_dict(),
            "best": self.best,
            "metrics": self.metrics,
            "timings": self.timings,
        }


def refit(frame: pd.DataFrame, window: Window, params: TrainParams, best: Mapping[str, Any]) -> Result:
    """Refit the best candidate on all training days and score it on the holdout."""
    started = time.perf_counter()
    train, holdout = split(frame, window)
    model = fit_booster(train, best, params, int(best["best_rounds"]))
    p = model.predict(holdout)
    preds = holdout[["flight_id", "ds", LABEL]].copy()
    preds["prediction"] = p
    result = Result(
        model=model,
        window=window,
        params=params,
        best=dict(best),
        scores=[],
        metrics=evaluate(holdout[LABEL], p),
        holdout_predictions=preds,
    )
    result.timings["refit"] = round(time.perf_counter() - started, 3)
    return result


def train(
    frame: pd.DataFrame,
    params: TrainParams,
    as_of: date | datetime | str,
    on_candidate: Callable[[dict[str, Any]], None] | None = None,
) -> Result:
    """Search (sequentially), refit the best candidate, evaluate on the holdout: the whole training."""
    window = Window.of(as_of, params)
    frame = sort_frame(frame)
    started = time.perf_counter()
    scores = []
    for cand in candidates(params):
        score = score_candidate(frame, window, params, cand)
        if on_candidate:
            on_candidate(score)
        scores.append(score)
    search_seconds = time.perf_counter() - started
    result = refit(frame, window, params, best_candidate(scores))
    result.scores = scores
    result.timings["search"] = round(search_seconds, 3)
    return result


# --------------------------------------------------------------------------------------------------
# Behavioural checks (Made With ML style: invariance and directional expectations)
# --------------------------------------------------------------------------------------------------

#: Fields that are not model inputs: changing them must not change a prediction.
IRRELEVANT_FIELDS: tuple[str, ...] = ("flight_id", "flight", "tailnum", "ds")
#: Features where a higher value should not lower the average delay risk (+1), or should not
#: raise it (-1). Checked between each feature's 10th and 90th percentile on the holdout. Only
#: causal, unconfounded signals belong here: a late inbound aircraft and a congested departure
#: bank make a delay more likely whatever else is true. (Window rates such as a carrier's 7-day
#: delayed rate are confounded with the carrier and season; a good model may use them either way.)
EXPECTED_DIRECTIONS: dict[str, int] = {
    "prev_leg_dep_delay": +1,
    "cong_dep_delay_mean_prev_2h": +1,
}


def behavioural_checks(
    predict: Callable[[pd.DataFrame], np.ndarray],
    holdout: pd.DataFrame,
    features: Sequence[str],
    sample: int = 2000,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Run the behavioural checks of a model (``predict``: frame -> probabilities) on holdout rows.

    * invariance: changing fields the model must ignore (ids, tail number, flight number) and the
      row order changes no prediction;
    * directional: moving an expected-direction feature from its 10th to its 90th percentile moves
      the mean prediction the expected way;
    * range: predictions are finite probabilities.
    """
    import numpy as np

    rows = holdout.sample(n=min(sample, len(holdout)), random_state=seed).reset_index(drop=True)
    base = np.asarray(predict(rows), dtype="float64")
    checks: list[dict[str, Any]] = []
    checks.append(
        {
            "name": "range",
            "passed": bool(np.isfinite(base).all() and (base >= 0).all() and (base <= 1).all()),
            "detail": f"min {base.min():.4f} max {base.max():.4f}",
        }
    )
    noisy = rows.copy()
    for col in IRRELEVANT_FIELDS:
        if col in noisy.columns and col not in features:
            noisy[col] = noisy[col].sample(frac=1.0, random_state=seed + 1).to_numpy()
    noisy["unrelated_column"] = "x"
    diff = float(np.abs(np.asarray(predict(noisy)) - base).max())
    checks.append(
        {"name": "invariance_irrelevant_fields", "passed": diff == 0.0, "detail": f"max |dp| {diff:g}"}
    )
    order = np.random.default_rng(seed).permutation(len(rows))
    shuffled = np.asarray(predict(rows.iloc[order].reset_index(drop=True)))
    diff = float(np.abs(shuffled - base[order]).max())
    checks.append({"name": "invariance_row_order", "passed": diff == 0.0, "detail": f"max |dp| {diff:g}"})
    for col, sign in EXPECTED_DIRECTIONS.items():
        if col not in features or col not in rows.columns:
            continue
        values = rows[col].astype("float64")
        if values.notna().sum() < 20:
            continue
        lo, hi = values.quantile(0.1), values.quantile(0.9)
        if not np.isfinite([lo, hi]).all() or lo == hi:
            continue
        low, high = rows.copy(), rows.copy()
        low[col], high[col] = lo, hi
        delta = float(np.mean(predict(high)) - np.mean(predict(low)))
        checks.append(
            {
                "name": f"direction_{col}",
                "passed": delta * sign >= 0,
                "detail": f"mean p at p90 ({hi:g}) - at p10 ({lo:g}) = {delta:+.4f}, expected {'+' if sign > 0 else '-'}",
            }
        )
    return checks


# --------------------------------------------------------------------------------------------------
# Where a run's training set lives, and the as-of of a run
# --------------------------------------------------------------------------------------------------


def training_dir(window: Window, params: TrainParams, settings: Settings | None = None) -> str:
    """``{lake}/training/as_of=YYYY-MM-DD/<data key>``: one training set per as-of and window."""
    from mlops import lake
    from mlops.config import get_settings

    s = settings or get_settings()
    return lake.join(s.lake_uri, "training", f"as_of={window.as_of}", params.data_key())


def save_training_set(frame: pd.DataFrame, manifest: Mapping[str, Any], directory: str) -> str:
    """Write ``training_set.parquet`` and ``manifest.json`` (atomically); returns the parquet URI."""
    from mlops import lake

    uri = lake.join(directory, "training_set.parquet")
    lake.write_parquet(uri, frame)
    lake.write_text(
        lake.join(directory, "manifest.json"), json.dumps({**manifest, "uri": uri}, indent=2, default=str)
    )
    return uri


def load_training_set(uri: str) -> pd.DataFrame:
    """Read a saved training set back with the fixed categories of the categorical features.

    Read as ``pandas.read_parquet`` does, but column by column with the Arrow memory released as it
    goes (``split_blocks``, ``self_destruct``), from the file itself when local: the frame, not
    three copies of it, is what a 10x-volume year costs (benchmarks/bench_memory.py).
    """
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlops import lake
    from mlops.features import compute

    source = str(lake.local_path(uri)) if uri.startswith("file://") else io.BytesIO(lake.read_bytes(uri))
    table = pq.read_table(source, use_pandas_metadata=True)
    frame = table.to_pandas(split_blocks=True, self_destruct=True)
    del table
    pa.default_memory_pool().release_unused()  # hand the freed Arrow buffers back to the system
    dtypes = compute.categorical_dtypes()
    for col in frame.columns:
        if col in dtypes:
            frame[col] = frame[col].astype("object").where(frame[col].notna(), None).astype(dtypes[col])
        elif str(frame[col].dtype) == "category":
            frame[col] = frame[col].astype("object").astype("category")
    return sort_frame(frame)


def resolve_as_of(
    param_as_of: str | None,
    event_timestamps: Sequence[datetime],
    data_interval_end: datetime | None,
    run_after: datetime | None,
) -> tuple[date, str]:
    """The as-of date of a run and where it came from.

    An explicit ``as_of`` param wins; an asset-triggered run uses its (latest) retrain request's
    time; scheduled, backfill and manual runs use the data interval end; else the run's
    ``run_after``.
    """
    if param_as_of:
        return as_of_date(param_as_of), "param"
    if event_timestamps:
        return as_of_date(max(event_timestamps)), "retrain_request"
    if data_interval_end is not None:
        return as_of_date(data_interval_end), "data_interval_end"
    if run_after is not None:
        return as_of_date(run_after), "run_after"
    raise ValueError("cannot tell the as-of date: no as_of param, request event, data interval or run_after")
