"""mlops.features.feast_duckdb: Feast's DuckDB offline store on the lake's partitions.

Which day partitions a window reads, that the rows it drops are unusable, that the point-in-time
join (Feast's) keeps an entity row whose key has rows only outside the TTL, and that nothing is
downloaded to read S3.
"""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest

from mlops.features import compute, feast_duckdb
from mlops.flight_delay import features as flight_features


def _ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text).tz_localize("America/New_York").tz_convert("UTC")


DAYS = [date(2013, 1, d) for d in range(1, 11)]


def test_select_days_keeps_every_day_that_can_hold_rows_of_the_window():
    lo, hi = _ts("2013-01-05 12:00"), _ts("2013-01-06 08:00")
    # Day D holds rows in [D 00:00, D 00:00 + PARTITION_EVENT_SPAN) local.
    first = date(2013, 1, 5) - compute.PARTITION_EVENT_SPAN + timedelta(days=1)
    want = [d for d in DAYS if first <= d <= date(2013, 1, 6)]
    assert feast_duckdb.select_days(DAYS, lo.to_pydatetime(), hi.to_pydatetime()) == want
    # Unbounded below (a ttl of 0): everything up to the window's end.
    assert feast_duckdb.select_days(DAYS, None, hi.to_pydatetime()) == DAYS[:6]
    # A window at exactly local midnight includes that day.
    assert feast_duckdb.select_days(DAYS, None, _ts("2013-01-03 00:00").to_pydatetime())[-1] == date(
        2013, 1, 3
    )


@pytest.fixture
def source(tmp_path):
    from feast import FileSource
    from feast.data_format import ParquetFormat

    root = tmp_path / "view"
    for d in DAYS:
        midnight = compute.local_midnight(d)
        frame = pd.DataFrame(
            {
                "key": [f"k|{d}"] * 3,
                compute.TIMESTAMP: pd.Series(
                    [midnight, midnight + pd.Timedelta(hours=12), midnight + pd.Timedelta(days=1, hours=6)]
                ).astype("datetime64[us, UTC]"),
                "value": [1.0, 2.0, 3.0],
            }
        )
        (root / f"ds={d}").mkdir(parents=True)
        frame.to_parquet(root / f"ds={d}" / "data.parquet", index=False)
    return FileSource(
        name="view", path=str(root), timestamp_field=compute.TIMESTAMP, file_format=ParquetFormat()
    )


def test_read_source_prunes_partitions_and_rows_within_a_window(source, tmp_path):
    con = feast_duckdb.backend(s3=False)
    days = feast_duckdb.day_files(con, source.path)
    assert sorted(days) == DAYS and all(len(f) == 1 for f in days.values())
    lo, hi = _ts("2013-01-04 10:00").to_pydatetime(), _ts("2013-01-06 00:00").to_pydatetime()
    files = feast_duckdb.window_files(con, source.path, (lo, hi))
    assert files == [days[d][0] for d in feast_duckdb.select_days(DAYS, lo, hi)] and len(files) < len(DAYS)
    got = feast_duckdb.read_source(source, str(tmp_path), {"view": (lo, hi)}).execute()
    everything = pd.concat([pd.read_parquet(days[d][0]) for d in DAYS], ignore_index=True)
    ts = everything[compute.TIMESTAMP]
    want = everything[(ts >= pd.Timestamp(lo)) & (ts <= pd.Timestamp(hi))]
    assert sorted(got["value"].tolist()) == sorted(want["value"].tolist())
    assert set(got["key"]) == set(want["key"])
    # A window no partition can serve gives an empty frame with the source's columns.
    late = (_ts("2014-06-01").to_pydatetime(), _ts("2014-06-02").to_pydatetime())
    empty = feast_duckdb.read_source(source, str(tmp_path), {"view": late}).execute()
    assert empty.empty and {"key", compute.TIMESTAMP, "value"} <= set(empty.columns)


def test_read_source_outside_a_window_is_feasts_reader(source, tmp_path):
    feast_duckdb.backend(s3=False)
    assert len(feast_duckdb.read_source(source, str(tmp_path)).execute()) == 3 * len(DAYS)


def test_view_windows_use_the_ttl_and_treat_zero_as_unbounded():
    from types import SimpleNamespace

    lo, hi = _ts("2013-03-01").to_pydatetime(), _ts("2013-03-31").to_pydatetime()
    views = [
        SimpleNamespace(ttl=timedelta(days=2), batch_source=SimpleNamespace(name="a")),
        SimpleNamespace(ttl=timedelta(0), batch_source=SimpleNamespace(name="b")),
    ]
    windows = feast_duckdb.view_windows(views, lo, hi)
    assert windows == {"a": (lo - timedelta(days=2), hi), "b": (None, hi)}


