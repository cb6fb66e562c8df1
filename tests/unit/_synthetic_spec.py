"""A third model spec, defined in the tests: machine failures, nothing to do with flights.

Its own schema (``run_id``, ``observed_at``, ``day``), its own label (``failed``, 0/1) and
features (``temperature``, ``vibration``, ``age_days``, a categorical ``site``), its own frame
source (seeded synthetic rows per day), its own gate (PR-AUC) and checks. The platform's
training and monitoring code run it with no change: the proof that the seam is a spec.

The data: a failure is likelier when hot and vibrating (a logistic of both), whatever the site
and the run id.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from mlops.spec.model import BINARY, Behaviour, Estimator, Gate, LabelChecks, ModelSpec, Monitoring

if TYPE_CHECKING:
    import pandas as pd

ROWS_PER_DAY = 200
SITES = ("north", "south", "east")


def failed(frame: pd.DataFrame) -> pd.Series:
    """The label: the run failed (the synthetic source already carries it)."""
    return frame["failed"]


def day_rows(day: str, shift: float = 0.0) -> pd.DataFrame:
    """The synthetic rows of one day (seeded by the day; ``shift`` moves the temperatures)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(int(day.replace("-", "")))
    n = ROWS_PER_DAY
    temperature = rng.normal(60.0 + shift, 8.0, n)
    vibration = rng.gamma(2.0, 1.5, n)
    age = rng.integers(0, 2000, n).astype("float64")
    logit = 0.25 * (temperature - 65.0) + 0.6 * (vibration - 3.0) - 1.0
    fail = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype("int8")
    start = pd.Timestamp(day, tz="UTC")
    return pd.DataFrame(
        {
            "run_id": [f"{day}-{i:04d}" for i in range(n)],
            "observed_at": start + pd.to_timedelta(np.sort(rng.integers(0, 86_400, n)), unit="s"),
            "day": day,
            "failed": fail,
            "temperature": temperature,
            "vibration": vibration,
            "age_days": age,
            "site": pd.Categorical(rng.choice(SITES, n), categories=SITES),
        }
    )


def frame(spec: ModelSpec, start: str, end: str, settings: Any = None) -> pd.DataFrame:
    """The spec's frame: every synthetic row of the days [start, end)."""
    import pandas as pd

    first, last = date.fromisoformat(start), date.fromisoformat(end)
    days = [(first + timedelta(days=i)).isoformat() for i in range((last - first).days)]
    out = pd.concat([day_rows(day) for day in days], ignore_index=True)
    return out[[*spec.meta_columns, spec.label, *spec.features]]


SPEC = ModelSpec(
    name="machine_failure",
    model_name="machine_failure_xgb",
    experiment="machine-failure",
    description="P(a machine run fails), from its sensors at the start of the run",
    task=BINARY,
    label="failed",
    label_doc="1 when the run failed",
    label_of="tests.unit._synthetic_spec:failed",
    label_dtype="int8",
    feature_service="machine_failure_v1",
    features=("temperature", "vibration", "age_days", "site"),
    frame="tests.unit._synthetic_spec:frame",
    estimator=Estimator(
        defaults={
            "window_days": 20,
            "holdout_days": 4,
            "n_estimators": 30,
            "learning_rate": 0.3,
            "nthread": 1,
            "max_bin": 64,
            "max_depth": 3,
            "n_candidates": 2,
            "min_rows": 800,
            "min_holdout_rows": 150,
            "promotion_margin": 0.0,
        }
    ),
    gate=Gate(metric="pr_auc", higher_is_better=True, tiebreak="log_loss"),
    label_checks=LabelChecks(mean_name="failure rate", mean_range=(0.02, 0.8), value_range=(0.0, 1.0)),
    behaviour=Behaviour(
        irrelevant_fields=("run_id", "day"),
        directions={"temperature": +1, "vibration": +1},
    ),
    monitoring=Monitoring(experiment="machine-failure-monitoring", metric="roc_auc", higher_is_better=True),
    request_fields={"run_id": "string", "temperature": "number", "vibration": "number", "site": "string"},
    prediction_column="failure_probability",
    batch_columns=("run_id", "day", "failure_probability", "model_name", "model_version"),
    id_column="run_id",
    time_column="observed_at",
    day_column="day",
    feeds=(),
    import_path="tests.unit._synthetic_spec:SPEC",
)
