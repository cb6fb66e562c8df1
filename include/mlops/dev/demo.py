"""``mlops demo`` and ``mlops up``: the whole lifecycle through the real Airflow scheduler.

The demo replays a window of 2013 (default May-July: spring into the summer storms) on the
embedded profile. It starts Airflow (api-server, scheduler, dag-processor, triggerer) and drives
every stage as a user would:

1. backfills of the upstream simulator and of every feed's ingestion DAG (``ingest_<feed>`` for
   each feed of :data:`mlops.spec.feed.FEEDS`) over the days before the first replayed week (the
   whole window when no week is replayed); ``materialize_features`` follows their asset events;
2. for every model of :data:`mlops.spec.model.SPECS` whose DAGs exist (:func:`model_dags`), a
   backfill of its first weekly training runs (a champion is promoted), the models side by side;
   meanwhile the first replayed weeks (:data:`LANDED_WHILE_TRAINING`) land and are ingested
   (training as of a Monday reads nothing from that day on, so both at once is what weeks in
   production look like);
3. then week by week, like the weeks going by in production: the week's days land and are
   ingested (a backfill of the same DAGs over the week, then its features), per model one
   batch-scoring run scores the week (``end_ds``) with the champion of the time, then one
   drift-monitoring run checks it; when a check emits its retrain request, the training run it
   starts is waited for and the replay stops after that week (``--whole-window`` goes on to
   ``--end``): the days after it (and after the weeks landed while training) are never landed
   nor ingested, since nothing would read them;
4. a summary: each stage's wall and CPU time, runs per DAG, per feed the days ingested and
   quarantined, per model the days scored, its versions with their metrics (the spec's gate metric
   first), the champion, the drift verdicts and what each retrain request really did, and where
   to look.

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
from typing import TYPE_CHECKING, Any

from mlops.cli import command
from mlops.config import get_settings

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

    from mlops.config import Settings
    from mlops.dev.embedded import Services

log = logging.getLogger("mlops.dev.demo")

#: Seconds between two looks at the metadata database (a read-only SQLite query: milliseconds).
POLL_SECONDS = 0.5

#: Airflow settings of the demo's own run (a value already in the environment wins), measured on
#: its ingestion backfills (CPU seconds of every process, load-independent):
#: - the DAG files do not change while it runs: the dag-processor parses each once at start
#:   instead of every 30 s (the embedded default, for a user editing DAGs): that was a fifth of
#:   the demo's CPU;
#: - a task's supervisor heartbeats every 20 s, not 5 s (each one an Execution API call and a
#:   SQLite write; 2.4 per task instance at load 20), still three within the 60 s after which a
#:   task without heartbeat is failed (AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT);
#: - a task waits up to 30 s for an Execution API answer, not 5 s: on a loaded machine the first
#:   tasks' calls timed out while the components were still starting, and each failed try cost a
#:   30 s retry delay (10 of the first 340 task instances at load 36);
#: - a scheduler loop that found nothing to do sleeps 0.25 s, not 1 s, before it looks again: a
#:   training, scoring or monitoring run is a chain of tasks, each queued by the first loop after
#:   its predecessor ended (0.5-1 s later, 12 times per training run); a busy loop (the ingestion
#:   backfills) never sleeps.
DEMO_AIRFLOW_CONFIG = {
    "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "3600",
    "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "20",
    "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "30",
    "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.25",
}


@dataclass(frozen=True)
class ModelDags:
    """The DAGs of one model spec: its training, batch scoring and drift monitoring."""

    spec: str
    train: str
    batch: str
    monitor: str


#: The flight-delay model keeps DESIGN.md's DAG ids; every other spec ``<name>`` of
#: :data:`mlops.spec.model.SPECS` has ``train_<name>``, ``batch_predict_<name>`` and
#: ``monitor_drift_<name>``.
ORIGINAL_MODEL_DAGS = {
    "flight_delay": ModelDags("flight_delay", "train_model", "batch_predict", "monitor_drift")
}


def model_dags(spec: str) -> ModelDags:
    """The DAG ids of the model spec named ``spec`` (see :data:`ORIGINAL_MODEL_DAGS`)."""
    return ORIGINAL_MODEL_DAGS.get(spec) or ModelDags(
        spec, f"train_{spec}", f"batch_predict_{spec}", f"monitor_drift_{spec}"
    )


def _pipeline_dags() -> tuple[str, ...]:
    from mlops.spec.feed import FEEDS

    return ("flights_upstream_simulator", *(f"ingest_{feed}" for feed in FEEDS), "materialize_features")


def _all_dags() -> tuple[str, ...]:
    from mlops.spec.model import SPECS

    models = [model_dags(name) for name in SPECS]
    return (*_pipeline_dags(), *(d for m in models for d in (m.train, m.batch, m.monitor)))


#: Every DAG the demo drives (when its file exists).
ALL_DAGS = _all_dags()
#: Simulator days landed before the ingestion backfills start: their sensors then find more days
#: already landed instead of deferring (each deferral costs a second task process): 9% of the
#: first 340 task instances deferred with 4, 16% with 0. 0 (all backfills created before any
#: task runs): a backfill created while tasks run once waited past SQLite's 60 s busy timeout at
#: load 36 (since retried: :data:`mlops.dev.embedded.REST_ATTEMPTS`), and not re-measured since.
INGEST_LAG_DAYS = 0


#: Replayed weeks that land and are ingested while the first champions train (training as of a
#: Monday reads nothing from that day on, and the training runs, one task at a time per model,
#: left one of the two cores idle: 105 CPU-s in 117 s). Two: the weeks the default replay scores
#: before the storms' retrain request stops it, so no day lands that the replay would not have
#: landed; a replay that goes on lands each later week just before it is scored.
LANDED_WHILE_TRAINING = 2


@dataclass
class Timeline:
    """What ran, stage by stage, with wall times and the CPU seconds every process used since the
    stage before (printed as the summary; ``cpu`` is set once Airflow runs)."""

    started: float = field(default_factory=time.monotonic)
    stages: list[tuple[str, float, str, float | None]] = field(default_factory=list)
    cpu: Callable[[], float] | None = None
    _cpu_mark: float = 0.0

    def mark_cpu(self) -> None:
        self._cpu_mark = self.cpu() if self.cpu else 0.0

    def record(self, name: str, seconds: float, detail: str) -> None:
        used = None
        if self.cpu is not None:
            now = self.cpu()
            used, self._cpu_mark = now - self._cpu_mark, now
        self.stages.append((name, seconds, detail, used))
        cpu = f", {used:.0f} CPU-s" if used is not None else ""
        _say(f"  done: {name} in {seconds:.0f}s{cpu} — {detail}")


def _total_cpu(svc: Services) -> float:
    """CPU seconds of this process and of all of Airflow's (components, workers, tasks) so far."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime + sum(svc.cpu().values())


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


