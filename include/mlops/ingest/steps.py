"""Ingest one day of a feed: landing export -> validated, curated lake partition (or quarantine).

Every step takes the feed's spec (:class:`mlops.spec.feed.FeedSpec`, or its name; ``None`` is the
default feed of :func:`mlops.spec.feed.feed_spec`): its raw columns, suite, normalization and folders. Below, ``<feed>`` is its name.
Two steps, each idempotent and each a task of the feed's ingest DAG (``ingest_<feed>``):

1. :func:`validate_partition` reads ``{landing}/<feed>/ds=D/<feed>.csv``, checks it against
   upstream's ``_SUCCESS`` marker when there is one (:mod:`mlops.ingest.landing`: a size or hash that
   differs means upstream is still writing, :class:`~mlops.ingest.landing.LandingIncomplete`, retried),
   parses it strictly and runs the feed's Great Expectations suite (:mod:`mlops.ingest.validation`). On
   success it writes the report to the feed's report folder (``{lake}/reports/<reports>/ds=D/``,
   the spec's ``reports``); on failure it copies the batch that was validated and its report to
   ``{lake}/quarantine/<feed>/ds=D/`` and removes the
   landing export (and its marker) only if it still holds those bytes: a file upstream changed
   since is left in place. It returns a message that names the partition, the failed checks,
   example values and what to do next. Nothing is written to ``curated/``.
2. :func:`publish_partition` re-reads the landing export (refusing it if it changed since it was
   validated), normalizes it (the spec's ``normalize``) and writes
   ``{lake}/curated/<feed>/ds=D/data.parquet`` in one atomic write: a reader sees the previous
   partition or the new one, never a partial file, and a rerun replaces it.

The curated partition's :func:`content_hash` is a SHA-256 of a canonical serialization of its rows
(not of the parquet bytes, so it does not change with the parquet writer's version). It is stored
in the parquet footer (key ``mlops.content_hash``) beside the row count and the source's hash, and
travels in the ``curated_<feed>`` asset event.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlops import lake, layout
from mlops.config import Settings, get_settings
from mlops.errors import PermanentError
from mlops.ingest.landing import (
    LandingIncomplete,
    check_against_marker,
    read_marker,
    remove_marker_if_describes,
)
from mlops.spec.feed import FeedSpec, feed_spec

if TYPE_CHECKING:
    import pandas as pd

    from mlops.ingest.validation import SuiteValidator, ValidationOutcome

log = logging.getLogger(__name__)

#: Parquet footer keys written with every curated partition.
META_HASH, META_ROWS, META_DS, META_SOURCE = (
    b"mlops.content_hash",
    b"mlops.rows",
    b"mlops.ds",
    b"mlops.source_sha256",
)


class UnreadableBatch(ValueError):
    """The landing file is not a complete, parseable CSV export (empty, truncated, corrupt)."""


class LandingChanged(PermanentError, RuntimeError):
    """The landing export changed between validation and publication (retrying cannot help)."""


@dataclass(frozen=True)
class Partition:
    """Where one day of a feed lives in the landing zone and the lake."""

    ds: str
    landing_root: str
    lake_root: str
    feed: FeedSpec | None = None  # None: the default feed (mlops.spec.feed.feed_spec)

    @property
    def spec(self) -> FeedSpec:
        return feed_spec(self.feed)

    @property
    def landing(self) -> str:
        return self.spec.landing_file(self.landing_root, self.ds)

    @property
    def curated(self) -> str:
        return self.spec.curated_file(self.lake_root, self.ds)

    @property
    def quarantine(self) -> str:
        return self.spec.quarantine_dir(self.lake_root, self.ds)

    @property
    def reports(self) -> str:
        return self.spec.report_dir(self.lake_root, self.ds)


def partition(ds: str, settings: Settings | None = None, feed: FeedSpec | str | None = None) -> Partition:
    """The :class:`Partition` of ``feed``'s day ``ds`` (``YYYY-MM-DD``) under the configured landing
    and lake (``feed``: a spec or its name; the default feed when ``None``)."""
    try:
        dt.date.fromisoformat(ds)
    except (TypeError, ValueError):
        raise ValueError(f"partition date {ds!r} is not a YYYY-MM-DD date") from None
    s = settings or get_settings()
    return Partition(ds=ds, landing_root=s.landing_uri, lake_root=s.lake_uri, feed=feed_spec(feed))


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def parse_raw(data: bytes) -> pd.DataFrame:
    """Parse a raw export strictly; :class:`UnreadableBatch` says why when it cannot be trusted.

    A complete export is UTF-8 CSV text that ends with a newline: a missing final newline means
    the upload was cut (pandas would silently pad the last, partial row with nulls).
    """
    import pandas as pd

    if not data:
        raise UnreadableBatch("the file is empty (0 bytes)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnreadableBatch(
            f"not UTF-8 text ({exc.reason} at byte {exc.start}; first bytes {data[:4]!r}): "
            "a binary or compressed file?"
        ) from None
    if not text.endswith("\n"):
        tail = text.rsplit("\n", 1)[-1][:60]
        raise UnreadableBatch(f"the file does not end with a newline (last line {tail!r}): truncated?")
    try:
        return pd.read_csv(io.StringIO(text), on_bad_lines="error", low_memory=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise UnreadableBatch(f"not a parseable CSV export: {str(exc).strip()[:200]}") from None


@dataclass(frozen=True)
class ValidationResult:
    """What :func:`validate_partition` decided, with where it wrote things."""

    outcome: ValidationOutcome
    partition: Partition
    source_sha256: str
    report_uri: str  # the HTML report
    message: str

    @property
    def success(self) -> bool:
        return self.outcome.success

    def summary(self) -> dict[str, Any]:
        """JSON-able summary (XCom, asset metadata)."""
        return {
            **self.outcome.summary(),
            "feed": self.partition.spec.name,
            "ds": self.partition.ds,
            "rows": self.outcome.rows,
            "source_sha256": self.source_sha256,
            "report_uri": self.report_uri,
        }


def read_landing(p: Partition, *, require_marker: bool = False) -> tuple[bytes, str]:
    """The landing export's bytes and hash, checked against its ``_SUCCESS`` marker when present.

    Raises :class:`~mlops.ingest.landing.LandingIncomplete` (transient) when they do not match the marker,
    or when ``require_marker`` and there is none; ``FileNotFoundError`` when there is no export.
    """
    marker = read_marker(p.landing)
    data = lake.read_bytes(p.landing)
    digest = sha256(data)
    if marker is None and require_marker:
        raise LandingIncomplete(
            f"ds={p.ds}: {p.landing} has no _SUCCESS marker beside it: upstream has not finished the "
            "delivery (or is re-delivering the day); not read, nothing written; the task retries. "
            "Feeds that cannot write markers: MLOPS_LANDING_COMPLETENESS=stable:SECONDS "
            "(docs/landing-contract.md)"
        )
    check_against_marker(p.ds, p.landing, data, digest, marker)
    return data, digest


def validate_partition(
    ds: str,
    *,
    allow_partial: bool = False,
    settings: Settings | None = None,
    validator: SuiteValidator | None = None,
    require_marker: bool = False,
    feed: FeedSpec | str | None = None,
) -> ValidationResult:
    """Validate ``feed``'s day ``ds`` landing export; quarantine it when it fails (see module docstring).

    Raises ``FileNotFoundError`` when there is no landing export, and
    :class:`~mlops.ingest.landing.LandingIncomplete` when it does not match upstream's marker (or has
    none and ``require_marker``): both retryable conditions.
    """
    from mlops.ingest import validation

    p = partition(ds, settings, feed)
    spec = p.spec
    data, digest = read_landing(p, require_marker=require_marker)
    try:
        frame = parse_raw(data)
    except UnreadableBatch as exc:
        suite = spec.build_suite()  # its name and title (cheap: GX is not touched)
        outcome = validation.ValidationOutcome.unreadable(ds, str(exc), suite.name, suite.title)
    else:
        outcome = (validator or validation.default_validator(spec.suite)).validate(frame, ds, allow_partial)
    outcome.source = {"uri": p.landing, "sha256": digest, "bytes": len(data)}

    if outcome.success:
        _write_report(p.reports, outcome)
        message = f"ds={ds}: {outcome.rows} rows passed {outcome.summary()['evaluated']} expectations of {outcome.suite}"
        log.info("%s; report %s", message, lake.join(p.reports, layout.VALIDATION_HTML))
        return ValidationResult(outcome, p, digest, lake.join(p.reports, layout.VALIDATION_HTML), message)

    # Quarantine: a copy of the validated bytes + report first; then the landing export (and its
    # marker) is removed only if it still holds those bytes, so the copy makes it a move. A file
    # upstream changed since it was read is never deleted. A clean rerun replaces an older
    # quarantine of the same day.
    lake.delete_prefix(p.quarantine)
    lake.write_bytes(lake.join(p.quarantine, spec.landing_file_name()), data)
    _write_report(p.quarantine, outcome)
    relative = p.quarantine.removeprefix(p.lake_root.rstrip("/") + "/")
    if lake.delete_if_unchanged(p.landing, digest):
        remove_marker_if_describes(p.landing, digest)
        moved = f"batch moved to {relative}"
    else:
        moved = (
            f"batch copied to {relative} (the landing export changed after it was read: upstream is "
            f"still writing or re-delivering the day, so {p.landing} was left in place)"
        )
    message = (
        f"ds={ds}: {outcome.problems}; {moved} ({p.quarantine}, report "
        f"{layout.VALIDATION_HTML}); nothing was written to curated/ (a previous curated partition, if any, "
        "is unchanged); fix upstream and clear the task"
    )
    log.error(message)
    return ValidationResult(outcome, p, digest, lake.join(p.quarantine, layout.VALIDATION_HTML), message)


def _write_report(prefix: str, outcome: ValidationOutcome) -> None:
    lake.write_text(lake.join(prefix, layout.VALIDATION_JSON), outcome.json_text())
    lake.write_text(lake.join(prefix, layout.VALIDATION_HTML), outcome.html_text())


# --- publish --------------------------------------------------------------------------------------


def content_hash(frame: pd.DataFrame, feed: FeedSpec | str | None = None) -> str:
    """SHA-256 of a canonical serialization of a curated frame's rows, in contract column order."""
    canonical = frame[list(feed_spec(feed).curated_columns)].to_csv(
        index=False, lineterminator="\n", na_rep="", float_format="%.17g", date_format="%Y-%m-%dT%H:%M:%S.%fZ"
    )
    return sha256(canonical.encode("utf-8"))


