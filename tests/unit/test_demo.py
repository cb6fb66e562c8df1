"""The demo's plan: which runs it creates and waits for."""

from __future__ import annotations

from datetime import date

import pytest

from mlops.dev.demo import _mondays


def test_weekly_training_runs_fall_on_train_models_cron_mondays() -> None:
    weeks = _mondays(date(2013, 1, 29), date(2013, 3, 31))
    assert weeks[0] == date(2013, 2, 4) and weeks[-1] == date(2013, 3, 25)
    assert len(weeks) == 8 and all(d.weekday() == 0 for d in weeks)


def test_a_window_without_a_monday_trains_nothing() -> None:
    assert _mondays(date(2013, 1, 29), date(2013, 2, 3)) == []
    assert _mondays(date(2013, 2, 4), date(2013, 2, 4)) == [date(2013, 2, 4)]


def test_default_window_trains_three_mondays_then_replays_from_the_last() -> None:
    from datetime import timedelta

    from mlops.cli import build_parser

    ns = build_parser().parse_args(["demo"])
    assert (ns.start, ns.end) == (date(2013, 5, 1), date(2013, 7, 31))  # spring into the summer storms
    weeks = _mondays(ns.start + timedelta(days=ns.train_after_weeks * 7), ns.end)[: ns.train_weeks]
    assert weeks == [date(2013, 6, 3), date(2013, 6, 10), date(2013, 6, 17)]


def test_bad_arguments_are_refused_before_anything_starts(capsys) -> None:
    from mlops.cli import main

    assert main(["demo", "--start", "2013-07-01", "--end", "2013-06-01"]) == 2
    assert "--end 2013-06-01 is before --start 2013-07-01" in capsys.readouterr().out
    assert main(["demo", "--train-weeks", "0"]) == 2
    assert "at least one training run" in capsys.readouterr().out


def test_partitions_in_the_window_are_counted(mlops_home) -> None:
    from mlops import lake
    from mlops.config import get_settings
    from mlops.dev.demo import _partitions

    s = get_settings()
    for ds in ("2013-04-30", "2013-05-01", "2013-05-02"):
        lake.write_text(lake.join(s.lake_uri, "quarantine", "flights", f"ds={ds}", "batch.csv"), "x")
    assert _partitions("quarantine/flights", date(2013, 5, 1), date(2013, 5, 31)) == [
        "2013-05-01",
        "2013-05-02",
    ]
    assert _partitions("curated/flights", date(2013, 5, 1), date(2013, 5, 31)) == []


def test_up_starts_its_processes_in_their_own_sessions_and_stops_each_group(tmp_path) -> None:
    """`mlops up`'s process handling, on real processes: each in its own session (a group that
    the stop signals whole, a child included), logging to ``<name>.log``."""
    import os
    import sys
    import time

    from mlops.dev.demo import _start_processes, _stop_processes

    child = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); print('up', flush=True); time.sleep(60)"
    running = _start_processes({"sleeper": [sys.executable, "-c", child]}, dict(os.environ), tmp_path)
    process = running["sleeper"]
    assert os.getpgid(process.pid) == process.pid != os.getpgid(0)  # its own group
    for _ in range(100):
        if (tmp_path / "sleeper.log").read_text().strip() == "up":
            break
        time.sleep(0.1)
    _stop_processes(running)
    assert process.returncode is not None
    group_alive = True
    for _ in range(50):  # the grandchild got the same SIGINT: give it a moment to exit
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            group_alive = False
            break
        time.sleep(0.1)
    assert not group_alive, "the grandchild outlived `mlops up`"


def test_up_runs_the_mlflow_ui_with_one_worker_and_the_prediction_service(mlops_home) -> None:
    from mlops.cli import build_parser
    from mlops.config import get_settings
    from mlops.dev.demo import _up_commands

    ns = build_parser().parse_args(["up", "--mlflow-port", "5123", "--serve-port", "8123"])
    commands = _up_commands(ns, get_settings())
    mlflow = commands["mlflow"]
    assert mlflow[1:6] == ["ui", "--host", "127.0.0.1", "--port", "5123"] and mlflow[-2:] == [
        "--workers",
        "1",
    ]
    assert commands["serve"][1:] == ["serve", "--port", "8123"]