def _champion(spec: str) -> str | None:
    """The version of model spec ``spec`` at ``@champion`` (None: no champion yet)."""
    from mlops.config import CHAMPION
    from mlops.models import registry
    from mlops.spec.model import model_spec

    return registry.alias_version(CHAMPION, get_settings(), name=model_spec(spec).model_name)


@dataclass
class WeekCheck:
    """One model's replayed week: its retraining decision (the check's ledger) and what happened."""

    spec: str
    first: str
    last: str
    decision: str = "none"
    why: str = ""
    #: Asset events the monitoring run emitted (a retrain request is one).
    emitted: int = 0
    #: Tasks of the monitoring run that did not succeed (task id -> state).
    failed: dict[str, str] = field(default_factory=dict)
    retrains_before: int = 0

    def outcome(self) -> str:
        """What the retrain request really did: emitted (a training run follows), or requested
        by the check but never emitted (the task that emits it failed)."""
        if self.decision != "requested":
            return f"retrain request {self.decision}"
        if self.emitted:
            return "retrain requested and emitted"
        failed = ", ".join(f"{t} {s}" for t, s in sorted(self.failed.items())) or "no event"
        return f"retrain requested by the check but NOT emitted ({failed})"


@dataclass
class Replay:
    """What the weekly replay after the first champions did (for the summary)."""

    weeks: list[WeekCheck] = field(default_factory=list)
    #: Per model spec: the training run its retrain request started, and the champion before/after.
    retrained: dict[str, dict[str, Any]] = field(default_factory=dict)


