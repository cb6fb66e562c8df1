"""The air-time model online (``mlops serve --spec air_time``): the flight request, minutes in the air.

The request, its entity keys and the features of one flight are the flight models' shared ones
(:data:`mlops.flight_delay.serving.FLIGHTS`); the service reads the views of ``air_time_v1`` and
answers ``air_time_minutes`` per flight, with no threshold and no decision (a regressor).
"""

from __future__ import annotations

from mlops.flight_delay.serving import FLIGHTS

#: ``ModelSpec.online`` of :mod:`mlops.air_time.model`.
AIR_TIME = FLIGHTS.replace(
    title="Air-time prediction service",
    summary="Minutes in the air (wheels-off to wheels-on) for flights leaving New York",
    prediction_doc="predicted minutes in the air, wheels-off to wheels-on",
    route_summary="Predicted minutes in the air for one or many flights",
)
