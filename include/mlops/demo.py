"""``mlops demo`` and ``mlops up``: the whole lifecycle through the real Airflow scheduler.

The demo replays a window of 2013 on the embedded profile: it starts Airflow (api-server,
scheduler, dag-processor, triggerer), then drives every stage with ``airflow backfill create``
exactly as a user would, lets the asset-triggered DAGs react, and prints a summary. Each stage
runs only when its DAG exists, so the demo grows with the project.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from mlops.cli import command
from mlops.config import get_settings

if TYPE_CHECKING:
    import argparse

    from mlops.embedded import Services

log = logging.getLogger("mlops.demo")

ALL_DAGS = (
    "flights_upstream_simulator",
    "ingest_flights",
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
    from mlops import embedded

    t0 = time.monotonic()
    _say(f"▶ {dag_id}: backfill {start} → {end} ({expected} runs)")
    embedded.backfill(
        dag_id, start.isoformat(), end.isoformat(), env=svc.env, max_active_runs=max_active_runs
    )
    runs = embedded.wait_for_runs(
        dag_id, svc.env, expected, services=svc, timeout=timeout, on_progress=lambda s: _say(f"  {s}")
    )
    timeline.record(f"{dag_id} backfill", time.monotonic() - t0, _states(runs))
    return runs


def _catch_up_features(
    svc: Services, timeline: Timeline, start: date, end: date, existing: int, timeout: float
) -> None:
    """Curated days of the window still without features (an asset event Airflow left unconsumed:
    apache/airflow#56050) are built by one manual run, as a user would trigger it."""
    from mlops import embedded
    from mlops.features import unbuilt_partitions

    missing = [d for d in unbuilt_partitions() if start.isoformat() <= d <= end.isoformat()]
    if not missing:
        return
    t0 = time.monotonic()
    _say(
        f"▶ materialize_features: {len(missing)} curated days without features ({missing[0]} → {missing[-1]})"
    )
    embedded.trigger("materialize_features", svc.env, conf={"start_ds": missing[0], "end_ds": missing[-1]})
    runs = embedded.wait_for_runs(
        "materialize_features",
        svc.env,
        existing + 1,
        services=svc,
        timeout=timeout,
        on_progress=lambda s: _say(f"  {s}"),
    )
    timeline.record("materialize_features (catch-up)", time.monotonic() - t0, _states(runs[existing:]))


def _states(runs: list[dict[str, Any]]) -> str:
    states = [r.get("state") for r in runs]
    return f"{len(runs)} runs: {states.count('success')} succeeded, {states.count('failed')} failed"


def _wait_idle(svc: Services, dag_id: str, timeout: float, settle: float = 20) -> list[dict[str, Any]]:
    """Wait until ``dag_id`` has no queued/running run for ``settle`` seconds (asset-triggered DAGs)."""
    from mlops import embedded

    deadline = time.monotonic() + timeout
    idle_since: float | None = None
    runs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        svc.check_alive()
        runs = embedded.list_runs(dag_id, svc.env)
        busy = [r for r in runs if r.get("state") not in embedded.TERMINAL_STATES]
        if busy:
            idle_since = None
        elif idle_since is None:
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since >= settle:
            return runs
        time.sleep(5)
    raise TimeoutError(f"{dag_id} still busy after {timeout}s")


def run_demo(start: date, end: date, train_every: int, timeout: float) -> int:
    import signal

    from mlops import embedded

    # A `kill` (SIGTERM) unwinds like Ctrl-C: Airflow's components are stopped, not orphaned.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    settings = get_settings()
    present = _existing_dags()
    timeline = Timeline()
    _say(f"mlops demo: replaying {start} → {end} on the embedded profile (MLOPS_HOME={settings.home})")
    _say(f"  DAGs present: {', '.join(sorted(present)) or 'none'}")
    t0 = time.monotonic()
    port = int(os.environ.get("MLOPS_DEMO_PORT", "0")) or embedded.free_port()
    with embedded.running(settings, port=port) as svc:
        timeline.record("start Airflow", time.monotonic() - t0, f"UI at {svc.url}")
        embedded.reserialize(svc.env)
        embedded.unpause(sorted(present), svc.env)
        days = _dates(start, end)
        if "flights_upstream_simulator" in present:
            _run_backfill(svc, timeline, "flights_upstream_simulator", start, end, len(days), timeout)
        if "ingest_flights" in present:
            _run_backfill(svc, timeline, "ingest_flights", start, end, len(days), timeout)
        if "materialize_features" in present:
            t1 = time.monotonic()
            runs = _wait_idle(svc, "materialize_features", timeout)
            timeline.record("materialize_features (asset-triggered)", time.monotonic() - t1, _states(runs))
            _catch_up_features(svc, timeline, start, end, len(runs), timeout)
        # Scoring and monitoring start on the first day a champion exists (the first training).
        scored_from = start
        if "train_model" in present:
            weeks = _mondays(start + timedelta(days=train_every * 7), end)  # its cron: Mondays 00:00
            if weeks:
                # Two at a time: each fit uses both cores, and a week's model is gated against the
                # champion of the weeks before it (a later as-of finishing first makes it stale).
                _run_backfill(
                    svc, timeline, "train_model", weeks[0], weeks[-1], len(weeks), timeout, max_active_runs=2
                )
                scored_from = weeks[0]
        scored = _dates(scored_from, end)
        if "batch_predict" in present:
            _run_backfill(svc, timeline, "batch_predict", scored_from, end, len(scored), timeout)
        if "monitor_drift" in present:
            _run_backfill(svc, timeline, "monitor_drift", scored_from, end, len(scored), timeout)
            if "train_model" in present:
                t1 = time.monotonic()
                runs = _wait_idle(svc, "train_model", timeout)
                triggered = [r for r in runs if str(r.get("run_id", "")).startswith("asset_triggered")]
                timeline.record(
                    "retraining (retrain_request)",
                    time.monotonic() - t1,
                    f"{len(triggered)} asset-triggered runs",
                )
        _say("")
        _print_summary(svc, timeline)
    return 0


def _print_summary(svc: Services, timeline: Timeline) -> None:
    from mlops import embedded

    _say("══ Summary ══")
    for name, seconds, detail in timeline.stages:
        _say(f"  {name:<42} {seconds:7.0f}s  {detail}")
    for dag_id in sorted(_existing_dags()):
        runs = embedded.list_runs(dag_id, svc.env)
        states: dict[str, int] = {}
        for run in runs:
            states[str(run.get("state"))] = states.get(str(run.get("state")), 0) + 1
        _say(f"  {dag_id:<30} runs: {json.dumps(states)}")
    try:
        from mlops.report import lifecycle_summary

        for line in lifecycle_summary():
            _say(f"  {line}")
    except ModuleNotFoundError:
        pass
    s = get_settings()
    _say(f"  total wall time: {time.monotonic() - timeline.started:.0f}s")
    _say("Where to look:")
    _say(f"  lake:      {s.lake_uri}")
    _say(f"  MLflow:    {s.mlflow_tracking_uri}  (make up → http://127.0.0.1:5000)")
    _say("  Airflow:   make up → http://127.0.0.1:8080 (login printed by make up)")


def _demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--start", type=date.fromisoformat, default=date(2013, 1, 1), help="first day replayed")
    p.add_argument("--end", type=date.fromisoformat, default=date(2013, 3, 31), help="last day replayed")
    p.add_argument(
        "--train-after-weeks", type=int, default=4, help="weeks of data before the first weekly training run"
    )
    p.add_argument("--timeout", type=float, default=3600, help="seconds to wait for any one stage")


@command(
    "demo", "replay a window of 2013 through every stage with the real scheduler, then summarize", _demo_args
)
def _demo(ns: argparse.Namespace) -> int:
    if ns.end < ns.start:
        _say(f"--end {ns.end} is before --start {ns.start}")
        return 2
    return run_demo(ns.start, ns.end, ns.train_after_weeks, ns.timeout)


def _up_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--airflow-port", type=int, default=8080)
    p.add_argument("--mlflow-port", type=int, default=5000)
    p.add_argument("--serve-port", type=int, default=8000)


@command("up", "Airflow (standalone) + MLflow UI + prediction service for interactive use", _up_args)
def _up(ns: argparse.Namespace) -> int:
    import signal
    import subprocess

    from mlops import embedded

    s = get_settings()
    env = embedded.environment(s, port=ns.airflow_port)
    embedded.init_db(env)
    bin_dir = os.path.dirname(sys.executable)
    logs = s.home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    procs = {
        "airflow": [os.path.join(bin_dir, "airflow"), "standalone"],
        "mlflow": [
            os.path.join(bin_dir, "mlflow"),
            "ui",
            "--host",
            "127.0.0.1",
            "--port",
            str(ns.mlflow_port),
            "--backend-store-uri",
            s.mlflow_tracking_uri,
        ],
    }
    if "serve" in __import__("mlops.cli", fromlist=["COMMANDS"]).COMMANDS:
        procs["serve"] = [os.path.join(bin_dir, "mlops"), "serve", "--port", str(ns.serve_port)]
    running = {
        name: subprocess.Popen(
            cmd, env=env, stdout=(logs / f"{name}.log").open("ab"), stderr=subprocess.STDOUT
        )
        for name, cmd in procs.items()
    }
    pw_file = s.airflow_home / "simple_auth_manager_passwords.json.generated"
    for _ in range(120):
        if pw_file.exists():
            break
        time.sleep(1)
    password = json.loads(pw_file.read_text()).get("admin", "?") if pw_file.exists() else "(see logs)"
    _say(f"Airflow UI:   http://127.0.0.1:{ns.airflow_port}   login admin / {password}")
    _say(f"MLflow UI:    http://127.0.0.1:{ns.mlflow_port}")
    if "serve" in running:
        _say(f"Predictions:  http://127.0.0.1:{ns.serve_port}/docs")
    _say(f"Logs in {logs}. Ctrl-C stops everything.")
    try:
        while all(p.poll() is None for p in running.values()):
            time.sleep(2)
    except KeyboardInterrupt:
        pass
    finally:
        for p in running.values():
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in running.values():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
    return 0
