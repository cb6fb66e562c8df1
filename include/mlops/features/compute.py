"""Point-in-time feature tables of a feature set, built from the curated lake (plain pandas, no
Airflow, no Feast).

The contract
------------
A feature set (:class:`mlops.spec.features.FeatureSetSpec`; the shipped ones are registered in
:data:`mlops.spec.features.FEATURE_SETS`, each module's docstring states its rules) says its views,
how a day's tables are built and what a row's prediction time is. Every feature row written carries an
``event_timestamp`` that is the earliest instant it may be used, computed only from data whose
timestamps are *strictly before* that instant; Feast's point-in-time join takes, per entity key,
the latest row with ``event_timestamp <=`` the prediction time.

This module is the generic part: day ranges and time helpers, the partition span check, the
partition-wise build of a set's views (:func:`build_feature_tables`: idempotent, atomic, late data
rebuilds the days whose windows read it), which days a run must build (:func:`days_to_build`) and
which are built (:func:`built_partitions`, :func:`unbuilt_partitions`). Every function that takes
``feature_set`` defaults to :data:`mlops.spec.features.DEFAULT`.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from mlops import lake, layout
from mlops.config import Settings, get_settings
from mlops.schema import TIMEZONE
from mlops.spec import features as feature_sets

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    import pandas as pd

    from mlops.spec.features import FeatureSetSpec, View

log = logging.getLogger(__name__)

#: Minimal publication latency: a row built from data at time t is usable from t + 1 s.
PUBLISH_LAG = timedelta(seconds=1)
#: Every row of a daily partition ``ds`` has its event time in [local midnight of ds, + this): the
#: offline store reads only the partitions a query's time window can use (mlops.features.feast_duckdb).
#: Checked when the tables are built (:func:`check_partition_span`); a feature set may set its own
#: (``FeatureSetSpec.partition_event_span``, at most this).
PARTITION_EVENT_SPAN = timedelta(days=3)

TIMESTAMP = "event_timestamp"
CREATED = "created_timestamp"
#: Footer key of every daily feature partition: :func:`inputs_fingerprint` of what it was built from.
META_INPUTS = b"mlops.inputs_sha256"

# --------------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------------


def _day(ds: str | date) -> date:
    return ds if isinstance(ds, date) else date.fromisoformat(str(ds))


def day_range(start: str | date, end: str | date) -> list[str]:
    """Every ds in [start, end] (inclusive), as YYYY-MM-DD strings."""
    d, last = _day(start), _day(end)
    out = []
    while d <= last:
        out.append(d.isoformat())
        d += timedelta(days=1)
    return out


def local_midnight(ds: str | date) -> pd.Timestamp:
    """00:00 New York time on ``ds``, as a UTC timestamp."""
    import pandas as pd

    return pd.Timestamp(_day(ds).isoformat()).tz_localize(TIMEZONE).tz_convert("UTC")


def _utc(series: pd.Series) -> pd.Series:
    import pandas as pd

    out = pd.to_datetime(series, utc=True)
    return out.astype("datetime64[us, UTC]")


def _local(ts: pd.Series) -> pd.Series:
    return _utc(ts).dt.tz_convert(TIMEZONE)


def _epoch_seconds(ts: pd.Series) -> pd.Series:
    import numpy as np

    values = _utc(ts)
    out = (values.astype("int64") // 1_000_000).astype("float64")
    return out.where(values.notna(), np.nan)


def _micros(ts: pd.Series):
    """UTC timestamps as int64 microseconds since the epoch (NaT -> int64 max)."""
    import numpy as np

    naive = _utc(ts).dt.tz_localize(None).to_numpy(dtype="datetime64[us]")
    return np.where(np.isnat(naive), np.iinfo(np.int64).max, naive.astype("int64"))


def empty_table(view: View) -> pd.DataFrame:
    """A view's table with no row: its join key (text), ``event_timestamp`` and its features."""
    import pandas as pd

    cols: dict[str, pd.Series] = {
        view.join_key: pd.Series(dtype="string"),
        TIMESTAMP: pd.Series(dtype="datetime64[us, UTC]"),
    }
    for f in view.features:
        cols[f] = pd.Series(dtype="string" if f in view.text_features else "float64")
    return pd.DataFrame(cols)


