"""The served-prediction log: batched, written off the request path, read by ``monitor_drift``.

A request appends one small tuple per flight to an in-memory buffer (a ``deque`` append, no I/O,
no pandas). A background thread flushes the buffer every ``flush_seconds`` (or as soon as it
holds ``max_rows``) into parquet files:

``{lake}/predictions_online/ds=YYYY-MM-DD/part-<YYYYmmddTHHMMSSffffffZ>-<pid>-<seq>.parquet``

``ds`` is the flight's local (New York) date of scheduled departure, the partition date of the
curated lake and of batch predictions, so a day's online and batch predictions sit side by side.
Each file is written atomically (:func:`mlops.lake.write_bytes`); the pid and a sequence number
keep the names of several workers or restarts apart.

The flush builds the Arrow table straight from the buffered values (:func:`to_table`, a few
milliseconds for thousands of rows) rather than through pandas (:func:`to_frame`, the reference
it is tested equal to, with the same schema): the flush thread shares the GIL with the request
path, and on a loaded machine a flush that holds it for a hundred milliseconds shows up in the
request latency tail. :meth:`PredictionLogger.start` warms the write path (imports, schema) before
the service takes requests. Columns: :data:`mlops.serving.scoring.ONLINE_COLUMNS`
(the batch columns plus ``request_id``, ``served_at``, ``prediction_id``, ``alias`` and ``role``).

Shadow and canary (:mod:`mlops.serving.rollout`): every scored flight is one row per model that
scored it, all under the flight's ``prediction_id``. ``role == "served"`` is the answer the client
got (``alias`` ``champion``, or ``challenger`` for a canary flight); ``role == "shadow"`` is the
other model's score, computed off the response path. A reader of what was *served* (drift,
live performance) keeps ``role == "served"``; :mod:`mlops.monitoring.shadow` pairs the two.

With a :class:`mlops.serving.sidecar.Sidecar` (the service's default), the Arrow table and the
parquet file are built and written in that child process (:func:`write_pickled`): the flush thread
only pickles the buffered rows, :data:`PICKLE_CHUNK` at a time (each well under a millisecond of
GIL), and waits on the pipe. The files, names and columns are the same either way.

If the buffer is full (``max_buffer`` rows, e.g. the lake is unreachable) new rows are dropped
and counted (``mlops_serving_prediction_log_dropped_total``) rather than slowing requests or
growing memory without bound. A write that fails is retried at the next flush, then dropped.
Shutdown flushes what is left.
"""

from __future__ import annotations

import collections
import functools
import io
import logging
import os
import pickle
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    import pandas as pd
    import pyarrow as pa

    from mlops.serving.online import FlightRequest
    from mlops.serving.sidecar import Sidecar
    from mlops.spec.model import ModelSpec

log = logging.getLogger(__name__)

#: Rows pickled per call when the flush hands a batch to the sidecar (~50 us of GIL each).
PICKLE_CHUNK = 64


@dataclass(frozen=True)
class LoggedPrediction:
    """What the request path hands over: references only, turned into rows by the flush thread."""

    request_id: str
    served_at: float
    flight: FlightRequest
    features: Mapping[str, Any]
    probability: float
    threshold: float
    model_name: str
    model_version: str
    #: One id per flight of a request: the served row and its shadow share it.
    prediction_id: str = ""
    #: The alias the model stood for (``champion``, ``challenger``) and whether it answered.
    alias: str = "champion"
    role: str = "served"