def curated_frame(raw: pd.DataFrame, ds: str, feed: FeedSpec | str | None = None) -> pd.DataFrame:
    """Normalize a validated raw export and check it against the feed's curated contract."""
    spec = feed_spec(feed)
    frame = spec.normalized(raw)
    dtypes = {c: str(t) for c, t in frame.dtypes.items()}
    expected = {c: str(t) for c, t in spec.curated_columns.items()}
    if dtypes != expected:
        raise TypeError(
            f"ds={ds}: normalized {spec.name} frame does not match its curated columns: {dtypes} != {expected}"
        )
    other = sorted(set(frame[spec.partition_key]) - {ds})
    if other:
        raise ValueError(f"ds={ds}: normalized rows carry other dates {other[:3]}")
    return frame


@dataclass(frozen=True)
class Published:
    """A curated partition as written: the ``curated_<feed>`` asset event's metadata."""

    ds: str
    uri: str
    rows: int
    content_hash: str
    source_sha256: str
    feed: str  # the feed spec's name

    def metadata(self, validation: dict[str, Any] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "feed": self.feed,
            "ds": self.ds,
            "uri": self.uri,
            "rows": self.rows,
            "content_hash": self.content_hash,
            "source_sha256": self.source_sha256,
        }
        if validation is not None:
            keys = ("suite", "success", "evaluated", "successful", "allow_partial", "report_uri")
            out["validation"] = {k: validation[k] for k in keys if k in validation}
        return out


