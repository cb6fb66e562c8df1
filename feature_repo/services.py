"""Feature services: the versioned set of features a model consumes (a new version gets _v2)."""

from feast import FeatureService
from views import (
    aircraft_fv,
    aircraft_previous_leg_fv,
    carrier_delay_stats_fv,
    flight_number_stats_fv,
    origin_congestion_fv,
    origin_delay_stats_fv,
    origin_weather_fv,
    route_delay_stats_fv,
)

# Everything the flight-delay model v1 reads from Feast (request-time features are added by mlops).
flight_delay_v1 = FeatureService(
    name="flight_delay_v1",
    # flight_number_stats first: its key is unique per flight (see mlops.flight_delay.features.VIEW_FEATURES).
    features=[
        flight_number_stats_fv,
        origin_weather_fv,
        origin_congestion_fv,
        carrier_delay_stats_fv,
        origin_delay_stats_fv,
        route_delay_stats_fv,
        aircraft_previous_leg_fv,
        aircraft_fv,
    ],
    description="Flight-delay model inputs known before scheduled departure",
    tags={"model": "flight_delay_xgb"},
)

# Everything the air-time model v1 reads from Feast: what bears on minutes in the air (weather and
# congestion at the origin, the route's recent record, the aircraft); request-time features
# (distance, airports, departure time) are added by mlops.
air_time_v1 = FeatureService(
    name="air_time_v1",
    features=[
        origin_weather_fv,
        origin_congestion_fv,
        route_delay_stats_fv,
        aircraft_fv,
    ],
    description="Air-time model inputs known before scheduled departure",
    tags={"model": "flight_air_time_xgb"},
)
