"""Feast's DuckDB offline store, reading only the day partitions a query can use, S3 without downloads.

``feature_repo/feature_store.yaml`` names :class:`DuckDBOfflineStore`. It *is* Feast's DuckDB
offline store (``type: duckdb``): the point-in-time join, the TTL, the de-duplication and
materialization's reads are Feast's ``*_ibis`` functions, run by DuckDB. Feast lets an ibis-based
store choose one thing, the reader of a source (``data_source_reader``); this module supplies it,
and the DuckDB connection Feast's reads run on. What Feast 0.67's DuckDB store does as-is on this
lake, and where each is handled:

* a ``FileSource`` on a folder fails (``'NoneType' object has no attribute 'mutate'``): the
  sources declare ``file_format=ParquetFormat()`` (``feature_repo/sources.py``);
* on S3 it passes ``storage_options`` that DuckDB's ``read_parquet`` rejects (only for a source
  with a ``connection_ref``) and ignores ``s3_endpoint_override``: the sources carry neither; the
  endpoint and credentials of the lake's S3 client (:func:`mlops.lake.s3_client`: the environment,
  or the ``aws_default`` connection under Airflow) go into a DuckDB S3 secret instead;
* it loads DuckDB's ``httpfs`` extension for ``s3://`` paths and downloads it at first use: the
  connection takes it from the pinned ``duckdb-ext-httpfs`` wheel (same version as ``duckdb``;
  DuckDB checks its signature) with auto-install off, so nothing is downloaded at run time;
* it reads every file of a source for every query: :func:`read_source` lists a
  ``<path>/ds=YYYY-MM-DD/*.parquet`` source once (one ``glob``) and reads only the days whose rows
  can fall in the query's window, ``[min(entity ts) - ttl, max(entity ts)]`` per view (a ttl of 0:
  unbounded below) or ``[start, end]`` for materialization. Rows of partition ``ds`` have
  ``event_timestamp`` in ``[local midnight of ds, + PARTITION_EVENT_SPAN)``, checked when the
  tables are built (:func:`mlops.features.compute.check_partition_span`); rows outside the window are
  dropped too, which Feast's join would do (no entity row can pick them).

The connection is built once per process (rebuilt in a forked child, and when the S3 endpoint or
credentials change) and is ibis's default backend, which Feast's reader uses.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import threading
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import ibis
import pandas as pd
from feast.infra.offline_stores import duckdb as feast_duckdb
from feast.infra.offline_stores.duckdb import DuckDBOfflineStore as FeastDuckDBOfflineStore
from feast.infra.offline_stores.duckdb import DuckDBOfflineStoreConfig as FeastDuckDBOfflineStoreConfig
from feast.infra.offline_stores.file_source import FileSource
from feast.infra.offline_stores.ibis import (
    get_historical_features_ibis,
    pull_all_from_table_or_query_ibis,
    pull_latest_from_table_or_query_ibis,
)

from mlops.features.compute import PARTITION_EVENT_SPAN, local_midnight

if TYPE_CHECKING:
    from collections.abc import Callable

    from feast.data_source import DataSource
    from feast.feature_view import FeatureView
    from feast.infra.offline_stores.offline_store import RetrievalJob
    from feast.infra.registry.base_registry import BaseRegistry
    from feast.repo_config import RepoConfig
    from ibis.expr.types import Table

log = logging.getLogger(__name__)

#: ``offline_store.type`` in feature_store.yaml.
STORE_TYPE = "mlops.features.feast_duckdb.DuckDBOfflineStore"
#: Distribution whose wheel carries DuckDB's httpfs extension (pinned to the ``duckdb`` version).
HTTPFS_PACKAGE = "duckdb_ext"

_DAY_DIR = re.compile(r"/ds=(\d{4}-\d{2}-\d{2})/[^/]+\.parquet$")
#: Source name -> (lo, hi) event-time window (lo None = unbounded below).
Windows = dict[str, tuple[datetime | None, datetime]]


class DuckDBOfflineStoreConfig(FeastDuckDBOfflineStoreConfig):
    """``offline_store: {type: mlops.features.feast_duckdb.DuckDBOfflineStore}`` (Feast's DuckDB options)."""

    type: Literal["mlops.features.feast_duckdb.DuckDBOfflineStore"] = STORE_TYPE  # type: ignore[assignment]


# --------------------------------------------------------------------------------------------------
# The DuckDB connection
# --------------------------------------------------------------------------------------------------

_lock = threading.Lock()
_backend: tuple[tuple[Any, ...], Any] | None = None


def httpfs_extension_dir() -> str:
    """``extension_directory`` holding ``v<duckdb version>/<platform>/httpfs.duckdb_extension``."""
    import importlib.util

    spec = importlib.util.find_spec(HTTPFS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "DuckDB's httpfs extension is not installed: the S3 lake needs the duckdb-ext-httpfs "
            "package pinned in pyproject.toml (run `make install` or `uv sync`)"
        )
    return os.path.join(next(iter(spec.submodule_search_locations)), "extensions")


def s3_settings() -> dict[str, str]:
    """Endpoint, region and credentials of the lake's S3 client, as DuckDB S3 secret options."""
    from mlops import lake

    client = lake.s3_client()
    creds = client._request_signer._credentials  # botocore keeps them here; there is no public getter
    frozen = creds.get_frozen_credentials() if creds is not None else None
    out = {"REGION": client.meta.region_name or "us-east-1"}
    if frozen is not None:
        out |= {"KEY_ID": frozen.access_key, "SECRET": frozen.secret_key}
        if frozen.token:
            out["SESSION_TOKEN"] = frozen.token
    endpoint = client.meta.endpoint_url or ""
    if endpoint and not re.match(r"^https://s3[.-]([a-z0-9-]+\.)?amazonaws\.com", endpoint):
        scheme, _, host = endpoint.partition("://")
        out |= {"ENDPOINT": host.rstrip("/"), "URL_STYLE": "path", "USE_SSL": str(scheme == "https").lower()}
    return out


def backend(s3: bool) -> Any:
    """The process's DuckDB connection (an ibis backend, made ibis's default), built on first use.

    ``s3``: the sources are on S3: load httpfs from the pinned wheel and create the S3 secret.
    """
    global _backend
    settings = s3_settings() if s3 else {}
    key = (os.getpid(), tuple(sorted(settings.items())))
    with _lock:
        if _backend is not None and _backend[0] == key:
            return _backend[1]
        con = ibis.duckdb.connect(autoinstall_known_extensions=False, autoload_known_extensions=False)
        if s3:
            con.raw_sql(f"SET extension_directory = '{_sql_str(httpfs_extension_dir())}'")
            con.raw_sql("LOAD httpfs")
            options = ", ".join(
                f"{k} {v}" if k == "USE_SSL" else f"{k} '{_sql_str(v)}'" for k, v in settings.items()
            )
            con.raw_sql(f"CREATE OR REPLACE SECRET mlops_lake (TYPE s3{', ' + options if options else ''})")
        ibis.set_backend(con)
        # A connection inherited over fork() is left alone (its threads are the parent's).
        _backend = (key, con)
        log.debug("DuckDB connection for the offline store (s3=%s, pid %s)", s3, os.getpid())
        return con


def _sql_str(value: str) -> str:
    return value.replace("'", "''")


def _on_s3(sources: list[Any]) -> bool:
    return any(isinstance(s, FileSource) and str(s.path).startswith("s3://") for s in sources)


# --------------------------------------------------------------------------------------------------
# Reading a source
# --------------------------------------------------------------------------------------------------


def day_files(con: Any, root: str) -> dict[date, list[str]]:
    """``{day: [files]}`` of a ``<root>/ds=YYYY-MM-DD/*.parquet`` source (empty if not partitioned)."""
    pattern = root.rstrip("/") + "/ds=*/*.parquet"
    days: dict[date, list[str]] = {}
    for (path,) in con.con.execute("SELECT file FROM glob(?)", [pattern]).fetchall():
        match = _DAY_DIR.search(path)
        if match:
            days.setdefault(date.fromisoformat(match.group(1)), []).append(path)
    return days


def select_days(days: list[date], lo: datetime | None, hi: datetime) -> list[date]:
    """The days whose rows (``[local midnight, + PARTITION_EVENT_SPAN)``) can fall in ``[lo, hi]``."""
    hi_ts = pd.Timestamp(hi)
    lo_ts = None if lo is None else pd.Timestamp(lo)
    out = []
    for day in days:
        first = local_midnight(day)
        if first > hi_ts:
            continue
        if lo_ts is not None and first + PARTITION_EVENT_SPAN <= lo_ts:
            continue
        out.append(day)
    return out


def window_files(con: Any, root: str, window: tuple[datetime | None, datetime] | None) -> list[str] | None:
    """The files of a partitioned source whose rows can fall in ``window`` (None: not partitioned).

    No window: every day. When no day can hold rows of the window, one file (its rows are then
    filtered out: the read keeps the schema Feast expects).
    """
    days = day_files(con, root)
    if not days:
        return None
    chosen = sorted(days) if window is None else select_days(sorted(days), *window)
    log.debug("%s: %d of %d day partitions for %s", root, len(chosen), len(days), window)
    return [f for day in chosen for f in days[day]] or days[min(days)][:1]


def read_source(source: DataSource, repo_path: str, windows: Windows | None = None) -> Table:
    """Feast's DuckDB reader of ``source``, reading only the partitions of its window.

    A folder is read as its files (DuckDB lists a local directory, but S3 has no directories):
    the ``ds=`` partitions of the window, or every ``*.parquet`` directly under an unpartitioned
    folder (the static views).
    """
    if not isinstance(source, FileSource) or str(source.path).endswith(".parquet"):
        return feast_duckdb._read_data_source(source, repo_path)
    con = backend(_on_s3([source]))
    root = str(FileSource.get_uri_for_file_path(repo_path=repo_path, uri=source.path)).rstrip("/")
    window = (windows or {}).get(source.name)
    files = window_files(con, root, window)
    if files is None:
        return con.read_parquet(root + "/*.parquet")
    table = con.read_parquet(files)
    if window is None:
        return table
    lo, hi = window
    ts = table[source.timestamp_field]
    keep = ts <= ibis.literal(_utc(hi))
    if lo is not None:
        keep &= ts >= ibis.literal(_utc(lo))
    return table.filter(keep)


def _reader(windows: Windows) -> Callable[[DataSource, str], Table]:
    return functools.partial(read_source, windows=windows)


def _utc(value: Any) -> datetime:
    ts = pd.Timestamp(value)
    return (ts.tz_localize(UTC) if ts.tzinfo is None else ts.tz_convert(UTC)).to_pydatetime()


def entity_window(entity_df: Any) -> tuple[datetime, datetime] | None:
    """``(min, max)`` of the entity rows' event timestamps (a pandas entity frame), else None."""
    from feast.infra.offline_stores.offline_utils import infer_event_timestamp_from_entity_df

    if not isinstance(entity_df, pd.DataFrame) or entity_df.empty:
        return None
    column = infer_event_timestamp_from_entity_df(dict(zip(entity_df.columns, entity_df.dtypes, strict=True)))
    ts = pd.to_datetime(entity_df[column], utc=True)
    return _utc(ts.min()), _utc(ts.max())


def view_windows(feature_views: list[FeatureView], lo: datetime, hi: datetime) -> Windows:
    """Per source: ``[lo - ttl, hi]`` (``None`` lower bound for a ttl of 0, i.e. unbounded)."""
    windows: Windows = {}
    for fv in feature_views:
        ttl = fv.ttl if fv.ttl and fv.ttl > timedelta(0) else None
        start = None if ttl is None else lo - ttl
        name = fv.batch_source.name
        if name in windows:
            prev = windows[name][0]
            start = None if prev is None or start is None else min(prev, start)
        windows[name] = (start, hi)
    return windows


# --------------------------------------------------------------------------------------------------
# The store
# --------------------------------------------------------------------------------------------------


class DuckDBOfflineStore(FeastDuckDBOfflineStore):
    """Feast's DuckDB offline store with partition pruning and a configured connection."""

    @staticmethod
    def get_historical_features(
        config: RepoConfig,
        feature_views: list[FeatureView],
        feature_refs: list[str],
        entity_df: pd.DataFrame | str,
        registry: BaseRegistry,
        project: str,
        full_feature_names: bool = False,
        filter_by_created_timestamp: bool = False,
    ) -> RetrievalJob:
        backend(_on_s3([fv.batch_source for fv in feature_views]))
        bounds = entity_window(entity_df)
        windows = view_windows(feature_views, *bounds) if bounds else {}
        return get_historical_features_ibis(
            config=config,
            feature_views=feature_views,
            feature_refs=feature_refs,
            entity_df=entity_df,
            registry=registry,
            project=project,
            full_feature_names=full_feature_names,
            data_source_reader=_reader(windows),
            data_source_writer=feast_duckdb._write_data_source,
            staging_location=config.offline_store.staging_location,
            staging_location_endpoint_override=config.offline_store.staging_location_endpoint_override,
            filter_by_created_timestamp=filter_by_created_timestamp,
        )

    @staticmethod
    def pull_latest_from_table_or_query(
        config: RepoConfig,
        data_source: DataSource,
        join_key_columns: list[str],
        feature_name_columns: list[str],
        timestamp_field: str,
        created_timestamp_column: str | None,
        start_date: datetime,
        end_date: datetime,
    ) -> RetrievalJob:
        backend(_on_s3([data_source]))
        return pull_latest_from_table_or_query_ibis(
            config=config,
            data_source=data_source,
            join_key_columns=join_key_columns,
            feature_name_columns=feature_name_columns,
            timestamp_field=timestamp_field,
            created_timestamp_column=created_timestamp_column,
            start_date=start_date,
            end_date=end_date,
            data_source_reader=_reader({data_source.name: (_utc(start_date), _utc(end_date))}),
            data_source_writer=feast_duckdb._write_data_source,
            staging_location=config.offline_store.staging_location,
            staging_location_endpoint_override=config.offline_store.staging_location_endpoint_override,
        )

    @staticmethod
    def pull_all_from_table_or_query(
        config: RepoConfig,
        data_source: DataSource,
        join_key_columns: list[str],
        feature_name_columns: list[str],
        timestamp_field: str,
        created_timestamp_column: str | None = None,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
    ) -> RetrievalJob:
        backend(_on_s3([data_source]))
        windows: Windows = {}
        if end_date is not None:
            windows[data_source.name] = (None if start_date is None else _utc(start_date), _utc(end_date))
        return pull_all_from_table_or_query_ibis(
            config=config,
            data_source=data_source,
            join_key_columns=join_key_columns,
            feature_name_columns=feature_name_columns,
            timestamp_field=timestamp_field,
            created_timestamp_column=created_timestamp_column,
            start_date=start_date,
            end_date=end_date,
            data_source_reader=_reader(windows),
            data_source_writer=feast_duckdb._write_data_source,
            staging_location=config.offline_store.staging_location,
            staging_location_endpoint_override=config.offline_store.staging_location_endpoint_override,
        )