def publish_partition(
    ds: str,
    *,
    expected_sha256: str | None = None,
    settings: Settings | None = None,
    feed: FeedSpec | str | None = None,
) -> Published:
    """Write ``feed``'s day ``ds`` curated partition from its (validated) landing export, atomically.

    ``expected_sha256`` is the landing export's hash at validation time: publication refuses an
    export that changed since (:class:`LandingChanged`), so only validated bytes reach the lake;
    while it does not match upstream's marker either (upstream still writing, perhaps the same
    bytes again), the refusal is :class:`~mlops.ingest.landing.LandingIncomplete` (transient) instead.
    """
    p = partition(ds, settings, feed)
    spec = p.spec
    data = lake.read_bytes(p.landing)
    digest = sha256(data)
    if expected_sha256 is None or digest != expected_sha256:
        check_against_marker(ds, p.landing, data, digest, read_marker(p.landing))
    if expected_sha256 is not None and digest != expected_sha256:
        raise LandingChanged(
            f"ds={ds}: the landing export changed since it was validated ({expected_sha256} -> "
            f"{digest}); nothing was written to curated/; clear the validate task to revalidate"
        )
    frame = curated_frame(parse_raw(data), ds, spec)
    chash = content_hash(frame, spec)
    meta = {META_HASH: chash.encode(), META_ROWS: str(len(frame)).encode(), META_DS: ds.encode()}
    meta[META_SOURCE] = digest.encode()
    lake.write_bytes(p.curated, lake.parquet_bytes(frame, meta))  # also sweeps this file's dead temp files
    log.info("%s ds=%s: wrote %d rows to %s (%s)", spec.name, ds, len(frame), p.curated, chash)
    # Temp files of writers killed mid-write in partitions nobody rewrote since (an hour old).
    dataset = p.curated.rsplit("/", 2)[0]
    for stale in lake.sweep_stale_temp_files(dataset):
        log.warning("removed %s, left by a writer killed mid-write", stale)
    return Published(
        ds=ds, uri=p.curated, rows=len(frame), content_hash=chash, source_sha256=digest, feed=spec.name
    )


