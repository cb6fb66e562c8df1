"""mlops.feast_offline: which day partitions a window reads, and that the rows it drops are unusable."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest

from mlops import feast_offline as FO
from mlops import features as F


def _ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text).tz_localize("America/New_York").tz_convert("UTC")


DAYS = [date(2013, 1, d) for d in range(1, 11)]


def test_select_days_keeps_every_day_that_can_hold_rows_of_the_window():
    lo, hi = _ts("2013-01-05 12:00"), _ts("2013-01-06 08:00")
    # Day D holds rows in [D 00:00, D 00:00 + PARTITION_EVENT_SPAN) local.
    first = date(2013, 1, 5) - F.PARTITION_EVENT_SPAN + timedelta(days=1)
    want = [d for d in DAYS if first <= d <= date(2013, 1, 6)]
    assert FO.select_days(DAYS, lo.to_pydatetime(), hi.to_pydatetime()) == want
    # Unbounded below (a ttl of 0): everything up to the window's end.
    assert FO.select_days(DAYS, None, hi.to_pydatetime()) == DAYS[:6]
    # A window at exactly local midnight includes that day.
    assert FO.select_days(DAYS, None, _ts("2013-01-03 00:00").to_pydatetime())[-1] == date(2013, 1, 3)


@pytest.fixture
def source(tmp_path):
    from feast import FileSource

    root = tmp_path / "view"
    for d in DAYS:
        midnight = F.local_midnight(d)
        frame = pd.DataFrame(
            {
                "key": [f"k|{d}"] * 3,
                F.TIMESTAMP: pd.Series(
                    [midnight, midnight + pd.Timedelta(hours=12), midnight + pd.Timedelta(days=1, hours=6)]
                ).astype("datetime64[us, UTC]"),
                "value": [1.0, 2.0, 3.0],
            }
        )
        (root / f"ds={d}").mkdir(parents=True)
        frame.to_parquet(root / f"ds={d}" / "data.parquet", index=False)
    return FileSource(name="view", path=str(root), timestamp_field=F.TIMESTAMP)


def test_read_source_prunes_partitions_and_rows_within_a_window(source, tmp_path):
    days, options = FO.day_partitions(source, tmp_path)
    assert sorted(days) == DAYS and options is None
    lo, hi = _ts("2013-01-04 10:00").to_pydatetime(), _ts("2013-01-06 00:00").to_pydatetime()
    with FO.scan_windows({"view": (lo, hi)}):
        frame = FO.read_source(source, tmp_path)
    assert frame.npartitions == 1
    got = frame.compute()
    everything = pd.concat([pd.read_parquet(f) for d in DAYS for f in days[d]], ignore_index=True)
    ts = everything[F.TIMESTAMP]
    want = everything[(ts >= pd.Timestamp(lo)) & (ts <= pd.Timestamp(hi))]
    assert sorted(got["value"].tolist()) == sorted(want["value"].tolist())
    assert set(got["key"]) == set(want["key"])
    # A window no partition can serve gives an empty frame with the source's columns.
    with FO.scan_windows({"view": (_ts("2014-06-01").to_pydatetime(), _ts("2014-06-02").to_pydatetime())}):
        empty = FO.read_source(source, tmp_path).compute()
    assert empty.empty and {"key", F.TIMESTAMP, "value"} <= set(empty.columns)


def test_read_source_outside_a_window_is_feasts_reader(source, tmp_path):
    frame = FO.read_source(source, tmp_path)
    assert frame.npartitions == len(DAYS)
    assert len(frame.compute()) == 3 * len(DAYS)


def test_view_windows_use_the_ttl_and_treat_zero_as_unbounded():
    from types import SimpleNamespace

    lo, hi = _ts("2013-03-01").to_pydatetime(), _ts("2013-03-31").to_pydatetime()
    views = [
        SimpleNamespace(ttl=timedelta(days=2), batch_source=SimpleNamespace(name="a")),
        SimpleNamespace(ttl=timedelta(0), batch_source=SimpleNamespace(name="b")),
    ]
    windows = FO.view_windows(views, lo, hi)
    assert windows == {"a": (lo - timedelta(days=2), hi), "b": (None, hi)}


def test_build_rejects_rows_outside_the_partition_span():
    ds = "2013-05-01"
    ok = pd.DataFrame({F.TIMESTAMP: [F.local_midnight(ds)]})
    F.check_partition_span("v", ds, ok)
    late = pd.DataFrame({F.TIMESTAMP: [F.local_midnight(ds) + F.PARTITION_EVENT_SPAN]})
    with pytest.raises(ValueError, match="PARTITION_EVENT_SPAN"):
        F.check_partition_span("v", ds, late)
    early = pd.DataFrame({F.TIMESTAMP: [F.local_midnight(ds) - pd.Timedelta(seconds=1)]})
    with pytest.raises(ValueError, match="ds=2013-05-01"):
        F.check_partition_span("v", ds, early)


def test_feature_store_yaml_names_this_store():
    from mlops.config import get_settings

    text = (get_settings().feature_repo / "feature_store.yaml").read_text()
    assert f"type: {FO.STORE_TYPE}" in text
