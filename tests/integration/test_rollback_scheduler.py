"""Automatic rollback end to end: a bad champion served, judged by ``rollout_guard`` in the real scheduler.

The story (issue 18, "Automatic rollback"):

1. A small real home (tests/e2e/_serving_home.py): June 2013 curated days and feature tables,
   ``feast apply``, the online store materialized. v1 is trained as of ``DAY`` on the 14 days
   before it and promoted. v2 is trained on the same frame with **shuffled labels** (registered,
   not promoted).
2. ``mlops serve`` (the real CLI and uvicorn, on loopback) answers half of ``DAY``'s flights, one
   request each, with v1. ``rollout_guard`` run 1 (embedded Airflow: scheduler, dag-processor,
   api-server, triggerer) scrapes ``/metrics``: v1's interval; no ``@previous``: nothing to do.
3. v2 is **promoted by hand** over v1 (the gate overruled: ``margin=-1``, actor ``manual:tester``);
   the service swaps to it and answers the other half. The curated partition of ``DAY`` holds the
   arrived labels.
4. ``rollout_guard`` run 2 judges v2: its online ROC-AUC on the flights it answered against v1's on
   the same flights, and both versions' error rate and p99 from the scrapes. The breach rolls
   ``@champion`` back to v1 (audit trail: ``rollback-guard``), the ``rollback`` alert arrives in a
   real SMTP server (aiosmtpd on loopback), and the service swaps back to v1.
5. ``rollout_guard`` run 3: v1 has no answers since the rollback yet: no breach, nothing moves
   (one breach, one rollback).

Prints the timeline from the promotion to the rollback and the alias history.
"""

from __future__ import annotations

import time

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.conftest import use_home
from tests.integration.test_drift_scheduler import REPO, finished, query, task_states, wait, xcom

pytestmark = pytest.mark.slow

DAY = "2013-06-12"  # the day served and judged
AS_OF = DAY  # models trained on [DAY - 14, DAY): the served day is out of sample
WINDOW, HOLDOUT = 14, 3


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    from mlops.config import get_settings
    from mlops.features import feature_store
    from mlops.models import registry
    from tests.e2e._serving_home import prepare_lake, shift, train_version

    with pytest.MonkeyPatch.context() as mp:
        root = use_home(mp, tmp_path_factory.mktemp("rollback"))
        for var in (*feature_store.FEAST_ENV_VARS, "MLOPS_SERVING_METRICS_URL"):
            mp.delenv(var, raising=False)
        dags = root / "dags"
        dags.mkdir()
        (dags / "rollout_guard.py").symlink_to(REPO / "dags" / "rollout_guard.py")
        mp.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(dags))
        settings = get_settings()
        first = shift(AS_OF, -WINDOW)
        prepared = prepare_lake(first, DAY, settings)
        frame = feature_store.training_frame(first, AS_OF, settings)
        v1 = train_version(frame, AS_OF, window_days=WINDOW, holdout_days=HOLDOUT)
        assert registry.promote(v1.version, v1.holdout, margin=0.0).promoted
        rng = np.random.default_rng(13)
        shuffled = frame.assign(is_delayed=rng.permutation(frame["is_delayed"].to_numpy()))
        v2 = train_version(shuffled, AS_OF, window_days=WINDOW, holdout_days=HOLDOUT)
        feature_store.materialize(DAY, shift(DAY, 1), settings)
        curated = prepared["curated"]
        day = curated[curated["ds"] == DAY].sample(frac=1.0, random_state=5).reset_index(drop=True)
        yield {"root": root, "settings": settings, "v1": v1, "v2": v2, "day": day, "mp": mp}


def _serve_flights(url: str, flights: pd.DataFrame) -> dict[str, int]:
    """POST each flight alone (one request per flight); the versions that answered."""
    from tests.e2e._serving_home import request_body

    answered: dict[str, int] = {}
    with httpx.Client(base_url=url, timeout=60) as c:
        for _, row in flights.iterrows():
            resp = c.post("/predict", json=request_body(row))
            assert resp.status_code == 200, resp.text
            version = resp.headers.get("x-model-version") or resp.json()["model_version"]
            answered[version] = answered.get(version, 0) + 1
    return answered


def _wait_served_version(url: str, version: str, timeout: float = 300) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        health = httpx.get(f"{url}/health", timeout=10).json()
        if str(health["model"]["version"]) == version:
            return time.time()
        time.sleep(0.2)
    raise TimeoutError(f"the service did not swap to v{version} in {timeout}s")


def _wait_logged(settings, version: str, count: int, timeout: float = 120) -> None:
    from mlops.monitoring.rollout_check import read_online

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = read_online([DAY], settings)
        if len(log) and (log["model_version"].astype(str) == version).sum() >= count:
            return
        time.sleep(0.5)
    raise TimeoutError(f"{count} answers of v{version} not in the online log after {timeout}s")


def _guard_run(env, svc, run_id: str, conf: dict) -> dict:
    from mlops.dev import embedded

    embedded.trigger("rollout_guard", env, conf=conf, run_id=run_id)
    (run,) = wait(lambda: finished(env, "rollout_guard", run_id, 1), run_id, svc, timeout=1800, poll=2)
    (started, ended) = query(
        env, "SELECT start_date, end_date FROM dag_run WHERE dag_id = 'rollout_guard' AND run_id = ?", run_id
    )[0]
    return {
        **run,
        "tasks": task_states(env, "rollout_guard", run_id),
        "summary": xcom(env, "rollout_guard", run_id, "check_rollout"),
        "outcome": xcom(env, "rollout_guard", run_id, "roll_back"),
        "started": started,
        "ended": ended,
    }