def test_the_mlflow_store_is_created_before_training_once(mlops_home, monkeypatch) -> None:
    import sqlite3

    from mlops.config import get_settings
    from mlops.dev.demo import _create_mlflow_store, _wait_mlflow_store

    s = get_settings()
    db = s.mlflow_tracking_uri.removeprefix("sqlite:///")
    proc = _create_mlflow_store(s)
    assert proc is not None
    _wait_mlflow_store(proc)
    with sqlite3.connect(db) as conn:  # MLflow's schema, migrated to its head
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"experiments", "runs", "registered_models", "alembic_version"} <= tables
    assert _create_mlflow_store(s) is None  # exists: nothing to do


def test_a_failed_mlflow_store_says_what_to_do(tmp_path, monkeypatch) -> None:
    import pytest

    from mlops.config import get_settings
    from mlops.dev.demo import _create_mlflow_store, _wait_mlflow_store

    (tmp_path / "file").write_text("")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'file' / 'mlflow.db'}")  # under a file
    with pytest.raises(
        RuntimeError, match="(?s)creating the MLflow tracking database failed.*MLFLOW_TRACKING_URI"
    ):
        _wait_mlflow_store(_create_mlflow_store(get_settings()))


def test_every_registered_model_and_feed_has_its_dags_in_the_demo() -> None:
    from mlops.dev.demo import ALL_DAGS, model_dags
    from mlops.spec.feed import FEEDS
    from mlops.spec.model import SPECS

    original = model_dags("flight_delay")
    assert (original.train, original.batch, original.monitor) == (
        "train_model",
        "batch_predict",
        "monitor_drift",
    )
    other = model_dags("air_time")
    assert (other.train, other.batch, other.monitor) == (
        "train_air_time",
        "batch_predict_air_time",
        "monitor_drift_air_time",
    )
    for name in SPECS:
        m = model_dags(name)
        assert {m.train, m.batch, m.monitor} <= set(ALL_DAGS)
    assert {f"ingest_{feed}" for feed in FEEDS} <= set(ALL_DAGS)


def test_a_retrain_request_that_was_never_emitted_is_reported_as_such() -> None:
    from mlops.dev.demo import WeekCheck

    week = WeekCheck("flight_delay", "2013-06-24", "2013-06-30", "requested", "drift share 0.6")
    week.failed = {"request_retrain": "failed"}
    assert week.outcome() == "retrain requested by the check but NOT emitted (request_retrain failed)"
    week.emitted, week.failed = 1, {}
    assert week.outcome() == "retrain requested and emitted"
    assert WeekCheck("air_time", "a", "b", "suppressed").outcome() == "retrain request suppressed"


def test_feed_lines_count_each_feeds_days_ingested_and_quarantined(mlops_home) -> None:
    from mlops import lake
    from mlops.config import get_settings
    from mlops.dev.demo import feed_lines
    from mlops.spec.feed import feed_spec

    s = get_settings()
    flights, weather = feed_spec("flights"), feed_spec("weather")
    for ds in ("2013-05-01", "2013-05-02", "2013-05-03", "2013-06-01"):  # the last is outside
        lake.write_text(flights.curated_file(s.lake_uri, ds), "x")
    lake.write_text(weather.curated_file(s.lake_uri, "2013-05-01"), "x")
    lake.write_text(lake.join(weather.quarantine_dir(s.lake_uri, "2013-05-02"), "weather.csv"), "x")
    assert feed_lines(date(2013, 5, 1), date(2013, 5, 3)) == [
        "feed flights: 3 of 3 days ingested, 0 quarantined",
        "feed weather: 1 of 3 days ingested, 1 quarantined 2013-05-02",
    ]


