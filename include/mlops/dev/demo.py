"""``mlops demo`` and ``mlops up``: the whole lifecycle through the real Airflow scheduler.

The demo replays a window of 2013 (default May-July: spring into the summer storms) on the
embedded profile. It starts Airflow (api-server, scheduler, dag-processor, triggerer) and drives
every stage as a user would:

1. ``airflow backfill create`` of the simulator and ``ingest_flights`` over the window (together);
   ``materialize_features`` follows their asset events;
2. a backfill of the first weekly ``train_model`` runs (a champion is promoted);
3. then week by week, like the weeks going by in production: one ``batch_predict`` run scores the
   week (``end_ds``) with the champion of the time, one ``monitor_drift`` run checks it; when the
   seasonal drift fires ``retrain_request``, the ``train_model`` run it starts is waited for and
   the replay stops (``--whole-window`` goes on to ``--end``);
4. a summary: runs per DAG, days ingested/quarantined/featured/scored, model versions with their
   metrics, the champion, the drift verdicts and the retraining, and where to look.

Each stage runs only when its DAG exists. Weekly monitoring suffices for the replay: a check's
window is the 7 days ending with its day (daily runs in production overlap).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from mlops.cli import command
from mlops.config import get_settings

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

    from mlops.config import Settings
    from mlops.dev.embedded import Services

log = logging.getLogger("mlops.dev.demo")

#: Seconds between two looks at the metadata database (a read-only SQLite query: milliseconds).
POLL_SECONDS = 1.0

ALL_DAGS = (
    "flights_upstream_simulator",
    "ingest_flights",
    "ingest_weather",
    "materialize_features",
    "train_model",
    "batch_predict",
    "monitor_drift",
)


@dataclass
class Timeline:
    """What ran, stage by stage, with wall times (printed as the summary)."""

    started: float = field(default_factory=time.monotonic)
    stages: list[tuple[str, float, str]] = field(default_factory=list)

    def record(self, name: str, seconds: float, detail: str) -> None:
        self.stages.append((name, seconds, detail))
        _say(f"  done: {name} in {seconds:.0f}s — {detail}")


def _say(message: str) -> None:
    print(message, flush=True)


def _dates(start: date, end: date, step_days: int = 1) -> list[date]:
    out, day = [], start
    while day <= end:
        out.append(day)
        day += timedelta(days=step_days)
    return out


def _mondays(start: date, end: date) -> list[date]:
    """The Mondays in ``[start, end]``: the logical dates of train_model's weekly runs."""
    first = start + timedelta(days=(7 - start.weekday()) % 7)
    return _dates(first, end, 7)


def _existing_dags() -> set[str]:
    dags = get_settings().dags_folder
    return {d for d in ALL_DAGS if (dags / f"{d}.py").exists()}


def _run_backfill(
    svc: Services,
    timeline: Timeline,
    dag_id: str,
    start: date,
    end: date,
    expected: int,
    timeout: float,
    max_active_runs: int = 4,
) -> list[dict[str, Any]]:
    from mlops.dev import embedded

    t0 = time.monotonic()
    _say(f"▶ {dag_id}: backfill {start} → {end} ({expected} runs)")
    svc.create_backfill(dag_id, start.isoformat(), end.isoformat(), max_active_runs=max_active_runs)
    runs = embedded.wait_for_runs(
        dag_id,
        svc.env,
        expected,
        services=svc,
        timeout=timeout,
        poll=POLL_SECONDS,
        on_progress=lambda s: _say(f"  {s}"),
    )
    timeline.record(f"{dag_id} backfill", time.monotonic() - t0, _states(runs))
    return runs