def check_partition_span(
    view: str, ds: str, table: pd.DataFrame, span: timedelta = PARTITION_EVENT_SPAN
) -> None:
    """Fail when a row of ``view``'s partition ``ds`` lies outside ``span`` after its local midnight.

    The offline store prunes partitions by :data:`PARTITION_EVENT_SPAN`; a row outside it could be
    missed by a query.
    """
    if table.empty:
        return
    first = local_midnight(ds)
    ts = table[TIMESTAMP]
    outside = table[(ts < first) | (ts >= first + span)]
    if len(outside):
        raise ValueError(
            f"feature table {view} ds={ds}: {len(outside)} rows have event_timestamp outside "
            f"[{first}, {first + span}) (PARTITION_EVENT_SPAN), e.g. "
            f"{outside[TIMESTAMP].iloc[0]}: the offline store's partition pruning would miss them"
        )


# --------------------------------------------------------------------------------------------------
# Partition-wise build against the lake (idempotent)
# --------------------------------------------------------------------------------------------------


@dataclass
class BuildResult:
    """What :func:`build_feature_tables` wrote: partitions, rows per view, event-time interval;
    the days without a driving partition (``skipped``) and those already built from the same
    inputs (``current``, not rewritten)."""

    partitions: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    start: datetime | None = None
    end: datetime | None = None
    skipped: list[str] = field(default_factory=list)
    current: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "partitions": self.partitions,
            "rows": self.rows,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "skipped": self.skipped,
            "current": self.current,
        }


def read_curated(
    days: Iterable[str], settings: Settings | None = None, feed: str | None = None
) -> pd.DataFrame:
    """``feed``'s curated partitions of ``days`` that exist, concatenated (empty frame if none);
    ``feed`` is a name of :data:`mlops.spec.feed.FEEDS` or an import path (``None``: the default feed)."""
    import pandas as pd

    from mlops.spec.feed import feed_spec

    spec = feed_spec(feed)
    columns = dict(spec.curated_columns)
    lake_uri = (settings or get_settings()).lake_uri
    frames = []
    for ds in days:
        uri = spec.curated_file(lake_uri, ds)
        if lake.exists(uri):
            frames.append(lake.read_parquet(uri))
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in columns.items()})
    return pd.concat(frames, ignore_index=True).astype(columns)


def feed_partitions(
    feed: str, days: Iterable[str], settings: Settings | None = None
) -> list[dict[str, object]]:
    """Lineage of ``feed``'s curated partitions of ``days`` as they are now (rows, hashes, validation)."""
    from mlops.ingest.steps import describe_partition

    s = settings or get_settings()
    return [describe_partition(ds, s, feed) for ds in sorted(set(days))]


def _curated_exists(feed: str, ds: str, settings: Settings) -> bool:
    from mlops.spec.feed import feed_spec

    return lake.exists(feed_spec(feed).curated_file(settings.lake_uri, ds))


def days_to_build(
    new_days: Mapping[str, Iterable[str]],
    settings: Settings | None = None,
    feature_set: FeatureSetSpec | str | None = None,
) -> list[str]:
    """The days whose feature tables a run must (re)build, given the new curated days per feed.

    The driving feed's new days; for a new day ``D`` of another feed, the days reading it (``D`` ..
    ``D + reads_after[feed]``) that have a curated partition of the driving feed. Dependents
    (windows of ``history_days``) are added by :func:`build_feature_tables`.
    """
    fs = feature_sets.feature_set(feature_set)
    s = settings or get_settings()
    out = set(new_days.get(fs.driving, ()))
    for feed, days in new_days.items():
        if feed == fs.driving:
            continue
        if feed not in fs.feeds:
            raise ValueError(
                f"feature set {fs.name!r} does not read the feed {feed!r} (it reads {list(fs.feeds)})"
            )
        for ds in days:
            for n in range(fs.reads_after.get(feed, 0) + 1):
                day = (_day(ds) + timedelta(days=n)).isoformat()
                if day not in out and _curated_exists(fs.driving, day, s):
                    out.add(day)
    return sorted(out)