class PredictionLogger:
    """Buffers served predictions and writes them to the lake in batches from a daemon thread."""

    def __init__(
        self,
        lake_uri: str,
        *,
        flush_seconds: float = 5.0,
        max_rows: int = 20_000,
        max_buffer: int = 200_000,
        on_written: Callable[[int, str], None] | None = None,
        on_dropped: Callable[[int], None] | None = None,
        sidecar: Sidecar | None = None,
        spec: ModelSpec | str | None = None,
    ) -> None:
        from mlops import layout
        from mlops.spec.model import model_spec

        self.lake_uri = lake_uri
        #: The served model's spec: its lake folder and its columns (:func:`mlops.serving.scoring.online_columns`).
        self.spec = model_spec(spec)
        self.prefix = layout.predictions_online_root(lake_uri, self.spec.lake_folder)
        self.flush_seconds = float(flush_seconds)
        self.max_rows = int(max_rows)
        self.max_buffer = int(max_buffer)
        self._buffer: collections.deque[LoggedPrediction] = collections.deque()
        self._retry: list[LoggedPrediction] = []
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._flush_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._seq = 0
        self._on_written = on_written
        self._on_dropped = on_dropped
        #: Where the tables are built and written (None: in the flush thread).
        self.sidecar = sidecar
        self.written_rows = 0
        self.written_files = 0
        self.dropped_rows = 0
        self.last_error: str | None = None

    # -- request path -------------------------------------------------------------------------
    def log(self, entries: list[LoggedPrediction]) -> None:
        """Hand predictions over (O(1) per row; never blocks on I/O)."""
        if len(self._buffer) + len(entries) > self.max_buffer:
            self.dropped_rows += len(entries)
            if self._on_dropped:
                self._on_dropped(len(entries))
            return
        self._buffer.extend(entries)
        if len(self._buffer) >= self.max_rows:
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._buffer) + len(self._retry)

    # -- background ---------------------------------------------------------------------------
    def start(self) -> None:
        """Warm the write path (imports, schema), then flush from a daemon thread."""
        if self._thread is not None:
            return
        if self.sidecar is None:
            warm_up(self.spec)
        else:
            self.sidecar.call("mlops.serving.logger:warm_up", self.spec.ref)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="prediction-logger", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            self.flush()

    def close(self, timeout: float = 30.0) -> None:
        """Stop the thread and flush what is buffered."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.flush()

    def flush(self) -> int:
        """Write everything buffered now; returns the rows written."""
        with self._flush_lock:
            batch, retried = self._retry, bool(self._retry)
            self._retry = []
            while self._buffer:
                batch.append(self._buffer.popleft())
            if not batch:
                return 0
            try:
                written = self._write(batch)
            except Exception as exc:
                self.last_error = f"writing {len(batch)} served predictions under {self.prefix} failed: {exc}"
                log.error("%s", self.last_error, exc_info=True)
                if retried:  # second failure in a row: drop rather than grow without bound
                    self.dropped_rows += len(batch)
                    if self._on_dropped:
                        self._on_dropped(len(batch))
                else:
                    self._retry = batch
                return 0
            self.last_error = None
            return written

    def _write(self, batch: list[LoggedPrediction]) -> int:
        if self.sidecar is None:
            parts = write_parts(self.lake_uri, batch, os.getpid(), self._seq, self.spec)
        else:
            chunks = [
                pickle.dumps(batch[i : i + PICKLE_CHUNK], protocol=pickle.HIGHEST_PROTOCOL)
                for i in range(0, len(batch), PICKLE_CHUNK)
            ]
            parts = self.sidecar.call(
                "mlops.serving.logger:write_pickled",
                self.lake_uri,
                chunks,
                os.getpid(),
                self._seq,
                self.spec.ref,  # by name: the child resolves it
            )
        total = 0
        for n, uri in parts:
            self._seq += 1
            total += n
            self.written_files += 1
            if self._on_written:
                self._on_written(n, uri)
        self.written_rows += total
        log.debug("wrote %d served predictions (%d files)", total, self.written_files)
        return total

    def describe(self) -> dict[str, Any]:
        return {
            "prefix": self.prefix,
            "pending": self.pending,
            "written_rows": self.written_rows,
            "written_files": self.written_files,
            "dropped_rows": self.dropped_rows,
            "last_error": self.last_error,
            "writer": "sidecar" if self.sidecar is not None else "thread",
        }


def write_parts(
    lake_uri: str, batch: list[LoggedPrediction], pid: int, seq: int, spec: ModelSpec | str | None = None
) -> list[tuple[int, str]]:
    """Write ``batch`` as one parquet file per ``ds`` under the spec's folder; ``(rows, uri)`` of
    each file, in order.

    File names: ``part-<UTC stamp>-<pid>-<seq>.parquet``, ``seq`` counting on from ``seq + 1``.
    """
    from mlops import lake, layout
    from mlops.spec.model import model_spec

    s = model_spec(spec)
    by_day: dict[str, list[LoggedPrediction]] = {}
    for entry in batch:
        by_day.setdefault(entry.flight.ds, []).append(entry)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    out: list[tuple[int, str]] = []
    for ds in sorted(by_day):
        part = by_day[ds]
        seq += 1
        folder = layout.predictions_online_dir(lake_uri, ds, s.lake_folder)
        uri = lake.join(folder, f"part-{stamp}-{pid}-{seq:06d}.parquet")
        lake.write_bytes(uri, parquet_bytes(to_table(part, s)))
        out.append((len(part), uri))
    return out


def write_pickled(
    lake_uri: str, chunks: list[bytes], pid: int, seq: int, spec: str | None = None
) -> list[tuple[int, str]]:
    """:func:`write_parts` of the rows pickled in ``chunks`` (the sidecar's side of a flush)."""
    batch: list[LoggedPrediction] = []
    for chunk in chunks:
        batch.extend(pickle.loads(chunk))  # noqa: S301 - our own server's pipe, not outside input
    return write_parts(lake_uri, batch, pid, seq, spec)


def to_frame(batch: list[LoggedPrediction], spec: ModelSpec | str | None = None) -> pd.DataFrame:
    """Rows of :func:`mlops.serving.scoring.online_columns` of the spec (default: flight delay's
    :data:`~mlops.serving.scoring.ONLINE_COLUMNS`) for logged predictions."""
    import pandas as pd

    from mlops.serving import scoring
    from mlops.spec.model import model_spec

    s = model_spec(spec)
    rows = [e.flight for e in batch]
    ids = pd.DataFrame({col: [getattr(r, col) for r in rows] for col in scoring.row_columns(s)})
    if s.time_column in ids:
        ids[s.time_column] = pd.to_datetime(ids[s.time_column], utc=True)
    features = pd.DataFrame.from_records([dict(e.features) for e in batch])
    out = scoring.assemble(
        ids,
        features,
        [e.probability for e in batch],
        threshold=[e.threshold for e in batch] if scoring.has_decision(s) else None,
        model_name=[e.model_name for e in batch],
        model_version=[e.model_version for e in batch],
        source="online",
        spec=s,
    )
    out["request_id"] = pd.array([e.request_id for e in batch], dtype="string")
    out["served_at"] = pd.to_datetime([e.served_at for e in batch], unit="s", utc=True).astype(
        "datetime64[us, UTC]"
    )
    for col in ("prediction_id", "alias", "role"):
        out[col] = pd.array([getattr(e, col) for e in batch], dtype="string")
    return out[scoring.online_columns(s)]


# --------------------------------------------------------------------------------------------------
# The fast path: Arrow columns from the buffered values (same schema as to_frame's)
# --------------------------------------------------------------------------------------------------

_NAN = float("nan")


def _sample(spec: ModelSpec | str | None = None) -> LoggedPrediction:
    from mlops.serving.online import online_spec
    from mlops.spec.model import model_spec

    online = online_spec(model_spec(spec))
    row = online.warmup
    return LoggedPrediction("warm-up", 0.0, row, online.feature_row(row, {}), 0.0, 0.5, "warm-up", "0")


@functools.cache
def online_schema(spec: str | None = None) -> pa.Schema:
    """The Arrow schema of :func:`to_frame`'s frame for the spec named ``spec`` (its ``ref``; pandas
    metadata included: same dtypes on read)."""
    import pyarrow as pa

    return pa.Schema.from_pandas(to_frame([_sample(spec)], spec), preserve_index=False)


def _float(value: Any) -> float:
    if value is None:
        return _NAN
    try:
        return float(value)
    except (TypeError, ValueError):
        return _NAN


def to_table(batch: list[LoggedPrediction], spec: ModelSpec | str | None = None) -> pa.Table:
    """:func:`to_frame` as an Arrow table, built from Python lists (no pandas on the flush path)."""
    import pyarrow as pa

    from mlops.serving import scoring
    from mlops.spec.model import model_spec

    s = model_spec(spec)
    rows = [e.flight for e in batch]
    probs = [float(e.probability) for e in batch]
    cols: dict[str, list[Any]] = {col: [getattr(r, col) for r in rows] for col in scoring.row_columns(s)}
    cols[s.prediction_column] = probs
    decision = scoring.decision_column(s)
    if decision is not None:
        cols[decision] = [p >= e.threshold for p, e in zip(probs, batch, strict=True)]
        cols[scoring.THRESHOLD_COLUMN] = [float(e.threshold) for e in batch]
    cols["model_name"] = [e.model_name for e in batch]
    cols["model_version"] = [str(e.model_version) for e in batch]
    cols["source"] = ["online"] * len(batch)
    cols["request_id"] = [e.request_id for e in batch]
    cols["served_at"] = [datetime.fromtimestamp(e.served_at, UTC) for e in batch]
    cols["prediction_id"] = [e.prediction_id for e in batch]
    cols["alias"] = [e.alias for e in batch]
    cols["role"] = [e.role for e in batch]
    schema = online_schema(s.ref)
    arrays = []
    for fld in schema:
        values = cols.get(fld.name)
        if values is None:  # a model input, typed as the schema says (categorical: string)
            raw = [e.features.get(fld.name) for e in batch]
            if pa.types.is_string(fld.type) or pa.types.is_large_string(fld.type):
                values = [None if v is None or (isinstance(v, float) and v != v) else str(v) for v in raw]
            else:
                values = [_float(v) for v in raw]
        arrays.append(pa.array(values, type=fld.type, from_pandas=True))
    return pa.Table.from_arrays(arrays, schema=schema)


def parquet_bytes(table: pa.Table) -> bytes:
    """The table as zstd parquet (the settings of :func:`mlops.lake.write_parquet`)."""
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


def warm_up(spec: ModelSpec | str | None = None) -> None:
    """Import and exercise the write path once (schema, Arrow, parquet) off the request path."""
    parquet_bytes(to_table([_sample(spec)], spec))