def _wait_retraining(
    svc: Services,
    timeline: Timeline,
    models: ModelDags,
    week: WeekCheck,
    champion: str | None,
    timeout: float,
) -> dict[str, Any]:
    """Wait for the training run that an emitted retrain request starts; what it did to the champion."""
    t0 = time.monotonic()
    _say(f"▶ {models.spec}: retrain request emitted: waiting for the {models.train} run it starts")
    deadline = time.monotonic() + 300
    while len(_asset_triggered(svc, models.train)) <= week.retrains_before:
        svc.check_alive()
        if time.monotonic() > deadline:  # said in the summary, which still follows
            why = (
                f"no asset-triggered {models.train} run started within 300 s of the request: is "
                f"{models.train} scheduled on {models.monitor}'s retrain asset and unpaused?"
            )
            timeline.record(f"{models.spec}: retraining", time.monotonic() - t0, why)
            return {"run_id": "none", "state": why, "champion_before": champion, "champion_after": champion}
        time.sleep(POLL_SECONDS)
    run = _asset_triggered(svc, models.train)[-1]
    done = _wait_run(svc, models.train, str(run["run_id"]), timeout)
    retrained = {
        "run_id": done["run_id"],
        "state": done["state"],
        "champion_before": champion,
        "champion_after": _champion(models.spec),
    }
    timeline.record(
        f"{models.spec}: retraining",
        time.monotonic() - t0,
        f"{models.train} {done['run_id']} {done['state']}; champion v{champion} -> v{retrained['champion_after']}",
    )
    return retrained


def _ledger(spec: str) -> list[dict[str, Any]]:
    """Model spec ``spec``'s retrain-request ledger (every decision of its checks)."""
    from mlops import lake, layout
    from mlops.spec.model import model_spec

    uri = layout.drift_ledger_file(get_settings().lake_uri, model_spec(spec).lake_folder)
    if not lake.exists(uri):
        return []
    return list(json.loads(lake.read_text(uri)).get("entries", []))


def _run_outcome(svc: Services, dag_id: str, run_id: str) -> tuple[int, dict[str, str]]:
    """(asset events the run emitted, its tasks that did not succeed: task id -> state)."""
    with svc.api() as client:
        tis = client.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
    if tis.status_code >= 400:
        raise RuntimeError(f"reading run {run_id} of {dag_id} failed ({tis.status_code}): {tis.text[:500]}")
    failed = {
        str(t["task_id"]): str(t.get("state"))
        for t in tis.json().get("task_instances", [])
        if t.get("state") not in ("success", "skipped")
    }
    return _emitted_events(svc, dag_id, run_id), failed


#: How long :func:`_emitted_events` waits out apache/airflow#71360 before it counts in the metadata
#: database instead: ``GET /assets/events`` answers 500 while a run that one of the events created
#: has not started (its null ``start_date`` fails the response model; fixed upstream by
#: apache/airflow#71379). A retrain request's training run is such a run for its first seconds.
EVENTS_WAIT_SECONDS = 60.0


