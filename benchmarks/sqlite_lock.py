"""Show the embedded profile's fix for SQLite `database is locked` during `backfill create`.

For each setting (Airflow's defaults; the profile's connect args alone; the full embedded profile,
connect args + savepoint guard, see mlops.airflow.sqlite), start the real embedded Airflow, keep
tasks running (a triggered DAG with mapped tasks), and create backfills while they run. Count
`backfill create` commands that fail with `database is locked`. Results:
benchmarks/results/sqlite_lock.json.

    .venv/bin/python benchmarks/sqlite_lock.py --rounds 6
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from mlops.dev import embedded

DAGS = Path(__file__).resolve().parents[1] / "tests" / "integration" / "dags_sqlite"


def run(setting: str, rounds: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix=f"sqlite-{setting}-") as home:
        os.environ["MLOPS_HOME"] = home
        os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS)
        for key in ("SQL_ALCHEMY_CONNECT_ARGS", "SQL_ALCHEMY_CONNECT_ARGS_ASYNC"):
            if setting == "airflow-default":  # Airflow's own SQLite settings
                os.environ[f"AIRFLOW__DATABASE__{key}"] = "mlops.airflow.sqlite.NO_ARGS"
            else:  # the profile's connect args (mlops.config.airflow_env)
                os.environ.pop(f"AIRFLOW__DATABASE__{key}", None)
        # connect-args-only: session 1's partial fix, without the savepoint guard
        os.environ["MLOPS_SQLITE_GUARD"] = "1" if setting == "embedded-profile" else "0"
        locked = failed = 0
        with embedded.running() as svc:
            embedded.reserialize(svc.env)
            dag_ids = [f"sqlite_stress_{i}" for i in range(rounds)]
            embedded.unpause(dag_ids, svc.env)
            errors: list[str] = []
            for i in range(rounds):
                embedded.trigger(dag_ids[i - 1] if i else dag_ids[0], svc.env, run_id=f"manual_{i}")
                time.sleep(2)  # let its tasks start running
                month = f"2013-{i + 1:02d}"
                proc = embedded.airflow(
                    [
                        "backfill",
                        "create",
                        "--dag-id",
                        dag_ids[i],
                        "--from-date",
                        f"{month}-01",
                        "--to-date",
                        f"{month}-05",
                        "--max-active-runs",
                        "4",
                    ],
                    env=svc.env,
                    check=False,
                )
                if proc.returncode != 0:
                    failed += 1
                    locked += "database is locked" in (proc.stderr + proc.stdout)
                    errors.append((proc.stderr or proc.stdout).strip().splitlines()[-1][:300])
                    if os.environ.get("SQLITE_LOCK_TRACE"):
                        with open(os.environ["SQLITE_LOCK_TRACE"], "a") as fh:
                            fh.write(f"--- {setting} round {i}\n{proc.stderr}\n{proc.stdout}\n")
            states: list[str] = []
            crashed = ""
            try:
                for dag_id in dag_ids:
                    runs = embedded.wait_for_runs(dag_id, svc.env, 1, services=svc, timeout=1800)
                    states += [str(r["state"]) for r in runs]
            except RuntimeError as exc:  # a component died (seen: the scheduler, after a lock error)
                crashed = str(exc).splitlines()[0] + " | " + str(exc).strip().splitlines()[-1][:300]
    return {
        "setting": setting,
        "backfill_create_calls": rounds,
        "failed": failed,
        "database_is_locked": locked,
        "runs": len(states),
        "runs_failed": states.count("failed"),
        "errors": errors,
        "component_crashed": crashed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument(
        "--settings", nargs="+", default=["airflow-default", "connect-args-only", "embedded-profile"]
    )
    args = parser.parse_args()
    results = [run(s, args.rounds) for s in args.settings]
    out = {"loadavg_at_end": [round(x, 2) for x in os.getloadavg()], "results": results}
    Path(__file__).resolve().parent.joinpath("results", "sqlite_lock.json").write_text(
        json.dumps(out, indent=2)
    )
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
