"""Batch scoring throughput: a full day and a full month scored with ``@champion``.

Section ``7 batch scoring`` of ``mlops bench`` (registered with the harness), also runnable alone:

    .venv/bin/python benchmarks/bench_scoring.py [--month 2013-06] [--home DIR]

Setup (tests/e2e/_serving_home.py): the month's curated partitions with a week of history, its
feature tables, ``feast apply``, and a quick model trained as of the month's first day (a week of
``get_historical_features``) promoted to ``@champion``. ``--home`` reuses a built home.

Measured, exactly as ``batch_predict`` runs it (:func:`mlops.serving.scoring.score_days`): read the
curated partitions, point-in-time features from Feast ``get_historical_features``, score, write
``{lake}/predictions/ds=.../data.parquet`` per day. One day (its own call), then the whole month
in one call; each with the wall time of its steps. The baseline of the month is thirty one-day
calls (the day's time x days): one call pays Feast's fixed retrieval cost once. ``day_cold`` is
the first call in the process (imports, Feast and MLflow start-up: what one Airflow task pays);
``day`` and ``month`` are warm.

Results: ``benchmarks/results/scoring.json`` (standalone) or the harness report.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from benchmarks.harness import Row

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # the home builder lives with the e2e tests
    sys.path.insert(0, str(REPO))

RESULTS = REPO / "benchmarks" / "results"
log = logging.getLogger("bench_scoring")


def month_days(month: str) -> list[str]:
    first = date.fromisoformat(f"{month}-01")
    nxt = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    return [(first + timedelta(days=i)).isoformat() for i in range((nxt - first).days)]


def prepare_home(home: Path, days: list[str], train_days: int = 7) -> dict[str, Any]:
    os.environ["MLOPS_HOME"] = str(home)
    from mlops.config import CHAMPION, get_settings
    from mlops.features import feature_store
    from mlops.models import registry
    from tests.e2e._serving_home import prepare_lake, shift, train_version

    s = get_settings()
    timings: dict[str, float] = {}
    if registry.alias_version(CHAMPION, s) is None:
        first = shift(days[0], -train_days)
        prepared = prepare_lake(first, days[-1], s)
        timings.update(prepared["timings"])
        t = time.perf_counter()
        frame = feature_store.training_frame(first, days[0], s)
        timings["training_frame"] = time.perf_counter() - t
        trained = train_version(frame, days[0], window_days=train_days, holdout_days=2, n_estimators=60)
        timings["train_and_register"] = trained.seconds
        registry.promote(trained.version, trained.holdout, margin=0.0)
    return {"settings": s, "timings": timings}


def _peak_rss_mb() -> float:
    from benchmarks.harness import peak_rss_mib

    return round(peak_rss_mib(), 1)


def measure(home: Path | None = None, month: str = "2013-06", day: str | None = None) -> dict[str, Any]:
    tmp = None
    if home is None:
        tmp = tempfile.TemporaryDirectory(prefix="bench-scoring-")
        home = Path(tmp.name)
    try:
        days = month_days(month)
        day = day or days[len(days) // 2]
        started = time.perf_counter()
        prep = prepare_home(home, days)
        from mlops.serving import scoring

        s = prep["settings"]
        model = scoring.resolve_version(None, s)
        out: dict[str, Any] = {
            "month": month,
            "day": day,
            "model_version": model["model_version"],
            "setup_s": round(time.perf_counter() - started, 1),
            "setup_timings_s": {k: round(v, 1) for k, v in prep["timings"].items()},
            "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        }
        # The first call in a process pays the imports and Feast/MLflow start-up (as one Airflow
        # task does): reported apart, then the day again warm, then the month.
        for name, span in (("day_cold", [day]), ("day", [day]), ("month", days)):
            timings: dict[str, float] = {}
            results = scoring.score_days(span, model["model_version"], settings=s, timings=timings)
            rows = sum(r.rows for r in results)
            out[name] = {
                "days": len(span),
                "flights": rows,
                "seconds": round(timings["total"], 2),
                "flights_per_s": round(rows / timings["total"], 1),
                "steps_s": {k: round(v, 2) for k, v in timings.items()},
                "peak_rss_mb": _peak_rss_mb(),
            }
            log.info("%s: %s", name, out[name])
        out["month_as_daily_calls_s"] = round(out["day"]["seconds"] * len(days), 1)
        out["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
        return out
    finally:
        if tmp is not None:
            tmp.cleanup()


def rows(result: dict[str, Any], missing: list[str] | None = None) -> list[Row]:
    """The table rows of a :func:`measure` result (or of ``results/scoring.json``, its saved form)."""
    from benchmarks.harness import Row

    d, mo = result["day"], result["month"]
    return [
        Row(
            "7 batch scoring",
            f"one day ({d['flights']:,} flights, {d['flights_per_s']:,.0f} flights/s)",
            d["seconds"],
            "model predict of the same rows",
            d["steps_s"]["predict"],
            spread=f"features {d['steps_s']['features']:.1f} s",
            peak_rss_mb=d["peak_rss_mb"],
            note="score_days: curated + Feast get_historical_features + predict + write",
        ),
        Row(
            "7 batch scoring",
            f"one month in one call ({mo['flights']:,} flights, {mo['flights_per_s']:,.0f} flights/s)",
            mo["seconds"],
            f"{mo['days']} one-day calls (day x {mo['days']})",
            result["month_as_daily_calls_s"],
            spread=f"features {mo['steps_s']['features']:.1f} s",
            peak_rss_mb=mo["peak_rss_mb"],
            note="backfills score many days per call",
        ),
    ]


#: The section ``mlops bench`` runs (the arguments of :func:`benchmarks.harness.register`).
HARNESS = {
    "name": "scoring",
    "results": RESULTS / "scoring.json",
    "rows": rows,
    "command": ".venv/bin/python benchmarks/bench_scoring.py",
    "measure": measure,
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--month", default="2013-06", help="YYYY-MM of 2013")
    p.add_argument("--day", help="the single day (default: mid-month)")
    p.add_argument("--home", type=Path, help="MLOPS_HOME to build or reuse (default: a temporary one)")
    ns = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in ("feast", "alembic", "mlflow", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)
    if ns.home:
        ns.home.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())  # noted on the collected rows
    out = {"started": started, **measure(ns.home, ns.month, ns.day)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "scoring.json").write_text(json.dumps(out, indent=2, default=str))
    print(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