def _emitted_events(svc: Services, dag_id: str, run_id: str, wait: float = EVENTS_WAIT_SECONDS) -> int:
    """How many asset events run ``run_id`` of ``dag_id`` emitted: through the REST API, as the UI
    reads them; while it answers a server error (see :data:`EVENTS_WAIT_SECONDS`), again every 2 s
    on a new connection (the server drops the failed one); after ``wait`` seconds, from the
    metadata database, said on the console."""
    from mlops.dev import timings

    deadline = time.monotonic() + wait
    while True:
        with svc.api() as client:
            resp = client.get("/assets/events", params={"source_dag_id": dag_id, "source_run_id": run_id})
        if resp.status_code < 400:
            return int(resp.json().get("total_entries", 0))
        if resp.status_code < 500:
            raise RuntimeError(
                f"reading the asset events of run {run_id} of {dag_id} failed ({resp.status_code}): "
                f"{resp.text[:500]}"
            )
        if time.monotonic() >= deadline:
            break
        time.sleep(2.0)
    _say(
        f"  GET /assets/events for {dag_id} answered {resp.status_code} for {wait:.0f} s "
        "(apache/airflow#71360: a run its events created has not started): counted in the metadata database"
    )
    db = get_settings().airflow_db
    sql = "SELECT count(*) FROM asset_event WHERE source_dag_id = ? AND source_run_id = ?"
    return int(timings.query(db, sql, (dag_id, run_id))[0][0])


def _score_and_check_week(
    svc: Services, timeline: Timeline, models: list[ModelDags], day: date, last: date, timeout: float
) -> list[WeekCheck]:
    """Per model: a batch-scoring run over the week, then a monitoring run for its last day (the
    models' runs side by side)."""
    from mlops.monitoring import history

    t0 = time.monotonic()
    champions = {m.spec: _champion(m.spec) for m in models}
    _say(
        f"▶ week {day} → {last}: score with "
        + ", ".join(f"{m.spec} v{champions[m.spec]}" for m in models)
        + f", then check drift for {last}"
    )
    scoring = {
        m.spec: svc.trigger_run(m.batch, day.isoformat(), {"end_ds": last.isoformat()}) for m in models
    }
    scored = {m.spec: _wait_run(svc, m.batch, scoring[m.spec], timeout) for m in models}
    weeks = {
        m.spec: WeekCheck(
            m.spec, day.isoformat(), last.isoformat(), retrains_before=len(_asset_triggered(svc, m.train))
        )
        for m in models
    }
    checking = {m.spec: svc.trigger_run(m.monitor, last.isoformat()) for m in models}
    details = []
    for m in models:
        checked = _wait_run(svc, m.monitor, checking[m.spec], timeout)
        week = weeks[m.spec]
        verdict = history.day_decision(last.isoformat(), _ledger(m.spec))
        week.decision, week.why = verdict if verdict else ("none", "no threshold breached")
        week.emitted, week.failed = _run_outcome(svc, m.monitor, checking[m.spec])
        details.append(
            f"{m.spec}: {m.batch} {scored[m.spec].get('state')}, {m.monitor} {checked.get('state')}, "
            f"{week.outcome()}"
        )
    timeline.record(f"week {day}: score + monitor", time.monotonic() - t0, "; ".join(details))
    return [weeks[m.spec] for m in models]


