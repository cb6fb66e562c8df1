"""XGBoost fits side by side: OpenMP's default (spinning) wait against ``OMP_WAIT_POLICY=PASSIVE``.

The embedded profile runs 8 task slots on 2 cores and the Celery workers 2 tasks each: a search's
candidates and two models' training runs fit at once, each with ``nthread=2``. This measures 4
concurrent fits (fresh processes, the pipeline's booster parameters, 100 rounds) of a frame shaped
like the demo's training set, alternating the policy, and one fit alone under each; every fit's
predictions are hashed to show the policy does not change the model.

    .venv/bin/python benchmarks/bench_threads.py [--rounds 3] [--concurrent 4]

Results: ``benchmarks/results/threads.json``; ``mlops bench`` tables them (section ``threads``).
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
RESULTS_FILE = RESULTS / "threads.json"
POLICIES = ("default", "PASSIVE")

#: One fit: a seeded frame of the demo's training-set shape (90k rows, 24 numeric features, a
#: 25% positive label), the pipeline's booster parameters; prints wall, CPU and a prediction hash.
FIT = """
import hashlib, json, sys, time
import numpy as np, xgboost as xgb
rng = np.random.default_rng(7)
x = rng.normal(size=(90_000, 24))
y = (x[:, 0] + 0.5 * x[:, 1] * x[:, 2] + rng.normal(size=90_000) > 0.9).astype(float)
d = xgb.DMatrix(x, y)
t, c = time.perf_counter(), time.process_time()
b = xgb.train({"objective": "binary:logistic", "max_depth": 6, "eta": 0.1, "nthread": 2,
               "tree_method": "hist", "subsample": 0.8, "colsample_bytree": 0.8, "seed": 1}, d, 100)
wall, cpu = time.perf_counter() - t, time.process_time() - c
print(json.dumps({"wall_s": wall, "cpu_s": cpu, "sha": hashlib.sha256(b.predict(d).tobytes()).hexdigest()}))
"""


def _env(policy: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    return env if policy == "default" else {**env, "OMP_WAIT_POLICY": policy}


def _batch(policy: str, n: int) -> dict[str, Any]:
    started = time.perf_counter()
    procs = [
        subprocess.Popen([sys.executable, "-c", FIT], env=_env(policy), stdout=subprocess.PIPE, text=True)
        for _ in range(n)
    ]
    fits = [json.loads(p.communicate(timeout=600)[0].strip().splitlines()[-1]) for p in procs]
    return {"wall_s": time.perf_counter() - started, "fits": fits}


def measure(rounds: int = 3, concurrent: int = 4) -> dict[str, Any]:
    """Alternating policies, ``rounds`` batches of ``concurrent`` fits each, then one solo fit each."""
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    load_start = [round(v, 2) for v in os.getloadavg()]
    batches: dict[str, list[dict[str, Any]]] = {p: [] for p in POLICIES}
    for _ in range(rounds):
        for policy in POLICIES:
            batches[policy].append(_batch(policy, concurrent))
    solo = {p: _batch(p, 1)["fits"][0] for p in POLICIES}
    hashes = {f["sha"] for p in POLICIES for b in batches[p] for f in b["fits"]} | {
        s["sha"] for s in solo.values()
    }
    out: dict[str, Any] = {
        "started": started,
        "load_average_start": load_start,
        "concurrent": concurrent,
        "rounds": rounds,
        "identical_models": len(hashes) == 1,
    }
    for p in POLICIES:
        fits = [f for b in batches[p] for f in b["fits"]]
        out[p] = {
            "fit_cpu_s_median": statistics.median(f["cpu_s"] for f in fits),
            "fit_wall_s_median": statistics.median(f["wall_s"] for f in fits),
            "batch_wall_s_median": statistics.median(b["wall_s"] for b in batches[p]),
            "solo_wall_s": solo[p]["wall_s"],
            "solo_cpu_s": solo[p]["cpu_s"],
        }
    out["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    return out


def rows(m: dict[str, Any], missing: list[str] | None = None) -> list[Any]:
    from benchmarks.harness import Row

    d, p, n = m["default"], m["PASSIVE"], m["concurrent"]
    note = (
        f"{n} fits at once, nthread=2, 100 rounds on 90k x 24, {m['rounds']} alternating rounds, fresh "
        f"processes; same model under both: {m['identical_models']}; load at the end {m['load_average_end']}"
    )
    return [
        Row("threads", f"{n} concurrent XGBoost fits: CPU per fit (PASSIVE)", p["fit_cpu_s_median"],
            "OpenMP default wait", d["fit_cpu_s_median"], note=note),
        Row("threads", f"{n} concurrent XGBoost fits: batch wall (PASSIVE)", p["batch_wall_s_median"],
            "OpenMP default wait", d["batch_wall_s_median"], note=note),
        Row("threads", "one fit alone: wall (PASSIVE)", p["solo_wall_s"], "OpenMP default wait",
            d["solo_wall_s"], note=note),
    ]  # fmt: skip


HARNESS = {
    "name": "threads",
    "results": RESULTS_FILE,
    "rows": rows,
    "command": ".venv/bin/python benchmarks/bench_threads.py",
    "measure": measure,
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--concurrent", type=int, default=4)
    ns = p.parse_args(argv)
    m = measure(ns.rounds, ns.concurrent)
    RESULTS.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(m, indent=2) + "\n")
    print(json.dumps(m, indent=2))
    return 0 if m["identical_models"] else 1


if __name__ == "__main__":
    sys.exit(main())
