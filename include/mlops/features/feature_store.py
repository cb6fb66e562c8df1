"""The Feast feature store of a feature set: configuration, apply, materialize, retrieval.

Interface (plain Python, no Airflow):

* :func:`get_store` -> ``feast.FeatureStore`` for ``feature_repo/`` with the profile's stores;
* :func:`apply` -> ``feast apply`` of the repo, serialized by a lock (a file lock next to the file
  registry; a PostgreSQL advisory lock for the SQL registry);
* :func:`materialize` -> load [start, end] of a feature set's views into the online store (same lock);
* :func:`training_frame` -> labelled rows of [start, end) with the feature set's model features
  (``FeatureSetSpec.features``) from ``get_historical_features(features=<a feature service>)``;
* :func:`historical_frame` -> the same point-in-time features for any rows (e.g. batch scoring);
* :func:`online_frame` -> model features of request rows from the online store.

Every function that takes ``feature_set`` (a :class:`mlops.spec.features.FeatureSetSpec`, its
registered name or import path) defaults to :data:`mlops.spec.features.DEFAULT`, so callers that
name none keep working.

Profiles: ``feature_repo/feature_store.yaml`` takes its stores from ``MLOPS_FEAST_PROJECT``,
``MLOPS_FEAST_REGISTRY`` and ``MLOPS_FEAST_ONLINE_STORE`` (YAML flow mappings); when unset,
:func:`feast_env` supplies the embedded defaults under ``MLOPS_HOME`` (file registry and SQLite
online store in ``$MLOPS_HOME/feast/``; ``mlops env`` exports them for the ``feast`` CLI). Offline
sources are ``{lake}/features/<view>``, read by Feast's DuckDB offline store
(:mod:`mlops.features.feast_duckdb`).

Cost per process: importing Feast and its stores takes seconds. :func:`get_store` keeps one
``FeatureStore`` per process, repo and expanded configuration; :func:`preload` imports what the
profile's stores need without opening anything, so a process that forks tasks (the scheduler,
a Celery worker: ``mlops.airflow.local_settings``) pays the imports once for all of them.

Run ``python -m mlops.features.feature_store env|apply|materialize START END`` from a shell.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import logging
import os
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops import lake, layout
from mlops.config import FEAST_PROJECT, FEATURE_SERVICE, Settings, get_settings
from mlops.features import compute
from mlops.spec import features as feature_sets

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import pandas as pd
    from feast import FeatureStore
    from feast.repo_config import RepoConfig

    from mlops.spec.features import FeatureSetSpec

log = logging.getLogger(__name__)

#: Modules of ``feature_repo/`` in dependency order (each imports the ones before it).
REPO_MODULES: tuple[str, ...] = ("entities", "sources", "views", "services")
#: Environment variables read by ``feature_store.yaml``.
FEAST_ENV_VARS: tuple[str, ...] = ("MLOPS_FEAST_PROJECT", "MLOPS_FEAST_REGISTRY", "MLOPS_FEAST_ONLINE_STORE")
#: Entity rows per ``get_historical_features`` call (time-ordered chunks): bounds DuckDB's working
#: set (a year's training set in one call peaked at 3.2 GiB, in chunks of 60k at 2.3 GiB, in the
#: same time: benchmarks/bench_features.py).
HISTORICAL_CHUNK_ROWS = 60_000
#: The entity-frame column that carries a row's number through Feast's join.
_ENTITY_ROW = "__entity_row"
#: Extra days materialized before the covered interval, to pick up late rows.
MATERIALIZE_OVERLAP = timedelta(days=1)
#: How long apply/materialize wait for the registry lock before failing.
LOCK_TIMEOUT_SECONDS = 1800

# --------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------


def feast_dir(settings: Settings | None = None) -> Path:
    """``$MLOPS_HOME/feast``: the embedded registry, online store and lock live here."""
    return (settings or get_settings()).home / "feast"


def repo_path(settings: Settings | None = None, feature_set: FeatureSetSpec | str | None = None) -> Path:
    """The Feast repo of a feature set: its own ``repo`` (relative to the checkout), else the
    settings' ``feature_repo/``."""
    from mlops.config import REPO_ROOT

    fs = feature_sets.feature_set(feature_set)
    if not fs.repo:
        return (settings or get_settings()).feature_repo
    path = Path(fs.repo)
    return path if path.is_absolute() else REPO_ROOT / path


