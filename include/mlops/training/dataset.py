"""The training set of a model spec: labelled rows of a window with their features, its manifest, its files.

``build_training_set`` asks the spec for its frame (:attr:`mlops.spec.model.ModelSpec.frame`; the
Feast-backed specs use :func:`feast_frame`: point-in-time features of the spec's feature service)
and records every curated partition of the spec's feeds it read (rows, sha256, ingestion content
hash); ``save_training_set`` and ``load_training_set`` keep it at
``{lake}/training/as_of=YYYY-MM-DD/<spec>-<data key>/``.

Every function that takes ``spec`` defaults to the default model spec (:func:`mlops.spec.model.model_spec`).
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from mlops.spec.model import model_spec

if TYPE_CHECKING:
    from collections.abc import Mapping

    import pandas as pd

    from mlops.config import Settings
    from mlops.spec.model import ModelSpec
    from mlops.training.params import TrainParams, Window

TRAINING_SET_FILE = "training_set.parquet"
MANIFEST_FILE = "manifest.json"


def feature_columns(frame: pd.DataFrame, spec: ModelSpec | None = None) -> list[str]:
    """Model inputs of a training frame: every column but the spec's meta columns and label."""
    spec = model_spec(spec)
    skip = {*spec.meta_columns, spec.label}
    return [c for c in frame.columns if c not in skip]


def categorical_columns(frame: pd.DataFrame, spec: ModelSpec | None = None) -> list[str]:
    return [c for c in feature_columns(frame, spec) if str(frame[c].dtype) == "category"]


def sort_frame(frame: pd.DataFrame, spec: ModelSpec | None = None) -> pd.DataFrame:
    """Canonical row order, by the spec's time then id column (what determinism rests on).

    A frame already in that order (a saved training set is) is not copied: the result shares its
    data (a shallow copy with a fresh index), which keeps a 10x-volume year within memory.
    """
    import numpy as np
    import pandas as pd

    spec = model_spec(spec)
    ts, ids = frame[spec.time_column], frame[spec.id_column]
    if pd.api.types.is_datetime64_any_dtype(ts) and not (ts.isna().any() or ids.isna().any()):
        t, i = ts.array.asi8, ids.to_numpy(dtype=object)
        if bool(np.all((t[1:] > t[:-1]) | ((t[1:] == t[:-1]) & (i[1:] >= i[:-1])))):
            out = frame.copy(deep=False)
            out.index = pd.RangeIndex(len(out))
            return out
    return frame.sort_values([spec.time_column, spec.id_column], kind="stable", ignore_index=True)


