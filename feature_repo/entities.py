"""Entities of the flight-delay feature repo.

Keys carry the local day or hour of the scheduled departure ("JFK|2013-05-01T08") so that each key
has a handful of rows and the point-in-time join stays cheap (see mlops.flight_delay.features).
"""

from feast import Entity, ValueType

# A flight number (carrier, number, origin) on one local day: unique per flight.
flight_day = Entity(name="flight_day", join_keys=["flight_day"], value_type=ValueType.STRING)

# An origin airport during one local hour of departures: weather and congestion.
airport_hour = Entity(name="airport_hour", join_keys=["origin_hour"], value_type=ValueType.STRING)

# An origin airport on one local day: its delay statistics as of the previous day.
airport_day = Entity(name="airport_day", join_keys=["origin_day"], value_type=ValueType.STRING)

# A carrier on one local day: its delay statistics as of the previous day.
carrier_day = Entity(name="carrier_day", join_keys=["carrier_day"], value_type=ValueType.STRING)

# A route (origin-dest) on one local day: its delay statistics as of the previous day.
route_day = Entity(name="route_day", join_keys=["route_day"], value_type=ValueType.STRING)

# An aircraft (tail number): its registry attributes.
aircraft = Entity(name="aircraft", join_keys=["tailnum"], value_type=ValueType.STRING)

# An aircraft on one local day: its previous leg of the day.
aircraft_day = Entity(name="aircraft_day", join_keys=["tailnum_day"], value_type=ValueType.STRING)