def feast_env(
    settings: Settings | None = None,
    env: dict[str, str] | None = None,
    feature_set: FeatureSetSpec | str | None = None,
) -> dict[str, str]:
    """The values of :data:`FEAST_ENV_VARS`: the environment's, else the embedded defaults.

    A feature set with its own Feast repo (``FeatureSetSpec.repo``) has its own project
    (``FeatureSetSpec.project``, else its name) and embedded stores under ``{feast}/<name>/``;
    configured stores (the environment's) are shared, the project keeps the set's objects apart.
    """
    env = dict(os.environ if env is None else env)
    fs = feature_sets.feature_set(feature_set)
    home = feast_dir(settings) / fs.name if fs.repo else feast_dir(settings)
    defaults = {
        "MLOPS_FEAST_PROJECT": FEAST_PROJECT,
        "MLOPS_FEAST_REGISTRY": json.dumps(
            {
                "registry_type": "file",
                "path": str(home / "registry.db"),
                "registry_store_type": "mlops.features.feature_store.AtomicFileRegistryStore",
                "cache_ttl_seconds": 60,
            }
        ),
        "MLOPS_FEAST_ONLINE_STORE": json.dumps({"type": "sqlite", "path": str(home / "online.db")}),
    }
    values = {k: env.get(k) or v for k, v in defaults.items()}
    if fs.repo:
        values["MLOPS_FEAST_PROJECT"] = fs.project or fs.name
    return values


def source_path(view: str, settings: Settings | None = None) -> str:
    """Path of the offline source of ``view`` as Feast reads it (a directory or ``s3://`` prefix)."""
    uri = layout.features_root((settings or get_settings()).lake_uri, view)
    return str(lake.local_path(uri)) if uri.startswith("file://") else uri


def _config_text(settings: Settings, feature_set: FeatureSetSpec | str | None = None) -> str:
    """``feature_store.yaml`` with ``${VAR}`` expanded (environment over the embedded defaults)."""
    text = (repo_path(settings, feature_set) / "feature_store.yaml").read_text()
    values = {**os.environ, **feast_env(settings, feature_set=feature_set)}
    for name, value in values.items():
        text = text.replace("${" + name + "}", value)
    return text


def repo_config(
    settings: Settings | None = None, feature_set: FeatureSetSpec | str | None = None
) -> RepoConfig:
    """``feature_repo/feature_store.yaml`` with ``${VAR}`` expanded (environment over defaults)."""
    s = settings or get_settings()
    return _parse_config(_config_text(s, feature_set), repo_path(s, feature_set))


def _parse_config(text: str, repo: Path) -> RepoConfig:
    import yaml
    from feast.repo_config import RepoConfig

    config = RepoConfig(**yaml.safe_load(text))
    config.repo_path = repo
    return config


#: (pid, repo path, expanded feature_store.yaml) -> the process's FeatureStore.
_STORES: dict[tuple[int, str, str], FeatureStore] = {}


def get_store(
    settings: Settings | None = None, feature_set: FeatureSetSpec | str | None = None
) -> FeatureStore:
    """The ``FeatureStore`` of ``feature_repo/`` with the stores of the current profile.

    One per process, repo and expanded configuration: a second call returns the same object (its
    registry cache included, refreshed by Feast after ``cache_ttl_seconds``). A forked child builds
    its own (the parent's holds connections).
    """
    from feast import FeatureStore

    s = settings or get_settings()
    text = _config_text(s, feature_set)
    repo = repo_path(s, feature_set)
    key = (os.getpid(), str(repo), text)
    store = _STORES.get(key)
    if store is None:
        _prepare_local_dirs(s, feature_set)
        store = FeatureStore(repo_path=str(repo), config=_parse_config(text, repo))
        _STORES.clear()  # one live configuration at a time; tests switch MLOPS_HOME between modules
        _STORES[key] = store
    return store


def preload(settings: Settings | None = None) -> None:
    """Import everything a retrieval of the current profile needs, opening nothing.

    Resolving the repo configuration imports the registry, online and offline store classes it
    names; the offline store module imports ibis and DuckDB. No connection, file or thread is
    created, so a process may fork tasks afterwards (``mlops.airflow.local_settings`` calls this in
    the scheduler and in Celery workers).
    """
    import feast.feature_store  # noqa: F401
    import feast.infra.passthrough_provider  # noqa: F401
    import ibis.backends.duckdb  # noqa: F401

    import mlops.features.feast_duckdb  # noqa: F401

    repo_config(settings)