def dependent_days(
    ds_list: Iterable[str],
    settings: Settings | None = None,
    feature_set: FeatureSetSpec | str | None = None,
) -> list[str]:
    """Built daily partitions whose windows include one of ``ds_list`` (to rebuild on late data)."""
    fs = feature_sets.feature_set(feature_set)
    built = built_partitions(settings, fs)
    wanted = set(ds_list)
    out = set()
    for ds in wanted:
        for later in day_range(_day(ds) + timedelta(days=1), _day(ds) + timedelta(days=fs.history_days)):
            if later in built and later not in wanted:
                out.add(later)
    return sorted(out)


def built_partitions(
    settings: Settings | None = None, feature_set: FeatureSetSpec | str | None = None
) -> set[str]:
    """The days for which the set's daily views were built (by its last daily view's partitions)."""
    fs = feature_sets.feature_set(feature_set)
    prefix = layout.features_root((settings or get_settings()).lake_uri, fs.daily_views[-1])
    return {day for day in map(layout.partition_day, lake.list_uris(prefix)) if day}


def unbuilt_partitions(
    settings: Settings | None = None, feature_set: FeatureSetSpec | str | None = None
) -> list[str]:
    """Days of the driving feed's curated partitions whose feature tables are not built yet (a
    lost or pending trigger)."""
    from mlops.spec.feed import feed_spec

    fs = feature_sets.feature_set(feature_set)
    s = settings or get_settings()
    root = feed_spec(fs.driving).curated_root(s.lake_uri)
    curated_files = (uri for uri in lake.list_uris(root) if uri.endswith(layout.DATA_FILE))
    curated = {day for day in map(layout.partition_day, curated_files) if day}
    return sorted(curated - built_partitions(s, fs))


def _code_digest(fs: FeatureSetSpec) -> str:
    """sha256 of this module's source and of the modules of the set's builders (a changed builder
    makes every day's fingerprint change)."""
    from pathlib import Path

    paths = {__file__}
    for ref in (fs.build_day, fs.inputs, fs.build_static):
        if ref:
            module = importlib.import_module(ref.partition(":")[0])
            paths.add(str(module.__file__))
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()


def _curated_hash(feed: str, ds: str, settings: Settings, cache: dict[tuple[str, str], str]) -> str:
    """The content hash of ``feed``'s curated partition ``ds`` (its footer's, else the file's
    sha256), ``absent`` when there is none."""
    from mlops.ingest.steps import META_HASH
    from mlops.spec.feed import feed_spec

    if (feed, ds) not in cache:
        uri = feed_spec(feed).curated_file(settings.lake_uri, ds)
        if not lake.exists(uri):
            cache[feed, ds] = "absent"
        else:
            found = lake.parquet_footer(uri).get(META_HASH)
            cache[feed, ds] = found.decode() if found else hashlib.sha256(lake.read_bytes(uri)).hexdigest()
    return cache[feed, ds]


def inputs_fingerprint(
    ds: str,
    settings: Settings | None = None,
    feature_set: FeatureSetSpec | str | None = None,
    *,
    code: str | None = None,
    cache: dict[tuple[str, str], str] | None = None,
) -> str:
    """What day ``ds``'s feature tables are built from, as one sha256: the builders' code and the
    content hash of every curated partition the day reads (the driving feed's ``history_days``
    before it and the day itself; another feed's ``reads_after`` days before it and the day).
    Written in each daily partition's footer (:data:`META_INPUTS`): equal fingerprints, equal bytes."""
    fs = feature_sets.feature_set(feature_set)
    s = settings or get_settings()
    cache = {} if cache is None else cache
    lines = [f"code {code or _code_digest(fs)}"]
    for feed in (fs.driving, *(f for f in fs.feeds if f != fs.driving)):
        back = fs.history_days if feed == fs.driving else fs.reads_after.get(feed, 0)
        for day in day_range(_day(ds) - timedelta(days=back), ds):
            lines.append(f"{feed} {day} {_curated_hash(feed, day, s, cache)}")
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def is_current(
    ds: str,
    fingerprint: str,
    settings: Settings | None = None,
    feature_set: FeatureSetSpec | str | None = None,
) -> bool:
    """Every daily view of day ``ds`` is built, each from the inputs ``fingerprint`` names."""
    fs = feature_sets.feature_set(feature_set)
    s = settings or get_settings()
    for view in fs.daily_views:
        uri = layout.feature_file(s.lake_uri, view, ds)
        if not lake.exists(uri) or lake.parquet_footer(uri).get(META_INPUTS) != fingerprint.encode():
            return False
    return True


