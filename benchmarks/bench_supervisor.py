"""How long Airflow's task supervisor holds a slot after its process ends, with and without
:mod:`mlops.airflow.supervisor` (the exit wait).

Each child is forked by the Task SDK's own supervisor class, touches ``--mb`` MiB (a task with
pandas loaded) and exits; the supervisor loop waits ``--wait`` seconds per look, as Airflow's does
with ``[workers] min_heartbeat_interval``. Two busy processes keep both cores loaded, the state of
a backfill on this machine. Modes alternate in fresh processes.

    .venv/bin/python benchmarks/bench_supervisor.py [--children 30] [--rounds 2] [--wait 2]

Results: ``benchmarks/results/supervisor.json``; ``mlops bench`` tables them (section ``supervisor``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
RESULTS_FILE = RESULTS / "supervisor.json"
MODES = ("airflow", "exit_wait")

#: One mode: ``n`` children, one after the other; prints each one's seconds from start to reaped.
RUN = """
import json, sys, time, uuid
from typing import ClassVar
from pydantic import TypeAdapter
from airflow.sdk.execution_time.supervisor import WatchedSubprocess

if sys.argv[1] == "exit_wait":
    from mlops.airflow.supervisor import install
    assert install()

class Child(WatchedSubprocess):
    decoder: ClassVar[TypeAdapter] = TypeAdapter(dict)
    def _handle_request(self, msg, log, req_id):
        raise AssertionError(msg)

def body():
    block = bytearray(int(sys.argv[3]) << 20)
    block[::4096] = b"\\x01" * len(block[::4096])

out = []
for _ in range(int(sys.argv[2])):
    child = Child.start(target=body, id=uuid.uuid4())
    t0 = time.monotonic()
    while child._exit_code is None or child._open_sockets:
        child._service_subprocess(max_wait_time=float(sys.argv[4]))
    out.append(time.monotonic() - t0)
print(json.dumps(out))
"""

BUSY = "import time\nend = time.monotonic() + float(__import__('sys').argv[1])\nwhile time.monotonic() < end: pass"


def _mode(mode: str, children: int, mb: int, wait: float) -> list[float]:
    proc = subprocess.run(
        [sys.executable, "-c", RUN, mode, str(children), str(mb), str(wait)],
        capture_output=True,
        text=True,
        timeout=children * (wait + 30),
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(children: int = 30, rounds: int = 2, mb: int = 200, wait: float = 2.0) -> dict[str, Any]:
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    load_start = [round(v, 2) for v in os.getloadavg()]
    seconds: dict[str, list[float]] = {m: [] for m in MODES}
    budget = rounds * len(MODES) * children * (wait + 3) + 60
    busy = [subprocess.Popen([sys.executable, "-c", BUSY, str(budget)]) for _ in range(2)]
    try:
        for _ in range(rounds):
            for mode in MODES:
                seconds[mode] += _mode(mode, children, mb, wait)
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()
    out: dict[str, Any] = {
        "started": started,
        "load_average_start": load_start,
        "children": children * rounds,
        "mb": mb,
        "wait_s": wait,
        "busy_processes": 2,
    }
    for mode in MODES:
        held = seconds[mode]
        out[mode] = {
            "stalled": sum(s >= wait - 0.05 for s in held),
            "median_s": statistics.median(held),
            "mean_s": statistics.fmean(held),
            "max_s": max(held),
        }
    out["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    return out


def rows(m: dict[str, Any], missing: list[str] | None = None) -> list[Any]:
    from benchmarks.harness import Row

    a, e, n = m["airflow"], m["exit_wait"], m["children"]
    note = (
        f"{n} children per mode, {m['mb']} MiB touched each, supervisor wait {m['wait_s']} s per look, "
        f"2 busy processes on the cores; stalled (held the whole wait): {e['stalled']} with the exit "
        f"wait, {a['stalled']} without; load at the end {m['load_average_end']}"
    )
    return [
        Row("supervisor", "slot held per task process, mean (exit wait)", e["mean_s"],
            "Airflow's supervisor", a["mean_s"], note=note),
        Row("supervisor", "slot held per task process, max (exit wait)", e["max_s"],
            "Airflow's supervisor", a["max_s"], note=note),
    ]  # fmt: skip


HARNESS = {
    "name": "supervisor",
    "results": RESULTS_FILE,
    "rows": rows,
    "command": ".venv/bin/python benchmarks/bench_supervisor.py",
    "measure": measure,
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--children", type=int, default=30)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--mb", type=int, default=200)
    p.add_argument("--wait", type=float, default=2.0)
    ns = p.parse_args(argv)
    m = measure(ns.children, ns.rounds, ns.mb, ns.wait)
    RESULTS.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(m, indent=2) + "\n")
    print(json.dumps(m, indent=2))
    return 0 if m["exit_wait"]["stalled"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
