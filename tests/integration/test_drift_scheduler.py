"""``monitor_drift`` through the real scheduler (embedded Airflow), with a winter-trained champion.

* What Airflow 3.3 does with outlets: a probe DAG shows that a task which raises
  ``AirflowSkipException`` emits **no** asset event, while a ``short_circuit`` task returning
  False **does** (it succeeds; only its downstream is skipped). ``request_retrain`` therefore
  skips to say "no request".
* A stable window (the last week of February against a champion trained on February) breaches
  no threshold, emits nothing and starts no ``train_model`` run.
* A summer window drifts: a backfill of two consecutive summer days (checks running
  concurrently, inside the 7-day cooldown) emits exactly one ``retrain_request``, which starts
  exactly one ``train_model`` run; the other check is skipped and the ledger says why.

Small on purpose: a 3-day current window sampled to 2,000 rows, a champion trained on 28 days.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from tests.conftest import use_home

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CURATED = [("2013-01-04", "2013-03-02"), ("2013-06-06", "2013-07-10")]
FEATURE_DAYS = [("2013-02-01", "2013-03-02"), ("2013-07-04", "2013-07-10")]
CHAMPION_AS_OF = "2013-03-01"
TRAIN = {"window_days": 28, "holdout_days": 7, "n_candidates": 1, "n_estimators": 60, "max_depth": 4}
CONF = {"window_days": 3, "sample_size": 2000, "cooldown_days": 7}
STABLE_DS = "2013-02-27"


def seed_lake(settings) -> None:
    """Curated partitions and feature tables of a winter and a summer stretch; feast apply."""
    from mlops import lake, layout, reference
    from mlops.features import compute, feature_store
    from mlops.ingest.normalize import normalize
    from tests._weather import seed_weather

    curated = normalize(reference.load("flights"))
    for start, end in CURATED:
        days = set(compute.day_range(start, end))
        for ds, part in curated[curated["ds"].isin(days)].groupby("ds"):
            lake.write_parquet(layout.curated_file(settings.lake_uri, str(ds)), part.reset_index(drop=True))
    for start, end in CURATED:
        seed_weather(compute.day_range(start, end), settings)  # features read weather from the curated lake
    for start, end in FEATURE_DAYS:
        compute.build_feature_tables(compute.day_range(start, end), settings, include_dependents=False)
    feature_store.apply(settings)


def make_champion(settings) -> str:
    """Train as of 2013-03-01 on February (what train_model does, minus the scheduler) and promote."""
    from mlops.models import registry
    from mlops.models.tracking import log_training
    from mlops.training.dataset import build_training_set, save_training_set, training_dir
    from mlops.training.params import TrainParams, Window
    from mlops.training.run import train
    from mlops.training.split import split
    from mlops.training.validation import validate_training_set

    p = TrainParams.from_mapping(TRAIN)
    window = Window.of(CHAMPION_AS_OF, p)
    frame, manifest = build_training_set(window, settings)
    save_training_set(frame, manifest, training_dir(window, p, settings))
    result = train(frame, p, CHAMPION_AS_OF)
    _, holdout = split(frame, window)
    validation = validate_training_set(frame, window, p, manifest)
    logged = log_training(
        result, example_frame=holdout, manifest=manifest, validation=validation, settings=settings
    )
    version = registry.register(logged["run_id"], logged["model_uri"], settings=settings)
    decision = registry.promote(version, holdout, margin=0.0, as_of=CHAMPION_AS_OF, settings=settings)
    assert decision.promoted, decision
    return version


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        h = use_home(mp, tmp_path_factory.mktemp("mlops"))
        # Only the DAGs under test (and the probe): less for the dag-processor on a loaded machine.
        dags = h / "dags"
        dags.mkdir()
        for name in ("monitor_drift.py", "train_model.py"):
            (dags / name).symlink_to(REPO / "dags" / name)
        (dags / "outlet_probe.py").symlink_to(Path(__file__).parent / "dags_drift" / "outlet_probe.py")
        mp.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(dags))
        from mlops.config import get_settings

        settings = get_settings()
        seed_lake(settings)
        version = make_champion(settings)
        yield h, version


def query(env, sql: str, *args) -> list[tuple]:
    db = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].removeprefix("sqlite:///")
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=60) as conn:
        return conn.execute(sql, args).fetchall()


def events(env, asset: str) -> list[dict]:
    rows = query(
        env,
        "SELECT e.source_dag_id, e.source_run_id, e.source_task_id, e.extra FROM asset_event e "
        "JOIN asset a ON a.id = e.asset_id WHERE a.name = ? ORDER BY e.id",
        asset,
    )
    return [{"dag_id": d, "run_id": r, "task_id": t, "extra": json.loads(x or "{}")} for d, r, t, x in rows]


def runs(env, dag_id: str) -> list[dict]:
    rows = query(env, "SELECT run_id, run_type, state FROM dag_run WHERE dag_id = ? ORDER BY id", dag_id)
    return [{"run_id": r, "run_type": t, "state": s} for r, t, s in rows]


def task_states(env, dag_id: str, run_id: str) -> dict[str, str]:
    rows = query(
        env, "SELECT task_id, state FROM task_instance WHERE dag_id = ? AND run_id = ?", dag_id, run_id
    )
    return dict(rows)


def xcom(env, dag_id: str, run_id: str, task_id: str, key: str = "return_value"):
    """A task's XCom value from the metadata database (JSON; the Execution API may store it as a
    JSON string inside the JSON column)."""
    rows = query(
        env,
        "SELECT value FROM xcom WHERE dag_id = ? AND run_id = ? AND task_id = ? AND key = ? AND map_index = -1",
        dag_id,
        run_id,
        task_id,
        key,
    )
    if not rows:
        return None
    value = json.loads(rows[0][0]) if isinstance(rows[0][0], str | bytes) else rows[0][0]
    return json.loads(value) if isinstance(value, str) else value


def wait(predicate, what: str, svc, timeout: float = 2400, poll: float = 5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        svc.check_alive()
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise TimeoutError(f"not after {timeout}s: {what}")


def finished(env, dag_id: str, prefix: str, count: int):
    mine = [r for r in runs(env, dag_id) if r["run_id"].startswith(prefix)]
    return mine if len(mine) >= count and all(r["state"] in ("success", "failed") for r in mine) else None


@pytest.mark.timeout(5400)
def test_drift_requests_retraining_once_through_the_storm_guard(home):
    from mlops.config import get_settings
    from mlops.dev import embedded
    from mlops.monitoring.history import drift_history, report_dir, retrain_requests

    _, champion = home
    settings = get_settings()
    with embedded.running(settings) as svc:
        env = svc.env
        embedded.reserialize(env)
        embedded.unpause(["outlet_probe", "monitor_drift", "train_model"], env)

        # 1. How Airflow 3.3 treats outlets of skipped and short-circuited tasks.
        embedded.trigger("outlet_probe", env, run_id="manual__probe")
        wait(lambda: finished(env, "outlet_probe", "manual__probe", 1), "outlet_probe", svc, timeout=900)
        states = task_states(env, "outlet_probe", "manual__probe")
        assert states == {
            "succeeds": "success",
            "skips": "skipped",
            "short_circuits": "success",
            "after_short_circuit": "skipped",
        }, states
        assert len(events(env, "probe_succeeded")) == 1
        assert events(env, "probe_skipped") == []  # skipped: no event
        assert len(events(env, "probe_short_circuited")) == 1  # short-circuit False still emits

        # Unpausing train_model may create its latest cron run (today, no data): let it end first,
        # so "a train_model run is queued or running" does not decide the checks below.
        wait(
            lambda: all(r["state"] in ("success", "failed") for r in runs(env, "train_model")),
            "train_model idle",
            svc,
            timeout=1800,
        )
        before = {r["run_id"] for r in runs(env, "train_model")}

        # 2. A stable window: the last week of February against the February champion.
        embedded.trigger(
            "monitor_drift", env, conf={**CONF, "ds": STABLE_DS, "window_days": 7}, run_id="manual__stable"
        )
        (stable,) = wait(lambda: finished(env, "monitor_drift", "manual__stable", 1), "stable check", svc)
        assert stable["state"] == "success", stable
        assert task_states(env, "monitor_drift", "manual__stable") == {
            "check_drift": "success",
            "request_retrain": "skipped",
        }
        assert events(env, "retrain_request") == []
        history = drift_history(settings)
        row = history[history["ds"] == STABLE_DS].iloc[0]
        assert not row["breached"] and row["retrain_decision"] == "none", row.to_dict()
        print("stable check:", row.to_dict())

        # 3. Two summer days, backfilled (concurrently), inside the cooldown: one request.
        embedded.backfill("monitor_drift", "2013-07-09", "2013-07-10", env, conf=CONF, max_active_runs=2)
        summer = wait(lambda: finished(env, "monitor_drift", "backfill__", 2), "summer checks", svc)
        assert [r["state"] for r in summer] == ["success", "success"], summer
        outcomes = {r["run_id"]: task_states(env, "monitor_drift", r["run_id"]) for r in summer}
        assert all(s["check_drift"] == "success" for s in outcomes.values()), outcomes
        print("summer checks:", drift_history(settings).to_dict(orient="records"))
        assert sorted(s["request_retrain"] for s in outcomes.values()) == ["skipped", "success"], outcomes

        emitted = events(env, "retrain_request")
        assert len(emitted) == 1, emitted
        extra = emitted[0]["extra"]
        assert emitted[0]["dag_id"] == "monitor_drift" and emitted[0]["task_id"] == "request_retrain"
        assert extra["reason"] and extra["drifted_features"] and extra["report_uri"].endswith("report.html")
        assert extra["window_start"] and extra["window_end"] and extra["champion_version"] == champion

        ledger = retrain_requests(settings)
        assert sorted(ledger["decision"]) == ["requested", "suppressed"], ledger
        suppressed = ledger[ledger["decision"] == "suppressed"].iloc[0]
        assert "cooldown after request" in suppressed["reason"], suppressed["reason"]

        # 4. The request started train_model (asset-triggered), exactly once.
        started = wait(
            lambda: [r for r in runs(env, "train_model") if r["run_id"] not in before] or None,
            "train_model started by retrain_request",
            svc,
            timeout=600,
        )
        time.sleep(30)  # a second request (there must be none) would have started another run by now
        new = [r for r in runs(env, "train_model") if r["run_id"] not in before]
        assert len(new) == 1 and new[0]["run_type"] == "asset_triggered", (started, new)
        embedded.airflow(["dags", "pause", "train_model"], env=env)

        # 5. The triggered run trains as of the request's data time (not the event's wall clock).
        run_id = new[0]["run_id"]
        planned = wait(
            lambda: (
                xcom(env, "train_model", run_id, "plan")
                or (
                    task_states(env, "train_model", run_id).get("plan") in ("failed", "upstream_failed")
                    and "x"
                )
            ),
            "train_model plan",
            svc,
            timeout=900,
        )
        assert isinstance(planned, dict), task_states(env, "train_model", run_id)
        print("triggered train_model plan:", {k: planned[k] for k in ("as_of", "as_of_source")})
        assert planned["as_of_source"] == "retrain_request", planned
        assert planned["as_of"] == extra["as_of"], (planned["as_of"], extra["as_of"])
        assert planned["retrain"]["retrain.request_id"] == extra["request_id"], planned["retrain"]

    # Reports and MLflow: one report per checked day, one MLflow run per check.
    from mlops import lake

    for ds in (STABLE_DS, "2013-07-09", "2013-07-10"):
        assert lake.exists(lake.join(report_dir(ds, settings), "report.html"))
        assert lake.exists(lake.join(report_dir(ds, settings), "drift.json"))
    history = drift_history(settings)
    print(history.to_string())
    assert history["ds"].tolist() == [STABLE_DS, "2013-07-09", "2013-07-10"]
    assert history["breached"].tolist() == [False, True, True]
    assert sorted(history["retrain_decision"].tolist()) == ["none", "requested", "suppressed"]
    assert (history["n_current"] <= CONF["sample_size"]).all()
    assert set(history["reference_source"]) == {"training_set"}
