"""Backfill ``ingest_flights`` over a month through the real scheduler; print wall time and run stats.

    MLOPS_HOME=/tmp/ingest-bench .venv/bin/python benchmarks/ingest_backfill.py \
        --from 2013-03-01 --to 2013-03-31 [--max-active-runs 4]

First backfills ``flights_upstream_simulator`` over the same days (the landing exports), then
times ``airflow backfill create --dag-id ingest_flights`` alone, from unpausing it until every
backfill run has finished: wall time, per-run duration (start to end) median and p90, states.
Writes ``benchmarks/results/ingest_backfill.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import statistics
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _seconds(run: dict) -> float | None:
    start, end = run.get("start_date"), run.get("end_date")
    if not start or not end:
        return None
    return (dt.datetime.fromisoformat(str(end)) - dt.datetime.fromisoformat(str(start))).total_seconds()


def _backfill(dag_id: str, start: str, end: str, env: dict, max_active_runs: int) -> None:
    from mlops.dev import embedded

    embedded.backfill(dag_id, start, end, env, max_active_runs=max_active_runs)


def main(argv: list[str] | None = None) -> int:
    from mlops.config import get_settings
    from mlops.dev import embedded

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--from", dest="start", default="2013-03-01")
    p.add_argument("--to", dest="end", default="2013-03-31")
    p.add_argument("--max-active-runs", type=int, default=8)
    p.add_argument("--timeout", type=float, default=7200)
    p.add_argument(
        "--out", type=Path, default=RESULTS / "ingest_backfill.json", help="where the result JSON goes"
    )
    ns = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    days = (dt.date.fromisoformat(ns.end) - dt.date.fromisoformat(ns.start)).days + 1
    # Parse the DAGs and create both backfills before the services start (their start-up is
    # then not part of the timed window).
    env = embedded.environment(settings, port=embedded.free_port())
    embedded.init_db(env)
    embedded.reserialize(env)
    _backfill("flights_upstream_simulator", ns.start, ns.end, env, ns.max_active_runs)
    _backfill("ingest_flights", ns.start, ns.end, env, ns.max_active_runs)
    load_before = [round(x, 2) for x in os.getloadavg()]
    svc = embedded.Services(env=env).start()
    try:
        t_sim = time.monotonic()
        embedded.unpause(["flights_upstream_simulator"], env)
        embedded.wait_for_runs("flights_upstream_simulator", env, days, ns.timeout, services=svc)
        sim_wall = time.monotonic() - t_sim
        t0 = time.monotonic()
        embedded.unpause(["ingest_flights"], env)
        runs = embedded.wait_for_runs("ingest_flights", env, days, ns.timeout, services=svc)
        wall = time.monotonic() - t0
    finally:
        svc.stop()
    backfilled = [r for r in runs if str(r["run_id"]).startswith("backfill__")]
    durations = sorted(d for d in map(_seconds, backfilled) if d is not None)
    result = {
        "dag_id": "ingest_flights",
        "from": ns.start,
        "to": ns.end,
        "runs": len(backfilled),
        "states": {s: sum(r["state"] == s for r in backfilled) for s in {r["state"] for r in backfilled}},
        "max_active_runs": ns.max_active_runs,
        "wall_seconds": round(wall, 1),
        "per_run_median_seconds": round(statistics.median(durations), 1) if durations else None,
        "per_run_p90_seconds": round(durations[int(0.9 * (len(durations) - 1))], 1) if durations else None,
        "throughput_runs_per_minute": round(60 * len(backfilled) / wall, 2),
        "simulator_backfill_wall_seconds": round(sim_wall, 1),
        "parallelism": env.get("AIRFLOW__CORE__PARALLELISM"),
        "max_active_tasks_per_dag": env.get("AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG"),
        "loadavg_before": load_before,
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
    }
    ns.out.parent.mkdir(parents=True, exist_ok=True)
    ns.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if result["states"] == {"success": len(backfilled)} and len(backfilled) == days else 1


if __name__ == "__main__":
    raise SystemExit(main())
