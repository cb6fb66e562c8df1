"""Curated weather for a lake that was filled without running ``ingest_weather``.

Feature builds read weather from the curated lake only (``{lake}/curated/weather``). Tests and
benchmarks that write curated flights straight into a lake seed the weather days they need here.
The partitions are what the real pipeline writes for a clean delivery (the simulator's replay,
parsed as ingest parses it, normalized by the weather spec, the same parquet footer), without
running the Great Expectations suite (tests/unit/test_weather.py does).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

    from mlops.config import Settings


def seed_weather(days: Iterable[str], settings: Settings, *, evening_before: bool = True) -> list[str]:
    """Write the curated weather of ``days`` (and, with ``evening_before``, of the day before the
    first: its last hours feed the first morning); returns the days written."""
    import datetime as dt

    from mlops import lake
    from mlops.ingest import simulator, steps
    from mlops.spec.feed import feed_spec

    spec = feed_spec("weather")
    wanted = sorted(set(days))
    if wanted and evening_before:
        wanted.insert(0, (dt.date.fromisoformat(wanted[0]) - dt.timedelta(days=1)).isoformat())
    for ds in wanted:
        data = simulator.to_csv_bytes(spec.replay_day(ds))
        frame = steps.curated_frame(steps.parse_raw(data), ds, spec)
        meta = {
            steps.META_HASH: steps.content_hash(frame, spec).encode(),
            steps.META_ROWS: str(len(frame)).encode(),
            steps.META_DS: ds.encode(),
            steps.META_SOURCE: steps.sha256(data).encode(),
        }
        lake.write_bytes(spec.curated_file(settings.lake_uri, ds), steps.parquet_bytes(frame, meta))
    return wanted
