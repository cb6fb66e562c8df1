"""Feature views: what a flight knows before its scheduled departure (rules in mlops.flight_delay.features)."""

from datetime import timedelta

from entities import aircraft, aircraft_day, airport_day, airport_hour, carrier_day, flight_day, route_day
from feast import FeatureView, Field
from feast.types import Float64, String
from sources import (
    aircraft_previous_leg_source,
    aircraft_source,
    carrier_delay_stats_source,
    flight_number_stats_source,
    origin_congestion_source,
    origin_delay_stats_source,
    origin_weather_source,
    route_delay_stats_source,
)


def _stats(prefix: str) -> list[Field]:
    return [
        Field(name=f"{prefix}_{stat}_{days}d", dtype=Float64)
        for days in (7, 28)
        for stat in ("flights", "cancel_rate", "dep_delay_mean", "delayed_rate")
    ]


# The flight number's own record over the 7 and 28 days before the flight's day.
flight_number_stats_fv = FeatureView(
    name="flight_number_stats",
    entities=[flight_day],
    ttl=timedelta(days=2),
    schema=_stats("fltno"),
    source=flight_number_stats_source,
    tags={"team": "ml-platform", "rule": "days [D-k, D-1], outcomes known before D 00:00 local"},
)

# Latest weather observation at the origin strictly before the prediction time (<= 3 h old).
origin_weather_fv = FeatureView(
    name="origin_weather",
    entities=[airport_hour],
    ttl=timedelta(hours=2),
    schema=[
        Field(name="wx_temp", dtype=Float64),
        Field(name="wx_dewp", dtype=Float64),
        Field(name="wx_humid", dtype=Float64),
        Field(name="wx_wind_dir", dtype=Float64),
        Field(name="wx_wind_speed", dtype=Float64),
        Field(name="wx_wind_gust", dtype=Float64),
        Field(name="wx_precip", dtype=Float64),
        Field(name="wx_pressure", dtype=Float64),
        Field(name="wx_visib", dtype=Float64),
        Field(name="wx_obs_epoch", dtype=Float64),
    ],
    source=origin_weather_source,
    tags={"team": "ml-platform", "rule": "observation time < row time <= prediction time"},
)

# Congestion at the origin from flights scheduled in the 1-2 hours before (15-minute grid).
origin_congestion_fv = FeatureView(
    name="origin_congestion",
    entities=[airport_hour],
    ttl=timedelta(hours=2),
    schema=[
        Field(name="cong_sched_prev_1h", dtype=Float64),
        Field(name="cong_dep_delay_mean_prev_2h", dtype=Float64),
        Field(name="cong_not_departed_prev_2h", dtype=Float64),
    ],
    source=origin_congestion_source,
    tags={"team": "ml-platform", "rule": "flights scheduled before the grid time, as known then"},
)

# Carrier delay statistics over the 7 and 28 days before the flight's day.
carrier_delay_stats_fv = FeatureView(
    name="carrier_delay_stats",
    entities=[carrier_day],
    ttl=timedelta(days=2),
    schema=_stats("carrier"),
    source=carrier_delay_stats_source,
    tags={"team": "ml-platform", "rule": "days [D-k, D-1], outcomes known before D 00:00 local"},
)

# Origin-airport delay statistics over the 7 and 28 days before the flight's day.
origin_delay_stats_fv = FeatureView(
    name="origin_delay_stats",
    entities=[airport_day],
    ttl=timedelta(days=2),
    schema=_stats("origin"),
    source=origin_delay_stats_source,
    tags={"team": "ml-platform", "rule": "days [D-k, D-1], outcomes known before D 00:00 local"},
)

# Route (origin-dest) delay statistics over the 7 and 28 days before the flight's day.
route_delay_stats_fv = FeatureView(
    name="route_delay_stats",
    entities=[route_day],
    ttl=timedelta(days=2),
    schema=_stats("route"),
    source=route_delay_stats_source,
    tags={"team": "ml-platform", "rule": "days [D-k, D-1], outcomes known before D 00:00 local"},
)

# Aircraft registry attributes (static snapshot; age is derived at request time).
aircraft_fv = FeatureView(
    name="aircraft",
    entities=[aircraft],
    ttl=timedelta(0),
    schema=[
        Field(name="plane_year", dtype=Float64),
        Field(name="plane_seats", dtype=Float64),
        Field(name="plane_engines", dtype=Float64),
        Field(name="plane_engine", dtype=String),
    ],
    source=aircraft_source,
    tags={"team": "ml-platform", "rule": "reference snapshot dated 1970-01-01"},
)

# The aircraft's latest earlier leg of the day and its departure delay as known then.
aircraft_previous_leg_fv = FeatureView(
    name="aircraft_previous_leg",
    entities=[aircraft_day],
    ttl=timedelta(days=2),
    schema=[
        Field(name="prev_leg_sched_epoch", dtype=Float64),
        Field(name="prev_leg_departed", dtype=Float64),
        Field(name="prev_leg_dep_delay", dtype=Float64),
        Field(name="prev_leg_cancelled", dtype=Float64),
        Field(name="legs_before_today", dtype=Float64),
    ],
    source=aircraft_previous_leg_source,
    tags={"team": "ml-platform", "rule": "leg scheduled and departed strictly before the row time"},
)
