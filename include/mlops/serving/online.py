"""Online features for one request: the Feast online store read directly, and the single-row path.

Why not ``FeatureStore.get_online_features``
--------------------------------------------
Profiled on the embedded SQLite online store, a one-flight ``get_online_features`` call spends
~95% of its time outside the store: it resolves the feature service from the registry proto on
every call (rebuilding every ``FeatureView``/``Field`` object, each checked by ``typeguard``),
then the pandas assembly of :func:`mlops.features.compute.model_frame` adds ~60 column operations for a
single row. The SQLite reads themselves are eight indexed lookups (tens of microseconds each).

:class:`OnlineFeatureReader` resolves the feature service ``flight_delay_v1`` once (warm
``FeatureStore``), then calls the provider's ``online_read`` for each of its feature views with
the entity keys of the request. That is the same call ``get_online_features`` ends in, on the same
tables, for any online store type (SQLite embedded, Redis scale-out).

No training/serving skew
------------------------
The values computed here for one flight are those of :mod:`mlops.features.compute` (the code that builds
training and batch-scoring frames) on the same flight, by construction and by test:

* entity keys: :func:`entity_keys` is :func:`mlops.features.compute.entity_keys` for one row;
* request-time features: :func:`request_values` is :func:`mlops.features.compute.request_features`;
* derived features: :func:`feature_row` applies :func:`mlops.features.compute.derive_features`' rules and
  :func:`mlops.features.compute.model_frame`'s typing (numbers to float, unknown categories to missing).

``tests/unit/test_serving_features.py`` checks every value against the pandas functions over
whole days (DST switches, unknown tail numbers, unknown categories, missing Feast values);
``tests/e2e/test_serving_http.py`` checks the served features and probabilities against
``get_historical_features`` (the training path) for flights at the same instant.
"""

from __future__ import annotations

import collections
import logging
import math
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from mlops.config import FEATURE_SERVICE
from mlops.features import compute
from mlops.schema import TIMEZONE

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import pandas as pd
    from feast import FeatureStore

log = logging.getLogger(__name__)

NAN = float("nan")
_LOCAL = ZoneInfo(TIMEZONE)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


@dataclass(frozen=True)
class FlightRequest:
    """One flight as the service receives it (validated and normalized by ``serving.schemas``).

    ``sched_dep_ts`` is timezone-aware UTC; ``tailnum`` is None when unknown.
    """

    carrier: str
    flight: int
    origin: str
    dest: str
    sched_dep_ts: datetime
    tailnum: str | None = None

    @property
    def local(self) -> datetime:
        return self.sched_dep_ts.astimezone(_LOCAL)

    @property
    def ds(self) -> str:
        """Local (New York) date of the scheduled departure: the flight's partition date."""
        return self.local.strftime("%Y-%m-%d")

    @property
    def flight_id(self) -> str:
        """``{ds}_{carrier}_{flight}_{origin}``, as in the curated lake."""
        return f"{self.ds}_{self.carrier}_{self.flight}_{self.origin}"


def to_frame(flights: Sequence[FlightRequest]) -> pd.DataFrame:
    """Request rows as the pandas functions of :mod:`mlops.features.compute` take them (tests, fallbacks)."""
    import pandas as pd

    return pd.DataFrame(
        {
            "carrier": pd.array([f.carrier for f in flights], dtype="string"),
            "flight": pd.array([f.flight for f in flights], dtype="int64"),
            "origin": pd.array([f.origin for f in flights], dtype="string"),
            "dest": pd.array([f.dest for f in flights], dtype="string"),
            "sched_dep_ts": pd.to_datetime([f.sched_dep_ts for f in flights], utc=True).astype(
                "datetime64[us, UTC]"
            ),
            "tailnum": pd.array([f.tailnum for f in flights], dtype="string"),
        }
    )


# --------------------------------------------------------------------------------------------------
# Scalar twins of mlops.features.compute (one flight, no pandas)
# --------------------------------------------------------------------------------------------------


