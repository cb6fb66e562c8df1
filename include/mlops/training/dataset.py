"""The training set: labelled flights of a window with point-in-time features, its manifest, its files.

``build_training_set`` reads Feast (feature service ``flight_delay_v1``) and records every curated
partition it read (rows, sha256, ingestion content hash); ``save_training_set`` and
``load_training_set`` keep it at ``{lake}/training/as_of=YYYY-MM-DD/<data key>/``.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from mlops.schema import LABEL

if TYPE_CHECKING:
    from collections.abc import Mapping

    import pandas as pd

    from mlops.config import Settings
    from mlops.training.params import TrainParams, Window

#: Columns of a training frame that are not model inputs.
META_COLUMNS: tuple[str, ...] = ("flight_id", "sched_dep_ts", "ds")
TRAINING_SET_FILE = "training_set.parquet"
MANIFEST_FILE = "manifest.json"


def feature_columns(frame: pd.DataFrame) -> list[str]:
    """Model inputs of a training frame: every column but the meta columns and the label."""
    return [c for c in frame.columns if c not in META_COLUMNS and c != LABEL]


def categorical_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in feature_columns(frame) if str(frame[c].dtype) == "category"]


def sort_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Canonical row order (what determinism rests on).

    A frame already in that order (a saved training set is) is not copied: the result shares its
    data (a shallow copy with a fresh index), which keeps a 10x-volume year within memory.
    """
    import numpy as np
    import pandas as pd

    ts, ids = frame["sched_dep_ts"], frame["flight_id"]
    if pd.api.types.is_datetime64_any_dtype(ts) and not (ts.isna().any() or ids.isna().any()):
        t, i = ts.array.asi8, ids.to_numpy(dtype=object)
        if bool(np.all((t[1:] > t[:-1]) | ((t[1:] == t[:-1]) & (i[1:] >= i[:-1])))):
            out = frame.copy(deep=False)
            out.index = pd.RangeIndex(len(out))
            return out
    return frame.sort_values(["sched_dep_ts", "flight_id"], kind="stable", ignore_index=True)


def frame_hash(frame: pd.DataFrame) -> str:
    """A content hash of a frame (values and column names, order-sensitive)."""
    import pandas as pd

    digest = hashlib.sha256(json.dumps([str(c) for c in frame.columns]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------------
# Lineage of the curated partitions
# --------------------------------------------------------------------------------------------------


def partition_lineage(window: Window, settings: Settings | None = None) -> list[dict[str, Any]]:
    """The curated partitions of the window, as read now.

    Each: ``ds``, ``uri``, ``rows``, ``sha256`` (of the file), ``content_hash`` (the ingestion's
    row hash from the parquet footer, the one the ``curated_flights`` event carried) and the
    partition's ingestion validation summary when its report exists; ``missing`` when absent.
    """
    from mlops.config import get_settings

    lake_uri = (settings or get_settings()).lake_uri
    return [_partition_entry(lake_uri, ds) for ds in window.days()]


def _partition_entry(lake_uri: str, ds: str) -> dict[str, Any]:
    import io

    import pyarrow.parquet as pq

    from mlops import lake, layout

    uri = layout.curated_file(lake_uri, ds)
    if not lake.exists(uri):
        return {"ds": ds, "uri": uri, "missing": True}
    data = lake.read_bytes(uri)
    meta = pq.ParquetFile(io.BytesIO(data)).metadata
    footer = meta.metadata or {}
    entry: dict[str, Any] = {
        "ds": ds,
        "uri": uri,
        "rows": meta.num_rows,
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    if b"mlops.content_hash" in footer:
        entry["content_hash"] = footer[b"mlops.content_hash"].decode()
    report = lake.join(layout.report_dir(lake_uri, layout.VALIDATION, ds), layout.VALIDATION_JSON)
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


def build_training_set(
    window: Window, settings: Settings | None = None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Labelled flights of the window with their point-in-time features, from Feast.

    Returns the frame (sorted canonically) and its manifest: the window, the feature service,
    the features, and every curated partition read with its row count and hash.
    """
    from mlops.config import FEATURE_SERVICE
    from mlops.features import feature_store

    partitions = partition_lineage(window, settings)
    frame = feature_store.training_frame(window.start.isoformat(), window.end.isoformat(), settings)
    frame = sort_frame(frame)
    manifest = {
        "window": window.as_dict(),
        "feature_service": FEATURE_SERVICE,
        "features": feature_columns(frame),
        "categorical": categorical_columns(frame),
        "rows": len(frame),
        "partitions": partitions,
        "data_hash": frame_hash(frame),
    }
    return frame, manifest


def training_dir(window: Window, params: TrainParams, settings: Settings | None = None) -> str:
    """``{lake}/training/as_of=YYYY-MM-DD/<data key>``: one training set per as-of and window."""
    from mlops import layout
    from mlops.config import get_settings

    s = settings or get_settings()
    return layout.training_dir(s.lake_uri, window.as_of.isoformat(), params.data_key())


def save_training_set(frame: pd.DataFrame, manifest: Mapping[str, Any], directory: str) -> str:
    """Write ``training_set.parquet`` and ``manifest.json`` (atomically); returns the parquet URI."""
    from mlops import lake

    uri = lake.join(directory, TRAINING_SET_FILE)
    lake.write_parquet(uri, frame)
    lake.write_text(
        lake.join(directory, MANIFEST_FILE), json.dumps({**manifest, "uri": uri}, indent=2, default=str)
    )
    return uri


def load_training_set(uri: str) -> pd.DataFrame:
    """Read a saved training set back with the fixed categories of the categorical features.

    Read as ``pandas.read_parquet`` does, but column by column with the Arrow memory released as it
    goes (``split_blocks``, ``self_destruct``), from the file itself when local: the frame, not
    three copies of it, is what a 10x-volume year costs (benchmarks/bench_memory.py).
    """
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlops import lake
    from mlops.features import compute

    source = str(lake.local_path(uri)) if uri.startswith("file://") else io.BytesIO(lake.read_bytes(uri))
    table = pq.read_table(source, use_pandas_metadata=True)
    frame = table.to_pandas(split_blocks=True, self_destruct=True)
    del table
    pa.default_memory_pool().release_unused()  # hand the freed Arrow buffers back to the system
    dtypes = compute.categorical_dtypes()
    for col in frame.columns:
        if col in dtypes:
            frame[col] = frame[col].astype("object").where(frame[col].notna(), None).astype(dtypes[col])
        elif str(frame[col].dtype) == "category":
            frame[col] = frame[col].astype("object").astype("category")
    return sort_frame(frame)
