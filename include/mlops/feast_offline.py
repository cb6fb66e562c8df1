"""Feast's file (dask) offline store, reading only the day partitions a query can use.

``feature_repo/feature_store.yaml`` names this store (``offline_store.type``). It *is* Feast's
``DaskOfflineStore`` (the store behind ``type: file``): the point-in-time join, the TTL filter and
the de-duplication of ``get_historical_features``, and the reads of materialization, are Feast's
own code. Two things change, both in how a source is read:

* **Partition pruning.** A source laid out as ``<path>/ds=YYYY-MM-DD/*.parquet`` (every daily view
  of :mod:`mlops.features`) is read only for the days whose rows can fall in the query's time
  window: for ``get_historical_features`` ``[min(entity ts) - ttl, max(entity ts)]`` per view (a
  ttl of 0 means unbounded: every day up to the end), for materialization ``[start, end]``. Rows
  of partition ``ds`` have ``event_timestamp`` in ``[local midnight of ds, + PARTITION_EVENT_SPAN)``
  (checked when the tables are built, :func:`mlops.features.check_partition_span`). Rows outside
  the window are dropped as well: Feast's own filters would drop them (a row later than every
  entity timestamp, or older than ``min(entity ts) - ttl``, can be picked by no entity row).
* **One dask partition per source.** ``dd.read_parquet`` of a directory makes one partition per
  file; Feast's merges and sorts then hash-shuffle every file against every other (quadratic in
  the number of day files: a year of 2013 did not finish in 35 minutes). The pruned read is
  concatenated into a single partition, so each join is one in-memory pandas merge.

Without a window (a caller that is not one of the methods below) a source is read as Feast reads
it. :func:`mlops.feature_store.historical_values` also feeds the entity rows in time-ordered
chunks, so a year-long training set is a dozen small joins instead of one huge one.

Works for ``file://`` paths and ``s3://`` prefixes (``s3_endpoint_override`` for MinIO/moto), with
the credentials Feast resolves for the source.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import feast.infra.offline_stores.dask as feast_dask
import pandas as pd
from feast.infra.offline_stores.dask import DaskOfflineStore, DaskOfflineStoreConfig, DaskRetrievalJob
from feast.infra.offline_stores.file_source import FileSource

from mlops.features import PARTITION_EVENT_SPAN, local_midnight

if TYPE_CHECKING:
    from collections.abc import Iterator

    import dask.dataframe as dd
    from feast.data_source import DataSource
    from feast.feature_view import FeatureView
    from feast.infra.offline_stores.offline_store import RetrievalJob
    from feast.infra.registry.base_registry import BaseRegistry
    from feast.repo_config import RepoConfig

log = logging.getLogger(__name__)

#: ``offline_store.type`` in feature_store.yaml.
STORE_TYPE = "mlops.feast_offline.PartitionedFileOfflineStore"

_DAY_DIR = re.compile(r"(?:^|/)ds=(\d{4}-\d{2}-\d{2})(?:/|$)")

#: Source name -> (lo, hi) event-time window (lo None = unbounded) of the query being evaluated.
_WINDOWS: contextvars.ContextVar[dict[str, tuple[datetime | None, datetime]] | None] = contextvars.ContextVar(
    "mlops_feast_scan_windows", default=None
)


class PartitionedFileOfflineStoreConfig(DaskOfflineStoreConfig):
    """``offline_store: {type: mlops.feast_offline.PartitionedFileOfflineStore}``."""

    type: Literal["mlops.feast_offline.PartitionedFileOfflineStore"] = STORE_TYPE  # type: ignore[assignment]


# --------------------------------------------------------------------------------------------------
# Reading a source
# --------------------------------------------------------------------------------------------------


def _storage_options(source: FileSource) -> dict[str, Any] | None:
    """The fsspec options Feast's dask store reads ``source`` with (credentials, S3 endpoint)."""
    creds = source.resolve_credentials()
    endpoint = source.file_options.s3_endpoint_override
    if creds:
        options: dict[str, Any] = {
            "key": creds.get("AWS_ACCESS_KEY_ID", ""),
            "secret": creds.get("AWS_SECRET_ACCESS_KEY", ""),
        }
        if endpoint:
            options["client_kwargs"] = {"endpoint_url": endpoint}
        if creds.get("AWS_SESSION_TOKEN"):
            options["token"] = creds["AWS_SESSION_TOKEN"]
        return options
    if endpoint:
        return {"client_kwargs": {"endpoint_url": endpoint}}
    return None


def day_partitions(source: FileSource, repo_path: Any) -> tuple[dict[date, list[str]], dict[str, Any] | None]:
    """``{day: [file URIs]}`` of a ``ds=YYYY-MM-DD`` partitioned source (empty if not partitioned)."""
    import fsspec

    uri = str(FileSource.get_uri_for_file_path(repo_path=repo_path, uri=source.file_options.uri))
    options = _storage_options(source)
    if uri.endswith(".parquet"):
        return {}, options
    fs, root = fsspec.core.url_to_fs(uri, **(options or {}))
    days: dict[date, list[str]] = {}
    for path in fs.glob(root.rstrip("/") + "/ds=*/*.parquet"):
        match = _DAY_DIR.search(path[len(root.rstrip("/")) :])
        if match:
            days.setdefault(date.fromisoformat(match.group(1)), []).append(fs.unstrip_protocol(path))
    return days, options


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