def entity_keys(flight: FlightRequest) -> dict[str, str]:
    """The Feast join keys of one flight (:func:`mlops.features.compute.entity_keys` for one row)."""
    local = flight.local
    day = local.strftime("%Y-%m-%d")
    hour = local.strftime("%Y-%m-%dT%H")
    tail = flight.tailnum if flight.tailnum is not None else compute.UNKNOWN
    return {
        compute.FLIGHT_DAY: f"{flight.carrier}|{flight.flight}|{flight.origin}|{day}",
        compute.ORIGIN_HOUR: f"{flight.origin}|{hour}",
        compute.ORIGIN_DAY: f"{flight.origin}|{day}",
        compute.CARRIER_DAY: f"{flight.carrier}|{day}",
        compute.ROUTE_DAY: f"{flight.origin}-{flight.dest}|{day}",
        compute.TAILNUM: tail,
        compute.TAILNUM_DAY: f"{tail}|{day}",
    }


@cache
def _categories() -> dict[str, frozenset[str]]:
    return {name: frozenset(dtype.categories) for name, dtype in compute.categorical_dtypes().items()}


def _epoch_seconds(ts: datetime) -> float:
    # mlops.features.compute._epoch_seconds: int64 microseconds // 1e6 (floored to whole seconds).
    return float(((ts - _EPOCH) // _MICRO) // 1_000_000)


def request_values(flight: FlightRequest) -> dict[str, Any]:
    """:func:`mlops.features.compute.request_features` for one flight (categories: str, or None if unknown)."""
    local = flight.local
    cats = _categories()
    distance = compute._route_distance().get((flight.origin, flight.dest), NAN)
    return {
        "sched_dep_hour": float(local.hour),
        "sched_dep_minute": float(local.minute),
        "weekday": float(local.weekday()),
        "month": float(local.month),
        "distance": float(distance),
        "carrier": flight.carrier if flight.carrier in cats["carrier"] else None,
        "origin": flight.origin if flight.origin in cats["origin"] else None,
        "dest": flight.dest if flight.dest in cats["dest"] else None,
    }


def _num(value: Any) -> float:
    """``pd.to_numeric(errors="coerce")`` for one value (None, NaN, strings -> NaN)."""
    if value is None:
        return NAN
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return NAN


def feature_row(flight: FlightRequest, feast_values: Mapping[str, Any]) -> dict[str, Any]:
    """Every :data:`mlops.features.compute.MODEL_FEATURES` value of one flight, as :func:`model_frame` types it.

    Numbers are floats (NaN when unknown); categorical features are their string value, or None
    when missing or outside the fixed categories.
    """
    row: dict[str, Any] = request_values(flight)
    for name in compute.MODEL_FEATURES:
        if name in row or name in compute.DERIVED_FEATURES:
            continue
        value = feast_values.get(name)
        if name in compute.CATEGORICAL_FEATURES:
            ok = value is not None and not (isinstance(value, float) and math.isnan(value))
            row[name] = value if ok and value in _categories()[name] else None
        else:
            row[name] = _num(value)
    now = _epoch_seconds(flight.sched_dep_ts)
    row["aircraft_age_years"] = float(flight.local.year) - _num(feast_values.get("plane_year"))
    row["prev_leg_gap_min"] = (now - _num(feast_values.get("prev_leg_sched_epoch"))) / 60.0
    row["wx_obs_age_min"] = (now - _num(feast_values.get("wx_obs_epoch"))) / 60.0
    return row


# --------------------------------------------------------------------------------------------------
# The online store, read directly
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _View:
    view: Any  # feast.FeatureView
    name: str
    join_key: str
    features: list[str]


def _python_value(proto: Any) -> Any:
    """A Feast ``ValueProto`` as a Python scalar (None when null or unset)."""
    kind = proto.WhichOneof("val")
    if kind is None or kind == "null_val":
        return None
    return getattr(proto, kind)


class OnlineFeatureReader:
    """Reads the feature service's values of request rows straight from the provider's online store.

    Build it once (it resolves the feature service from the registry); :meth:`read` is thread-safe.
    """

    def __init__(self, store: FeatureStore, service: str = FEATURE_SERVICE, *, direct: bool = True) -> None:
        self.store = store
        self.service = service
        self.config = store.config
        self.provider = store.provider
        fs = store.get_feature_service(service)
        views = []
        for proj in fs.feature_view_projections:
            fv = store.get_feature_view(proj.name)
            keys = [c.name for c in fv.entity_columns]
            if len(keys) != 1:
                raise ValueError(f"feature view {fv.name}: expected one join key, got {keys}")
            views.append(_View(fv, fv.name, keys[0], [f.name for f in proj.features]))
        self.views: tuple[_View, ...] = tuple(views)
        self.feature_names: list[str] = [f for v in views for f in v.features]
        self.online_store_type = str(getattr(self.config.online_store, "type", "?"))
        self._lock = threading.Lock()
        self._sqlite = _SqliteDirect.for_reader(self) if direct else None
        #: ``"sqlite-direct"`` (one SQL query per request) or ``"provider"`` (``online_read`` per view).
        self.read_path = "sqlite-direct" if self._sqlite is not None else "provider"

    def read_keys(self, keys: Sequence[Mapping[str, str]]) -> tuple[list[dict[str, Any]], list[list[str]]]:
        """Feature values per entity-key row, and the views that had no row for it."""
        if self._sqlite is not None:
            return self._sqlite.read_keys(keys)
        return self.read_keys_provider(keys)

    def read_keys_provider(
        self, keys: Sequence[Mapping[str, str]]
    ) -> tuple[list[dict[str, Any]], list[list[str]]]:
        """:meth:`read_keys` through the provider's ``online_read``, one call per view (any store)."""
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.protos.feast.types.Value_pb2 import Value

        out: list[dict[str, Any]] = [{} for _ in keys]
        missing: list[list[str]] = [[] for _ in keys]
        for v in self.views:
            unique: dict[str, int] = {}
            positions: list[int] = []
            for row in keys:
                positions.append(unique.setdefault(row[v.join_key], len(unique)))
            protos = [EntityKey(join_keys=[v.join_key], entity_values=[Value(string_val=k)]) for k in unique]
            with self._lock:
                rows = self.provider.online_read(self.config, v.view, protos, v.features)
            for i, pos in enumerate(positions):
                _ts, values = rows[pos]
                if values is None:
                    missing[i].append(v.name)
                    continue
                target = out[i]
                for name in v.features:
                    proto = values.get(name)
                    target[name] = None if proto is None else _python_value(proto)
        return out, missing

    def read(self, flights: Sequence[FlightRequest]) -> tuple[list[dict[str, Any]], list[list[str]]]:
        """Feast values of ``flights`` (dicts by feature name) and, per flight, the views not found."""
        return self.read_keys([entity_keys(f) for f in flights])


@lru_cache(maxsize=1 << 16)
def _key_bytes(join_key: str, value: str, version: int) -> bytes:
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    key = EntityKey(join_keys=[join_key], entity_values=[Value(string_val=value)])
    return serialize_entity_key(key, entity_key_serialization_version=version)


@lru_cache(maxsize=1 << 16)
def _value_of(blob: bytes) -> Any:
    from feast.protos.feast.types.Value_pb2 import Value

    proto = Value()
    proto.ParseFromString(blob)
    return _python_value(proto)


class _SqliteDirect:
    """The SQLite online store read with one ``UNION ALL`` query over the service's view tables.

    The same tables, keys (Feast's entity-key serialization) and value protos as
    ``SqliteOnlineStore.online_read``, minus what a request does not need: one query instead of one
    per view, no timestamp parsing, no proto object per value (values and keys are decoded once
    and cached: a day's flights share most of them). Read-only connection, one per thread.

    The query text depends on how many distinct keys each view has in the request; the texts are
    kept in an LRU of :attr:`SQL_CACHE_SIZE` entries (a single-flight request always has the same
    one), so batches crafted to have ever new shapes cannot grow memory.
    """

    #: Most query texts kept (each is up to ~16 KB for a 1,000-flight batch).
    SQL_CACHE_SIZE = 64

    def __init__(self, db_path: str, tables: list[str], views: Sequence[_View], version: int) -> None:
        self.db_path = db_path
        self.tables = tables
        self.views = tuple(views)
        self.version = version
        self._wanted = [frozenset(v.features) for v in views]
        self._local = threading.local()
        self._sql: collections.OrderedDict[tuple[int, ...], str] = collections.OrderedDict()
        self._sql_lock = threading.Lock()

    @classmethod
    def for_reader(cls, reader: OnlineFeatureReader) -> _SqliteDirect | None:
        config = reader.config
        store_type = str(getattr(config.online_store, "type", ""))
        if store_type != "sqlite" and not store_type.endswith("SqliteOnlineStore"):
            return None
        try:
            from feast.infra.online_stores.sqlite import SqliteOnlineStore, _table_id

            versioning = bool(getattr(config.registry, "enable_online_feature_view_versioning", False))
            tables = [_table_id(config.project, v.view, versioning) for v in reader.views]
            db_path = SqliteOnlineStore._get_db_path(config)
        except Exception:  # a Feast without these internals: the provider path works everywhere
            log.warning("direct SQLite online read unavailable; using the provider", exc_info=True)
            return None
        return cls(db_path, tables, reader.views, int(config.entity_key_serialization_version))

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            uri = f"file:{quote(self.db_path)}?mode=ro"
            conn = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=30)
            self._local.conn = conn
        return conn

    def _query(self, counts: tuple[int, ...]) -> str:
        with self._sql_lock:
            sql = self._sql.get(counts)
            if sql is not None:
                self._sql.move_to_end(counts)
                return sql
        parts = [
            f'SELECT {i}, entity_key, feature_name, value FROM "{table}" '
            f"WHERE entity_key IN ({','.join('?' * n)})"
            for i, (table, n) in enumerate(zip(self.tables, counts, strict=True))
        ]
        sql = " UNION ALL ".join(parts)
        with self._sql_lock:
            self._sql[counts] = sql
            while len(self._sql) > self.SQL_CACHE_SIZE:
                self._sql.popitem(last=False)
        return sql

    def read_keys(self, keys: Sequence[Mapping[str, str]]) -> tuple[list[dict[str, Any]], list[list[str]]]:
        out: list[dict[str, Any]] = [{} for _ in keys]
        found: list[list[bool]] = [[False] * len(self.views) for _ in keys]
        # Per view: the distinct key blobs of the request and the request rows of each.
        where: list[dict[bytes, list[int]]] = []
        params: list[bytes] = []
        for v in self.views:
            rows_of: dict[bytes, list[int]] = {}
            for i, row in enumerate(keys):
                rows_of.setdefault(_key_bytes(v.join_key, row[v.join_key], self.version), []).append(i)
            where.append(rows_of)
            params.extend(rows_of)
        sql = self._query(tuple(len(w) for w in where))
        for j, key, name, blob in self._conn().execute(sql, params):
            rows = where[j][key]
            for i in rows:
                found[i][j] = True
            if name not in self._wanted[j]:
                continue
            value = None if blob is None else _value_of(blob)
            for i in rows:
                out[i][name] = value
        missing = [[v.name for v, ok in zip(self.views, row, strict=True) if not ok] for row in found]
        # Every requested feature of a found view has a key, as in the provider path.
        for i, row in enumerate(found):
            for v, ok in zip(self.views, row, strict=True):
                if ok:
                    target = out[i]
                    for name in v.features:
                        target.setdefault(name, None)
        return out, missing


def load_reader(settings: Any = None) -> OnlineFeatureReader:
    """A reader on the profile's feature store (``mlops.features.feature_store.get_store``)."""
    from mlops.features.feature_store import get_store

    return OnlineFeatureReader(get_store(settings))