def _catch_up_features(
    svc: Services, timeline: Timeline, start: date, end: date, existing: int, timeout: float
) -> None:
    """Curated days of the window still without features (an asset event Airflow left unconsumed:
    apache/airflow#56050) are built by one manual run, as a user would trigger it."""
    from mlops.dev import embedded
    from mlops.features.compute import unbuilt_partitions

    missing = [d for d in unbuilt_partitions() if start.isoformat() <= d <= end.isoformat()]
    if not missing:
        return
    t0 = time.monotonic()
    _say(
        f"▶ materialize_features: {len(missing)} curated days without features ({missing[0]} → {missing[-1]})"
    )
    svc.trigger_run("materialize_features", None, {"start_ds": missing[0], "end_ds": missing[-1]})
    runs = embedded.wait_for_runs(
        "materialize_features",
        svc.env,
        existing + 1,
        services=svc,
        timeout=timeout,
        poll=POLL_SECONDS,
        on_progress=lambda s: _say(f"  {s}"),
    )
    timeline.record("materialize_features (catch-up)", time.monotonic() - t0, _states(runs[existing:]))


def _states(runs: list[dict[str, Any]]) -> str:
    states = [r.get("state") for r in runs]
    return f"{len(runs)} runs: {states.count('success')} succeeded, {states.count('failed')} failed"


def _wait_idle(
    svc: Services,
    dag_id: str,
    timeout: float,
    settle: float = 20,
    done: Callable[[], bool] = lambda: False,
) -> list[dict[str, Any]]:
    """Wait until ``dag_id`` (asset-triggered) has no queued/running run, and either ``done()``
    says its work is complete or it has stayed idle for ``settle`` seconds (an asset event the
    scheduler has yet to turn into a run)."""
    from mlops.dev import embedded

    deadline = time.monotonic() + timeout
    idle_since: float | None = None
    runs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        svc.check_alive()
        runs = embedded.list_runs(dag_id, svc.env)
        busy = [r for r in runs if r.get("state") not in embedded.TERMINAL_STATES]
        if busy:
            idle_since = None
        elif runs and done():
            return runs
        elif idle_since is None:
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since >= settle:
            return runs
        time.sleep(POLL_SECONDS)
    raise TimeoutError(f"{dag_id} still busy after {timeout}s")


def _wait_run(svc: Services, dag_id: str, run_id: str, timeout: float) -> dict[str, Any]:
    """Wait for one run to finish; returns it."""
    from mlops.dev import embedded

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        svc.check_alive()
        for run in embedded.list_runs(dag_id, svc.env):
            if run.get("run_id") == run_id and run.get("state") in embedded.TERMINAL_STATES:
                return run
        time.sleep(POLL_SECONDS)
    raise TimeoutError(f"{dag_id} run {run_id} not finished after {timeout}s")


def _asset_triggered(svc: Services, dag_id: str) -> list[dict[str, Any]]:
    from mlops.dev import embedded

    return [r for r in embedded.list_runs(dag_id, svc.env) if r.get("run_type") == "asset_triggered"]


def _champion() -> str | None:
    from mlops.config import CHAMPION
    from mlops.models import registry

    return registry.alias_version(CHAMPION, get_settings())


@dataclass
class Replay:
    """What the weekly replay after the first champion did (for the summary)."""

    weeks: list[tuple[str, str, str, str]] = field(default_factory=list)  # first, last, decision, why
    retrained: dict[str, Any] = field(default_factory=dict)


def _wait_retraining(
    svc: Services, timeline: Timeline, retrains_before: int, champion: str | None, timeout: float
) -> dict[str, Any]:
    """Wait for the ``train_model`` run that a ``retrain_request`` starts; what it did to the champion."""
    t0 = time.monotonic()
    _say("▶ retrain_request emitted: waiting for the train_model run it starts")
    deadline = time.monotonic() + 300
    while len(_asset_triggered(svc, "train_model")) <= retrains_before:
        svc.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError("retrain_request emitted but no asset-triggered train_model run")
        time.sleep(POLL_SECONDS)
    run = _asset_triggered(svc, "train_model")[-1]
    done = _wait_run(svc, "train_model", str(run["run_id"]), timeout)
    retrained = {
        "run_id": done["run_id"],
        "state": done["state"],
        "champion_before": champion,
        "champion_after": _champion(),
    }
    timeline.record(
        "retraining (retrain_request)",
        time.monotonic() - t0,
        f"{done['run_id']} {done['state']}; champion v{champion} -> v{retrained['champion_after']}",
    )
    return retrained


class WeekCheck(NamedTuple):
    """A replayed week's retraining decision, and the asset-triggered ``train_model`` runs before it."""

    decision: str
    why: str
    retrains_before: int


