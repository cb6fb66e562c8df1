"""Offline source of the machine_sites set: the tables mlops.features.compute builds under {lake}/features/."""

from feast import FileSource
from feast.data_format import ParquetFormat

from mlops.features.feature_store import source_path

site_day_stats_source = FileSource(
    name="site_day_stats",
    path=source_path("site_day_stats"),
    timestamp_field="event_timestamp",
    file_format=ParquetFormat(),
)
