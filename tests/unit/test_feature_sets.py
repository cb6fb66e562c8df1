"""The feature-set contract (mlops.spec.features): lookup, the flights set against its Feast repo, and a
second feature set (the tests' machine runs) built by the same generic loop with no platform change."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest

from mlops import lake, layout
from mlops.config import get_settings
from mlops.features import compute
from mlops.spec.features import FEATURE_SETS, FeatureSetSpec, feature_set
from mlops.spec.model import SPECS, model_spec
from tests.unit import _synthetic_spec as synthetic

ROOT = Path(__file__).resolve().parents[2]


def test_lookup_by_spec_name_and_import_path_with_clear_errors():
    flights = feature_set()
    assert feature_set("flights") is flights is feature_set("mlops.flight_delay.features:SPEC")
    assert feature_set(synthetic.FEATURE_SET) is synthetic.FEATURE_SET
    assert feature_set(synthetic.FEATURE_SET.ref) is synthetic.FEATURE_SET
    with pytest.raises(
        ValueError, match=r"unknown featureset spec 'nope'.*\['flights'\].*Add your own features"
    ):
        feature_set("nope")
    with pytest.raises(ValueError, match="is a ModelSpec, not a FeatureSetSpec"):
        feature_set("mlops.flight_delay.model:SPEC")
    unnamed = FeatureSetSpec(**{**vars(synthetic.FEATURE_SET), "import_path": ""})
    with pytest.raises(ValueError, match="import_path"):
        _ = unnamed.ref


def test_every_registered_model_names_a_feature_set_that_serves_its_features():
    for name in SPECS:
        spec = model_spec(name)
        fs = feature_set(spec.feature_set)
        assert fs.name in FEATURE_SETS
        assert set(spec.features) <= set(fs.features), name
        assert (spec.id_column, spec.time_column, spec.day_column) == (
            fs.id_column,
            fs.time_column,
            fs.day_column,
        )


def test_the_flights_set_is_what_its_feast_repo_defines(mlops_home):
    """Views, join keys and feature columns of the spec are the Feast repo's (feature_repo/)."""
    from mlops.features import feature_store

    found = feature_store.load_definitions(get_settings())
    views = {v.name: v for v in found["feature_views"]}
    keys = {e.name: e.join_key for e in found["entities"]}
    fs = feature_set()
    assert sorted(views) == sorted(v.name for v in fs.views)
    for view in fs.views:
        fv = views[view.name]
        assert [keys[e] for e in fv.entities] == [view.join_key], view.name
        assert sorted(f.name for f in fv.schema) == sorted(view.features), view.name
        assert (fv.ttl == timedelta(0)) == (not view.daily), view.name  # static views never expire
    assert sorted(fs.join_keys) == sorted(set(keys.values()))


def test_platform_feature_code_names_no_feature_set():
    """The generic feature stage names no flight (issue 16): the flights are one registered set."""
    for path in (
        "include/mlops/features/compute.py",
        "include/mlops/features/feature_store.py",
        "include/mlops/airflow/features_dag.py",
        "include/mlops/training/dataset.py",
    ):
        assert "flight" not in (ROOT / path).read_text().lower(), path


def _seed_runs(days: list[str], settings) -> pd.DataFrame:
    frames = []
    for ds in days:
        part = synthetic.normalize_runs(synthetic.replay_runs(ds))
        lake.write_parquet(synthetic.FEED.curated_file(settings.lake_uri, ds), part)
        frames.append(part)
    return pd.concat(frames, ignore_index=True)


