"""Backfill ``train_model`` over N past weeks through the real scheduler; print the champion history.

    MLOPS_HOME=/path/with/a/2013/lake .venv/bin/python benchmarks/train_backfill.py \
        --from 2013-06-03 --to 2013-07-22 [--max-active-runs 2] [--conf '{"n_candidates": 4}']

Needs the curated partitions and feature tables of the weeks' windows in the lake of
``MLOPS_HOME`` (``benchmarks/bench_training.py --only baselines`` prepares all of 2013). Writes
``benchmarks/results/train_backfill.json``: every run (state, duration) and every registered
version with its as-of date, holdout ROC-AUC and promotion decision, in order.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    from mlops.config import get_settings
    from mlops.dev import embedded
    from mlops.models import registry

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--from", dest="start", default="2013-06-03")
    p.add_argument("--to", dest="end", default="2013-07-22")
    p.add_argument("--max-active-runs", type=int, default=2)
    p.add_argument("--conf", default="{}", help="JSON conf for every run (the DAG's params)")
    p.add_argument("--timeout", type=float, default=7200)
    ns = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    conf = json.loads(ns.conf)
    started = time.monotonic()
    with embedded.running(settings) as svc:
        env = svc.env
        embedded.reserialize(env)
        before = len(embedded.list_runs("train_model", env))
        for attempt in range(5):  # SQLite "database is locked" under load: the insert is atomic, retry
            try:
                embedded.backfill(
                    "train_model",
                    ns.start,
                    ns.end,
                    env,
                    conf=conf or None,
                    max_active_runs=ns.max_active_runs,
                )
                break
            except RuntimeError as exc:
                if "database is locked" not in str(exc) or attempt == 4:
                    raise
                time.sleep(30)
        # Unpause after creating the backfill (SQLite contention with a busy scheduler, see the test).
        embedded.unpause(["train_model"], env)
        time.sleep(10)
        expected = len(embedded.list_runs("train_model", env))
        runs = embedded.wait_for_runs(
            "train_model", env, expected=max(expected, before + 1), timeout=ns.timeout, services=svc
        )
    wall = time.monotonic() - started
    history = registry.champion_history(settings)
    out = {
        "from": ns.start,
        "to": ns.end,
        "conf": conf,
        "max_active_runs": ns.max_active_runs,
        "wall_seconds": round(wall, 1),
        "runs": [
            {k: r.get(k) for k in ("run_id", "logical_date", "state", "start_date", "end_date")} for r in runs
        ],
        "champion": registry.alias_version("champion", settings),
        "previous": registry.alias_version("previous", settings),
        "history": history,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "train_backfill.json").write_text(json.dumps(out, indent=2, default=str))
    print(f"{len(runs)} runs in {wall:.0f}s: " + ", ".join(f"{r['logical_date']}={r['state']}" for r in runs))
    print(f"{'version':>7}  {'as_of':10}  {'roc_auc':>8}  {'decision':9}  {'champion before':>15}  reason")
    for h in history:
        print(
            f"{h['version']:>7}  {h['as_of'] or '-':10}  {h['roc_auc'] or '-':>8}  {h['decision']:9}  "
            f"{h['champion_before'] or '-':>15}  {h['reason']}"
        )
    print(f"@champion = v{out['champion']}, @previous = v{out['previous']}")
    return 0 if all(r["state"] == "success" for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