def replay_weeks(
    svc: Services,
    timeline: Timeline,
    models: list[ModelDags],
    first: date,
    end: date,
    timeout: float,
    whole_window: bool,
    land_week: Callable[[date, date], None] | None = None,
) -> Replay:
    """Week by week from ``first``: the week's days land and are ingested (``land_week``, when
    given: upstream delivers them as the week passes), then each model's champion of the time
    scores the week (one batch-scoring run over the week) and a monitoring run for the week's last
    day checks it (its 7-day window is the week). When a check emits its retrain request, wait for
    the training run it starts; the replay then stops after that week (or, with ``whole_window``,
    goes on)."""
    replay = Replay()
    day = first
    while day <= end:
        last = min(day + timedelta(days=6), end)
        if land_week is not None:
            land_week(day, last)
        champions = {m.spec: _champion(m.spec) for m in models}
        checks = _score_and_check_week(svc, timeline, models, day, last, timeout)
        replay.weeks.extend(checks)
        retrained = False
        for m, week in zip(models, checks, strict=True):
            if week.decision == "requested" and week.emitted:
                replay.retrained[m.spec] = _wait_retraining(
                    svc, timeline, m, week, champions[m.spec], timeout
                )
                retrained = True
        if retrained and not whole_window:
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
    svc: Services,
    timeline: Timeline,
    present: set[str],
    start: date,
    end: date,
    timeout: float,
    label: str = " backfill",
) -> None:
    """Landing and ingestion: the simulator's backfill first; every feed's ingestion backfill once
    the simulator has landed :data:`INGEST_LAG_DAYS` days (a sensor that finds its day landed
    costs one task process; one that defers to the triggerer a second when it resumes)."""
    from mlops.dev import embedded

    days = _dates(start, end)
    simulator = "flights_upstream_simulator"
    ingest = [d for d in _pipeline_dags() if d.startswith("ingest_") and d in present]
    # Runs of earlier backfills (the replay's weekly ones come after the first).
    before = {d: len(embedded.list_runs(d, svc.env)) for d in (simulator, *ingest) if d in present}
    t0 = time.monotonic()
    if simulator in present:
        _say(f"▶ {simulator}: backfill {start} → {end} ({len(days)} runs)")
        svc.create_backfill(simulator, start.isoformat(), end.isoformat(), max_active_runs=8)
        lag = min(INGEST_LAG_DAYS, len(days))
        deadline = time.monotonic() + timeout
        while (
            ingest
            and sum(r.get("state") == "success" for r in embedded.list_runs(simulator, svc.env))
            < before[simulator] + lag
        ):
            svc.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{simulator}: fewer than {lag} days landed after {timeout}s")
            time.sleep(POLL_SECONDS)
    for dag_id in ingest:
        _say(f"▶ {dag_id}: backfill {start} → {end} ({len(days)} runs)")
        svc.create_backfill(dag_id, start.isoformat(), end.isoformat(), max_active_runs=8)
    for dag_id in [d for d in (simulator, *ingest) if d in present]:
        runs = embedded.wait_for_runs(
            dag_id,
            svc.env,
            before[dag_id] + len(days),
            services=svc,
            timeout=timeout,
            poll=POLL_SECONDS,
            on_progress=lambda m: _say(f"  {m}"),
        )
        timeline.record(f"{dag_id}{label}", time.monotonic() - t0, _states(runs[before[dag_id] :]))


def _materialize(
    svc: Services,
    timeline: Timeline,
    start: date,
    end: date,
    timeout: float,
    before: int,
    label: str = "",
) -> None:
    """Wait for the asset-triggered ``materialize_features`` runs after the first ``before`` (counted
    before the days' ingestion began: the run its last event triggers can start before this is
    called), then fill any day they missed."""
    from mlops.features.compute import unbuilt_partitions

    def all_built() -> bool:
        return not [d for d in unbuilt_partitions() if start.isoformat() <= d <= end.isoformat()]

    t0 = time.monotonic()
    runs = _wait_idle(svc, "materialize_features", timeout, done=all_built)
    new_runs = [r for r in runs if r.get("run_type") == "asset_triggered"][before:]
    timeline.record(
        f"{label}materialize_features (asset-triggered)", time.monotonic() - t0, _states(new_runs)
    )
    _catch_up_features(svc, timeline, start, end, len(runs), timeout)


def _land(
    svc: Services,
    timeline: Timeline,
    present: set[str],
    start: date,
    end: date,
    timeout: float,
    label: str = " backfill",
    features_label: str = "",
) -> None:
    """The days ``[start, end]`` land and are ingested (:func:`_backfill_pipeline`), then their
    features are built (:func:`_materialize`, counting the runs from before the ingestion: the
    run its last event triggers can start before the ingestion's wait ends)."""
    features = "materialize_features" in present
    before = len(_asset_triggered(svc, "materialize_features")) if features else 0
    _backfill_pipeline(svc, timeline, present, start, end, timeout, label=label)
    if features:
        _materialize(svc, timeline, start, end, timeout, before, label=features_label)