def _prepare_local_dirs(settings: Settings, feature_set: FeatureSetSpec | str | None = None) -> None:
    config_env = feast_env(settings, feature_set=feature_set)
    for var in ("MLOPS_FEAST_REGISTRY", "MLOPS_FEAST_ONLINE_STORE"):
        with contextlib.suppress(ValueError):
            block = json.loads(config_env[var])
            path = block.get("path", "")
            if block.get("type", block.get("registry_type")) in ("sqlite", "file") and path:
                Path(path).parent.mkdir(parents=True, exist_ok=True)


def _registry_store_cls() -> type:
    from feast.infra.registry.file import FileRegistryStore

    class _Atomic(FileRegistryStore):
        def _write_registry(self, registry_proto: Any) -> None:
            import uuid

            from feast.utils import _utc_now

            registry_proto.version_id = str(uuid.uuid4())
            registry_proto.last_updated.FromDatetime(_utc_now())
            lake.write_bytes(self._filepath.resolve().as_uri(), registry_proto.SerializeToString())

    return _Atomic


def __getattr__(name: str) -> Any:
    # ``registry_store_type: mlops.features.feature_store.AtomicFileRegistryStore``: Feast's file registry
    # store truncates and rewrites registry.db in place, so a reader can see half a file while a
    # writer works; this one writes a temporary sibling and renames it over (atomic on POSIX).
    # Built lazily so that importing this module does not import Feast.
    if name == "AtomicFileRegistryStore":
        cls = _registry_store_cls()
        cls.__name__ = cls.__qualname__ = "AtomicFileRegistryStore"
        globals()[name] = cls
        return cls
    raise AttributeError(name)


# --------------------------------------------------------------------------------------------------
# Registry lock
# --------------------------------------------------------------------------------------------------


