"""Ingest: a feed's daily landing export -> validated, curated lake partition, or quarantine.

Every step takes a feed spec (:class:`mlops.spec.feed.FeedSpec`: the flights,
:mod:`mlops.flight_delay.feed`, by default; the weather, :mod:`mlops.weather.feed`). Modules:

* :mod:`mlops.ingest.landing` - when a landing export is complete (the ``_SUCCESS`` contract);
* :mod:`mlops.ingest.steps` - the two idempotent steps of an ingest DAG (``ingest_<feed>``):
  validate, then publish or quarantine; a partition's lineage (:func:`~mlops.ingest.steps.describe_partition`);
* :mod:`mlops.ingest.validation` - the suite runner (:class:`~mlops.ingest.validation.Suite`,
  :class:`~mlops.ingest.validation.SuiteValidator`), its outcome and reports, and the flights suite;
* :mod:`mlops.ingest.expectations` - the table-level GX metrics and expectations suites share;
* :mod:`mlops.ingest.semantics` - what the flights' values mean (clock fields, cross-column
  relations, a normal day's shape), the flights suite's custom checks;
* :mod:`mlops.ingest.normalize` - raw flights export -> curated columns (pure, deterministic);
* :mod:`mlops.ingest.simulator` - the upstream systems, simulated: replays 2013 onto any day, any
  feed (the flights' replay and faults live here, the weather's in :mod:`mlops.weather.feed`).
"""