@pytest.mark.slow  # migrates a fresh MLflow store: 134 s at load 25
def test_model_lines_show_versions_with_the_gate_metric_first_champion_and_drift(mlops_home) -> None:
    """A real MLflow registry (the home's SQLite store) and a drift history in the lake."""
    import mlflow
    import pandas as pd
    from mlflow import MlflowClient

    from mlops import lake, layout
    from mlops.config import get_settings
    from mlops.dev.demo import Replay, WeekCheck, model_lines
    from mlops.spec.model import model_spec

    s = get_settings()
    spec = model_spec("air_time")
    # The registry too (another test's tracking.client leaves its store as the process default).
    client = MlflowClient(tracking_uri=s.mlflow_tracking_uri, registry_uri=s.mlflow_tracking_uri)
    client.create_registered_model(spec.model_name)
    experiment = client.create_experiment("demo-summary-test")
    for mae in (9.5, 8.25):
        run = client.create_run(experiment)
        for key, value in {"mae": mae, "rmse": mae + 3, "r2": 0.9, "rows": 1000.0, "time_fit_s": 2.0}.items():
            client.log_metric(run.info.run_id, key, value)
        client.set_terminated(run.info.run_id)
        client.create_model_version(
            spec.model_name,
            source=run.info.artifact_uri,
            run_id=run.info.run_id,
            tags={"mlops.as_of": "2013-06-03"},
        )
    client.set_registered_model_alias(spec.model_name, "champion", "2")
    frame = pd.DataFrame({"ds": ["2013-06-23", "2013-06-30"], "drift_detected": [False, True]})
    lake.write_parquet(layout.drift_history_file(s.lake_uri, spec.lake_folder), frame)
    lake.write_text(layout.predictions_file(s.lake_uri, "2013-06-24", spec.lake_folder), "x")
    week = WeekCheck("air_time", "2013-06-24", "2013-06-30", "requested", "MAE up 30%", emitted=1)
    replay = Replay(
        weeks=[week],
        retrained={
            "air_time": {"run_id": "r1", "state": "success", "champion_before": "1", "champion_after": "2"}
        },
    )

    lines = model_lines("air_time", date(2013, 6, 1), date(2013, 6, 30), replay)
    assert lines[0] == f"model air_time ({spec.model_name}, regression): 1 days scored"
    assert lines[1].startswith(
        "  v1  as_of=2013-06-03: mae=9.500 (gate, lower is better), r2=0.900, rmse=12.500"
    )
    assert lines[2].startswith("  v2 @champion as_of=2013-06-03: mae=8.250 (gate, lower is better)")
    assert "rows" not in lines[1] and "time_fit_s" not in lines[1]
    assert "  champion: v2" in lines and "  drift checks: 2 (1 with data drift)" in lines
    assert "  checked 2013-06-24 → 2013-06-30: retrain requested and emitted — MAE up 30%" in lines
    assert lines[-1] == "  retraining: r1 success; champion v1 → v2"
    mlflow.end_run()
    # Nothing registered yet: the model is listed with no versions, no champion.
    assert model_lines("flight_delay", date(2013, 6, 1), date(2013, 6, 30))[1:] == [
        "  champion: none",
        "  drift checks: none",
    ]


def test_the_first_backfill_stops_before_the_first_replayed_week() -> None:
    from mlops.dev.demo import ModelDags, _first_ingest_end

    model = ModelDags("m", "train_m", "batch_predict_m", "monitor_drift_m")
    present = {"train_m", "batch_predict_m", "monitor_drift_m"}
    start, end = date(2013, 5, 1), date(2013, 7, 31)
    # Mondays 3, 10, 17 June train; the replay starts with the week of 17 June, landed as it passes.
    assert _first_ingest_end([model], present, start, end, 4, 3) == date(2013, 6, 16)
    # Nothing replayed (no scoring/monitoring DAG, no model, no Monday in the window): all of it.
    assert _first_ingest_end([model], {"train_m"}, start, end, 4, 3) == end
    assert _first_ingest_end([], present, start, end, 4, 3) == end
    assert _first_ingest_end([model], present, start, date(2013, 5, 12), 2, 1) == date(2013, 5, 12)
