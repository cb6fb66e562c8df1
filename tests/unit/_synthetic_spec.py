"""A third model spec, defined in the tests: machine failures, nothing to do with flights.

Its own schema (``run_id``, ``observed_at``, ``day``), its own label (``failed``, 0/1) and
features (``temperature``, ``vibration``, ``age_days``, a categorical ``site``), its own frame
source (seeded synthetic rows per day), its own gate (PR-AUC) and checks. The platform's
training and monitoring code run it with no change: the proof that the seam is a spec.

The data: a failure is likelier when hot and vibrating (a logistic of both), whatever the site
and the run id.

:data:`SPEC` builds its frame from seeded rows (no lake: the unit tests). Its feed and the
lake-backed spec run the whole path (``tests/integration/test_third_spec.py``): :data:`FEED`, the
``machine_runs`` feed (a daily CSV export of the runs, its own GX suite ``machine_runs_raw_v1``, its
own normalization and partition key ``day``), and :data:`LAKE_SPEC`, the same model whose frame
reads that feed's curated partitions (and records them in its lineage).
"""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from mlops.spec.features import FeatureSetSpec, View
from mlops.spec.feed import FeedSpec
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


# --- the machine_runs feed ---------------------------------------------------------------------------

FEED_NAME = "machine_runs"
SUITE_NAME = "machine_runs_raw_v1"
#: Raw daily export (CSV), in order, with the pandas dtype a reader parses each with.
RAW_COLUMNS: dict[str, str] = {
    "run_id": "object",
    "observed_at": "object",  # ISO 8601, UTC
    "day": "object",
    "site": "object",
    "temperature": "float64",
    "vibration": "float64",
    "age_days": "float64",
    "failed": "int64",
}
CURATED_COLUMNS: dict[str, str] = {
    "day": "string",
    "run_id": "string",
    "observed_at": "datetime64[us, UTC]",
    "site": "string",
    "temperature": "float64",
    "vibration": "float64",
    "age_days": "float64",
    "failed": "int8",
}
#: Physical ranges (degrees F, mm/s, days, 0/1).
RANGES: dict[str, tuple[float, float]] = {
    "temperature": (-20.0, 150.0),
    "vibration": (0.0, 100.0),
    "age_days": (0.0, 20_000.0),
    "failed": (0.0, 1.0),
}
CHECK_ORDER = ("file", "schema", "partition", "domains", "keys", "nulls", "ranges")


#: From this day on upstream's machines run hotter (temperatures +20 F, failures more frequent):
#: the drift a monitoring check of the days after must see.
HEAT_FROM, HEAT_SHIFT = "2013-03-12", 20.0