def test_build_rejects_rows_outside_the_partition_span():
    ds = "2013-05-01"
    ok = pd.DataFrame({compute.TIMESTAMP: [compute.local_midnight(ds)]})
    compute.check_partition_span("v", ds, ok)
    late = pd.DataFrame({compute.TIMESTAMP: [compute.local_midnight(ds) + compute.PARTITION_EVENT_SPAN]})
    with pytest.raises(ValueError, match="PARTITION_EVENT_SPAN"):
        compute.check_partition_span("v", ds, late)
    early = pd.DataFrame({compute.TIMESTAMP: [compute.local_midnight(ds) - pd.Timedelta(seconds=1)]})
    with pytest.raises(ValueError, match="ds=2013-05-01"):
        compute.check_partition_span("v", ds, early)


def test_feature_store_yaml_names_this_store_and_sources_read_folders():
    from feast.data_format import ParquetFormat

    from mlops.config import get_settings
    from mlops.features import feature_store

    repo = get_settings().feature_repo
    assert f"type: {feast_duckdb.STORE_TYPE}" in (repo / "feature_store.yaml").read_text()
    # Feast's DuckDB reader needs the format for a folder, and no S3 options it would mishandle.
    sources = feature_store.load_definitions()["data_sources"]
    assert {s.name for s in sources} == set(flight_features.VIEW_FEATURES)
    for s in sources:
        assert isinstance(s.file_format, ParquetFormat), s.name
        assert not s.file_options.s3_endpoint_override and s.connection_ref is None, s.name


def test_s3_connection_loads_httpfs_from_the_pinned_wheel_without_downloading(monkeypatch):
    """The S3 set-up installs nothing: httpfs comes from duckdb-ext-httpfs, auto-install is off."""
    import duckdb

    from mlops import lake

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key-id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-3")
    lake.set_s3_client_factory(None)
    try:
        con = feast_duckdb.backend(s3=True)
        row = con.con.execute(
            "SELECT installed, loaded, install_path FROM duckdb_extensions() WHERE extension_name = 'httpfs'"
        ).fetchone()
        assert row[0] and row[1] and row[2].startswith(feast_duckdb.httpfs_extension_dir())
        assert f"/v{duckdb.__version__}/" in row[2]
        settings = dict(con.con.execute("SELECT name, value FROM duckdb_settings()").fetchall())
        assert settings["autoinstall_known_extensions"] == "false"
        secret = con.con.execute(
            "SELECT secret_string FROM duckdb_secrets() WHERE name = 'mlops_lake'"
        ).fetchone()
        assert "endpoint=127.0.0.1:9" in secret[0] and "region=eu-west-3" in secret[0]
        assert "url_style=path" in secret[0] and "use_ssl=false" in secret[0]
        assert "key_id=key-id" in secret[0]
    finally:
        lake.set_s3_client_factory(None)
        feast_duckdb.backend(s3=False)


def test_a_key_with_rows_only_outside_the_ttl_keeps_its_entity_row_with_nulls(tmp_path):
    """Feast's DuckDB join: a view with no row of the key within its TTL gives nulls for that view
    only (Feast's dask store dropped the whole entity row)."""
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.data_format import ParquetFormat
    from feast.repo_config import RepoConfig
    from feast.types import Float64

    t0 = pd.Timestamp("2013-05-01 12:00", tz="UTC")
    frames = {
        "fresh": pd.DataFrame({"k": ["a", "b"], compute.TIMESTAMP: [t0, t0], "x": [1.0, 2.0]}),
        # Key "b" only has a row older than the 1-hour TTL at the entity time.
        "stale": pd.DataFrame(
            {"k": ["a", "b"], compute.TIMESTAMP: [t0, t0 - pd.Timedelta(hours=5)], "y": [3.0, 4.0]}
        ),
    }
    entity = Entity(name="k", join_keys=["k"], value_type=ValueType.STRING)
    views = []
    for name, frame in frames.items():
        (tmp_path / name).mkdir()
        frame.to_parquet(tmp_path / name / "data.parquet", index=False)
        src = FileSource(
            name=name,
            path=str(tmp_path / name),
            timestamp_field=compute.TIMESTAMP,
            file_format=ParquetFormat(),
        )
        col = frame.columns[-1]
        views.append(
            FeatureView(
                name=name,
                entities=[entity],
                ttl=timedelta(hours=1),
                schema=[Field(name=col, dtype=Float64)],
                source=src,
            )
        )
    config = RepoConfig(
        project="ttl_edge",
        provider="local",
        registry=str(tmp_path / "registry.db"),
        online_store={"type": "sqlite", "path": str(tmp_path / "online.db")},
        offline_store={"type": feast_duckdb.STORE_TYPE},
        entity_key_serialization_version=3,
        repo_path=tmp_path,
    )
    store = FeatureStore(config=config)
    store.apply([entity, *views])
    entity_df = pd.DataFrame({"k": ["a", "b"], compute.TIMESTAMP: [t0 + pd.Timedelta(minutes=30)] * 2})
    got = (
        store.get_historical_features(entity_df=entity_df, features=["fresh:x", "stale:y"])
        .to_df()
        .set_index("k")
        .sort_index()
    )
    assert list(got.index) == ["a", "b"]
    assert got.loc["a", "x"] == 1.0 and got.loc["a", "y"] == 3.0
    assert got.loc["b", "x"] == 2.0 and pd.isna(got.loc["b", "y"])