def test_a_teams_feature_set_is_built_by_the_generic_loop(mlops_home):
    settings = get_settings()
    fs = synthetic.FEATURE_SET
    history = compute.day_range("2013-03-01", "2013-03-10")
    curated = _seed_runs(history, settings)
    built = compute.build_feature_tables(["2013-03-08", "2013-03-09"], settings, feature_set=fs)
    assert built.partitions == ["2013-03-08", "2013-03-09"] and built.skipped == []
    assert built.rows == {"site_day_stats": 6}
    assert compute.built_partitions(settings, fs) == {"2013-03-08", "2013-03-09"}
    assert compute.unbuilt_partitions(settings, fs) == [
        d for d in history if d not in ("2013-03-08", "2013-03-09")
    ]
    # The flights set sees none of it (its own views, its own driving feed).
    assert compute.built_partitions(settings) == set() and compute.unbuilt_partitions(settings) == []

    table = lake.read_parquet(layout.feature_file(settings.lake_uri, "site_day_stats", "2013-03-09"))
    assert list(table.columns) == ["site_day", compute.TIMESTAMP, *synthetic.SITE_FEATURES]
    # Recomputed independently: north's runs of 03-02 .. 03-08, nothing of 03-09 itself.
    window = curated[(curated["day"] >= "2013-03-02") & (curated["day"] <= "2013-03-08")]
    north = window[window["site"] == "north"]
    row = table[table["site_day"] == "north|2013-03-09"].iloc[0]
    assert row["site_runs_prev_7d"] == len(north)
    assert row["site_fail_rate_prev_7d"] == pytest.approx(north["failed"].mean())
    assert (table[compute.TIMESTAMP] == compute.local_midnight("2013-03-09")).all()

    # Idempotent, byte for byte; a late day rebuilds the built days whose window reads it.
    uri = layout.feature_file(settings.lake_uri, "site_day_stats", "2013-03-09")
    before = lake.read_bytes(uri)
    again = compute.build_feature_tables(["2013-03-03"], settings, feature_set=fs)
    assert again.partitions == ["2013-03-03", "2013-03-08", "2013-03-09"]
    assert lake.read_bytes(uri) == before
    assert compute.dependent_days(["2013-03-01"], settings, fs) == ["2013-03-03", "2013-03-08"]
    # New partitions of its feed are the days to build; a feed it does not read is an error.
    assert compute.days_to_build({fs.driving: ["2013-03-10"]}, settings, fs) == ["2013-03-10"]
    with pytest.raises(ValueError, match="does not read the feed 'weather'"):
        compute.days_to_build({"weather": ["2013-03-10"]}, settings, fs)


def test_a_day_without_its_driving_partition_is_skipped(mlops_home):
    settings = get_settings()
    _seed_runs(["2013-03-01"], settings)
    day = (date(2013, 3, 1) + timedelta(days=1)).isoformat()
    built = compute.build_feature_tables([day], settings, feature_set=synthetic.FEATURE_SET)
    assert built.partitions == [] and built.skipped == [day]


def test_the_flights_set_reads_weather_days_into_the_next_morning(mlops_home):
    """``reads_after``: a weather day D rebuilds D and D+1 when their flights are curated."""
    fs = feature_set()
    assert fs.driving == "flights" and fs.reads_after == {"weather": 1}
    assert fs.static_views == ("aircraft",) and fs.daily_views[-1] == "aircraft_previous_leg"


def _plan(dag):
    return dag.get_task("plan").python_callable


def test_the_features_dag_plans_days_from_each_feeds_events(mlops_home):
    from types import SimpleNamespace

    from airflow.sdk import Asset
    from airflow.sdk.exceptions import AirflowSkipException

    from mlops.airflow.assets import CURATED_FLIGHTS, CURATED_WEATHER, FLIGHT_FEATURES
    from mlops.airflow.features_dag import build_features_dag
    from tests.unit.test_features import seed_curated

    dag = build_features_dag(
        "flights", dag_id="features_test", inputs=[CURATED_FLIGHTS, CURATED_WEATHER], outlet=FLIGHT_FEATURES
    )
    assert dag.fileloc == __file__  # the caller's file
    assert sorted(dag.task_ids) == ["build_features", "feast_apply", "materialize", "plan", "publish"]
    plan = _plan(dag)
    seed_curated(["2013-05-01", "2013-05-02"], get_settings())

    def weather(*days):
        return {CURATED_WEATHER: [SimpleNamespace(extra={"ds": d}) for d in days]}

    assert plan(params={}, triggering_asset_events=weather("2013-05-01")) == ["2013-05-01", "2013-05-02"]
    with pytest.raises(AirflowSkipException, match="weather of 2013-05-07 curated before their flights"):
        plan(params={}, triggering_asset_events=weather("2013-05-07"))
    with pytest.raises(ValueError, match="no curated_flights or curated_weather event"):
        plan(params={}, triggering_asset_events={})

    # A team's set: its DAG takes its feed's asset; an asset of a feed it does not read is an error.
    runs = Asset(name=synthetic.FEED.asset, group="mlops")
    theirs = build_features_dag(
        synthetic.FEATURE_SET.ref,
        dag_id="machine_features_test",
        inputs=[runs],
        outlet=Asset(name="machine_features"),
    )
    events = {runs: [SimpleNamespace(extra={"ds": "2013-03-02"})]}
    assert _plan(theirs)(params={}, triggering_asset_events=events) == ["2013-03-02"]
    assert theirs.get_task("materialize").feature_set == synthetic.FEATURE_SET.ref  # its own store
    wrong = build_features_dag(
        synthetic.FEATURE_SET.ref, dag_id="wrong_test", inputs=[CURATED_WEATHER], outlet=Asset(name="x")
    )
    with pytest.raises(ValueError, match=r"inputs \['curated_weather'\] are not curated assets of its feeds"):
        _plan(wrong)(params={}, triggering_asset_events={})
    with pytest.raises(TypeError, match="name or import path"):
        build_features_dag(synthetic.FEATURE_SET, dag_id="x", inputs=[runs], outlet=runs)
