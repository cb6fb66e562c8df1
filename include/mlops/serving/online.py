"""Online predictions for any model spec: what a spec supplies, and its online features read fast.

What a spec supplies
--------------------
``ModelSpec.online`` names (``module:ATTRIBUTE``) an :class:`OnlineSpec`: the request item (a
strict pydantic model whose fields are the spec's ``request_fields``), how a validated item becomes
the row the service scores, the row's Feast entity keys, the model inputs of one row (Feast values
plus request-time and derived features, computed with the training code's rules), and the words
and documentation of the service (``/docs``). :func:`online_spec` resolves and checks it. The flight
models share :mod:`mlops.flight_delay.serving` (the delay classifier's ``DELAY``, the air-time
regressor's :mod:`mlops.air_time.serving`).

Why not ``FeatureStore.get_online_features``
--------------------------------------------
Profiled on the embedded SQLite online store, a one-row ``get_online_features`` call spends ~95%
of its time outside the store: it resolves the feature service from the registry proto on every
call (rebuilding every ``FeatureView``/``Field`` object, each checked by ``typeguard``), then the
pandas assembly of :func:`mlops.flight_delay.features.model_frame` adds ~60 column operations for a
single row. The SQLite reads themselves are eight indexed lookups (tens of microseconds each).

:class:`OnlineFeatureReader` resolves the spec's feature service once (warm ``FeatureStore``),
then calls the provider's ``online_read`` for each of its feature views with the entity keys of
the request. That is the same call ``get_online_features`` ends in, on the same tables, for any
online store type (SQLite embedded, Redis scale-out).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import sqlite3
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from feast import FeatureStore

    from mlops.spec.model import ModelSpec

log = logging.getLogger(__name__)

#: Names that lived here before the flight-specific code moved to :mod:`mlops.flight_delay.serving`.
_MOVED = frozenset(
    {"FlightRequest", "entity_keys", "feature_row", "request_values", "to_frame", "NAN", "_categories"}
)


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        from mlops.flight_delay import serving

        return getattr(serving, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True, eq=False)
class OnlineSpec:
    """What a model spec supplies for online predictions (``ModelSpec.online``).

    The service validates each request item with ``item_model`` (strict pydantic; its fields are
    the spec's ``request_fields``), then ``semantic_errors`` (a well-formed item the model cannot
    score: 422s the OpenAPI schema cannot express, of ``semantic_error_types``), turns it into a
    row with ``to_row``, reads the row's Feast values by ``entity_keys`` and scores
    ``feature_row(row, values)``. A prediction starts with ``describe_row(row)`` (the spec's
    ``id_column`` and ``time_column``), then the spec's ``prediction_column`` and, with a
    ``decision``, that boolean (prediction >= the service's threshold). A row needs ``.ds`` (its
    local day: the prediction log's partition) and ``.key`` (its id: the canary's sticky hash).
    """

    item_model: Any  # a pydantic BaseModel subclass
    to_row: Callable[[Any], Any]
    entity_keys: Callable[[Any], dict[str, str]]
    feature_row: Callable[[Any, Mapping[str, Any]], dict[str, Any]]
    describe_row: Callable[[Any], dict[str, Any]]
    #: A row used to warm every lazy path (reference data, the store connection) before serving.
    warmup: Any
    #: What one request item is called, and the batch's key (``{"flights": [...]}``).
    item: str = "item"
    items: str = "items"
    example: Mapping[str, Any] = field(default_factory=dict)
    #: Markdown: the fields of one item (the ``POST /predict`` description).
    item_doc: str = ""
    semantic_errors: Callable[[list[Any], Any], list[dict[str, Any]]] | None = None
    semantic_error_types: frozenset[str] = frozenset()
    #: Loads reference data (vocabularies, lookup tables) before the service takes requests.
    prepare: Callable[[], Any] | None = None
    title: str = "Prediction service"
    summary: str = ""
    #: The prediction field's description (default: the spec's ``description``).
    prediction_doc: str = ""
    route_summary: str = ""
    #: A boolean field ``prediction >= threshold`` (a classifier's decision), or None (no threshold).
    decision: str | None = None
    decision_doc: str = ""
    #: The ``decision`` label of ``mlops_serving_predictions_total`` when true, when false.
    decision_labels: tuple[str, str] = ("positive", "negative")

    def replace(self, **changes: Any) -> OnlineSpec:
        return dataclasses.replace(self, **changes)


#: JSON types of ``ModelSpec.request_fields`` and the JSON Schema types that carry them.
_JSON_TYPES = {"string": "string", "integer": "integer", "number": "number", "date-time": "string"}


def online_spec(spec: ModelSpec) -> OnlineSpec:
    """The spec's :class:`OnlineSpec`, checked against its ``request_fields`` and columns.

    A clear ``ValueError`` names the spec and what to fix: no ``online``, not an OnlineSpec, a
    request field missing from the item model or of another JSON type, an item field the spec
    does not declare, a prediction without the spec's id and time columns.
    """
    from mlops.spec.model import resolve

    if not spec.online:
        raise ValueError(
            f"model spec {spec.name!r} has no online serving: set ModelSpec.online to the import path "
            "of an mlops.serving.online.OnlineSpec (docs/specs.md, 'Serving')"
        )
    online = resolve(spec.online)
    if not isinstance(online, OnlineSpec):
        raise ValueError(
            f"{spec.online!r} (ModelSpec.online of {spec.name!r}) is a {type(online).__name__}, not an OnlineSpec"
        )
    props = online.item_model.model_json_schema().get("properties", {})
    problems = []
    for name, kind in spec.request_fields.items():
        if kind not in _JSON_TYPES:
            problems.append(
                f"request field {name!r} has JSON type {kind!r}; use one of {sorted(_JSON_TYPES)}"
            )
        elif name not in props:
            problems.append(f"request field {name!r} is not a field of {online.item_model.__name__}")
        else:
            types = {p.get("type") for p in props[name].get("anyOf", [props[name]])} - {"null"}
            if types != {_JSON_TYPES[kind]}:
                problems.append(
                    f"request field {name!r} is {kind!r} in the spec, {sorted(map(str, types))} in {online.item_model.__name__}"
                )
    extra = sorted(set(props) - set(spec.request_fields))
    if extra:
        problems.append(f"{online.item_model.__name__} has fields the spec's request_fields lack: {extra}")
    shown = online.describe_row(online.warmup)
    for column in (spec.id_column, spec.time_column):
        if column not in shown:
            problems.append(f"describe_row gives {sorted(shown)}, not the spec's column {column!r}")
    if problems:
        raise ValueError(
            f"online serving of model spec {spec.name!r} ({spec.online}): " + "; ".join(problems)
        )
    return online


@dataclass(frozen=True)
class _View:
    view: Any  # feast.FeatureView
    name: str
    join_key: str
    features: list[str]


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

    def __init__(
        self,
        store: FeatureStore,
        service: str | None = None,
        *,
        direct: bool = True,
        keys: Callable[[Any], dict[str, str]] | None = None,
    ) -> None:
        if service is None or keys is None:  # the default spec's (callers from before specs)
            default = online_spec(_default_spec())
            service = service or _default_spec().feature_service
            keys = keys or default.entity_keys
        self.store = store
        self.service = service
        #: A request row -> its Feast join keys (the spec's ``OnlineSpec.entity_keys``).
        self.keys_of = keys
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

    def read(self, rows: Sequence[Any]) -> tuple[list[dict[str, Any]], list[list[str]]]:
        """Feast values of request ``rows`` (dicts by feature name) and, per row, the views not found."""
        keys_of = self.keys_of
        return self.read_keys([keys_of(r) for r in rows])


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
    and cached: a day's rows share most of them). Read-only connection, one per thread.

    The query text depends on how many distinct keys each view has in the request; the texts are
    kept in an LRU of :attr:`SQL_CACHE_SIZE` entries (a single-row request always has the same
    one), so batches crafted to have ever new shapes cannot grow memory.
    """

    #: Most query texts kept (each is up to ~16 KB for a 1,000-row batch).
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


def _default_spec() -> ModelSpec:
    from mlops.spec.model import model_spec

    return model_spec(None)


def load_reader(settings: Any = None, spec: ModelSpec | str | None = None) -> OnlineFeatureReader:
    """A reader of ``spec``'s feature service (default: the flight-delay spec's) on the profile's
    feature store (``mlops.features.feature_store.get_store``)."""
    from mlops.features.feature_store import get_store
    from mlops.spec.model import model_spec

    resolved = model_spec(spec)
    return OnlineFeatureReader(
        get_store(settings), resolved.feature_service, keys=online_spec(resolved).entity_keys
    )