def _train_first_weeks(
    svc: Services,
    timeline: Timeline,
    models: list[ModelDags],
    start: date,
    end: date,
    after_weeks: int,
    weeks: int,
    timeout: float,
    meanwhile: Callable[[date], None] | None = None,
) -> date | None:
    """Every model's weekly training runs that make its first champion, the models side by side
    (one fit at a time each: a fit uses both cores); the last one's day (None: none).
    ``meanwhile(last Monday)`` runs while they train (the first replayed weeks land: training as
    of a day reads nothing from that day on)."""
    from mlops.dev import embedded

    mondays = _mondays(start + timedelta(days=after_weeks * 7), end)[:weeks]
    if not mondays or not models:
        return None
    t0 = time.monotonic()
    # Each week's model is gated against the champion of the weeks before it: one run at a time.
    for m in models:
        _say(f"▶ {m.train}: backfill {mondays[0]} → {mondays[-1]} ({len(mondays)} weekly runs)")
        svc.create_backfill(m.train, mondays[0].isoformat(), mondays[-1].isoformat(), max_active_runs=1)
    if meanwhile is not None:
        meanwhile(mondays[-1])
    for m in models:
        runs = embedded.wait_for_runs(
            m.train,
            svc.env,
            len(mondays),
            services=svc,
            timeout=timeout,
            poll=POLL_SECONDS,
            on_progress=lambda s: _say(f"  {s}"),
        )
        timeline.record(f"{m.train} backfill", time.monotonic() - t0, _states(runs))
    return mondays[-1]


def _first_ingest_end(
    models: list[ModelDags], present: set[str], start: date, end: date, after_weeks: int, weeks: int
) -> date:
    """The last day the first ingestion backfill covers: the day before the first replayed week
    (the last weekly training run's Monday), or ``end`` when no week is replayed (no model with
    its scoring and monitoring DAGs, or no training run in the window)."""
    mondays = _mondays(start + timedelta(days=after_weeks * 7), end)[:weeks]
    replayed = [m for m in models if {m.batch, m.monitor} <= present]
    if not mondays or not replayed or mondays[-1] <= start:
        return end
    return mondays[-1] - timedelta(days=1)


def _present_models(present: set[str]) -> list[ModelDags]:
    from mlops.spec.model import SPECS

    return [m for m in (model_dags(name) for name in SPECS) if m.train in present]


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
    models = _present_models(present)
    timeline = Timeline()
    _say(f"mlops demo: replaying {start} → {end} on the embedded profile (MLOPS_HOME={settings.home})")
    _say(f"  DAGs present: {', '.join(sorted(present)) or 'none'}")
    t0 = time.monotonic()
    port = int(os.environ.get("MLOPS_DEMO_PORT", "0")) or embedded.free_port()
    replay = Replay()
    mlflow_schema = _create_mlflow_store(settings)
    for key, value in DEMO_AIRFLOW_CONFIG.items():
        os.environ.setdefault(key, value)
    with embedded.running(settings, port=port) as svc:
        timeline.cpu = lambda: _total_cpu(svc)
        timeline.record("start Airflow", time.monotonic() - t0, f"UI at {svc.url}")
        # Quiet in this process only (Airflow's components were started with the full logging).
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
        logging.getLogger("httpx").setLevel(logging.WARNING)
        # The REST API, not the `airflow` CLI (a start costs seconds, a minute on a loaded
        # machine); the dag-processor's first parse, not `dags reserialize`.
        svc.unpause_dags(sorted(present))
        # The days before the replayed weeks land and are ingested at once (a backfill); each
        # replayed week's days land as that week passes, just before it is scored (the default
        # replay stops at the drift-triggered retraining: the rest of the window is never read).
        first_end = _first_ingest_end(models, present, start, end, train_after_weeks, train_weeks)
        _land(svc, timeline, present, start, first_end, timeout)
        _wait_mlflow_store(mlflow_schema)
        scored = [m for m in models if {m.batch, m.monitor} <= present]
        landed_to = first_end

        def land_week(day: date, last: date) -> None:
            nonlocal landed_to
            if last <= landed_to:
                return
            first = max(day, landed_to + timedelta(days=1))
            _land(svc, timeline, present, first, last, timeout, f" {first} → {last}", f"week {day}: ")
            landed_to = last

        def land_first_weeks(monday: date) -> None:
            if scored:  # the weeks the first champions score first land while they train
                land_week(monday, min(monday + timedelta(days=7 * LANDED_WHILE_TRAINING - 1), end))

        replay_from = _train_first_weeks(
            svc, timeline, models, start, end, train_after_weeks, train_weeks, timeout, land_first_weeks
        )
        if replay_from is not None and scored:
            without = [m.spec for m in scored if _champion(m.spec) is None]
            for spec in without:
                _say(f"  {spec}: no model was promoted to @champion: nothing to score or monitor")
            scored = [m for m in scored if m.spec not in without]
            if scored:
                replay = replay_weeks(
                    svc, timeline, scored, replay_from, end, timeout, whole_window, land_week
                )
        _say("")
        _print_summary(svc, timeline, start, landed_to, replay)
    import resource

    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = resource.getrusage(resource.RUSAGE_SELF)
    _say(
        f"  CPU time of the whole demo: {children.ru_utime + children.ru_stime + own.ru_utime + own.ru_stime:.0f}s "
        f"(user + system, every process; wall {time.monotonic() - timeline.started:.0f}s)"
    )
    return 0