def frame_hash(frame: pd.DataFrame) -> str:
    """A content hash of a frame (values and column names, order-sensitive)."""
    import pandas as pd

    digest = hashlib.sha256(json.dumps([str(c) for c in frame.columns]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------------
# Lineage of the curated partitions
# --------------------------------------------------------------------------------------------------


def partition_lineage(
    window: Window, settings: Settings | None = None, spec: ModelSpec | None = None
) -> list[dict[str, Any]]:
    """The curated partitions of the window of each of the spec's feeds, as read now.

    Each: ``ds``, ``uri``, ``rows``, ``sha256`` (of the file), ``content_hash`` (the ingestion's
    row hash from the parquet footer, the one the ``curated_<feed>`` event carried) and the
    partition's ingestion validation summary when its report exists; ``missing`` when absent.
    Entries of a feed other than the first carry ``feed``.
    """
    from mlops.config import get_settings

    lake_uri = (settings or get_settings()).lake_uri
    feeds = model_spec(spec).feeds
    return [
        _partition_entry(lake_uri, ds, feed, first=index == 0)
        for index, feed in enumerate(feeds)
        for ds in window.days()
    ]


def _partition_entry(lake_uri: str, ds: str, feed: str, first: bool = True) -> dict[str, Any]:
    """One curated partition of ``feed`` (a registered feed name or a ``module:SPEC`` import path:
    its spec says the folder and where its validation reports are)."""
    import io

    import pyarrow.parquet as pq

    from mlops import lake, layout
    from mlops.spec.feed import feed_spec

    spec = feed_spec(feed)
    feed = spec.name
    uri = spec.curated_file(lake_uri, ds)
    if not lake.exists(uri):
        return {"ds": ds, "uri": uri, "missing": True, **({} if first else {"feed": feed})}
    data = lake.read_bytes(uri)
    meta = pq.ParquetFile(io.BytesIO(data)).metadata
    footer = meta.metadata or {}
    entry: dict[str, Any] = {
        "ds": ds,
        "uri": uri,
        "rows": meta.num_rows,
        "sha256": hashlib.sha256(data).hexdigest(),
        **({} if first else {"feed": feed}),
    }
    if b"mlops.content_hash" in footer:
        entry["content_hash"] = footer[b"mlops.content_hash"].decode()
    report = lake.join(spec.report_dir(lake_uri, ds), layout.VALIDATION_JSON)
    if lake.exists(report):
        summary = json.loads(lake.read_text(report))
        keep = ("suite", "success", "evaluated", "successful")
        entry["validation"] = {"report_uri": report, **{k: summary[k] for k in keep if k in summary}}
    return entry


def partition_fingerprint(partition: Mapping[str, Any]) -> str | None:
    """What identifies a partition's content: its ingestion content hash, else its file sha256."""
    return partition.get("content_hash") or partition.get("sha256")


def partitions_digest(partitions: list[Mapping[str, Any]]) -> str:
    """One hash of every partition's ``ds`` and fingerprint (``missing`` for an absent one)."""
    text = "\n".join(f"{p['ds']}:{partition_fingerprint(p) or 'missing'}" for p in partitions)
    return hashlib.sha256(text.encode()).hexdigest()


# --------------------------------------------------------------------------------------------------
# Build, save, load
# --------------------------------------------------------------------------------------------------


def feast_frame(spec: ModelSpec, start: str, end: str, settings: Settings | None = None) -> pd.DataFrame:
    """A Feast-backed spec's frame (its :attr:`~mlops.spec.model.ModelSpec.frame`): every curated
    row of its feature set's driving feed in [start, end) whose label (``spec.labels``) is known,
    with the point-in-time features of ``spec.feature_service`` and the request-time ones of
    ``spec.feature_set``; columns: meta, label, ``spec.features``."""
    from mlops.features import feature_store

    frame = feature_store.training_frame(
        start,
        end,
        settings,
        label=spec.label,
        labels=spec.labels,
        label_dtype=spec.label_dtype,
        service=spec.feature_service,
        feature_set=spec.feature_set,
    )
    missing = [c for c in spec.features if c not in frame.columns]
    if missing:
        raise ValueError(
            f"model spec {spec.name!r}: features {missing} are neither request-time features nor "
            f"served by {spec.feature_service}: fix ModelSpec.features or the feature service"
        )
    return frame[[*spec.meta_columns, spec.label, *spec.features]]


def build_training_set(
    window: Window, settings: Settings | None = None, spec: ModelSpec | None = None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Labelled rows of the window with their point-in-time features (the spec's frame).

    Returns the frame (sorted canonically) and its manifest: the spec, the window, the feature
    service, the features, and every curated partition read with its row count and hash.
    """
    from mlops.spec.features import feature_set

    spec = model_spec(spec)
    partitions = partition_lineage(window, settings, spec)
    frame = spec.build_frame(window.start.isoformat(), window.end.isoformat(), settings)
    frame = sort_frame(frame, spec)
    # What the feature set says a training set must leave out, recorded (the shipped set: days
    # without curated weather when the model uses weather, docs/feeds.md).
    features = feature_set(spec.feature_set)
    frame, gate = features.gate(frame, spec.features, settings, spec.day_column)
    manifest = {
        "spec": spec.ref,
        "model_name": spec.model_name,
        "label": spec.label,
        "window": window.as_dict(),
        "feature_service": spec.feature_service,
        "features": feature_columns(frame, spec),
        "categorical": categorical_columns(frame, spec),
        "rows": len(frame),
        "partitions": partitions,
        **({} if gate is None else {features.gate_key: gate}),
        "data_hash": frame_hash(frame),
    }
    return frame, manifest


def training_dir(
    window: Window, params: TrainParams, settings: Settings | None = None, spec: ModelSpec | None = None
) -> str:
    """``{lake}/training/as_of=YYYY-MM-DD/<spec>-<data key>``: one training set per model, as-of
    and window (two models trained as of the same day never share a folder)."""
    from mlops import layout
    from mlops.config import get_settings

    s = settings or get_settings()
    key = f"{model_spec(spec).name}-{params.data_key()}"
    return layout.training_dir(s.lake_uri, window.as_of.isoformat(), key)


def save_training_set(frame: pd.DataFrame, manifest: Mapping[str, Any], directory: str) -> str:
    """Write ``training_set.parquet`` and ``manifest.json`` (atomically); returns the parquet URI."""
    from mlops import lake

    uri = lake.join(directory, TRAINING_SET_FILE)
    lake.write_parquet(uri, frame)
    lake.write_text(
        lake.join(directory, MANIFEST_FILE), json.dumps({**manifest, "uri": uri}, indent=2, default=str)
    )
    return uri


def load_training_set(uri: str, spec: ModelSpec | None = None) -> pd.DataFrame:
    """Read a saved training set back with the fixed categories of the categorical features.

    Read as ``pandas.read_parquet`` does, but column by column with the Arrow memory released as it
    goes (``split_blocks``, ``self_destruct``), from the file itself when local: the frame, not
    three copies of it, is what a 10x-volume year costs (benchmarks/bench_memory.py).
    """
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlops import lake
    from mlops.spec.features import feature_set

    source = str(lake.local_path(uri)) if uri.startswith("file://") else io.BytesIO(lake.read_bytes(uri))
    table = pq.read_table(source, use_pandas_metadata=True)
    frame = table.to_pandas(split_blocks=True, self_destruct=True)
    del table
    pa.default_memory_pool().release_unused()  # hand the freed Arrow buffers back to the system
    dtypes = feature_set(model_spec(spec).feature_set).dtypes()
    for col in frame.columns:
        if col in dtypes:
            frame[col] = frame[col].astype("object").where(frame[col].notna(), None).astype(dtypes[col])
        elif str(frame[col].dtype) == "category":
            frame[col] = frame[col].astype("object").astype("category")
    return sort_frame(frame, spec)