def replay_runs(target: Any) -> pd.DataFrame:
    """The raw export of ``target`` (a date or ``YYYY-MM-DD``): that day's synthetic runs (hotter
    from :data:`HEAT_FROM` on)."""
    day = target if isinstance(target, str) else target.isoformat()
    rows = day_rows(day, HEAT_SHIFT if day >= HEAT_FROM else 0.0)
    return rows.assign(
        observed_at=rows["observed_at"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"), site=rows["site"].astype(str)
    )[list(RAW_COLUMNS)]


def normalize_runs(raw: pd.DataFrame) -> pd.DataFrame:
    """Raw export -> :data:`CURATED_COLUMNS`, sorted by ``observed_at`` then ``run_id``."""
    import pandas as pd

    out = raw.assign(observed_at=pd.to_datetime(raw["observed_at"], utc=True))[list(CURATED_COLUMNS)]
    out = out.astype(CURATED_COLUMNS)
    return out.sort_values(["observed_at", "run_id"], kind="stable").reset_index(drop=True)


def build_machine_suite(gx: Any = None) -> Any:
    """The ``machine_runs_raw_v1`` expectation suite (the day is a ``$PARAMETER``)."""
    from mlops.ingest import validation

    gx = gx or validation.import_gx()
    gxe = gx.expectations
    custom = validation.custom_expectations()
    suite = gx.ExpectationSuite(name=SUITE_NAME)

    def add(expectation: Any, check: str, **meta: Any) -> None:
        expectation.meta = {"check": check, **meta}
        suite.add_expectation(expectation)

    add(gxe.ExpectTableColumnsToMatchSet(column_set=list(RAW_COLUMNS), exact_match=True), "schema")
    add(custom.column_types(column_types=validation.accepted_dtypes(RAW_COLUMNS)), "schema")
    add(gxe.ExpectColumnValuesToBeInSet(column="day", value_set={"$PARAMETER": "day"}), "partition")
    add(gxe.ExpectColumnValuesToBeInSet(column="site", value_set=list(SITES)), "domains", domain="the sites")
    add(gxe.ExpectCompoundColumnsToBeUnique(column_list=["run_id", "day"]), "keys")
    add(
        custom.null_fractions(max_null_fractions=dict.fromkeys(RAW_COLUMNS, 0.0)),
        "nulls",
        nulls_reason="a sensor that did not report",
    )
    add(custom.ranges(ranges={c: [lo, hi] for c, (lo, hi) in RANGES.items()}), "ranges")
    return suite


def machine_parameters(ds: str, allow_partial: bool = False) -> dict[str, Any]:
    """The day's values of the suite's ``$PARAMETER`` placeholders."""
    return {"day": [ds]}


def machine_suite() -> Any:
    """The feed's :class:`mlops.ingest.validation.Suite`."""
    from mlops.ingest.validation import Suite

    return Suite(
        name=SUITE_NAME,
        title="Machine runs",
        raw_columns=RAW_COLUMNS,
        build=build_machine_suite,
        parameters=machine_parameters,
        check_order=CHECK_ORDER,
    )


def _kelvin(frame: pd.DataFrame, ds: str) -> bytes:
    from mlops.ingest.simulator import to_csv_bytes

    return to_csv_bytes(frame.assign(temperature=frame["temperature"] + 273.15))


def _duplicate_runs(frame: pd.DataFrame, ds: str) -> bytes:
    import pandas as pd

    from mlops.ingest.simulator import to_csv_bytes

    return to_csv_bytes(pd.concat([frame, frame.iloc[::10]], ignore_index=True))


#: name -> (description, function): what a faulty upstream writes; the suite rejects each.
FAULTS = {
    "kelvin": ("temperatures in kelvin instead of degrees F", _kelvin),
    "duplicate_runs": ("every 10th run is repeated", _duplicate_runs),
}

FEED = FeedSpec(
    name=FEED_NAME,
    title="Machine runs",
    description="One row per machine run: site, sensor readings at its start, and whether it failed.",
    raw_columns=RAW_COLUMNS,
    curated_columns=CURATED_COLUMNS,
    suite="tests.unit._synthetic_spec:machine_suite",
    normalize="tests.unit._synthetic_spec:normalize_runs",
    replay="tests.unit._synthetic_spec:replay_runs",
    faults="tests.unit._synthetic_spec:FAULTS",
    reports=f"validation/{FEED_NAME}",
    partition_key="day",
    import_path="tests.unit._synthetic_spec:FEED",
)


def lake_frame(spec: ModelSpec, start: str, end: str, settings: Any = None) -> pd.DataFrame:
    """:data:`LAKE_SPEC`'s frame: the curated ``machine_runs`` of the days [start, end) (days without
    a curated partition contribute no rows), ``site`` as a category of :data:`SITES`."""
    import pandas as pd

    from mlops import lake
    from mlops.config import get_settings

    lake_uri = (settings or get_settings()).lake_uri
    first, last = date.fromisoformat(start), date.fromisoformat(end)
    days = [(first + timedelta(days=i)).isoformat() for i in range((last - first).days)]
    uris = [FEED.curated_file(lake_uri, day) for day in days]
    parts = [lake.read_parquet(uri) for uri in uris if lake.exists(uri)]
    if not parts:
        raise ValueError(f"no curated {FEED_NAME} partition in [{start}, {end}): ingest them first")
    out = pd.concat(parts, ignore_index=True)
    out = out.assign(
        day=out["day"].astype(str),
        failed=out["failed"].astype("int8"),
        site=pd.Categorical(out["site"].astype(str), categories=SITES),
    )
    return out[[*spec.meta_columns, spec.label, *spec.features]]


#: The same model, trained on what the ``machine_runs`` feed curated (its lineage lists them).
LAKE_SPEC = dataclasses.replace(
    SPEC,
    frame="tests.unit._synthetic_spec:lake_frame",
    feeds=(FEED.import_path,),
    import_path="tests.unit._synthetic_spec:LAKE_SPEC",
)


# --- the machine_runs feature set ----------------------------------------------------------------------

#: Days of runs a site's statistics look back on.
SITE_WINDOW_DAYS = 7
SITE_DAY = "site_day"
SITE_FEATURES = ("site_runs_prev_7d", "site_fail_rate_prev_7d")


def site_stats_table(history: pd.DataFrame, ds: str, inputs: Any = None) -> dict[str, pd.DataFrame]:
    """The ``site_day_stats`` rows of day ``ds``: per site, its runs and failure rate over the days
    [ds-7, ds-1], usable from ds's local midnight (so never from a run of ds itself)."""
    import pandas as pd

    from mlops.features.compute import TIMESTAMP, local_midnight

    past = history[
        (history["day"] < ds) & (history["day"] >= str(date.fromisoformat(ds) - timedelta(days=7)))
    ]
    grouped = past.groupby(past["site"].astype(str))["failed"]
    runs = grouped.size().reindex(list(SITES), fill_value=0).astype("float64")
    rate = grouped.mean().reindex(list(SITES)).astype("float64")
    table = pd.DataFrame(
        {
            SITE_DAY: pd.Series([f"{site}|{ds}" for site in SITES], dtype="string"),
            TIMESTAMP: pd.Series([local_midnight(ds)] * len(SITES)).astype("datetime64[us, UTC]"),
            "site_runs_prev_7d": runs.to_numpy(),
            "site_fail_rate_prev_7d": rate.to_numpy(),
        }
    )
    return {"site_day_stats": table}


def site_entities(rows: pd.DataFrame) -> pd.DataFrame:
    """Entity rows of machine runs: ``event_timestamp`` = ``observed_at``, ``site_day``."""
    import pandas as pd

    from mlops.features.compute import TIMESTAMP

    ts = pd.to_datetime(rows["observed_at"], utc=True).astype("datetime64[us, UTC]")
    return pd.DataFrame(
        {
            TIMESTAMP: ts.to_numpy(),
            SITE_DAY: (rows["site"].astype(str) + "|" + rows["day"].astype(str)).to_numpy(dtype=object),
        },
        index=rows.index,
    )


def site_dtypes() -> dict[str, Any]:
    import pandas as pd

    return {"site": pd.CategoricalDtype(list(SITES))}


def site_model_frame(rows: pd.DataFrame, feast_values: pd.DataFrame) -> pd.DataFrame:
    """The run's own readings (request-time) + the site's statistics (Feast), in :data:`FEATURE_SET` order."""
    import pandas as pd

    out = pd.DataFrame(index=rows.index)
    for col in ("temperature", "vibration", "age_days"):
        out[col] = rows[col].astype("float64")
    out["site"] = rows["site"].astype("object").astype(site_dtypes()["site"])
    for col in SITE_FEATURES:
        out[col] = (
            pd.to_numeric(feast_values[col], errors="coerce").astype("float64")
            if col in feast_values
            else float("nan")
        )
    return out


#: The machine runs' own feature set: one daily view, no static view, no training gate.
FEATURE_SET = FeatureSetSpec(
    name="machine_sites",
    description="Each site's runs and failure rate over the 7 days before a run's day.",
    feeds=(FEED.import_path,),
    history_days=SITE_WINDOW_DAYS,
    views=(View(name="site_day_stats", join_key=SITE_DAY, features=SITE_FEATURES),),
    build_day="tests.unit._synthetic_spec:site_stats_table",
    entity_frame="tests.unit._synthetic_spec:site_entities",
    model_frame="tests.unit._synthetic_spec:site_model_frame",
    features=("temperature", "vibration", "age_days", "site", *SITE_FEATURES),
    categorical_dtypes="tests.unit._synthetic_spec:site_dtypes",
    entity_columns=("site", "temperature", "vibration", "age_days"),
    id_column="run_id",
    time_column="observed_at",
    day_column="day",
    # Its own Feast repo and project (machine_sites): a team's set never touches feature_repo/.
    repo="tests/integration/machine_feature_repo",
    feature_service="machine_failure_v1",
    import_path="tests.unit._synthetic_spec:FEATURE_SET",
)

#: The same model, trained on its feature set through Feast: ``get_historical_features`` of the
#: ``machine_failure_v1`` service (the site statistics) plus the run's own readings.
FEAST_SPEC = dataclasses.replace(
    LAKE_SPEC,
    frame="mlops.training.dataset:feast_frame",
    feature_set=FEATURE_SET.import_path,
    features=(*SPEC.features, *SITE_FEATURES),
    import_path="tests.unit._synthetic_spec:FEAST_SPEC",
)