def _partitions(prefix: str, start: date, end: date) -> list[str]:
    """The ``ds=YYYY-MM-DD`` partitions under the lake prefix ``prefix`` within [start, end]."""
    s = get_settings()
    return _partitions_at(f"{s.lake_uri.rstrip('/')}/{prefix}", start, end)


def _partitions_at(root: str, start: date, end: date) -> list[str]:
    """The ``ds=YYYY-MM-DD`` partitions under the URI ``root`` within [start, end]."""
    from mlops import lake

    found = set()
    for uri in lake.list_uris(root):
        for part in uri.split("/"):
            if part.startswith("ds=") and start.isoformat() <= part[3:] <= end.isoformat():
                found.add(part[3:])
    return sorted(found)


def _print_runs(svc: Services, timeline: Timeline) -> None:
    """Each stage's wall and CPU time, and each DAG's runs by state."""
    from mlops.dev import embedded

    for name, seconds, detail, cpu in timeline.stages:
        used = f"{cpu:6.0f} CPU-s" if cpu is not None else " " * 12
        _say(f"  {name:<42} {seconds:6.0f}s {used}  {detail}")
    for dag_id in sorted(_existing_dags()):
        states: dict[str, int] = {}
        for run in embedded.list_runs(dag_id, svc.env):
            states[str(run.get("state"))] = states.get(str(run.get("state")), 0) + 1
        _say(f"  {dag_id:<30} runs: {json.dumps(states)}")


def feed_lines(start: date, end: date) -> list[str]:
    """Per feed of :data:`mlops.spec.feed.FEEDS`: the window's days ingested and quarantined."""
    from mlops import lake
    from mlops.spec.feed import registered_feeds

    lake_uri = get_settings().lake_uri
    lines = []
    for feed in registered_feeds():
        ingested = _partitions_at(feed.curated_root(lake_uri), start, end)
        quarantine_root = feed.quarantine_dir(lake_uri, start.isoformat()).rsplit("/", 1)[0]
        quarantined = _partitions_at(quarantine_root, start, end) if lake.exists(quarantine_root) else []
        lines.append(
            f"feed {feed.name}: {len(ingested)} of {len(_dates(start, end))} days ingested, "
            f"{len(quarantined)} quarantined{' ' + ', '.join(quarantined) if quarantined else ''}"
        )
    return lines


def _metric_text(metrics: dict[str, float], gate: str, higher_is_better: bool) -> str:
    """The gate metric first (with its direction), then the others (counts and timings left out)."""
    arrow = "higher is better" if higher_is_better else "lower is better"
    rest = sorted(k for k in metrics if k != gate and k != "rows" and not k.startswith(("time_", "mean_")))
    parts = [f"{gate}={metrics[gate]:.3f} (gate, {arrow})"] if gate in metrics else [f"{gate}=? (gate)"]
    return ", ".join(parts + [f"{k}={metrics[k]:.3f}" for k in rest])