def read_source(source: DataSource, repo_path: Any) -> dd.DataFrame:
    """Feast's ``_read_datasource`` with partition pruning and a single dask partition."""
    windows = _WINDOWS.get()
    window = None if windows is None else windows.get(source.name)
    if window is None or not isinstance(source, FileSource):
        return _FEAST_READ(source, repo_path)
    days, options = day_partitions(source, repo_path)
    if not days:
        return _FEAST_READ(source, repo_path).repartition(npartitions=1)
    import dask.dataframe as dd

    lo, hi = window
    chosen = select_days(sorted(days), lo, hi)
    # No day can hold rows of the window: read one file and let the row filter empty it (keeps
    # the schema Feast expects).
    files = [f for day in chosen for f in days[day]] or days[min(days)][:1]
    log.debug("source %s: %d of %d day partitions for [%s, %s]", source.name, len(chosen), len(days), lo, hi)
    frame = dd.read_parquet(files, storage_options=options)
    ts = frame[source.timestamp_field]
    keep = ts <= pd.Timestamp(hi)
    if lo is not None:
        keep &= ts >= pd.Timestamp(lo)
    return frame[keep].repartition(npartitions=1)


@contextlib.contextmanager
def scan_windows(windows: dict[str, tuple[datetime | None, datetime]]) -> Iterator[None]:
    """Read the named sources only for their windows while inside (see :func:`read_source`)."""
    token = _WINDOWS.set(windows)
    try:
        yield
    finally:
        _WINDOWS.reset(token)


def _utc(value: Any) -> datetime:
    ts = pd.Timestamp(value)
    return (ts.tz_localize(UTC) if ts.tzinfo is None else ts.tz_convert(UTC)).to_pydatetime()


def _with_windows(job: RetrievalJob, windows: dict[str, tuple[datetime | None, datetime]]) -> RetrievalJob:
    """``job`` whose (lazy) evaluation reads its sources within ``windows``."""
    assert isinstance(job, DaskRetrievalJob), type(job)
    inner = job.evaluation_function

    def evaluate() -> Any:
        with scan_windows(windows):
            return inner()

    job.evaluation_function = evaluate
    return job


def entity_window(entity_df: Any) -> tuple[datetime, datetime] | None:
    """``(min, max)`` of the entity rows' event timestamps (a pandas entity frame), else None."""
    if not isinstance(entity_df, pd.DataFrame) or entity_df.empty:
        return None
    column = feast_dask.DEFAULT_ENTITY_DF_EVENT_TIMESTAMP_COL
    if column not in entity_df.columns:
        stamps = entity_df.select_dtypes(include=["datetime", "datetimetz"]).columns
        if len(stamps) != 1:
            return None
        column = stamps[0]
    ts = pd.to_datetime(entity_df[column], utc=True)
    return _utc(ts.min()), _utc(ts.max())


def view_windows(
    feature_views: list[FeatureView], lo: datetime, hi: datetime
) -> dict[str, tuple[datetime | None, datetime]]:
    """Per source: ``[lo - ttl, hi]`` (``None`` lower bound for a ttl of 0, i.e. unbounded)."""
    windows: dict[str, tuple[datetime | None, datetime]] = {}
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


class PartitionedFileOfflineStore(DaskOfflineStore):
    """Feast's file offline store with partition pruning (see the module docstring)."""

    @staticmethod
    def get_historical_features(
        config: RepoConfig,
        feature_views: list[FeatureView],
        feature_refs: list[str],
        entity_df: Any,
        registry: BaseRegistry,
        project: str,
        full_feature_names: bool = False,
        filter_by_created_timestamp: bool = False,
        **kwargs: Any,
    ) -> RetrievalJob:
        job = DaskOfflineStore.get_historical_features(
            config,
            feature_views,
            feature_refs,
            entity_df,
            registry,
            project,
            full_feature_names=full_feature_names,
            filter_by_created_timestamp=filter_by_created_timestamp,
            **kwargs,
        )
        bounds = entity_window(entity_df)
        if bounds is None:
            return job
        return _with_windows(job, view_windows(feature_views, *bounds))

    @staticmethod
    def pull_latest_from_table_or_query(
        config: RepoConfig,
        data_source: DataSource,
        join_key_columns: list[str],
        feature_name_columns: list[str],
        timestamp_field: str,
        created_timestamp_column: str | None,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
    ) -> RetrievalJob:
        job = DaskOfflineStore.pull_latest_from_table_or_query(
            config,
            data_source,
            join_key_columns,
            feature_name_columns,
            timestamp_field,
            created_timestamp_column,
            start_date,
            end_date,
        )
        return _windowed(job, data_source, start_date, end_date)

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
        job = DaskOfflineStore.pull_all_from_table_or_query(
            config,
            data_source,
            join_key_columns,
            feature_name_columns,
            timestamp_field,
            created_timestamp_column,
            start_date,
            end_date,
        )
        return _windowed(job, data_source, start_date, end_date)


def _windowed(
    job: RetrievalJob, data_source: DataSource, start_date: datetime | None, end_date: datetime | None
) -> RetrievalJob:
    """``job`` reading only ``data_source``'s partitions in ``[start_date, end_date]`` (all without an end)."""
    if end_date is None:
        return job
    lo = None if start_date is None else _utc(start_date)
    return _with_windows(job, {data_source.name: (lo, _utc(end_date))})


# Feast's dask store calls the module-level ``_read_datasource`` for every source it reads; route
# it through :func:`read_source` (which defers to Feast's reader outside a window). Feast is pinned
# (pyproject); fail loudly if the hook disappears in an upgrade instead of silently going slow.
if not hasattr(feast_dask, "_read_datasource"):  # pragma: no cover - guards a Feast upgrade
    raise ImportError("feast.infra.offline_stores.dask._read_datasource is gone: update mlops.feast_offline")
_FEAST_READ = getattr(feast_dask._read_datasource, "__wrapped_feast_read__", feast_dask._read_datasource)
read_source.__wrapped_feast_read__ = _FEAST_READ  # type: ignore[attr-defined]
feast_dask._read_datasource = read_source
