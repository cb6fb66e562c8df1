"""Ingest: a feed's daily landing export -> validated, curated lake partition, or quarantine.

Every step takes a feed spec (:class:`mlops.spec.feed.FeedSpec`; the registered feeds are
:data:`mlops.spec.feed.FEEDS`) and names no feed itself. A feed's own parts (its suite and semantic
checks, its normalization, its replay and faults) live in its spec package. Modules:

* :mod:`mlops.ingest.landing` - when a landing export is complete (the ``_SUCCESS`` contract);
* :mod:`mlops.ingest.steps` - the two idempotent steps of an ingest DAG (``ingest_<feed>``):
  validate, then publish or quarantine; a partition's lineage (:func:`~mlops.ingest.steps.describe_partition`);
* :mod:`mlops.ingest.validation` - the suite runner (:class:`~mlops.ingest.validation.Suite`,
  :class:`~mlops.ingest.validation.SuiteValidator`), its outcome and reports, and the sentences of
  the shared expectations;
* :mod:`mlops.ingest.expectations` - the table-level GX metrics and expectations suites share, and
  the two helpers that turn a feed's plain-pandas semantic checks into GX ones;
* :mod:`mlops.ingest.normalize` - raw export -> curated columns, through the feed spec;
* :mod:`mlops.ingest.simulator` - the upstream systems, simulated: replays 2013 onto any day, any
  feed.
"""
