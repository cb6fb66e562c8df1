"""A team's feature set through Feast, with no platform change: the tests' machine runs.

``tests/unit/_synthetic_spec.py`` defines the ``machine_sites`` feature set (one daily view, its own
Feast repo ``tests/integration/machine_feature_repo`` and project) and ``FEAST_SPEC``, the machine
failure model whose frame is ``feast_frame``. Here its curated partitions are built into feature
tables by the generic loop, applied and materialized into its own project, and the model trains on
``get_historical_features`` of its feature service: the values are checked against an independent
point-in-time computation, the online store serves what the offline join gives, and the flights
project is untouched.
"""

from __future__ import annotations

import pandas as pd
import pytest

from mlops.config import get_settings
from mlops.features import compute, feature_store
from tests.unit import _synthetic_spec as synthetic

pytestmark = pytest.mark.integration

#: Before upstream's machines run hotter (synthetic.HEAT_FROM): a holdout with a sane failure rate.
DAYS = compute.day_range("2013-02-10", "2013-03-11")
BUILT = DAYS


@pytest.fixture(scope="module")
def machine_home(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        home = tmp_path_factory.mktemp("mlops")
        mp.setenv("MLOPS_HOME", str(home))
        for var in ("MLOPS_LAKE_URI", "MLOPS_LANDING_URI", *feature_store.FEAST_ENV_VARS):
            mp.delenv(var, raising=False)
        settings = get_settings()
        from mlops import lake

        parts = []
        for ds in DAYS:
            part = synthetic.normalize_runs(synthetic.replay_runs(ds))
            lake.write_parquet(synthetic.FEED.curated_file(settings.lake_uri, ds), part)
            parts.append(part)
        fs = synthetic.FEATURE_SET
        built = compute.build_feature_tables(BUILT, settings, feature_set=fs)
        applied = feature_store.apply(settings, feature_set=fs)
        # The operator a team's features DAG runs (build_features_dag's materialize task).
        from mlops.airflow.operators.feast import FeastMaterializeOperator

        op = FeastMaterializeOperator(
            task_id="materialize", start=BUILT[0], end="2013-03-12", feature_set=fs.import_path
        )
        materialized = op.execute(context={})
        lo, hi = materialized["start"], materialized["end"]
        yield {
            "settings": settings,
            "curated": pd.concat(parts, ignore_index=True),
            "built": built,
            "applied": applied,
            "interval": (lo, hi),
            "project": materialized["project"],
        }


def test_its_own_repo_project_and_stores(machine_home):
    settings = machine_home["settings"]
    fs = synthetic.FEATURE_SET
    assert machine_home["built"].partitions == BUILT
    assert machine_home["applied"]["feature_services"] == ["machine_failure_v1"]
    assert machine_home["applied"]["feature_views"] == ["site_day_stats"]
    env = feature_store.feast_env(settings, feature_set=fs)
    assert env["MLOPS_FEAST_PROJECT"] == machine_home["project"] == "machine_sites"
    assert f"{settings.home}/feast/machine_sites/registry.db" in env["MLOPS_FEAST_REGISTRY"]
    store = feature_store.get_store(settings, fs)
    assert store.project == "machine_sites"
    assert [v.name for v in store.list_feature_views()] == ["site_day_stats"]
    # The flights project was never applied here: its registry does not exist.
    assert not (settings.home / "feast" / "registry.db").exists()


def _expected(curated: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """Independently: a run of day D at a site reads the site's runs of [D-7, D-1] when it starts at
    or after D's local midnight (the row's event time); a run of D before it (its day is the UTC
    day) has no row of its key yet: nulls."""
    out = []
    for site, day, ts in zip(rows["site"].astype(str), rows["day"], rows["observed_at"], strict=True):
        d = pd.Timestamp(day).date()
        if ts < compute.local_midnight(day):
            out.append((float("nan"), float("nan")))
            continue
        lo, hi = (d - pd.Timedelta(days=7)).isoformat(), (d - pd.Timedelta(days=1)).isoformat()
        past = curated[(curated["day"] >= lo) & (curated["day"] <= hi) & (curated["site"] == site)]
        out.append((float(len(past)), float(past["failed"].mean()) if len(past) else float("nan")))
    return pd.DataFrame(out, columns=list(synthetic.SITE_FEATURES), index=rows.index)


def test_training_reads_point_in_time_values_through_get_historical_features(machine_home):
    settings = machine_home["settings"]
    spec = synthetic.FEAST_SPEC
    frame = spec.build_frame("2013-03-01", "2013-03-11", settings)
    assert list(frame.columns) == [*spec.meta_columns, spec.label, *spec.features]
    curated = machine_home["curated"]
    ts = curated["observed_at"]
    inside = (ts >= compute.local_midnight("2013-03-01")) & (ts < compute.local_midnight("2013-03-11"))
    assert len(frame) == int(inside.sum()) > 9 * synthetic.ROWS_PER_DAY
    assert str(frame["site"].dtype) == "category" and str(frame["failed"].dtype) == "int8"
    assert frame["observed_at"].is_monotonic_increasing
    expected = _expected(curated, frame)
    for col in synthetic.SITE_FEATURES:
        pd.testing.assert_series_equal(frame[col], expected[col], check_names=False)
    assert frame["site_runs_prev_7d"].notna().mean() > 0.75  # runs after their day's local midnight


def test_the_model_trains_through_the_training_run_on_its_feast_features(machine_home):
    from mlops.training import behaviour
    from mlops.training.run import TrainingRun

    spec = synthetic.FEAST_SPEC
    run = TrainingRun.plan({"as_of": "2013-03-12"}, {}, [], None, None, spec=spec)
    run = TrainingRun.from_dict(run.as_dict())  # through XCom, by import path
    built = run.build()
    assert built["rows"] > 19 * synthetic.ROWS_PER_DAY
    manifest = run.read_manifest()
    assert manifest["features"] == list(spec.features) and "weather" not in manifest
    assert [p["ds"] for p in manifest["partitions"]] == DAYS[-20:]  # its feed's partitions, as read
    report = run.validate()
    assert report["passed"], report
    scores = [run.score(candidate) for candidate in run.candidates()]
    result = run.load_candidate(run.save_candidate(run.refit(scores)), scores)
    assert result.metrics["roc_auc"] > 0.75, result.metrics
    checks = run.behavioural_checks(result.model, run.holdout())
    assert not behaviour.failed(checks), checks


def test_the_online_store_serves_what_the_offline_join_gives_at_the_end(machine_home):
    settings = machine_home["settings"]
    fs = synthetic.FEATURE_SET
    request = pd.DataFrame(
        {
            "run_id": ["r1", "r2"],
            "observed_at": pd.to_datetime(["2013-03-11T15:00:00Z", "2013-03-11T16:00:00Z"], utc=True),
            "day": ["2013-03-11", "2013-03-11"],
            "site": ["north", "east"],
            "temperature": [70.0, 55.0],
            "vibration": [2.0, 5.0],
            "age_days": [10.0, 900.0],
        }
    )
    online = feature_store.online_frame(request, settings, feature_set=fs)
    offline = feature_store.historical_frame(request, settings, feature_set=fs)
    assert list(online.columns) == list(fs.features)
    pd.testing.assert_frame_equal(online, offline)
    assert online["site_runs_prev_7d"].gt(0).all()