def _lock_key(project: str) -> int:
    digest = hashlib.sha256(f"feast-registry:{project}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _libpq_url(sqlalchemy_url: str) -> str:
    scheme, rest = sqlalchemy_url.split("://", 1)
    return f"{scheme.split('+', 1)[0]}://{rest}"


@contextlib.contextmanager
def registry_lock(
    settings: Settings | None = None,
    timeout: float = LOCK_TIMEOUT_SECONDS,
    feature_set: FeatureSetSpec | str | None = None,
) -> Iterator[None]:
    """Hold the lock that serializes writers of the registry (and of the online store).

    File registry: a ``filelock`` beside ``registry.db``. SQL registry (PostgreSQL): a session-level
    ``pg_advisory_lock`` keyed by the project, held on a dedicated connection.
    """
    s = settings or get_settings()
    env = feast_env(s, feature_set=feature_set)
    registry = _flow(env["MLOPS_FEAST_REGISTRY"])
    project = env["MLOPS_FEAST_PROJECT"]
    started = time.monotonic()
    if registry.get("registry_type", "file") == "sql":
        import psycopg

        url = _libpq_url(str(registry["path"]))
        if not url.startswith("postgresql"):
            raise ValueError(f"registry lock: only PostgreSQL SQL registries are supported, got {url!r}")
        with psycopg.connect(url, autocommit=True) as conn:
            key = _lock_key(project)
            conn.execute("SELECT set_config('lock_timeout', %s, false)", (f"{int(timeout * 1000)}ms",))
            conn.execute("SELECT pg_advisory_lock(%s)", (key,))
            log.info("registry lock (pg advisory %s) acquired in %.1fs", key, time.monotonic() - started)
            try:
                yield
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
        return
    from filelock import FileLock

    path = Path(str(registry.get("path", feast_dir(s) / "registry.db")))
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock", timeout=timeout):
        log.info("registry lock (%s.lock) acquired in %.1fs", path, time.monotonic() - started)
        yield


def _flow(value: str) -> dict[str, Any]:
    import yaml

    out = yaml.safe_load(value)
    if not isinstance(out, dict):
        raise ValueError(f"expected a YAML mapping, got {value!r}")
    return out


# --------------------------------------------------------------------------------------------------
# Apply and materialize
# --------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _settings_env(settings: Settings, feature_set: FeatureSetSpec | str | None = None) -> Iterator[None]:
    """Point the repo modules (which read settings from the environment) at ``settings``."""
    wanted = {
        "MLOPS_HOME": str(settings.home),
        "MLOPS_LAKE_URI": settings.lake_uri,
        **feast_env(settings, feature_set=feature_set),
    }
    saved = {k: os.environ.get(k) for k in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def load_definitions(
    settings: Settings | None = None, feature_set: FeatureSetSpec | str | None = None
) -> dict[str, list[Any]]:
    """Import the feature set's Feast repo afresh and collect its Feast objects by kind."""
    from feast import Entity, FeatureService, FeatureView
    from feast.data_source import DataSource

    s = settings or get_settings()
    found: dict[str, list[Any]] = {
        "data_sources": [],
        "entities": [],
        "feature_views": [],
        "feature_services": [],
    }
    kinds = (
        (Entity, "entities"),
        (FeatureView, "feature_views"),
        (FeatureService, "feature_services"),
        (DataSource, "data_sources"),
    )
    repo = str(repo_path(s, feature_set))
    with _settings_env(s, feature_set):
        sys.path.insert(0, repo)
        try:
            for name in REPO_MODULES:
                sys.modules.pop(name, None)
            for name in REPO_MODULES:
                module = importlib.import_module(name)
                for attr in sorted(vars(module)):
                    obj = getattr(module, attr)
                    for cls, kind in kinds:
                        if isinstance(obj, cls) and all(obj is not o for o in found[kind]):
                            found[kind].append(obj)
        finally:
            sys.path.remove(repo)
            for name in REPO_MODULES:
                sys.modules.pop(name, None)
    return found


def apply(
    settings: Settings | None = None, feature_set: FeatureSetSpec | str | None = None
) -> dict[str, list[str]]:
    """``feast apply`` of the feature set's Feast repo (serialized by :func:`registry_lock`).

    Objects removed from the repo are deleted from the registry, as the CLI does. Returns the names
    applied per kind.
    """
    from feast.repo_contents import RepoContents
    from feast.repo_operations import extract_objects_for_apply_delete

    s = settings or get_settings()
    found = load_definitions(s, feature_set)
    contents = RepoContents(
        projects=[],
        data_sources=found["data_sources"],
        entities=found["entities"],
        feature_views=found["feature_views"],
        feature_services=found["feature_services"],
        on_demand_feature_views=[],
        stream_feature_views=[],
        label_views=[],
        permissions=[],
    )
    with registry_lock(s, feature_set=feature_set):
        store = get_store(s, feature_set)
        store.refresh_registry()  # the process's store may have cached what another writer changed
        to_apply, to_delete, _, _ = extract_objects_for_apply_delete(store.project, store.registry, contents)
        store.apply(to_apply, objects_to_delete=to_delete, partial=False)
    applied = {kind: sorted(o.name for o in objs) for kind, objs in found.items()}
    log.info("feast apply (project %s): %s", store.project, applied)
    return applied


def _as_utc(value: str | date | datetime) -> datetime:
    """``YYYY-MM-DD``/date -> local (New York) midnight of that day in UTC; datetimes -> UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value) if "T" in value or " " in value else date.fromisoformat(value)
    if not isinstance(value, datetime):
        return compute.local_midnight(value).to_pydatetime()
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def materialize(
    start: str | date | datetime,
    end: str | date | datetime,
    settings: Settings | None = None,
    *,
    overlap: timedelta = MATERIALIZE_OVERLAP,
    method: str = "partitions",
    feature_set: FeatureSetSpec | str | None = None,
) -> tuple[datetime, datetime]:
    """Materialize feature rows with event time in [start - overlap, end] into the online store.

    ``method="partitions"`` (default) reads only the day partitions that can hold rows of the
    interval, keeps the latest row per key and writes it with ``write_to_online_store``, then
    records the interval in the registry as ``feast materialize`` does: its cost follows the
    interval, not the size of the lake. ``method="feast"`` calls ``FeatureStore.materialize``,
    whose file offline store reads every partition of every view on each call. Both give the same
    online rows. The feature set's static views are loaded whole each time.

    Serialized with :func:`apply` by :func:`registry_lock` (materialization also writes the
    registry). Idempotent: rematerializing an interval writes the same latest row per key.
    Returns the interval actually materialized.
    """
    if method not in ("partitions", "feast"):
        raise ValueError(f"materialize: method must be 'partitions' or 'feast', got {method!r}")
    s = settings or get_settings()
    fs = feature_sets.feature_set(feature_set)
    lo, hi = _as_utc(start) - overlap, _as_utc(end)
    static_start = datetime.fromisoformat(fs.static_since.replace("Z", "+00:00"))
    with registry_lock(s, feature_set=fs):
        store = get_store(s, fs)
        store.refresh_registry()
        if method == "feast":
            store.materialize(start_date=lo, end_date=hi, feature_views=list(fs.daily_views))
        else:
            rows = _push_partitions(store, lo, hi, s, fs)
            log.info("pushed %s rows per view for %s .. %s", rows, lo.isoformat(), hi.isoformat())
        if fs.static_views:
            store.materialize(start_date=static_start, end_date=hi, feature_views=list(fs.static_views))
    log.info("materialized %s .. %s (project %s)", lo.isoformat(), hi.isoformat(), store.project)
    return lo, hi


def _push_partitions(
    store: FeatureStore, lo: datetime, hi: datetime, settings: Settings, fs: FeatureSetSpec
) -> dict[str, int]:
    """Latest row per key with event time in [lo, hi] of each daily view -> online store."""
    from zoneinfo import ZoneInfo

    import pandas as pd

    from mlops.schema import TIMEZONE

    tz = ZoneInfo(TIMEZONE)
    # A row of partition D has its event time in [D 00:00, D+1 ~06:00) local: D-1 .. day(hi) suffice.
    first = (lo.astimezone(tz).date() - timedelta(days=1)).isoformat()
    days = compute.day_range(first, hi.astimezone(tz).date())
    written: dict[str, int] = {}
    lake_root = settings.lake_uri
    for view in fs.daily_views:
        spec = fs.view(view)
        key, feats = spec.join_key, list(spec.features)
        parts = [
            lake.read_parquet(uri)
            for uri in (layout.feature_file(lake_root, view, ds) for ds in days)
            if lake.exists(uri)
        ]
        written[view] = 0
        if parts:
            table = pd.concat(parts, ignore_index=True)
            ts = table[compute.TIMESTAMP]
            table = table[(ts >= pd.Timestamp(lo)) & (ts <= pd.Timestamp(hi))]
            table = table.sort_values(compute.TIMESTAMP, kind="stable").drop_duplicates(key, keep="last")
            if len(table):
                store.write_to_online_store(
                    view, df=table[[key, compute.TIMESTAMP, *feats]].reset_index(drop=True)
                )
                written[view] = len(table)
        store.registry.apply_materialization(store.get_feature_view(view), store.project, lo, hi)
    return written


# --------------------------------------------------------------------------------------------------
# Retrieval
# --------------------------------------------------------------------------------------------------


def _feature_service(store: FeatureStore, service: str = FEATURE_SERVICE) -> Any:
    return store.get_feature_service(service)


def feast_feature_names(service: Any = None, feature_set: FeatureSetSpec | str | None = None) -> list[str]:
    """Feast feature columns served by ``service`` (a Feast ``FeatureService``; default: every view
    of the feature set), without view prefixes."""
    if service is None:
        return feature_sets.feature_set(feature_set).feast_features()
    return [f.name for projection in service.feature_view_projections for f in projection.features]


def historical_values(
    frame: pd.DataFrame,
    settings: Settings | None = None,
    store: FeatureStore | None = None,
    chunk_rows: int | None = None,
    service: str | None = None,
    feature_set: FeatureSetSpec | str | None = None,
) -> pd.DataFrame:
    """Point-in-time Feast values of the rows ``frame`` (aligned with its index), at the feature
    set's time column, of the feature service ``service``: a float64 column per numeric feature
    (NaN when unknown), an object column (None when unknown) per other one."""
    import numpy as np
    import pandas as pd

    fs = feature_sets.feature_set(feature_set)
    every_view = fs.feature_service or FEATURE_SERVICE  # the set's service of every view
    service = service or every_view
    store = store or get_store(settings, fs)
    if frame.empty and service == every_view:  # no registry read for nothing to look up
        return pd.DataFrame(index=frame.index, columns=feast_feature_names(None, fs), dtype="float64")
    feature_service = _feature_service(store, service)
    names = feast_feature_names(None if service == every_view else feature_service, fs)
    if frame.empty:
        return pd.DataFrame(index=frame.index, columns=names, dtype="float64")
    # Time-ordered chunks of HISTORICAL_CHUNK_ROWS: each call reads only the partitions of its
    # rows' window (mlops.features.feast_duckdb), and DuckDB's working set (several KB per entity
    # row: the joins of all views at once) stays bounded. Every entity row comes back; a view with
    # no row of the key within its TTL gives nulls for that view only. Memory: the entity keys
    # (eight string columns) exist for one chunk at a time, a chunk's result is read from Arrow
    # column by column straight into preallocated arrays (one float64 block for the numeric
    # features, written in place), so the values of all rows are held once, not once per chunk
    # plus a concatenation plus a sort (benchmarks/bench_memory.py, section 8 of its README).
    numeric = [n for n in names if n in _numeric_features(feature_service, store)]
    others = [n for n in names if n not in numeric]
    n = len(frame)
    block = np.full((len(numeric), n), np.nan)
    objects = {name: np.full(n, None, dtype=object) for name in others}
    order = np.argsort(pd.to_datetime(frame[fs.time_column], utc=True).to_numpy(), kind="stable")
    size = chunk_rows or HISTORICAL_CHUNK_ROWS
    for first in range(0, n, size):
        rows = order[first : first + size]
        got, where = _historical_chunk(store, feature_service, frame, rows, fs)
        for j, name in enumerate(numeric):
            block[j, rows] = _as_float(got.column(name))[where]
        for name in others:
            objects[name][rows] = got.column(name).to_numpy(zero_copy_only=False)[where]
        del got
    # One float64 block, no copy (the block is written above; DataFrame wraps its transpose).
    out = pd.DataFrame(block.T, index=frame.index, columns=numeric, copy=False)
    for name in others:  # in the order of ``names``: each goes where it belongs, no reordering copy
        out.insert(names.index(name), name, objects.pop(name))
    return out


def _numeric_features(feature_service: Any, store: FeatureStore) -> set[str]:
    """Names of the features of ``feature_service`` with a numeric Feast type (float64 here)."""
    from feast.types import PrimitiveFeastType

    numeric = {
        PrimitiveFeastType.FLOAT32,
        PrimitiveFeastType.FLOAT64,
        PrimitiveFeastType.INT32,
        PrimitiveFeastType.INT64,
        PrimitiveFeastType.BOOL,
    }
    return {
        f.name
        for projection in feature_service.feature_view_projections
        for f in projection.features
        if f.dtype in numeric
    }


def _as_float(column: Any) -> Any:
    """An Arrow column as a float64 numpy array (null -> NaN)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if not pa.types.is_floating(column.type):
        column = pc.cast(column, pa.float64())
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype="float64")


def _historical_chunk(
    store: FeatureStore, feature_service: Any, frame: pd.DataFrame, rows: Any, fs: FeatureSetSpec
) -> tuple[Any, Any]:
    """``get_historical_features`` of the rows at positions ``rows``: the result (an Arrow table,
    one row per distinct entity row) and, per row of ``rows``, its row in that table."""
    import numpy as np

    key_cols = [compute.TIMESTAMP, *fs.join_keys]
    keys = fs.entities(frame.iloc[rows]).reset_index(drop=True)
    # One entity row per distinct key (Feast joins on the keys: a repeated one would repeat rows).
    group = keys.groupby(key_cols, sort=False, dropna=False).ngroup().to_numpy()
    unique = keys.drop_duplicates(key_cols).reset_index(drop=True)
    del keys
    unique[_ENTITY_ROW] = np.arange(len(unique), dtype="int64")
    got = store.get_historical_features(entity_df=unique, features=feature_service).to_arrow()
    if got.num_rows != len(unique):
        raise RuntimeError(
            f"get_historical_features returned {got.num_rows} rows for {len(unique)} entity rows: "
            "Feast's DuckDB offline store keeps every entity row; check the offline store in "
            "feature_repo/feature_store.yaml"
        )
    position = np.empty(len(unique), dtype="int64")  # entity row -> its row in the result
    position[got.column(_ENTITY_ROW).to_numpy()] = np.arange(got.num_rows)
    return got, position[group]


def historical_frame(
    frame: pd.DataFrame,
    settings: Settings | None = None,
    store: FeatureStore | None = None,
    service: str | None = None,
    feature_set: FeatureSetSpec | str | None = None,
) -> pd.DataFrame:
    """The feature set's model features of the rows ``frame`` as of their prediction time (point
    in time, any rows); features that ``service`` does not serve are null."""
    fs = feature_sets.feature_set(feature_set)
    values = historical_values(frame, settings, store, service=service, feature_set=fs)
    return fs.assemble(frame, values)


def training_frame(
    start: str | date | datetime,
    end: str | date | datetime,
    settings: Settings | None = None,
    *,
    label: str | None = None,
    labels: Callable[[pd.DataFrame], pd.Series] | None = None,
    label_dtype: str | None = None,
    service: str | None = None,
    feature_set: FeatureSetSpec | str | None = None,
) -> pd.DataFrame:
    """Every labelled curated row of the feature set's driving feed with its time in [start, end),
    with the set's model features.

    Columns: the set's id, time and day columns, ``label`` (``labels(curated)``, as
    ``label_dtype``; each defaults to the default model spec's, :func:`mlops.spec.model.model_spec`),
    then ``FeatureSetSpec.features`` in order (from the feature service ``service``).
    ``start``/``end`` as ``YYYY-MM-DD`` mean local midnight of those days (so days in [start,
    end)); datetimes are instants (naive = UTC). Rows are sorted by time then id.
    """
    import pandas as pd

    from mlops.spec.model import model_spec

    fs = feature_sets.feature_set(feature_set)
    if label is None or labels is None or label_dtype is None:
        default = model_spec()
        label = default.label if label is None else label
        labels = default.labels if labels is None else labels
        label_dtype = default.label_dtype if label_dtype is None else label_dtype
    s = settings or get_settings()
    lo, hi = _as_utc(start), _as_utc(end)
    idc, tsc, dayc = fs.id_column, fs.time_column, fs.day_column
    days = compute.day_range((lo - timedelta(days=1)).date(), (hi + timedelta(days=1)).date())
    curated = compute.read_curated(days, s, fs.driving)
    values = labels(curated)
    ts = curated[tsc]
    mask = (ts >= pd.Timestamp(lo)) & (ts < pd.Timestamp(hi)) & values.notna()
    order = curated.loc[mask, [tsc, idc]].sort_values([tsc, idc], kind="stable").index
    label_values = values.loc[order].astype(label_dtype).rename(label).reset_index(drop=True)
    # One copy of the window's rows, only the columns the retrieval reads; the whole curated
    # frame goes before the retrieval starts (memory at 10x: benchmarks/bench_memory.py).
    keep = [idc, tsc, dayc, *(c for c in fs.entity_columns if c in curated and c not in (idc, tsc, dayc))]
    rows = curated.loc[order, keep].reset_index(drop=True)
    del curated, values, ts, mask, order
    out = historical_frame(rows, s, service=service, feature_set=fs)
    # The meta columns and the label go in front of the feature block (no copy of the block).
    for position, (name, column) in enumerate(
        [(idc, rows[idc]), (tsc, rows[tsc]), (dayc, rows[dayc]), (label, label_values)]
    ):
        out.insert(position, name, column)
    log.info("training frame [%s, %s): %d rows", lo.isoformat(), hi.isoformat(), len(out))
    return out


def online_values(
    frame: pd.DataFrame,
    settings: Settings | None = None,
    store: FeatureStore | None = None,
    service: str | None = None,
    feature_set: FeatureSetSpec | str | None = None,
) -> pd.DataFrame:
    """Feast values of the rows ``frame`` from the online store (aligned with its index), of ``service``."""
    import pandas as pd

    fs = feature_sets.feature_set(feature_set)
    every_view = fs.feature_service or FEATURE_SERVICE  # the set's service of every view
    service = service or every_view
    store = store or get_store(settings, fs)
    keys = fs.entities(frame)
    rows = keys[list(fs.join_keys)].to_dict(orient="records")
    if not rows and service == every_view:
        return pd.DataFrame(index=frame.index, columns=feast_feature_names(None, fs), dtype="float64")
    feature_service = _feature_service(store, service)
    names = feast_feature_names(None if service == every_view else feature_service, fs)
    if not rows:
        return pd.DataFrame(index=frame.index, columns=names, dtype="float64")
    response = store.get_online_features(features=feature_service, entity_rows=rows)
    values = pd.DataFrame(response.to_dict())
    values.index = frame.index
    return values[names]


def online_frame(
    frame: pd.DataFrame,
    settings: Settings | None = None,
    feature_set: FeatureSetSpec | str | None = None,
) -> pd.DataFrame:
    """The feature set's model features of request rows: the online store's values + request-time
    and derived features (``FeatureSetSpec.model_frame``), aligned with ``frame``' index."""
    fs = feature_sets.feature_set(feature_set)
    return fs.assemble(frame, online_values(frame, settings, feature_set=fs))


# --------------------------------------------------------------------------------------------------
# Command line (python -m mlops.features.feature_store ...)
# --------------------------------------------------------------------------------------------------


def bench(
    day: str,
    month_start: str,
    month_end: str,
    year: tuple[str, str] | None,
    settings: Settings | None = None,
    method: str = "partitions",
) -> dict:
    """Time build + materialize of one day and one month, and a year-long ``training_frame``.

    Needs the curated partitions in the lake (and, for the year, the year's feature tables built).
    Reports wall and CPU seconds (all threads of this process) for each step.
    """
    s = settings or get_settings()
    out: dict[str, Any] = {}

    def timed(name: str, fn: Any) -> Any:
        wall, cpu = time.perf_counter(), time.process_time()
        value = fn()
        out[name] = {
            "wall_s": round(time.perf_counter() - wall, 2),
            "cpu_s": round(time.process_time() - cpu, 2),
        }
        log.info("bench %s: %s", name, out[name])
        return value

    timed("import_feast_and_get_store", lambda: get_store(s))
    timed("feast_apply", lambda: apply(s))
    next_day = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
    timed("day_build", lambda: compute.build_feature_tables([day], s, include_dependents=False))
    timed("day_materialize", lambda: materialize(day, next_day, s, method=method))
    days = compute.day_range(month_start, month_end)
    after = (date.fromisoformat(month_end) + timedelta(days=1)).isoformat()
    timed("month_build", lambda: compute.build_feature_tables(days, s, include_dependents=False))
    timed("month_materialize", lambda: materialize(month_start, after, s, method=method))
    if not year:
        return out
    frame = timed("year_training_frame", lambda: training_frame(year[0], year[1], s))
    step = out["year_training_frame"]
    out["year_rows"] = len(frame)
    out["year_rows_per_s_wall"] = round(len(frame) / step["wall_s"], 1)
    out["year_rows_per_s_cpu"] = round(len(frame) / max(step["cpu_s"], 1e-9), 1)
    features = list(feature_sets.feature_set().features)
    out["year_null_rate"] = round(float(frame[features].isna().to_numpy().mean()), 4)
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m mlops.features.feature_store", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("env", help="print the MLOPS_FEAST_* values feature_store.yaml is expanded with")
    sub.add_parser("apply", help="feast apply (serialized)")
    mat = sub.add_parser("materialize", help="materialize [START - 1 day, END] (YYYY-MM-DD or ISO)")
    mat.add_argument("start")
    mat.add_argument("end")
    build = sub.add_parser("build", help="build the feature tables of days START..END (inclusive)")
    build.add_argument("start")
    build.add_argument("end")
    b = sub.add_parser(
        "bench", help="time build+materialize of a day and a month, and a year's training frame"
    )
    b.add_argument("--day", default="2013-06-14")
    b.add_argument("--month", nargs=2, default=["2013-06-01", "2013-06-30"], metavar=("FIRST", "LAST"))
    b.add_argument("--year", nargs=2, default=["2013-01-01", "2014-01-01"], metavar=("START", "END"))
    b.add_argument("--no-year", action="store_true", help="skip the year-long training frame")
    b.add_argument("--method", choices=["partitions", "feast"], default="partitions")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.cmd == "env":
        for k, v in feast_env().items():
            print(f"export {k}='{v}'")
    elif args.cmd == "apply":
        print(json.dumps(apply(), indent=2))
    elif args.cmd == "materialize":
        lo, hi = materialize(args.start, args.end)
        print(json.dumps({"start": lo.isoformat(), "end": hi.isoformat()}))
    elif args.cmd == "bench":
        year = None if args.no_year else (args.year[0], args.year[1])
        print(json.dumps(bench(args.day, args.month[0], args.month[1], year, method=args.method), indent=2))
    elif args.cmd == "build":
        print(
            json.dumps(
                compute.build_feature_tables(compute.day_range(args.start, args.end)).as_dict(), indent=2
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