def _score_and_check_week(
    svc: Services, timeline: Timeline, day: date, last: date, champion: str | None, timeout: float
) -> WeekCheck:
    """``batch_predict`` over the week, then ``monitor_drift`` for its last day."""
    from mlops.monitoring import history

    t0 = time.monotonic()
    _say(f"▶ week {day} → {last}: batch_predict with v{champion}, then monitor_drift for {last}")
    run_id = svc.trigger_run("batch_predict", day.isoformat(), {"end_ds": last.isoformat()})
    scored = _wait_run(svc, "batch_predict", run_id, timeout)
    retrains_before = len(_asset_triggered(svc, "train_model"))
    run_id = svc.trigger_run("monitor_drift", last.isoformat())
    checked = _wait_run(svc, "monitor_drift", run_id, timeout)
    verdict = history.day_decision(last.isoformat(), history.read_ledger())
    decision, why = verdict if verdict else ("none", "no threshold breached")
    timeline.record(
        f"week {day}: score + monitor",
        time.monotonic() - t0,
        f"batch_predict {scored.get('state')}, monitor_drift {checked.get('state')}, "
        f"retrain request: {decision} ({why[:100]})",
    )
    return WeekCheck(decision, why, retrains_before)


def replay_weeks(
    svc: Services, timeline: Timeline, first: date, end: date, timeout: float, whole_window: bool
) -> Replay:
    """Week by week from ``first``: score the week with the champion of the time (one
    ``batch_predict`` run over the week), then check it (``monitor_drift`` for the week's last day,
    whose 7-day window is the week). When a check emits ``retrain_request``, wait for the
    ``train_model`` run it starts; the replay then stops (or, with ``whole_window``, goes on)."""
    replay = Replay()
    day = first
    while day <= end:
        last = min(day + timedelta(days=6), end)
        champion = _champion()
        week = _score_and_check_week(svc, timeline, day, last, champion, timeout)
        replay.weeks.append((day.isoformat(), last.isoformat(), week.decision, week.why))
        if week.decision == "requested":
            replay.retrained = _wait_retraining(svc, timeline, week.retrains_before, champion, timeout)
            if not whole_window:
                break
        day = last + timedelta(days=1)
    return replay