@pytest.mark.timeout(5400)
def test_a_bad_champion_is_rolled_back_by_the_guard(home):
    from mlops.config import CHAMPION, PREVIOUS
    from mlops.dev import embedded
    from mlops.models import audit, registry
    from tests.e2e._serving_home import Server
    from tests.integration.alert_sinks import SmtpSink

    settings, v1, v2, day = home["settings"], home["v1"].version, home["v2"].version, home["day"]
    half = len(day) // 2
    smtp = SmtpSink()
    home["mp"].setenv("AIRFLOW_CONN_MLOPS_SMTP", smtp.connection())
    server = Server(home["root"], "--poll-seconds", "1", "--log-flush-seconds", "1")
    timeline: list[tuple[float, str]] = []
    try:
        assert str(server.wait_ready()["model"]["version"]) == v1
        conf = {"ds": DAY, "window_days": 1, "metrics_url": f"{server.url}/metrics"}
        with embedded.running(settings) as svc:
            env = svc.env
            embedded.reserialize(env)
            embedded.unpause(["rollout_guard"], env)

            # 2. v1 answers the first half; the guard's first scrape measures it.
            assert _serve_flights(server.url, day.iloc[:half]) == {v1: half}
            first = _guard_run(env, svc, "manual__guard1", conf)
            print("guard run 1:", first["tasks"], first["summary"]["verdict"]["notes"])
            assert first["state"] == "success" and first["tasks"] == {
                "check_rollout": "success",
                "roll_back": "skipped",
            }
            assert first["summary"]["verdict"]["previous"] is None

            # 3. v2 (shuffled labels) promoted by hand; the service swaps; it answers the rest.
            timeline.append((time.time(), f"v{v2} promoted by hand over v{v1}"))
            forced = registry.promote(v2, home["v2"].holdout, margin=-1.0, actor="manual:tester")
            assert forced.promoted and registry.alias_version(PREVIOUS) == v1
            timeline.append((_wait_served_version(server.url, v2), f"service answers with v{v2}"))
            assert _serve_flights(server.url, day.iloc[half:]) == {v2: len(day) - half}
            _wait_logged(settings, v2, len(day) - half)
            timeline.append((time.time(), f"{len(day) - half} answers of v{v2} logged"))

            # 4. The guard judges v2 and rolls back.
            timeline.append((time.time(), "rollout_guard run 2 triggered"))
            second = _guard_run(env, svc, "manual__guard2", conf)
            verdict = second["summary"]["verdict"]
            print("guard run 2:", second["tasks"], verdict)
            assert second["state"] == "success", second
            assert second["tasks"] == {"check_rollout": "success", "roll_back": "success"}
            assert (verdict["champion"], verdict["previous"]) == (v2, v1)
            assert "online_roc_auc" in [b["kind"] for b in verdict["breaches"]], verdict
            assert verdict["auc"]["champion"] < verdict["auc"]["previous"] - 0.05, verdict["auc"]
            # Both versions' service numbers were measured (each on its own answers).
            assert verdict["champion_service"]["requests"] >= len(day) - half - 1
            assert verdict["previous_service"]["requests"] >= half
            assert verdict["champion_service"]["p99_ms"] and verdict["previous_service"]["p99_ms"]
            outcome = second["outcome"]
            assert outcome["rolled_back"] and (outcome["from_version"], outcome["to_version"]) == (v2, v1)
            assert outcome["announced"] == ["email"]
            assert registry.alias_version(CHAMPION) == v1 and registry.alias_version(PREVIOUS) == v2
            guard_moves = [e for e in audit.read(settings=settings) if e.actor == "rollback-guard"]
            assert [(e.alias, e.from_version, e.to_version) for e in guard_moves] == [
                (CHAMPION, v2, v1),
                (PREVIOUS, v1, v2),
            ]
            assert guard_moves[0].context.get("dag_run_id") == "manual__guard2"
            timeline.append((pd.Timestamp(guard_moves[0].at).timestamp(), f"@champion back to v{v1} (audit)"))
            mails = smtp.wait(1, timeout=60)
            assert [m.subject for m in mails] == [f"[mlops] rollback flight_delay_xgb: v{v2} -> v{v1}"]
            assert mails[0].kind == "rollback" and "online ROC-AUC" in mails[0].body
            timeline.append((time.time(), f"alert received: {mails[0].subject}"))
            timeline.append((_wait_served_version(server.url, v1), f"service answers with v{v1} again"))

            # 5. Another run: v1 is judged on its own answers since the rollback (none): nothing moves.
            third = _guard_run(env, svc, "manual__guard3", conf)
            print("guard run 3:", third["tasks"], third["summary"]["verdict"]["notes"])
            assert third["tasks"] == {"check_rollout": "success", "roll_back": "skipped"}
            assert not third["summary"]["verdict"]["breached"]
            assert len([e for e in audit.read(settings=settings) if e.actor == "rollback-guard"]) == 2
            assert len(smtp.mails) == 1
    finally:
        server.stop()
        smtp.stop()

    start = timeline[0][0]
    print("\ntimeline (seconds after the promotion):")
    for at, what in sorted(timeline):
        print(f"  {at - start:8.1f}  {what}")
    print(f"guard run 2: {second['started']} -> {second['ended']}")
    print("alias history (audit trail):")
    print(audit.format_trail(audit.read(settings=settings)))