def model_lines(spec_name: str, start: date, end: date, replay: Replay | None = None) -> list[str]:
    """One model spec's part of the summary: days scored, versions with their metrics (the spec's
    gate metric first), champion, drift checks, and what each replayed retrain request did."""
    from mlops import lake, layout
    from mlops.config import CHAMPION
    from mlops.models import tracking
    from mlops.spec.model import model_spec

    spec = model_spec(spec_name)
    s = get_settings()
    root = layout.model_root(s.lake_uri, spec.lake_folder)
    scored = _partitions_at(lake.join(root, layout.PREDICTIONS), start, end)
    lines = [f"model {spec.name} ({spec.model_name}, {spec.task.name}): {len(scored)} days scored"]
    client = tracking.client(s)  # runs and registry in the profile's store, as the tasks
    try:
        versions = client.search_model_versions(f"name = '{spec.model_name}'", max_results=200)
        aliases = client.get_registered_model(spec.model_name).aliases if versions else {}
    except Exception as exc:
        if "RESOURCE_DOES_NOT_EXIST" not in str(exc) and "not found" not in str(exc).lower():
            raise
        versions, aliases = [], {}
    by_version: dict[str, list[str]] = {}
    for alias, version in sorted((aliases or {}).items()):
        by_version.setdefault(str(version), []).append(f"@{alias}")
    for mv in sorted(versions, key=lambda v: int(v.version)):
        metrics = dict(client.get_run(mv.run_id).data.metrics) if mv.run_id else {}
        tags = dict(mv.tags or {})
        lines.append(
            f"  v{mv.version} {' '.join(by_version.get(str(mv.version), []))} as_of={tags.get('mlops.as_of', '?')}: "
            + _metric_text(metrics, spec.gate.metric, spec.gate.higher_is_better)
        )
    champion = (aliases or {}).get(CHAMPION)
    lines.append(f"  champion: v{champion}" if champion else "  champion: none")
    history_uri = layout.drift_history_file(s.lake_uri, spec.lake_folder)
    if lake.exists(history_uri):
        history = lake.read_parquet(history_uri)
        drifted = (
            int(history["drift_detected"].fillna(False).astype(bool).sum())
            if "drift_detected" in history
            else 0
        )
        lines.append(f"  drift checks: {len(history)} ({drifted} with data drift)")
    else:
        lines.append("  drift checks: none")
    for week in replay.weeks if replay else []:
        if week.spec == spec.name:
            lines.append(f"  checked {week.first} → {week.last}: {week.outcome()} — {week.why[:160]}")
    done = (replay.retrained if replay else {}).get(spec.name)
    if done:
        lines.append(
            f"  retraining: {done['run_id']} {done['state']}; champion v{done['champion_before']} → "
            f"v{done['champion_after']}"
        )
    return lines


def _print_outcome(start: date, end: date, replay: Replay) -> None:
    """What the lake holds for the window per feed and per model, and what the replay decided."""
    from mlops.spec.features import feature_set
    from mlops.spec.model import SPECS

    _say(f"  days replayed: {len(_dates(start, end))} ({start} → {end})")
    for line in feed_lines(start, end):
        _say(f"  {line}")
    featured = _partitions(f"features/{feature_set().daily_views[-1]}", start, end)
    _say(f"  features materialized: {len(featured)} days")
    for name in SPECS:
        try:
            lines = model_lines(name, start, end, replay)
        except Exception as exc:  # a summary line must not fail the demo
            lines = [f"model {name}: unreadable ({type(exc).__name__}: {exc})"]
        for line in lines:
            _say(f"  {line}")


def _print_waits(settings: Settings) -> None:
    """The tasks that took longest (running plus waiting to start), from Airflow's metadata DB."""
    import sqlite3

    from mlops.dev import timings

    db = settings.airflow_db
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
    s = get_settings()
    _say(
        f"  total wall time: {time.monotonic() - timeline.started:.0f}s, CPU {_total_cpu(svc):.0f}s "
        f"(all processes; load average {os.getloadavg()[0]:.1f})"
    )
    by_component = ", ".join(f"{name} {cpu:.0f}" for name, cpu in sorted(svc.cpu().items()))
    _say(f"  CPU-s by component: {by_component} (the scheduler's include every task process)")
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