def build_feature_tables(
    ds_list: Iterable[str],
    settings: Settings | None = None,
    *,
    include_dependents: bool = True,
    skip_current: bool = False,
    feature_set: FeatureSetSpec | str | None = None,
) -> BuildResult:
    """Build the feature tables of the days ``ds_list`` from the curated lake (idempotent).

    Reads the driving feed's curated partitions of [min(ds) - history_days, max(ds)] and the set's
    other inputs, writes ``{lake}/features/<view>/ds=YYYY-MM-DD/data.parquet`` for each day and
    daily view (atomically, replacing what was there: the same inputs give byte-identical files)
    and every static view. With ``include_dependents``, days already built whose window contains
    one of ``ds_list`` (a late or rewritten partition) are rebuilt as well. Days without a curated
    partition of the driving feed are skipped (reported in ``skipped``). With ``skip_current``,
    days already built from the same inputs (:func:`inputs_fingerprint`, :func:`is_current`) are
    left as they are (reported in ``current``): an asset-triggered run whose events an earlier run
    already built does not build them again. Returns the event-time interval covered by the rows
    written.
    """
    from mlops.spec.feed import feed_spec

    fs = feature_sets.feature_set(feature_set)
    s = settings or get_settings()
    day_col = feed_spec(fs.driving).partition_key
    targets = sorted(set(ds_list))
    if include_dependents and targets:
        targets = sorted(set(targets) | set(dependent_days(targets, s, fs)))
    result = BuildResult()
    if not targets:
        return result
    # Before the curated data is read: a partition rewritten meanwhile then fails the next check.
    code, hashes = _code_digest(fs), {}
    fingerprints = {ds: inputs_fingerprint(ds, s, fs, code=code, cache=hashes) for ds in targets}
    if skip_current:
        result.current = [ds for ds in targets if is_current(ds, fingerprints[ds], s, fs)]
        if result.current:
            log.info("built from the same inputs already, not rebuilt: %s", result.current)
        targets = [ds for ds in targets if ds not in result.current]
        if not targets:
            return result
    first = (_day(targets[0]) - timedelta(days=fs.history_days)).isoformat()
    history = read_curated(day_range(first, targets[-1]), s, fs.driving)
    for view, table in fs.static_tables(history, s).items():
        lake.write_parquet(layout.static_feature_file(s.lake_uri, view), table)
        result.rows[view] = len(table)
    inputs = fs.read_inputs(targets, s)
    lo: pd.Timestamp | None = None
    hi: pd.Timestamp | None = None
    for ds in targets:
        if not (history[day_col] == ds).any():
            result.skipped.append(ds)
            log.warning(
                "ds=%s: no curated partition at %s; its features are not built",
                ds,
                feed_spec(fs.driving).curated_file(s.lake_uri, ds),
            )
            continue
        window_first = (_day(ds) - timedelta(days=fs.history_days)).isoformat()
        hist = history[(history[day_col] >= window_first) & (history[day_col] <= ds)]
        tables = fs.day_tables(hist, ds, inputs)
        for view in fs.daily_views:
            table = tables[view]
            check_partition_span(view, ds, table, fs.partition_event_span)
            lake.write_parquet(
                layout.feature_file(s.lake_uri, view, ds), table, {META_INPUTS: fingerprints[ds].encode()}
            )
            result.rows[view] = result.rows.get(view, 0) + len(table)
            if len(table):
                tmin, tmax = table[TIMESTAMP].min(), table[TIMESTAMP].max()
                lo = tmin if lo is None or tmin < lo else lo
                hi = tmax if hi is None or tmax > hi else hi
        result.partitions.append(ds)
    result.start = lo.to_pydatetime() if lo is not None else None
    result.end = hi.to_pydatetime() if hi is not None else None
    log.info("built feature partitions %s (%s)", result.partitions, result.rows)
    return result


def __getattr__(name: str) -> Any:
    # Transitional: the default feature set's own names (its views, builders, model features) were
    # defined here before feature sets; code that still reads them as ``compute.NAME`` gets them
    # from the set's module. New code imports them from there.
    if name.startswith("__"):
        raise AttributeError(name)
    module_name = feature_sets.feature_set().build_day.partition(":")[0]
    module = importlib.import_module(module_name)
    try:
        return getattr(module, name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
