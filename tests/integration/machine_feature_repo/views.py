"""Feature views of the machine_sites set (rules in tests/unit/_synthetic_spec.py, site_stats_table)."""

from datetime import timedelta

from entities import site_day
from feast import FeatureView, Field
from feast.types import Float64
from sources import site_day_stats_source

# A site's runs and failure rate over the 7 days before the day, published at the day's local midnight.
site_day_stats_fv = FeatureView(
    name="site_day_stats",
    entities=[site_day],
    ttl=timedelta(days=2),
    schema=[
        Field(name="site_runs_prev_7d", dtype=Float64),
        Field(name="site_fail_rate_prev_7d", dtype=Float64),
    ],
    source=site_day_stats_source,
    tags={"team": "machines", "rule": "days [D-7, D-1], published at D 00:00 local"},
)