def _create_mlflow_store(settings: Settings) -> subprocess.Popen[bytes] | None:
    """Create the MLflow tracking database now, in a process of its own, while Airflow starts
    and the first stages run (its migrations took 35 s at load 20), rather than in the first
    training task. None when it exists or is not a SQLite file."""
    uri = settings.mlflow_tracking_uri
    if not uri.startswith("sqlite:///") or Path(uri.removeprefix("sqlite:///")).exists():
        return None
    code = (
        "import sys; from mlflow.tracking import MlflowClient; MlflowClient(sys.argv[1]).search_experiments()"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code, uri], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def _wait_mlflow_store(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None:
        return
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(
            f"creating the MLflow tracking database failed ({proc.returncode}): "
            f"{err.decode(errors='replace')[-2000:]}\nCheck MLFLOW_TRACKING_URI, or remove the "
            "half-created database file and run the demo again."
        )


def _backfill_pipeline(
    svc: Services, timeline: Timeline, present: set[str], start: date, end: date, timeout: float
) -> None:
    """Landing and ingestion, backfilled together: each ingestion run's sensor waits in the
    triggerer until the simulator has landed its day."""
    from mlops.dev import embedded

    days = _dates(start, end)
    pipeline = [d for d in ("flights_upstream_simulator", "ingest_flights", "ingest_weather") if d in present]
    t0 = time.monotonic()
    for dag_id in pipeline:
        _say(f"▶ {dag_id}: backfill {start} → {end} ({len(days)} runs)")
        svc.create_backfill(dag_id, start.isoformat(), end.isoformat(), max_active_runs=8)
    for dag_id in pipeline:
        runs = embedded.wait_for_runs(
            dag_id,
            svc.env,
            len(days),
            services=svc,
            timeout=timeout,
            poll=POLL_SECONDS,
            on_progress=lambda m: _say(f"  {m}"),
        )
        timeline.record(f"{dag_id} backfill", time.monotonic() - t0, _states(runs))


def _materialize(svc: Services, timeline: Timeline, start: date, end: date, timeout: float) -> None:
    """Wait for the asset-triggered ``materialize_features`` runs, then fill any day they missed."""
    from mlops.features.compute import unbuilt_partitions

    def all_built() -> bool:
        return not [d for d in unbuilt_partitions() if start.isoformat() <= d <= end.isoformat()]

    t0 = time.monotonic()
    runs = _wait_idle(svc, "materialize_features", timeout, done=all_built)
    timeline.record("materialize_features (asset-triggered)", time.monotonic() - t0, _states(runs))
    _catch_up_features(svc, timeline, start, end, len(runs), timeout)


def _train_first_weeks(
    svc: Services, timeline: Timeline, start: date, end: date, after_weeks: int, weeks: int, timeout: float
) -> date | None:
    """The weekly training runs that make the first champion; the last one's day (None: none)."""
    mondays = _mondays(start + timedelta(days=after_weeks * 7), end)[:weeks]
    if not mondays:
        return None
    # Two at a time: each fit uses both cores; each week's model is gated against the champion of
    # the weeks before it.
    _run_backfill(
        svc, timeline, "train_model", mondays[0], mondays[-1], len(mondays), timeout, max_active_runs=2
    )
    return mondays[-1]


def run_demo(
    start: date,
    end: date,
    train_after_weeks: int,
    timeout: float,
    train_weeks: int = 3,
    whole_window: bool = False,
) -> int:
    import signal

    from mlops.dev import embedded

    # A `kill` (SIGTERM) unwinds like Ctrl-C: Airflow's components are stopped, not orphaned.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    settings = get_settings()
    present = _existing_dags()
    timeline = Timeline()
    _say(f"mlops demo: replaying {start} → {end} on the embedded profile (MLOPS_HOME={settings.home})")
    _say(f"  DAGs present: {', '.join(sorted(present)) or 'none'}")
    t0 = time.monotonic()
    port = int(os.environ.get("MLOPS_DEMO_PORT", "0")) or embedded.free_port()
    replay = Replay()
    mlflow_schema = _create_mlflow_store(settings)
    with embedded.running(settings, port=port) as svc:
        timeline.record("start Airflow", time.monotonic() - t0, f"UI at {svc.url}")
        # Quiet in this process only (Airflow's components were started with the full logging).
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
        logging.getLogger("httpx").setLevel(logging.WARNING)
        # The REST API, not the `airflow` CLI (a start costs seconds, a minute on a loaded
        # machine); the dag-processor's first parse, not `dags reserialize`.
        svc.unpause_dags(sorted(present))
        _backfill_pipeline(svc, timeline, present, start, end, timeout)
        if "materialize_features" in present:
            _materialize(svc, timeline, start, end, timeout)
        replay_from: date | None = None
        _wait_mlflow_store(mlflow_schema)
        if "train_model" in present:
            replay_from = _train_first_weeks(
                svc, timeline, start, end, train_after_weeks, train_weeks, timeout
            )
        if replay_from is not None and {"batch_predict", "monitor_drift"} <= present:
            if _champion() is None:
                _say("  no model was promoted to @champion: nothing to score or monitor")
            else:
                replay = replay_weeks(svc, timeline, replay_from, end, timeout, whole_window)
        _say("")
        _print_summary(svc, timeline, start, end, replay)
    return 0


def _partitions(prefix: str, start: date, end: date) -> list[str]:
    """The ``ds=YYYY-MM-DD`` partitions under the lake prefix ``prefix`` within [start, end]."""
    from mlops import lake

    s = get_settings()
    found = set()
    for uri in lake.list_uris(lake.join(s.lake_uri, prefix)):
        for part in uri.split("/"):
            if part.startswith("ds=") and start.isoformat() <= part[3:] <= end.isoformat():
                found.add(part[3:])
    return sorted(found)


def _print_runs(svc: Services, timeline: Timeline) -> None:
    """Each stage's wall time, and each DAG's runs by state."""
    from mlops.dev import embedded

    for name, seconds, detail in timeline.stages:
        _say(f"  {name:<42} {seconds:7.0f}s  {detail}")
    for dag_id in sorted(_existing_dags()):
        states: dict[str, int] = {}
        for run in embedded.list_runs(dag_id, svc.env):
            states[str(run.get("state"))] = states.get(str(run.get("state")), 0) + 1
        _say(f"  {dag_id:<30} runs: {json.dumps(states)}")


def _print_outcome(start: date, end: date, replay: Replay) -> None:
    """What the lake holds for the window, and what the replay decided."""
    from mlops.features.compute import DAILY_VIEWS

    ingested = _partitions("curated/flights", start, end)
    quarantined = _partitions("quarantine/flights", start, end)
    featured = _partitions(f"features/{DAILY_VIEWS[-1]}", start, end)
    scored = _partitions("predictions", start, end)
    _say(
        f"  days: {len(_dates(start, end))} replayed, {len(ingested)} ingested, "
        f"{len(quarantined)} quarantined{' ' + str(quarantined) if quarantined else ''}, "
        f"{len(featured)} with features materialized, {len(scored)} scored"
    )
    for first, last, decision, why in replay.weeks:
        _say(f"  monitored {first} → {last}: retrain request {decision} — {why[:160]}")
    if replay.retrained:
        r = replay.retrained
        _say(
            f"  retraining: {r['run_id']} {r['state']}; champion v{r['champion_before']} → "
            f"v{r['champion_after']}"
        )


def _print_waits(settings: Settings) -> None:
    """The tasks that took longest (running plus waiting to start), from Airflow's metadata DB."""
    import sqlite3

    from mlops.dev import timings

    db = settings.airflow_home / "airflow.db"
    _say(f"Where the time went (all of it: python -m mlops.dev.timings {settings.home}):")
    try:
        for line in timings.format_tables(db, top=8):
            _say(f"  {line}")
    except (OSError, ValueError, sqlite3.Error) as exc:  # a summary line must not fail the demo
        _say(f"  (no timings: {exc})")


def _print_summary(svc: Services, timeline: Timeline, start: date, end: date, replay: Replay) -> None:
    _say("══ Summary ══")
    _print_runs(svc, timeline)
    _print_outcome(start, end, replay)
    try:
        from mlops.models.lifecycle import lifecycle_summary

        for line in lifecycle_summary():
            _say(f"  {line}")
    except ModuleNotFoundError:
        pass
    s = get_settings()
    _say(
        f"  total wall time: {time.monotonic() - timeline.started:.0f}s (load average {os.getloadavg()[0]:.1f})"
    )
    _print_waits(s)
    _say("Where to look (`make up` serves all three; it prints the login):")
    _say(
        "  Airflow:   http://127.0.0.1:8080  (grid of every run above; the ML lifecycle page in the nav bar)"
    )
    _say(f"  MLflow:    http://127.0.0.1:5000  (store: {s.mlflow_tracking_uri})")
    _say(f"  lake:      {s.lake_uri}  (curated/, quarantine/, features/, predictions/, reports/)")
    _say(f"  reports:   {s.lake_uri}/reports/drift/ds=YYYY-MM-DD/report.html")


def _demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--start", type=date.fromisoformat, default=date(2013, 5, 1), help="first day replayed")
    p.add_argument("--end", type=date.fromisoformat, default=date(2013, 7, 31), help="last day replayed")
    p.add_argument(
        "--train-after-weeks", type=int, default=4, help="weeks of data before the first weekly training run"
    )
    p.add_argument("--train-weeks", type=int, default=3, help="weekly training runs backfilled")
    p.add_argument(
        "--whole-window",
        action="store_true",
        help="score and monitor every week to --end (default: stop after the drift-triggered retraining)",
    )
    p.add_argument("--timeout", type=float, default=3600, help="seconds to wait for any one stage")


@command(
    "demo", "replay a window of 2013 through every stage with the real scheduler, then summarize", _demo_args
)
def _demo(ns: argparse.Namespace) -> int:
    if ns.end < ns.start:
        _say(f"--end {ns.end} is before --start {ns.start}")
        return 2
    if ns.train_weeks < 1:
        _say(f"--train-weeks {ns.train_weeks}: at least one training run is needed for a champion")
        return 2
    return run_demo(
        ns.start,
        ns.end,
        ns.train_after_weeks,
        ns.timeout,
        train_weeks=ns.train_weeks,
        whole_window=ns.whole_window,
    )


def _up_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--airflow-port", type=int, default=8080)
    p.add_argument("--mlflow-port", type=int, default=5000)
    p.add_argument("--serve-port", type=int, default=8000)


def _up_commands(ns: argparse.Namespace, settings: Settings) -> dict[str, list[str]]:
    """The processes `mlops up` starts beside Airflow: the MLflow UI, and the prediction service."""
    bin_dir = os.path.dirname(sys.executable)
    commands = {
        "mlflow": [
            os.path.join(bin_dir, "mlflow"),
            "ui",
            "--host",
            "127.0.0.1",
            "--port",
            str(ns.mlflow_port),
            "--backend-store-uri",
            settings.mlflow_tracking_uri,
            "--workers",
            "1",  # one user on a laptop; the default 4 cost ~1 GB
        ],
    }
    if "serve" in __import__("mlops.cli", fromlist=["COMMANDS"]).COMMANDS:
        commands["serve"] = [os.path.join(bin_dir, "mlops"), "serve", "--port", str(ns.serve_port)]
    return commands


def _start_processes(
    commands: dict[str, list[str]], env: dict[str, str], logs: Path
) -> dict[str, subprocess.Popen]:
    """Start each command in its own session, logging to ``logs/<name>.log``."""
    # The MLflow UI without MLflow 3's GenAI job runner (seven idle processes, ~1.8 GB).
    extra_env = {"mlflow": {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}}
    return {
        name: subprocess.Popen(
            command,
            env={**env, **extra_env.get(name, {})},
            stdout=(logs / f"{name}.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        for name, command in commands.items()
    }


def _stop_processes(running: dict[str, subprocess.Popen]) -> None:
    """Interrupt each process group (mlflow ui runs children of its own), killing what lingers."""
    import signal

    for process in running.values():
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGINT)
    for process in running.values():
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _admin_password(settings: Settings) -> str:
    """The generated ``admin`` password of the simple auth manager (waits up to 2 min for it)."""
    pw_file = settings.airflow_home / "simple_auth_manager_passwords.json.generated"
    for _ in range(120):
        if pw_file.exists():
            break
        time.sleep(1)
    return json.loads(pw_file.read_text()).get("admin", "?") if pw_file.exists() else "(see logs)"


@command("up", "Airflow + MLflow UI + prediction service for interactive use", _up_args)
def _up(ns: argparse.Namespace) -> int:
    import signal

    from mlops.dev import embedded

    # Ctrl-C and `kill` both stop every service (even when started from a script, where SIGINT may
    # arrive ignored): the `finally` below signals each one's process group.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    s = get_settings()
    env = embedded.environment(s, port=ns.airflow_port)
    # Extra links and the lifecycle page point at the MLflow UI this command starts.
    env.setdefault("MLFLOW_UI_URL", f"http://127.0.0.1:{ns.mlflow_port}")
    embedded.init_db(env)
    logs = s.home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    running = _start_processes(_up_commands(ns, s), env, logs)
    # Airflow's components (not `airflow standalone`): no log servers on 0.0.0.0, and a component
    # that dies takes what it started with it (embedded.Services' watchdog); then everything stops.
    airflow = embedded.Services(env=env)
    try:
        airflow.start()
        _say(f"Airflow UI:   http://127.0.0.1:{ns.airflow_port}   login admin / {_admin_password(s)}")
        _say(f"MLflow UI:    http://127.0.0.1:{ns.mlflow_port}")
        if "serve" in running:
            _say(f"Predictions:  http://127.0.0.1:{ns.serve_port}/docs")
        _say(f"Logs in {logs} and {airflow.log_dir}. Ctrl-C stops everything.")
        while all(p.poll() is None for p in running.values()) and not airflow.exits:
            time.sleep(2)
        for dead in airflow.exits:
            _say(f"airflow {dead.name} exited ({dead.returncode}): stopping; see {airflow.log_dir}")
    except KeyboardInterrupt:
        pass
    finally:
        airflow.stop()
        _stop_processes(running)
    return 0
