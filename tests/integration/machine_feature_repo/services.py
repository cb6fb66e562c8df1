"""Feature services of the machine_sites set."""

from feast import FeatureService
from views import site_day_stats_fv

machine_failure_v1 = FeatureService(
    name="machine_failure_v1",
    features=[site_day_stats_fv],
    description="Machine-failure model inputs known at the start of a run",
    tags={"model": "machine_failure_xgb"},
)