def read_curated_metadata(uri: str) -> dict[str, str]:
    """The ``mlops.*`` footer metadata of a curated partition (content hash, rows, ds, source)."""
    meta = lake.parquet_footer(uri)
    return {k.decode(): v.decode() for k, v in meta.items() if k.startswith(b"mlops.")}


def describe_partition(
    ds: str, settings: Settings | None = None, feed: FeedSpec | str | None = None
) -> dict[str, Any]:
    """Lineage of ``feed``'s curated partition ``ds`` as it is now: ``feed``, ``ds``, ``uri``,
    ``rows``, ``sha256`` (of the file), ``content_hash`` (the ingestion's row hash, the one its
    asset event carried) and the validation summary when its report exists; ``missing`` (and
    ``quarantined`` when its batch was rejected) when there is none."""
    import json

    import pyarrow.parquet as pq

    p = partition(ds, settings, feed)
    entry: dict[str, Any] = {"feed": p.spec.name, "ds": ds, "uri": p.curated}
    if not lake.exists(p.curated):
        entry["missing"] = True
        if lake.exists(lake.join(p.quarantine, layout.VALIDATION_JSON)):
            entry["quarantined"] = True
        return entry
    data = lake.read_bytes(p.curated)
    meta = pq.ParquetFile(io.BytesIO(data)).metadata
    footer = meta.metadata or {}
    entry.update(rows=meta.num_rows, sha256=hashlib.sha256(data).hexdigest())
    if META_HASH in footer:
        entry["content_hash"] = footer[META_HASH].decode()
    report = lake.join(p.reports, layout.VALIDATION_JSON)
    if lake.exists(report):
        summary = json.loads(lake.read_text(report))
        keep = ("suite", "success")
        entry["validation"] = {"report_uri": report, **{k: summary[k] for k in keep if k in summary}}
    return entry
