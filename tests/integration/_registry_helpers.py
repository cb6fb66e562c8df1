"""Helpers for the registry tests: a real MLflow (SQLite) home, and tiny models logged to it."""

from __future__ import annotations

import hashlib
from typing import Any

import pandas as pd

from mlops.training.dataset import categorical_columns, feature_columns, frame_hash
from mlops.training.params import Window
from mlops.training.run import Result, train
from mlops.training.split import split
from mlops.training.validation import validate_training_set
from tests.unit._frames import small_frame, tiny_params

AS_OF = "2013-03-15"


def frame() -> pd.DataFrame:
    return small_frame("2013-02-01", AS_OF, frac=0.2)


def fake_manifest(frame: pd.DataFrame, window: Window) -> dict[str, Any]:
    """A manifest like build_training_set's, with a hash of each day's rows standing in for files."""
    parts = []
    for ds in window.days():
        day = frame[frame["ds"] == ds]
        if day.empty:
            parts.append({"ds": ds, "uri": f"memory://{ds}", "missing": True})
            continue
        digest = hashlib.sha256(pd.util.hash_pandas_object(day, index=False).to_numpy().tobytes()).hexdigest()
        parts.append({"ds": ds, "uri": f"memory://{ds}", "rows": len(day), "sha256": digest})
    return {
        "window": window.as_dict(),
        "feature_service": "flight_delay_v1",
        "features": feature_columns(frame),
        "categorical": categorical_columns(frame),
        "rows": len(frame),
        "partitions": parts,
        "data_hash": frame_hash(frame),
    }


STRONG = {"n_candidates": 1}
WEAK = {"n_candidates": 1, "max_depth": 1, "n_estimators": 2, "learning_rate": 0.05}


def train_and_register(data: pd.DataFrame, as_of: str = AS_OF, **overrides: Any) -> tuple[str, Result]:
    """Train a tiny model, log it to MLflow, register it; returns (version, result)."""
    from mlops.models import registry
    from mlops.models.tracking import log_training

    params = tiny_params(**overrides)
    result = train(data, params, as_of)
    _, holdout = split(data, result.window)
    validation = validate_training_set(data, result.window, params)
    logged = log_training(
        result,
        example_frame=holdout,
        manifest=fake_manifest(data, result.window),
        validation=validation,
        airflow_context={"dag_id": "pytest", "run_id": "manual", "try_number": 1},
    )
    version = registry.register(logged["run_id"], logged["model_uri"])
    return version, result
